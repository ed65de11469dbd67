"""The production profile end to end on a real PostgreSQL server: the definitions validate against
its instance, `cryptorun schedule run scan.hot` records its runs there, and the daemon started by
`cryptorun schedule start --profile production` runs the queued runs of a 4h boundary with the
queue limits holding (one regime.refresh at a time, one run per venue)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from tests.deploy.production_support import PROCESS_ENV_VARS, pg_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines" / "cli"))
from _cli_helpers import HOT_FOLDER, HOT_PARTITION, CliEnv, cryptorun_executable, make_env  # noqa: E402

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
VENUE_TAG = "cryptorun/venue.kraken"
#: the runs the ticks of the 08:00 boundary queue on 2026-11-20 — regime.refresh (window 04–08),
#: scan.hot (07:45–08:00) and scan.warm (06–08) — while a regime backfill run (00–04) and a hot
#: catch-up run (07:30) are still waiting; the hot runs carry a live venue's tag as with ccxt
BOUNDARY_RUNS = (
    ("regime_refresh", "2026-11-20-00:00", {}),
    ("regime_refresh", "2026-11-20-04:00", {}),
    ("scan_hot", "2026-11-20-07:30", {VENUE_TAG: "1"}),
    ("scan_hot", "2026-11-20-07:45", {VENUE_TAG: "1"}),
    ("scan_warm", "2026-11-20-06:00", {}),
)


@pytest.fixture
def prod_env(tmp_path: Path, postgres_db) -> CliEnv:
    env = make_env(tmp_path)
    for name in PROCESS_ENV_VARS:
        env.env.pop(name, None)
    env.env.update(pg_env(postgres_db), CRYPTORUN_PROFILE="production")
    return env


def _instance(env: CliEnv) -> dg.DagsterInstance:
    saved = {k: os.environ.get(k) for k in env.env}
    os.environ.update(env.env)  # the credentials are read from this process's environment
    try:
        return dg.DagsterInstance.from_config(str(env.home))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_definitions_validate_against_the_production_instance(prod_env: CliEnv) -> None:
    prepared = prod_env.run("schedule", "list")  # installs the profile into the fresh home
    assert prepared.returncode == 0, prepared.stderr
    dagster = Path(sys.executable).parent / "dagster"
    proc = subprocess.run([str(dagster), "definitions", "validate", "-w", str(REPO / "workspace.yaml")],
                          env=prod_env.env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with _instance(prod_env) as instance:
        assert type(instance.event_log_storage).__name__ == "PooledPostgresEventLogStorage"


def test_schedule_run_scan_hot_on_postgres(prod_env: CliEnv) -> None:
    result = prod_env.run("schedule", "run", "scan.hot", "--partition", HOT_PARTITION, "--json")
    assert result.returncode == 0, result.stderr
    assert (prod_env.artifacts / HOT_FOLDER / "signals.csv").is_file()
    assert not list(prod_env.home.glob("**/*.db"))  # the history went to Postgres
    with _instance(prod_env) as instance:
        runs = {r.job_name: r for r in instance.get_runs()}
        assert runs["scan_hot"].status == dg.DagsterRunStatus.SUCCESS
        assert runs["scan_hot"].tags["dagster/partition"] == HOT_PARTITION
        assert instance.get_materialized_partitions(dg.AssetKey("regime_weights"))  # the missing upstream window
        assert instance.get_materialized_partitions(dg.AssetKey("hot_signals")) == {HOT_PARTITION}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str, variables: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query, "variables": variables}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as res:
        return json.load(res)


LAUNCH = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId status } } ... on PythonError { message } } }"""


def _launch(port: int, job: str, partition: str, tags: dict[str, str]) -> str:
    params = {"selector": {"repositoryLocationName": "cryptorun", "repositoryName": "__repository__", "jobName": job},
              "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in {"dagster/partition": partition, **tags}.items()]}}
    out = _graphql(port, LAUNCH, {"p": params})["data"]["launchRun"]
    assert out["__typename"] == "LaunchRunSuccess", out
    assert out["run"]["status"] == "QUEUED"  # through the instance's queue, not launched directly
    return out["run"]["runId"]


def _overlapping(records: list) -> list[tuple[str, str]]:
    spans = sorted((r.start_time, r.end_time, r.dagster_run.tags["dagster/partition"]) for r in records)
    return [(a[2], b[2]) for a, b in zip(spans, spans[1:]) if b[0] < a[1]]


def _stop(proc: subprocess.Popen, log: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    group = re.search(r"process group (\d+)", log.read_text(errors="replace"))
    if group:  # the servers' own group, should `start` have died before stopping it
        try:
            os.killpg(int(group.group(1)), signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_the_daemon_runs_a_4h_boundary_queue_within_the_limits(prod_env: CliEnv, tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "start.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([cryptorun_executable(), "schedule", "start", "--profile", "production", "--no-schedules",
                                 "--port", str(port), "--stop-timeout", "15"],
                                env=prod_env.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while "Dagster UI ready" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(1)
        ids = [_launch(port, job, key, tags) for job, key, tags in BOUNDARY_RUNS]
        deadline = time.monotonic() + 600  # about two minutes on an idle machine
        with _instance(prod_env) as instance:
            while True:
                records = instance.get_run_records(dg.RunsFilter(run_ids=ids))
                if all(r.dagster_run.is_finished for r in records):
                    break
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, [(r.dagster_run.job_name, r.dagster_run.status) for r in records]
                time.sleep(2)
            assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}, \
                [(r.dagster_run.job_name, r.dagster_run.status) for r in records]
            regime = [r for r in records if r.dagster_run.job_name == "regime_refresh"]
            venue = [r for r in records if VENUE_TAG in r.dagster_run.tags]
            assert _overlapping(regime) == []  # one regime.refresh at a time
            assert _overlapping(venue) == []  # one run at a time calls kraken
            for r in records:  # each was held in the queue and dequeued by the daemon
                kinds = {e.dagster_event_type for e in instance.all_logs(r.dagster_run.run_id) if e.dagster_event}
                assert {dg.DagsterEventType.RUN_ENQUEUED, dg.DagsterEventType.RUN_STARTING} <= kinds
            assert len(instance.get_materialized_partitions(dg.AssetKey("regime_weights"))) >= 2
    finally:
        _stop(proc, log)
