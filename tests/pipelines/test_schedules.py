"""Schedules come from config/scheduler.yaml: cron, enabled, per-job settings."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg
import pytest

from .conftest import make_pipeline

pytestmark = pytest.mark.usefixtures("clean_env")

UTC = timezone.utc


def evaluate(defs: dg.Definitions, name: str, tick: datetime) -> list[str]:
    schedule = defs.resolve_schedule_def(name)
    with dg.build_schedule_context(scheduled_execution_time=tick) as context:
        result = schedule.evaluate_tick(context)
    return [r.partition_key for r in result.run_requests or []]


@pytest.mark.parametrize(
    "schedule, tick, key",
    [
        ("scan_hot_schedule", datetime(2026, 11, 20, 12, 0, tzinfo=UTC), "2026-11-20-11:45"),
        ("scan_hot_schedule", datetime(2026, 11, 20, 12, 15, tzinfo=UTC), "2026-11-20-12:00"),
        ("scan_warm_schedule", datetime(2026, 11, 20, 12, 0, tzinfo=UTC), "2026-11-20-10:00"),
        ("regime_refresh_schedule", datetime(2026, 11, 20, 12, 0, tzinfo=UTC), "2026-11-20-08:00"),
        ("regime_refresh_schedule", datetime(2026, 11, 21, 0, 0, tzinfo=UTC), "2026-11-20-20:00"),
    ],
)
def test_tick_fills_the_partition_ending_at_the_tick(pipeline, schedule, tick, key):
    assert evaluate(pipeline.defs, schedule, tick) == [key]


def test_schedules_follow_the_yaml(tmp_path):
    def change(raw):
        raw["jobs"][0]["schedule"] = "*/30 * * * *"
        raw["jobs"][1]["enabled"] = False
        raw["jobs"][0]["config"]["max_sample"] = 7
        raw["jobs"][0]["config"]["venues"] = ["kraken", "okx"]

    p = make_pipeline(tmp_path, change)
    by_name = {s.name: p.defs.resolve_schedule_def(s.name) for s in p.defs.schedules}
    assert set(by_name) == {"scan_hot_schedule", "scan_warm_schedule", "regime_refresh_schedule"}
    assert by_name["scan_hot_schedule"].cron_schedule == "*/30 * * * *"
    assert by_name["scan_hot_schedule"].default_status == dg.DefaultScheduleStatus.RUNNING
    assert by_name["scan_warm_schedule"].default_status == dg.DefaultScheduleStatus.STOPPED
    assert p.defs.resolve_job_def("scan_warm") is not None  # a disabled job is kept
    assert evaluate(p.defs, "scan_hot_schedule", datetime(2026, 11, 20, 12, 0, tzinfo=UTC)) == ["2026-11-20-11:30"]
    hot = p.defs.resolve_job_def("scan_hot")
    assert hot.metadata["max_sample"].value == 7 and list(hot.metadata["venues"].value) == ["kraken", "okx"]
    assert hot.partitions_def.cron_schedule == "*/30 * * * *"
    # the 30-minute hot cadence maps to the regime with offset 1 - 240/30 = -7
    from cryptorun_pipelines.partitions import build_cadences

    assert build_cadences(p.config).scan_offset("hot") == -7


def test_jobs_and_graph(pipeline):
    defs = pipeline.defs
    jobs = {name: defs.resolve_job_def(name) for name in ("scan_hot", "scan_warm", "regime_refresh")}
    graph = defs.resolve_asset_graph()
    selected = {name: {k.to_user_string() for k in job.asset_layer.selected_asset_keys} for name, job in jobs.items()}
    assert selected == {
        "regime_refresh": {"universe_ranking", "regime_indicators", "regime_weights"},
        "scan_hot": {"hot_snapshot", "hot_signals", "hot_premove", "hot_explain"},
        "scan_warm": {"warm_snapshot", "warm_signals"},
    }
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == {
        "universe_ranking": "universe",
        "hot_snapshot": "market",
        "warm_snapshot": "market",
        "regime_indicators": "regime",
        "regime_weights": "regime",
        "hot_signals": "signals",
        "hot_premove": "signals",
        "hot_explain": "signals",
        "warm_signals": "signals",
        "signal_evaluation": "evaluation",  # uses data after T: no parents, no children (test_evaluation_assets.py)
    }
    parents = {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys} for k in graph.get_all_asset_keys()}
    assert parents["hot_signals"] == {"hot_snapshot", "universe_ranking", "regime_weights"}
    assert parents["warm_signals"] == {"warm_snapshot", "universe_ranking", "regime_weights"}
    assert parents["regime_weights"] == {"regime_indicators"} and parents["regime_indicators"] == {"universe_ranking"}
    assert parents["hot_snapshot"] == {"universe_ranking", "regime_weights"}  # whatever the source (assets/test_market.py)
    for key in graph.get_all_asset_keys():
        assert graph.get(key).description, f"{key} has no description"


def test_asset_names_read_whole_in_the_lineage_graph(pipeline):
    """Dagster labels a node with the key's last part, cut in the middle past 18 characters when the
    graph is zoomed out (``hot_mark…_snapshot``): every key is one short part, unique on its own, and
    the registry (artifacts.BY_ASSET) names exactly the assets the definitions hold."""
    from cryptorun_core.artifacts import BY_ASSET
    from cryptorun_core.asset_keys import NODE_LABEL_MAX

    keys = pipeline.defs.resolve_asset_graph().get_all_asset_keys()
    labels = [k.path[-1] for k in keys]
    assert all(len(k.path) == 1 for k in keys)
    assert len(set(labels)) == len(labels)
    assert [n for n in labels if len(n) > NODE_LABEL_MAX] == []
    assert set(labels) == set(BY_ASSET)


def test_each_job_says_what_it_does_in_one_sentence_and_lists_only_the_settings_it_reads(pipeline):
    """A description without a bracketed config dump; the regime job's metadata has no scan gate."""
    jobs = {name: pipeline.defs.resolve_job_def(name) for name in ("scan_hot", "scan_warm", "regime_refresh")}
    for name, job in jobs.items():
        text = job.description
        assert "[" not in text and "{" not in text, text
        assert text.endswith(".") and text.count(". ") == 0, f"{name}: more than one sentence: {text}"
    regime = {k: v for k, v in jobs["regime_refresh"].metadata.items()}
    for scan_only in ("score_min", "spread_multiplier", "depth_multiplier", "premove", "vadr_use_percentile", "max_sample"):
        assert scan_only not in regime, scan_only
    assert regime["schedule"].value == "0 */4 * * *" and "venues" in regime
    hot = jobs["scan_hot"].metadata
    assert hot["score_min"].value == 75 and hot["premove"].value is True
    assert "premove" not in jobs["scan_warm"].metadata and jobs["scan_warm"].metadata["score_min"].value == 65
