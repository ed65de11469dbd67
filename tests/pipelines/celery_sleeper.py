"""A Celery app with one task that sleeps: a step that runs long enough to kill its worker under it
(``celery -A tests.pipelines.celery_sleeper worker -b URL --result-backend URL``)."""

from __future__ import annotations

import time

from celery import Celery

app = Celery("celery_sleeper")


@app.task(name="celery_sleeper.sleep")
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
