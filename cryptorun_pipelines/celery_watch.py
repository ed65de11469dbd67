"""While a Celery run's steps execute: a step whose worker is gone fails instead of waiting forever.

dagster-celery submits each step as a task and polls its result until it is ready. A worker killed
outright (``kill -9``, its container OOM-killed, its host lost) never writes that result: the run
waited for it forever, and cancelling the run hung in the same loop (the revoked task never becomes
ready either, and the loop polls it without sleeping). :class:`TaskWatch` wraps each submitted
task: every :data:`CHECK_S` it asks the workers which of the run's tasks they hold (one
``query_task`` broadcast), and a task that a worker held but that no answering worker holds for
``executor.celery.worker_lost_s`` seconds, with no result, is lost; its step fails naming the worker.
A task still waiting in the queue is never held by a worker, so it is never lost (a worker may come).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

#: seconds between two asks for the tasks the workers hold
CHECK_S = 5.0
#: seconds a worker has to answer one ask
ANSWER_S = 1.0
#: seconds between two polls of a revoked task (dagster-celery's loop polls those without sleeping)
REVOKED_POLL_S = 0.5


class CeleryWorkerLost(Exception):
    """The worker that held a step's task stopped answering, or answers without it: the task is lost."""


@dataclass
class _Task:
    step_key: str
    worker: str | None = None  # the worker last seen holding the task
    seen_at: float = 0.0  # when it was last seen held
    lost: str | None = None  # why it is lost


class TaskWatch:
    """The run's submitted tasks and the workers holding them. ``lost_after_s`` 0: never lost."""

    def __init__(self, lost_after_s: float, on_held: Callable[[str, str], None] = lambda step_key, worker: None,
                 clock: Callable[[], float] = time.monotonic):
        self.lost_after_s = lost_after_s
        self.on_held = on_held  # told (step key, worker) when a worker is first seen holding a step's task
        self.clock = clock
        self.app = None
        self._tasks: dict[str, _Task] = {}
        self._next_check = 0.0

    def step_execution_fn(self, submit: Callable) -> Callable:
        """``submit`` (dagster-celery's, returning the task's ``AsyncResult``) with its result watched."""

        def submit_watched(app, job_context, step, queue, priority, known_state):
            self.app = app
            return self.watch(submit(app, job_context, step, queue, priority, known_state), step.key)

        return submit_watched

    def watch(self, result, step_key: str) -> "WatchedResult":
        self._tasks[result.id] = _Task(step_key)
        self._next_check = min(self._next_check, self.clock() + ANSWER_S)  # a task held at once is seen soon
        return WatchedResult(result, self)

    def lost(self, task_id: str) -> str | None:
        """Why the task is lost (None: it is not, as far as the workers tell)."""
        self._check()
        task = self._tasks.get(task_id)
        return task.lost if task is not None else None

    def done(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)

    def _check(self) -> None:
        now = self.clock()
        if self.lost_after_s <= 0 or self.app is None or now < self._next_check:
            return
        self._next_check = now + CHECK_S
        pending = {tid: t for tid, t in self._tasks.items() if t.lost is None}
        if not pending:
            return
        try:
            answers = self.app.control.inspect(timeout=ANSWER_S).query_task(*pending) or {}
        except Exception:  # noqa: BLE001 - a broker hiccup is no news about the workers; the result poll reports a lost broker
            return
        holder = {tid: worker for worker, held in answers.items() for tid in (held or {})}
        now = self.clock()
        for tid, task in pending.items():
            if tid in holder:
                if task.worker != holder[tid]:
                    self.on_held(task.step_key, holder[tid])
                task.worker, task.seen_at = holder[tid], now
            elif task.worker is not None and now - task.seen_at >= self.lost_after_s:
                task.lost = self._why(task, answering=task.worker in answers, for_s=now - task.seen_at)

    def _why(self, task: _Task, answering: bool, for_s: float) -> str:
        setting = f"executor.celery.worker_lost_s {self.lost_after_s:g}"
        if answering:
            return (f"the Celery worker {task.worker} no longer holds the task of step {task.step_key!r} and no "
                    f"result came for {for_s:.0f} s ({setting}): the worker restarted, or the process that ran the "
                    "step was killed; the task is lost")
        return (f"the Celery worker {task.worker} that held the task of step {task.step_key!r} has not answered for "
                f"{for_s:.0f} s ({setting}): it was stopped or killed, or its host is gone; the task is lost")


class WatchedResult:
    """A step's ``AsyncResult`` as dagster-celery's loop uses it (``ready``, ``get``, ``revoke``), ready
    with :class:`CeleryWorkerLost` once its task is lost."""

    def __init__(self, result, watch: TaskWatch, sleep: Callable[[float], None] = time.sleep):
        self.result, self.watch, self.sleep = result, watch, sleep
        self.id = result.id
        self.revoked = False

    def ready(self) -> bool:
        if self.result.ready() or self.watch.lost(self.id) is not None:
            return True
        if self.revoked:
            self.sleep(REVOKED_POLL_S)  # the loop polls revoked tasks in a busy loop; this paces it
        return False

    def get(self, *args, **kwargs):
        problem = self.watch.lost(self.id) if not self.result.ready() else None
        self.watch.done(self.id)
        if problem is not None:
            self.result.revoke()  # a copy the broker delivers again must not run
            raise CeleryWorkerLost(problem)
        return self.result.get(*args, **kwargs)

    def revoke(self, *args, **kwargs) -> None:
        """Revoke the task and end it where it runs: Terminate stops a step as the other executors do."""
        self.revoked = True
        self.result.revoke(terminate=True)
