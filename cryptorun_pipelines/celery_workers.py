"""Before a Celery run submits its first step: the broker answers and a worker consumes the run's queues.

dagster-celery submits a step and polls its result until it is ready. Without a worker nothing ever
is, so the run waits forever with "Submitting celery task", and cancelling it waits too (it revokes
the task and polls again). A broker that does not answer surfaces as "Retry limit exceeded while
trying to reconnect to the Celery result store backend". :func:`celery_worker_problem` turns both
into one sentence at the run's start, after waiting ``executor.celery.worker_wait_s`` for a worker
(one that is starting, or scaled up on demand), and the run fails before any step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

#: seconds between two asks for the workers' queues while waiting
POLL_S = 2.0


def display_url(url: str) -> str:
    """``url`` without its user and password (a broker URL may carry them)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}{parts.path}"


def run_queues(steps: Iterable, default_queue: str) -> set[str]:
    """The queues the run's steps are submitted to."""
    from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG  # the production extra: imported only for Celery runs

    return {step.tags.get(DAGSTER_CELERY_QUEUE_TAG, default_queue) for step in steps}


def consumed_queues(app, timeout_s: float = 1.0) -> set[str]:
    """The queues the workers answering within ``timeout_s`` consume (empty: no worker answered)."""
    answers = app.control.inspect(timeout=timeout_s).active_queues() or {}
    return {queue.get("name") for queues in answers.values() for queue in queues or ()}


class WaitInterrupted(Exception):
    """The run was told to stop (Terminate in the UI, run monitoring, SIGTERM) while it waited for a worker."""


def celery_worker_problem(app, queues: set[str], wait_s: float, on_wait: Callable[[str], None],
                          interrupted: Callable[[], bool] = lambda: False, clock=time.monotonic,
                          sleep=time.sleep) -> str | None:
    """Why the run's steps cannot be executed: the broker does not answer, or no worker consumes one of
    ``queues`` after ``wait_s`` seconds (``on_wait`` is told once when the wait begins). None: go ahead.
    Raises :class:`WaitInterrupted` as soon as ``interrupted()`` says so."""
    broker = display_url(app.conf.broker_url or "")
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=5)
    except Exception as exc:  # noqa: BLE001 - kombu raises the transport's own errors
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"the Celery broker {broker} does not answer: {reason}"
    deadline = clock() + wait_s
    waiting = False
    while True:
        missing = sorted(queues - consumed_queues(app))
        if not missing:
            return None
        names = ", ".join(repr(q) for q in missing)
        if not waiting and wait_s > 0:
            on_wait(f"waiting up to {wait_s:g} s for a Celery worker consuming queue {names} on the broker {broker}")
            waiting = True
        if clock() >= deadline:
            return (f"no Celery worker consumes queue {names} on the broker {broker} (waited {wait_s:g} s, "
                    "executor.celery.worker_wait_s): start a worker on that broker with the same code location "
                    "and instance (docs/deploy.md, Executors)")
        sleep(POLL_S)
        if interrupted():
            raise WaitInterrupted(f"stopped while waiting for a Celery worker consuming queue {names}")
