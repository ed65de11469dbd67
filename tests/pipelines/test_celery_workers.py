"""A Celery run's start: the broker answers and a worker consumes its queues in time
(cryptorun_pipelines.celery_workers), on the real Redis of the ``redis_url`` fixture."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from cryptorun_pipelines import celery_workers
from cryptorun_pipelines.celery_workers import WaitInterrupted, celery_worker_problem, display_url


def _app(url: str):
    from dagster_celery.make_app import make_app

    return make_app({"broker": url, "backend": url, "include": [], "config_source": {}, "retries": None})


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_broker_that_does_not_answer_is_named_without_its_password():
    port = _closed_port()
    told: list[str] = []
    problem = celery_worker_problem(_app(f"redis://user:s3cret@127.0.0.1:{port}/0"), {"dagster"}, 60, told.append)
    assert problem is not None and problem.startswith(f"the Celery broker redis://127.0.0.1:{port}/0 does not answer: ")
    assert "Connection refused" in problem and "s3cret" not in problem
    assert not told  # nothing to wait for: the broker itself is missing


def test_without_a_worker_the_run_waits_then_names_the_queue(redis_url):
    told: list[str] = []
    problem = celery_worker_problem(_app(redis_url), {"dagster"}, 0.5, told.append)
    where = display_url(redis_url)
    assert told == [f"waiting up to 0.5 s for a Celery worker consuming queue 'dagster' on the broker {where}"]
    assert problem == (f"no Celery worker consumes queue 'dagster' on the broker {where} (waited 0.5 s, "
                       "executor.celery.worker_wait_s): start a worker on that broker with the same code location "
                       "and instance (docs/deploy.md, Executors)")


def test_a_worker_that_comes_up_while_the_run_waits_is_enough(redis_url, monkeypatch):
    answers = iter([set(), {"other"}, {"dagster", "other"}])
    monkeypatch.setattr(celery_workers, "consumed_queues", lambda app: next(answers))
    told: list[str] = []
    slept: list[float] = []
    assert celery_worker_problem(_app(redis_url), {"dagster"}, 60, told.append, sleep=slept.append) is None
    assert len(told) == 1 and slept == [celery_workers.POLL_S] * 2


def test_every_queue_of_the_run_must_be_consumed(redis_url, monkeypatch):
    monkeypatch.setattr(celery_workers, "consumed_queues", lambda app: {"dagster"})
    problem = celery_worker_problem(_app(redis_url), {"dagster", "heavy"}, 0, lambda message: None)
    assert problem is not None and problem.startswith("no Celery worker consumes queue 'heavy' on the broker")


@pytest.mark.parametrize("url,shown", [
    ("redis://:pw@redis:6379/0", "redis://redis:6379/0"),
    ("redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/2"),
    ("amqp://guest:guest@rabbit//", "amqp://rabbit//"),
])
def test_a_broker_url_is_shown_without_credentials(url, shown):
    assert display_url(url) == shown and "pw" not in urlsplit(display_url(url)).netloc


def test_a_run_told_to_stop_while_it_waits_stops_at_once(redis_url, monkeypatch):
    # Terminate in the UI / run monitoring send SIGTERM, which Dagster captures: the wait must read it
    monkeypatch.setattr(celery_workers, "consumed_queues", lambda app: set())
    stops = iter([False, True])
    slept: list[float] = []
    with pytest.raises(WaitInterrupted, match="stopped while waiting for a Celery worker consuming queue 'dagster'"):
        celery_worker_problem(_app(redis_url), {"dagster"}, 3600, lambda message: None,
                              interrupted=lambda: next(stops), sleep=slept.append)
    assert len(slept) == 2
