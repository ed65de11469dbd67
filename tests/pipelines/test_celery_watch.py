"""A Celery step whose worker is gone fails instead of waiting forever (cryptorun_pipelines.celery_watch),
on the real Redis of the ``redis_url`` fixture and real workers (``tests/pipelines/celery_sleeper.py``)
killed under their tasks."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery
from celery.exceptions import TaskRevokedError

from cryptorun_pipelines import celery_watch
from cryptorun_pipelines.celery_watch import CeleryWorkerLost, TaskWatch

REPO = Path(__file__).resolve().parents[2]
CELERY = Path(os.environ.get("VIRTUAL_ENV") or Path(os.sys.executable).parent.parent) / "bin" / "celery"


@pytest.fixture(autouse=True)
def quick_checks(monkeypatch):
    monkeypatch.setattr(celery_watch, "CHECK_S", 0.3)


class Workers:
    """Sleeper workers on one queue of their own, each with its log; all killed at teardown."""

    def __init__(self, url: str, tmp_path: Path):
        self.url, self.tmp_path = url, tmp_path
        self.queue = f"watch-{uuid.uuid4().hex[:8]}"
        self.app = Celery("celery_sleeper", broker=url, backend=url)
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str) -> str:
        log = (self.tmp_path / f"{name}-{len(self.procs)}.log").open("w")
        proc = subprocess.Popen(
            [str(CELERY), "-A", "tests.pipelines.celery_sleeper", "-b", self.url, "--result-backend", self.url, "worker",
             "-Q", self.queue, "--pool", "prefork", "--concurrency", "1", "-n", f"{name}@watch", "--without-gossip",
             "--without-mingle", "--loglevel", "INFO"],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        hostname = f"{name}@watch"
        deadline = time.monotonic() + 30
        while not self.app.control.ping(destination=[hostname], timeout=0.5):
            assert proc.poll() is None and time.monotonic() < deadline, f"worker {hostname} did not start"
        return hostname

    def kill(self) -> None:
        """``kill -9`` of the newest worker and its pool: no result, no goodbye."""
        proc = self.procs[-1]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def sleep_task(self, watch: TaskWatch, seconds: float):
        watch.app = self.app
        return watch.watch(self.app.send_task("celery_sleeper.sleep", args=[seconds], queue=self.queue), "regime_window")


@pytest.fixture
def workers(redis_url, tmp_path):
    w = Workers(redis_url, tmp_path)
    yield w
    w.stop_all()


def wait_ready(result, within_s: float) -> float:
    start = time.monotonic()
    while not result.ready():
        assert time.monotonic() - start < within_s, "the step's result never became ready"
        time.sleep(0.05)
    return time.monotonic() - start


def wait_held(told: list, result, within_s: float = 10) -> None:
    """Until the watch has seen a worker holding the task (``told``: its ``on_held`` calls)."""
    deadline = time.monotonic() + within_s
    while not told:
        assert time.monotonic() < deadline, "no worker took the task"
        assert not result.ready()
        time.sleep(0.05)


def held_long_task(workers: Workers, lost_after_s: float) -> tuple[object, list[tuple[str, str]]]:
    """A watched 120 s task, once the watch has seen a worker hold it, and the watch's ``on_held`` calls."""
    told: list[tuple[str, str]] = []
    watch = TaskWatch(lost_after_s=lost_after_s, on_held=lambda *held: told.append(held))
    result = workers.sleep_task(watch, 120)
    wait_held(told, result)
    return result, told


def test_a_step_whose_worker_is_killed_fails_naming_the_worker(workers):
    hostname = workers.start("killed")
    result, told = held_long_task(workers, lost_after_s=1)
    assert told == [("regime_window", hostname)]
    workers.kill()
    wait_ready(result, within_s=15)  # dagster-celery's loop waited for ever here
    with pytest.raises(CeleryWorkerLost) as err:
        result.get()
    assert str(err.value).startswith(f"the Celery worker {hostname} that held the task of step 'regime_window' "
                                     "has not answered for ")
    assert "(executor.celery.worker_lost_s 1): it was stopped or killed, or its host is gone" in str(err.value)


def test_a_worker_restarted_under_its_name_does_not_hold_the_task_any_more(workers):
    # Kubernetes restarts a killed container in the same pod: the same worker name answers again
    hostname = workers.start("restarted")
    result, _ = held_long_task(workers, lost_after_s=8)
    workers.kill()
    assert workers.start("restarted") == hostname
    wait_ready(result, within_s=20)
    with pytest.raises(CeleryWorkerLost, match=f"the Celery worker {hostname} no longer holds the task of step "
                                               "'regime_window' and no result came for"):
        result.get()


def test_a_step_that_finishes_gives_its_result(workers):
    workers.start("finishing")
    watch = TaskWatch(lost_after_s=0.5)
    result = workers.sleep_task(watch, 1.5)  # longer than lost_after_s: held all along, so never lost
    wait_ready(result, within_s=15)
    assert result.get(timeout=5) == 1.5


def test_a_task_waiting_in_the_queue_is_never_lost(workers):
    # no worker has taken it (none consumes the queue yet): one that comes up later runs it
    watch = TaskWatch(lost_after_s=0.2)
    result = workers.sleep_task(watch, 0.1)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert not result.ready()
        time.sleep(0.1)
    workers.start("late")
    wait_ready(result, within_s=15)
    assert result.get(timeout=5) == 0.1


def test_zero_never_fails_a_step(workers):
    workers.start("patient")
    watch = TaskWatch(lost_after_s=0)
    result = workers.sleep_task(watch, 120)
    time.sleep(1)
    workers.kill()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert not result.ready()
        time.sleep(0.1)


def test_terminate_ends_a_running_step_and_paces_the_poll(workers):
    # Terminate revokes the run's tasks; dagster-celery's revoke left a running step to finish and
    # polled it in a busy loop meanwhile
    workers.start("terminated")
    result, _ = held_long_task(workers, lost_after_s=30)
    result.revoke()
    polls = 0
    start = time.monotonic()
    while not result.ready():
        polls += 1
        assert time.monotonic() - start < 15, "the revoked step kept running"
    assert polls <= (time.monotonic() - start) / celery_watch.REVOKED_POLL_S + 1
    with pytest.raises(TaskRevokedError):
        result.get()
