"""Partitions and the no-lookahead mappings (scan cycles read the latest *closed* regime window)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from cryptorun_core.config import ConfigError, load_config
from cryptorun_pipelines.partitions import (
    as_of_for_key, build_cadences, cron_interval, format_key, is_partition_key, latest_closed_key, parse_key,
    partition_interval, upstream_key,
)

from .conftest import HOT_KEYS, make_pipeline

pytestmark = pytest.mark.usefixtures("clean_env")

UTC = timezone.utc


@pytest.fixture(scope="module")
def cadences():
    return build_cadences(load_config(check_artifacts_dir=False))


def mapped(cadences, segment: str, key: str) -> list[str]:
    """What Dagster itself loads for a scan partition (the mapping declared on the assets)."""
    down = cadences.hot if segment == "hot" else cadences.warm
    result = cadences.scan_mapping(segment).get_upstream_mapped_partitions_result_for_partitions(
        down.subset_with_partition_keys([key]), down, cadences.regime
    )
    return list(result.partitions_subset.get_partition_keys())


@pytest.mark.parametrize(
    "key, expected",
    [
        ("2026-11-20-11:15", "2026-11-20-04:00"),  # T 11:30
        ("2026-11-20-11:30", "2026-11-20-04:00"),  # T 11:45: just before the 12:00 boundary; 08-12 still open
        ("2026-11-20-11:45", "2026-11-20-08:00"),  # T 12:00: on the boundary; 08-12 closed exactly at T
        ("2026-11-20-12:00", "2026-11-20-08:00"),  # T 12:15: just after; 12-16 open
        ("2026-11-20-15:45", "2026-11-20-12:00"),  # T 16:00
        ("2026-11-21-00:00", "2026-11-20-20:00"),  # T 00:15, across midnight
    ],
)
def test_hot_cycle_reads_latest_closed_regime_window(cadences, key, expected):
    assert cadences.scan_offset("hot") == -15
    t = as_of_for_key(cadences.hot, key)
    (up,) = mapped(cadences, "hot", key)
    assert up == expected
    assert upstream_key(cadences, "hot", key) == up
    up_end = as_of_for_key(cadences.regime, up)
    assert up_end <= t, "lookahead: the regime window was still open at T"
    assert up_end + timedelta(hours=4) > t, "not the latest closed regime window"


@pytest.mark.parametrize(
    "key, expected",
    [
        ("2026-11-20-06:00", "2026-11-20-04:00"),  # T 08:00: on a boundary, 04-08 closed exactly at T
        ("2026-11-20-08:00", "2026-11-20-04:00"),  # T 10:00: 08-12 open → 04-08
        ("2026-11-20-10:00", "2026-11-20-08:00"),  # T 12:00: 08-12 closed at T
    ],
)
def test_warm_cycle_reads_latest_closed_regime_window(cadences, key, expected):
    assert cadences.scan_offset("warm") == -1
    t = as_of_for_key(cadences.warm, key)
    (up,) = mapped(cadences, "warm", key)
    up_end = as_of_for_key(cadences.regime, up)
    assert up_end <= t < up_end + timedelta(hours=4)
    assert upstream_key(cadences, "warm", key) == up == expected


def test_default_overlap_mapping_would_look_ahead(cadences):
    """Why the offsets exist: Dagster's default maps cycle 11:30 (T 11:45) to the 08-12 window, open at T."""
    res = dg.TimeWindowPartitionMapping().get_upstream_mapped_partitions_result_for_partitions(
        cadences.hot.subset_with_partition_keys(["2026-11-20-11:30"]), cadences.hot, cadences.regime
    )
    (up,) = res.partitions_subset.get_partition_keys()
    assert as_of_for_key(cadences.regime, up) > as_of_for_key(cadences.hot, "2026-11-20-11:30")


