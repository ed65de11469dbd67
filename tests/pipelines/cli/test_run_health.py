"""A run whose worker is killed (kill -9) is found dead, marked failed, and `status` says so."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli_helpers import CliEnv, make_env, start_worker  # noqa: E402

from cryptorun_pipelines.cli import run_health  # noqa: E402
from cryptorun_pipelines.cli.dagster_state import run_worker_tags  # noqa: E402
from cryptorun_pipelines.run_tags import WORKER_TAG  # noqa: E402

def runs(env: CliEnv) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(env.home)) as instance:
        return list(instance.get_runs())


def failure_event(env: CliEnv, run_id: str) -> str:
    with dg.DagsterInstance.from_config(str(env.home)) as instance:
        records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
        return records[-1].event_log_entry.message if records else ""


@pytest.fixture
def env(tmp_path: Path) -> CliEnv:
    env = make_env(tmp_path)
    assert env.run("schedule", "list").returncode == 0  # initialise the instance once, as any command does
    return env


@pytest.mark.e2e
@pytest.mark.parametrize("tagged", [True, False], ids=["worker-tag", "engine-event-pid"])
def test_status_marks_a_killed_run_failed_and_says_so(env: CliEnv, tmp_path: Path, tagged: bool) -> None:
    worker = start_worker(env, tmp_path, tagged=tagged)
    [run] = runs(env)
    assert run.status == dg.DagsterRunStatus.STARTED
    assert (WORKER_TAG in run.tags) == tagged

    # alive: status leaves it alone
    live = json.loads(env.run("schedule", "status", "--json").stdout)
    regime = next(j for j in live["jobs"] if j["name"] == "regime.refresh")
    assert regime["last_run"]["status"] == "STARTED" and regime["marked_failed"] == []

    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    assert runs(env)[0].status == dg.DagsterRunStatus.STARTED  # nobody wrote its end

    res = env.run("schedule", "status")
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "last run FAILURE" in text
    assert f"Run worker process {worker.pid} on {socket.gethostname()} is gone (killed or crashed)" in text
    # and the instance (hence the UI) agrees, with the reason on the run's failure event
    [run] = runs(env)
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert f"process {worker.pid}" in failure_event(env, run.run_id)
    assert "cryptorun schedule status" in failure_event(env, run.run_id)


@pytest.mark.e2e
def test_status_reports_dead_runs_that_are_not_the_last_run(env: CliEnv, tmp_path: Path) -> None:
    first = start_worker(env, tmp_path, tagged=True)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    (tmp_path / "second").mkdir()
    second = start_worker(env, tmp_path / "second", tagged=True)  # the job's last run, alive
    try:
        text = " ".join(env.run("schedule", "status").stdout.split())
        assert f"was STARTED but its worker process {first.pid}" in text and "marked failed" in text
        payload = json.loads(env.run("schedule", "status", "--json").stdout)
        regime = next(j for j in payload["jobs"] if j["name"] == "regime.refresh")
        assert regime["last_run"]["status"] == "STARTED" and regime["marked_failed"] == []  # done once
        assert sorted(r.status.value for r in runs(env)) == ["FAILURE", "STARTED"]
    finally:
        second.kill()
        second.wait()


def test_a_reused_pid_does_not_keep_a_dead_run_alive() -> None:
    me = socket.gethostname()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        started = run_health.process_started_at(sleeper.pid)
        assert isinstance(started, float) and abs(started - time.time()) < 30
        # the run's worker was recorded before this process existed: its pid was reused
        assert run_health.worker_alive(run_health.Worker(sleeper.pid, me, started - 60, "tag")) is False
        assert run_health.worker_alive(run_health.Worker(sleeper.pid, me, started + 1, "tag")) is True
        # another machine's worker cannot be checked from here
        assert run_health.worker_alive(run_health.Worker(sleeper.pid, me + "-elsewhere", started, "tag")) is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert run_health.worker_alive(run_health.Worker(sleeper.pid, me, time.time(), "tag")) is False


def test_run_worker_tags_name_this_process() -> None:
    assert run_worker_tags() == {WORKER_TAG: f"{os.getpid()}@{socket.gethostname()}"}
    worker = run_health.parse_worker(run_worker_tags()[WORKER_TAG], time.time())
    assert worker is not None and worker.pid == os.getpid() and run_health.worker_alive(worker)
    assert run_health.parse_worker("garbage", 0.0) is None


@pytest.mark.e2e
def test_the_local_launcher_tells_the_run_monitor_a_killed_worker_is_gone(env: CliEnv, tmp_path: Path) -> None:
    """What the monitoring daemon asks (Dagster's DefaultRunLauncher cannot answer it)."""
    from dagster._core.launcher import WorkerStatus

    worker = start_worker(env, tmp_path, tagged=False)
    with dg.DagsterInstance.from_config(str(env.home)) as instance:
        [run] = instance.get_runs()
        launcher = instance.run_launcher
        assert launcher.supports_check_run_worker_health
        assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        result = launcher.check_run_worker_health(run)
        assert result.status == WorkerStatus.FAILED and f"process {worker.pid}" in (result.msg or "")
