"""Through the daemon: `cryptorun schedule start` on a fresh DAGSTER_HOME with the generic webhook
pointed at a loopback server; a scheduled scan_hot tick whose cycle has entries produces exactly one
delivery per entry, and the sensor's later ticks send none of them again.

The hot cron is shortened to every minute (the first tick comes within a minute of the start),
warm and regime jobs are disabled (the hot run computes its regime window itself), and the gates
are lowered so that the simulated market's cycle has entries whatever the minute.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from cryptorun_core.artifacts import as_of_folder
from cryptorun_core.config import DEFAULT_CONFIG_PATH, load_config
from cryptorun_pipelines.cli.instance_setup import MARKER_FILE
from cryptorun_pipelines.partitions import as_of_for_key, build_cadences
from tests.pipelines.cli._cli_helpers import cryptorun_executable, make_env

pytestmark = pytest.mark.e2e

SENSOR_INTERVAL_S = 5


def _overlay(ui_port: int) -> dict:
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    tiers = [{**t, "vadr_min": 0.01} for t in raw["universe"]["tiers"]]
    return {
        "extends": str(DEFAULT_CONFIG_PATH),
        "market": {"simulated": {"n_symbols": 40}},
        "universe": {"tiers": tiers},
        "jobs": [
            {"name": "scan.hot", "schedule": "* * * * *",
             "config": {"max_sample": 10, "score_min": 0, "vadr_use_percentile": False}},
            {"name": "scan.warm", "enabled": False},
            {"name": "regime.refresh", "enabled": False},
        ],
        "notifications": {"sensor_interval_s": SENSOR_INTERVAL_S, "ui_base_url": f"http://127.0.0.1:{ui_port}"},
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _hot_successes(home: Path) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = list(instance.get_runs())
    failed = [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
    assert not failed, [(r.job_name, r.tags.get("dagster/partition")) for r in failed]
    return [r for r in runs if r.job_name == "scan_hot" and r.status == dg.DagsterRunStatus.SUCCESS]


def test_a_scheduled_tick_with_entries_sends_each_entry_exactly_once(tmp_path: Path, server) -> None:
    cli = make_env(tmp_path)
    port = _free_port()
    config_path = tmp_path / "config" / "notify.yaml"
    config_path.parent.mkdir()
    config_path.write_text(yaml.safe_dump(_overlay(port)))
    hook = "/e2e/T0/B0/e2e-secret"
    env = {**cli.env, "CRYPTORUN_CONFIG": str(config_path), "CRYPTORUN_WEBHOOK_URL": server.url(hook)}
    proc = subprocess.Popen([cryptorun_executable(), "schedule", "start", "--port", str(port), "--stop-timeout", "15"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        first: dg.DagsterRun | None = None
        expected: list[str] = []
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(2)
            if first is None:
                # opened only once `schedule start` has initialised it (its marker is written last):
                # opening a half-initialised SQLite instance from here could race its migration
                if not (cli.home / MARKER_FILE).exists():
                    continue
                hot = _hot_successes(cli.home)
                if not hot:
                    continue
                first = hot[-1]  # newest first: the first scheduled run
                assert first.tags.get("dagster/schedule_name") == "scan_hot_schedule"
                key = first.tags["dagster/partition"]
                cadences = build_cadences(load_config(config_path, environ=env))
                folder = cli.artifacts / as_of_folder(as_of_for_key(cadences.hot, key)) / "signals.csv"
                with open(folder, newline="") as fh:
                    expected = sorted(row["symbol"] for row in csv.DictReader(fh))
                assert expected, "the lowered gates give the scheduled cycle entries"
            mine = [r.json for r in server.to(hook) if r.json["run_id"] == first.run_id]
            if len(mine) >= len(expected):
                break
        assert proc.poll() is None, "schedule start exited (its output is printed below)"
        assert first is not None, "no scheduled scan_hot run succeeded"
        time.sleep(3 * SENSOR_INTERVAL_S)  # later ticks of the sensor: they must not send these again
    finally:
        _stop(proc)
        print(proc.stdout.read()[-5000:])  # type: ignore[union-attr]  # shown by pytest if the test fails
    received = [r.json for r in server.to(hook)]
    mine = [r for r in received if r["run_id"] == first.run_id]
    assert sorted(r["symbol"] for r in mine) == expected
    assert all(r["partition"] == first.tags["dagster/partition"] and r["job"] == "scan.hot" for r in mine)
    assert mine[0]["run_url"] == f"http://127.0.0.1:{port}/runs/{first.run_id}"
    keys = [(r["symbol"], r["job"], r["partition"]) for r in received]
    assert len(keys) == len(set(keys)), "an entry was delivered twice"