def test_as_of_is_window_end_and_scans_start_with_a_closed_regime(cadences):
    assert as_of_for_key(cadences.hot, "2026-11-20-11:45") == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert as_of_for_key(cadences.regime, "2026-11-20-08:00") == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    first_hot = cadences.hot.get_first_partition_key()
    first_warm = cadences.warm.get_first_partition_key()
    assert first_hot == "2026-11-01-03:45" and first_warm == "2026-11-01-02:00"
    assert mapped(cadences, "hot", first_hot) == [cadences.regime.get_first_partition_key()]
    assert mapped(cadences, "warm", first_warm) == [cadences.regime.get_first_partition_key()]


def test_latest_closed_key(cadences):
    now = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
    assert latest_closed_key(cadences.hot, now) == "2026-11-20-11:45"
    assert latest_closed_key(cadences.hot, now - timedelta(seconds=1)) == "2026-11-20-11:30"
    assert latest_closed_key(cadences.regime, now) == "2026-11-20-08:00"
    assert latest_closed_key(cadences.warm, now + timedelta(minutes=119)) == "2026-11-20-10:00"
    assert latest_closed_key(cadences.regime, datetime(2026, 11, 1, 3, tzinfo=UTC)) is None


def test_irregular_or_incompatible_cron_is_a_config_error(tmp_path):
    def irregular(raw):
        raw["jobs"][0]["schedule"] = "*/7 * * * *"

    with pytest.raises(ConfigError) as err:
        make_pipeline(tmp_path / "a", irregular)
    assert err.value.key == "jobs[scan.hot].schedule"

    def not_dividing(raw):
        raw["jobs"][1]["schedule"] = "0 */3 * * *"

    with pytest.raises(ConfigError) as err:
        make_pipeline(tmp_path / "b", not_dividing)
    assert err.value.key == "jobs[scan.warm].schedule"


def test_explain_records_input_partitions_around_the_boundary(materialized):
    """Real runs: hot cycles before, on and after 12:00 record the regime partition they read."""
    expected = {"2026-11-20-11:30": "2026-11-20-04:00", "2026-11-20-11:45": "2026-11-20-08:00", "2026-11-20-12:00": "2026-11-20-08:00"}
    cad = build_cadences(materialized.config)
    for key in HOT_KEYS:
        folder = materialized.artifacts / as_of_for_key(cad.hot, key).strftime("%Y-%m-%dT%H-%M-%SZ")
        explain = json.loads((folder / "explain.json").read_text())
        assert explain["partition_key"] == key
        assert explain["inputs"] == {
            "hot_snapshot": key,
            "regime_weights": expected[key],
            "universe_ranking": expected[key],
        }
        assert explain["regime"]["partition_key"] == expected[key]
        assert parse_key(expected[key]) + timedelta(hours=4) <= as_of_for_key(cad.hot, key)


def _sample_keys(pdef: dg.TimeWindowPartitionsDefinition, n: int = 300) -> list[str]:
    """Consecutive keys from the first partition, across day and month boundaries."""
    keys, start = [], pdef.start.astimezone(UTC)
    step = pdef.time_window_for_partition_key(pdef.get_first_partition_key()).end - start
    for i in range(0, n * 37, 37):  # every 37th partition: spans weeks of 15-min windows
        keys.append((start + i * step).strftime("%Y-%m-%d-%H:%M"))
    return keys


@pytest.mark.parametrize("name", ["regime", "hot", "warm"])
def test_as_of_arithmetic_agrees_with_dagster(cadences, name):
    pdef = getattr(cadences, name)
    for key in _sample_keys(pdef):
        window = pdef.time_window_for_partition_key(key)
        assert as_of_for_key(pdef, key) == window.end.astimezone(UTC), key
        assert partition_interval(pdef) == window.end - window.start


