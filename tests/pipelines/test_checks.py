"""Asset check helpers: freshness of the newest materialised partition, by key arithmetic."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cryptorun_core.config import load_config
from cryptorun_pipelines.checks import freshness_status
from cryptorun_pipelines.partitions import build_cadences, format_key, latest_closed_key, parse_key

UTC = timezone.utc


def dagster_status(materialized, pdef, now):
    """The same status computed with Dagster's own partition methods (the reference)."""
    expected = latest_closed_key(pdef, now)
    keys = [k for k in materialized if pdef.has_partition_key(k)] if expected else []
    if not keys:
        return {"expected": expected, "latest": None, "lag_cycles": None, "passed": False}
    end = lambda k: pdef.time_window_for_partition_key(k).end  # noqa: E731
    latest = max(keys, key=end)
    width = end(expected) - pdef.time_window_for_partition_key(expected).start
    lag = int(round((end(expected) - end(latest)) / width))
    return {"expected": expected, "latest": latest, "lag_cycles": lag, "passed": lag <= 1}


@pytest.mark.parametrize("name", ["regime", "hot", "warm"])
def test_freshness_status_agrees_with_dagster(name):
    pdef = getattr(build_cadences(load_config(check_artifacts_dir=False)), name)
    now = datetime.now(UTC)
    last = parse_key(latest_closed_key(pdef, now))
    step = pdef.time_window_for_partition_key(format_key(last)).end - last
    first = pdef.start.astimezone(UTC)
    old = [format_key(first + i * step) for i in range(0, 40)]
    cases = {
        "nothing": [],
        "current": old + [format_key(last)],
        "one behind": old + [format_key(last - step)],
        "stale": old,
        "with garbage": old[:3] + ["garbage", format_key(first + step / 3), format_key(first - step), format_key(last + step)],
        "only garbage": ["x", format_key(first - 2 * step)],
    }
    for case, keys in cases.items():
        assert freshness_status(keys, pdef, now) == dagster_status(keys, pdef, now), case
    assert freshness_status([format_key(last)], pdef, now)["passed"]
    assert not freshness_status(old[:1], pdef, now)["passed"]
    assert freshness_status(old[:1], pdef, now - timedelta(days=36500))["expected"] is None  # before the first window
