"""Freshness of the assets users read (regime.json, signals.csv, warm_signals.csv): Dagster's own.

Each terminal asset gets a cron :class:`dagster.FreshnessPolicy`: the asset is fresh when it was
materialised between its job's tick and a grace after it (half the job's interval, at most 30 min:
7 min for the 15-minute scan). The freshness daemon (part of ``dagster-daemon``) evaluates it, so
freshness is a property of the asset now, never a check result of some historical partition.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg
from croniter import croniter

from cryptorun_pipelines.partitions import cron_interval

MAX_GRACE = timedelta(minutes=30)


def grace(schedule: str) -> timedelta:
    """How long after a tick the partition it closed may take to appear."""
    half = cron_interval(schedule) / 2
    return max(timedelta(minutes=1), timedelta(minutes=int(min(half, MAX_GRACE).total_seconds() // 60)))


def deadline_cron(schedule: str, delay: timedelta) -> str:
    """The cron ticking ``delay`` after every tick of ``schedule`` (a fixed-interval, day-of-month
    free cron, as :func:`~cryptorun_pipelines.partitions.cron_interval` accepts): ``*/15 * * * *``
    + 7 min → ``7,22,37,52 * * * *``. ValueError when the shifted ticks are not one cron line."""
    fields = schedule.split()
    base = datetime(2026, 1, 5, tzinfo=timezone.utc)  # a Monday: a week of ticks covers every weekday
    it = croniter(schedule, base - timedelta(seconds=1))
    by_hour: dict[int, set[int]] = {}
    days: set[int] = set()
    while (tick := it.get_next(datetime)) < base + timedelta(days=7):
        when = tick + delay
        by_hour.setdefault(when.hour, set()).add(when.minute)
        days.add((when.isoweekday()) % 7)
    minute_sets = {frozenset(m) for m in by_hour.values()}
    if len(minute_sets) != 1:
        raise ValueError(f"the ticks of '{schedule}' shifted by {delay} are not one cron line")
    minutes = ",".join(str(m) for m in sorted(next(iter(minute_sets))))
    hours = "*" if len(by_hour) == 24 else ",".join(str(h) for h in sorted(by_hour))
    weekdays = "*" if fields[4] == "*" else ",".join(str(d) for d in sorted(days))
    return f"{minutes} {hours} * * {weekdays}"


def freshness_policy(schedule: str) -> dg.FreshnessPolicy:
    """Fresh when materialised within :func:`grace` after the latest tick of ``schedule``."""
    delay = grace(schedule)
    return dg.FreshnessPolicy.cron(deadline_cron=deadline_cron(schedule, delay), lower_bound_delta=delay, timezone="UTC")
