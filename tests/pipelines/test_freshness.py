"""Freshness is Dagster's freshness policy of the assets users read, never a check of a partition."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest

from cryptorun_pipelines.freshness import deadline_cron, freshness_policy, grace

from .conftest import failure_text

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.mark.parametrize(
    "schedule, expected_grace, expected_cron",
    [
        ("*/15 * * * *", timedelta(minutes=7), "7,22,37,52 * * * *"),
        ("0 */2 * * *", timedelta(minutes=30), "30 0,2,4,6,8,10,12,14,16,18,20,22 * * *"),
        ("0 */4 * * *", timedelta(minutes=30), "30 0,4,8,12,16,20 * * *"),
        ("50 */4 * * *", timedelta(minutes=30), "20 1,5,9,13,17,21 * * *"),  # the grace crosses the hour
        ("0 0 * * 0", timedelta(minutes=30), "30 0 * * 0"),
    ],
)
def test_deadline_is_the_tick_plus_a_grace(schedule, expected_grace, expected_cron):
    assert grace(schedule) == expected_grace
    assert deadline_cron(schedule, expected_grace) == expected_cron


def test_every_asset_users_read_has_its_jobs_freshness_policy(pipeline):
    specs = {s.key.to_user_string(): s for s in pipeline.defs.resolve_all_asset_specs()}
    for asset, job in (("regime_weights", "regime.refresh"), ("hot_signals", "scan.hot"), ("warm_signals", "scan.warm")):
        policy = specs[asset].freshness_policy
        assert policy == freshness_policy(pipeline.config.job(job).schedule), asset
    assert specs["hot_signals"].freshness_policy.deadline_cron == "7,22,37,52 * * * *"
    assert specs["hot_signals"].freshness_policy.lower_bound_delta == timedelta(minutes=7)


def test_materialising_an_old_partition_records_no_failed_check(pipeline):
    """The old `*_fresh` checks were partitioned: a run of an older partition recorded a failure
    for it while the latest execution passed. There is no such check any more."""
    result = pipeline.run("scan_hot", "2026-11-10-11:45")
    assert result.success, failure_text(result)
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)
    assert not [e for e in evaluations if "fresh" in e.check_name]
    assert not [c for c in pipeline.defs.resolve_asset_graph().asset_check_keys if "fresh" in c.name]