@pytest.mark.parametrize("name", ["regime", "hot", "warm"])
def test_is_partition_key_agrees_with_dagster(cadences, name):
    """has_partition_key (bounded by the last closed window) for real keys, off-tick times,
    non-canonical spellings, garbage and keys before the first / after the last partition."""
    pdef = getattr(cadences, name)
    now = datetime.now(UTC)
    last = latest_closed_key(pdef, now)
    first = pdef.start.astimezone(UTC)
    candidates = _sample_keys(pdef, 50) + [
        last, format_key(parse_key(last) + partition_interval(pdef)),  # the window still open: not a key yet
        format_key(first - partition_interval(pdef)), format_key(first + timedelta(minutes=5)),
        format_key(first + timedelta(hours=1, minutes=30)), "2026-11-20-8:00", "2026-11-20T08:00", "", "garbage",
        "2026-13-01-00:00",
    ]
    for key in candidates:
        assert is_partition_key(pdef, key, last) == pdef.has_partition_key(key), key


def test_cron_interval_is_memoised_and_refuses_variable_windows():
    assert cron_interval("*/15 * * * *") == timedelta(minutes=15)
    assert cron_interval("0 */4 * * *") == timedelta(hours=4)
    assert cron_interval("0 0 * * 0") == timedelta(days=7)  # weekly: constant
    hits = cron_interval.cache_info().hits
    cron_interval("0 */4 * * *")
    assert cron_interval.cache_info().hits == hits + 1  # the ticks are walked once per schedule string
    for irregular in ("*/7 * * * *", "0 */5 * * *", "0 0 * * 1-5", "0 0 1 * *", "0 0 */2 * *", "0 0 * * 5#3", "0 0 * * L5"):
        with pytest.raises(ValueError):
            cron_interval(irregular)


# -- which keys a run may fill ------------------------------------------------------------------

NOW = datetime(2026, 11, 20, 12, 7, tzinfo=UTC)
START, END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@pytest.mark.parametrize(
    "tags, expected",
    [
        ({"dagster/partition": "2026-11-20-11:46"}, "the nearest are 2026-11-20-11:45 and 2026-11-20-12:00"),
        ({"dagster/partition": "2026-11-20-11:44"}, "the nearest are 2026-11-20-11:30 and 2026-11-20-11:45"),
        ({"dagster/partition": "foo"}, "'foo' is not a partition key of scan_hot: keys are window starts"),
        ({"dagster/partition": "2026-11-20-1:45"}, "write it 2026-11-20-01:45"),
        ({"dagster/partition": "2026-10-20-11:45"}, "before the first partition of scan_hot, 2026-11-01-03:45"),
        ({"dagster/partition": "2026-11-20-12:00"}, "is still open (its window ends 2026-11-20T12:15Z"),
        ({"dagster/partition": "2030-01-01-00:00"}, "is in the future"),
        ({}, "scan_hot is partitioned: give the partition it fills with the tag dagster/partition (e.g. 2026-11-20-11:45"),
        ({START: "2026-11-20-00:00"}, "needs both"),
        ({START: "2026-11-20-00:00", END: "2030-01-01-00:00"}, "range: partition 2030-01-01-00:00 of scan_hot is in the future"),
        ({START: "2026-11-20-08:00", END: "2026-11-20-00:00"}, "inverted: start 2026-11-20-08:00 is after end 2026-11-20-00:00"),
        ({START: "2026-11-20-00:00", END: "2026-11-20-00:07"}, "range: '2026-11-20-00:07' is not a partition"),
        ({"dagster/partition": "2026-11-20-11:45", START: "2026-11-20-00:00", END: "2026-11-20-00:15"}, "not both"),
    ],
)
def test_run_partition_problem_names_the_key_and_the_nearest_valid_ones(cadences, tags, expected):
    from cryptorun_pipelines.partitions import run_partition_problem

    problem = run_partition_problem(cadences.hot, tags, NOW, job="scan_hot")
    assert problem is not None and expected in problem, problem
    assert "\n" not in problem


