"""A fresh install's first scheduled hot tick succeeds: `cryptorun schedule start` on a new
DAGSTER_HOME, and the daemon's first scan_hot run computes the regime window it needs itself.

The scan crons are shortened so that a hot tick falls within a minute of the start (hot every
minute, warm every 5 minutes; each divides the 4h regime interval, as 15 min and 2 h do). The
regime window a hot run needs closed at the last 4h boundary: no regime.refresh run has computed
it on a fresh instance, and none will before the next boundary. (Started within a few minutes
after a boundary, the scheduled regime run is in flight and the scan waits for it instead.)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli_helpers import CliEnv, cryptorun_executable  # noqa: E402

pytestmark = pytest.mark.e2e

OVERLAY = {
    "extends": str(Path(__file__).resolve().parents[3] / "config" / "scheduler.yaml"),
    "market": {"simulated": {"n_symbols": 40}},
    "jobs": [
        {"name": "scan.hot", "schedule": "* * * * *", "config": {"max_sample": 10}},
        {"name": "scan.warm", "schedule": "*/5 * * * *", "config": {"max_sample": 20}},
    ],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _runs(home: Path) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return list(instance.get_runs())


def test_the_first_scheduled_hot_run_of_a_fresh_install_succeeds(cli_env: CliEnv, tmp_path: Path) -> None:
    config = tmp_path / "config" / "fast.yaml"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump(OVERLAY))
    env = {**cli_env.env, "CRYPTORUN_CONFIG": str(config)}
    proc = subprocess.Popen([cryptorun_executable(), "schedule", "start", "--port", str(_free_port()), "--stop-timeout", "15"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 900  # minutes on a loaded machine; about two on an idle one
        hot: list[dg.DagsterRun] = []
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(5)
            if not (cli_env.home / "dagster.yaml").exists():
                continue
            runs = _runs(cli_env.home)
            failed = [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
            assert not failed, [(r.job_name, r.tags.get("dagster/partition")) for r in failed]
            hot = [r for r in runs if r.job_name == "scan_hot" and r.status == dg.DagsterRunStatus.SUCCESS]
            if hot:
                break
        assert proc.poll() is None, proc.stdout.read()  # type: ignore[union-attr]
        assert hot, "no scheduled scan_hot run succeeded within 15 minutes of the start"
        first = hot[-1]  # runs are newest first
        assert first.tags.get("dagster/schedule_name") == "scan_hot_schedule"
        folders = [p for p in cli_env.artifacts.iterdir() if not p.name.startswith(".")]
        assert any((f / "signals.csv").is_file() and (f / "explain.json").is_file() for f in folders), folders
        with dg.DagsterInstance.from_config(str(cli_env.home)) as instance:
            # the regime window it read is recorded as materialised (computed on demand, or by a regime run)
            assert instance.get_materialized_partitions(dg.AssetKey("regime_weights"))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
