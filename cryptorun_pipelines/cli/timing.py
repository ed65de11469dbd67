"""Time helpers: next ticks, partition keys, as-of parsing (all UTC)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from croniter import croniter

from cryptorun_core.timefmt import FOLDER_FORMAT, UTC, iso_minutes, utcnow
from cryptorun_pipelines.cli.errors import UsageError

#: accepted by --as-of besides ISO 8601: an artifact folder name or a partition key
EXTRA_TIME_FORMATS = (FOLDER_FORMAT, "%Y-%m-%d-%H:%M")


def next_tick(cron: str, now: datetime | None = None) -> datetime:
    now = now or utcnow()
    return croniter(cron, now.astimezone(UTC)).get_next(datetime).astimezone(UTC)


def parse_time(text: str) -> datetime:
    """ISO 8601 (``2026-11-20T12:00Z``, ``2026-11-20 12:00``; naive means UTC) or an artifact folder name."""
    raw = text.strip()
    for fmt in EXTRA_TIME_FORMATS:
        try:
            return datetime.strptime(raw, fmt).replace(tzinfo=UTC)
        except ValueError:
            pass
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"--as-of: '{text}' is not a time (use e.g. 2026-11-20T12:00Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def resolve_partition(
    partitions_def: Any, *, key: str | None, as_of: str | None, now: datetime | None = None, job: str = "this job"
) -> str:
    """The partition key to run: ``key`` validated (:func:`~cryptorun_pipelines.partitions.partition_key_problem`),
    the window closed at ``as_of``, or the latest closed."""
    from cryptorun_pipelines.partitions import as_of_for_key, latest_closed_key, partition_key_problem

    now = now or utcnow()
    if key is not None:
        problem = partition_key_problem(partitions_def, key, now, job=job)
        if problem:
            raise UsageError(f"--partition: {problem}")
        return key
    at = parse_time(as_of) if as_of is not None else now
    found = latest_closed_key(partitions_def, at)
    if found is None:
        first = partitions_def.start.astimezone(UTC)
        raise UsageError(f"no closed partition at {iso_minutes(at)} (partitions start {iso_minutes(first)})")
    if as_of_for_key(partitions_def, found) > now:
        raise UsageError(f"--as-of: {iso_minutes(at)} is in the future (now {iso_minutes(now)})")
    return found