@pytest.mark.parametrize(
    "tags",
    [
        {"dagster/partition": "2026-11-20-11:45"},  # closed at 12:00
        {"dagster/partition": "2026-11-01-03:45"},  # the first scan partition
        {START: "2026-11-19-00:00", END: "2026-11-20-11:45"},
        {START: "2026-11-20-11:45", END: "2026-11-20-11:45"},
    ],
)
def test_run_partition_problem_accepts_closed_partitions(cadences, tags):
    from cryptorun_pipelines.partitions import run_partition_problem

    assert run_partition_problem(cadences.hot, tags, NOW, job="scan_hot") is None


def test_every_key_the_check_accepts_is_a_dagster_partition(cadences):
    """The arithmetic agrees with Dagster's own partition list over two days of keys."""
    from cryptorun_pipelines.partitions import partition_key_problem

    for pdef in (cadences.hot, cadences.warm, cadences.regime):
        with dg.partition_loading_context(effective_dt=NOW):
            dagster_keys = set(pdef.get_partition_keys())
        start = NOW - timedelta(days=2)
        candidates = [format_key(start + timedelta(minutes=m)) for m in range(0, 2 * 24 * 60 + 1, 5)]
        for key in candidates:
            assert (partition_key_problem(pdef, key, NOW) is None) == (key in dagster_keys), key


# -- the evaluation's days: final once their forward returns are all known -----------------------

EVALUATION_DAYS = dg.DailyPartitionsDefinition(start_date="2026-11-01", timezone="UTC")


@pytest.mark.parametrize(
    "key, expected",
    [
        ("2026-11-19", "partition 2026-11-19 of evaluate_signals is not final yet: it reads data up to 24 h after its window, "
                       "which ends 2026-11-20T00:00Z, so it can run from 2026-11-21T00:00Z (now 2026-11-20T12:07Z); "
                       "the latest closed partition is 2026-11-18"),
        ("2026-11-20", "is still open (its window ends 2026-11-21T00:00Z"),
        ("2026-11-18-00:00", "keys are window starts written YYYY-MM-DD (UTC), e.g. 2026-11-18"),
        ("2026-11-1", "write it 2026-11-01"),
        ("2026-10-31", "before the first partition of evaluate_signals, 2026-11-01"),
    ],
)
def test_an_evaluation_day_is_refused_until_its_forward_returns_exist(key, expected):
    from cryptorun_core.evaluation import SETTLE
    from cryptorun_pipelines.partitions import partition_key_problem, run_partition_problem

    problem = partition_key_problem(EVALUATION_DAYS, key, NOW, job="evaluate_signals", settle=SETTLE)
    assert problem is not None and expected in problem, problem
    assert run_partition_problem(EVALUATION_DAYS, {"dagster/partition": key}, NOW, job="evaluate_signals", settle=SETTLE) == problem


def test_an_evaluation_day_runs_once_a_day_has_passed_after_it():
    from cryptorun_core.evaluation import SETTLE
    from cryptorun_pipelines.partitions import partition_key_problem, run_partition_problem

    assert partition_key_problem(EVALUATION_DAYS, "2026-11-18", NOW, settle=SETTLE) is None  # ended 19th 00:00, settled 20th 00:00
    assert partition_key_problem(EVALUATION_DAYS, "2026-11-19", datetime(2026, 11, 21, tzinfo=UTC), settle=SETTLE) is None
    assert run_partition_problem(EVALUATION_DAYS, {START: "2026-11-01", END: "2026-11-18"}, NOW, settle=SETTLE) is None
    assert "e.g. 2026-11-18" in run_partition_problem(EVALUATION_DAYS, {}, NOW, job="evaluate_signals", settle=SETTLE)
    # without the settle delay a closed day is accepted as soon as it ends (the scans' rule)
    assert partition_key_problem(EVALUATION_DAYS, "2026-11-19", NOW) is None
    with dg.partition_loading_context(effective_dt=NOW):
        dagster_keys = set(EVALUATION_DAYS.get_partition_keys())
    candidates = [(datetime(2026, 10, 30, tzinfo=UTC) + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(25)]
    for key in candidates:
        assert (partition_key_problem(EVALUATION_DAYS, key, NOW) is None) == (key in dagster_keys), key
