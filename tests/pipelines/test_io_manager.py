"""ArtifactIOManager details: upstream waiting near a boundary, multi-partition values, paths."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg
import pytest

from cryptorun_core.config import load_config
from cryptorun_pipelines.io_managers.artifacts import ArtifactIOManager, MissingUpstreamPartitionError, PartitionedValues
from cryptorun_pipelines.partitions import build_cadences, format_key, latest_closed_key

UTC = timezone.utc


@pytest.fixture
def regime_pdef():
    return build_cadences(load_config(check_artifacts_dir=False)).regime


def input_context(pdef, keys):
    return dg.build_input_context(
        asset_key="regime_weights",
        asset_partitions_def=pdef,
        asset_partition_key_range=dg.PartitionKeyRange(keys[0], keys[-1]),
    )


def test_recently_closed_missing_upstream_is_waited_for(tmp_path, regime_pdef):
    """hot at 12:00 and regime.refresh at 12:00 tick together: the hot step retries, it does not fail."""
    # the latest closed 4h window ended < 4h ago: within a 5h wait it counts as "just closed"
    io = ArtifactIOManager(artifacts_dir=str(tmp_path), producers={"regime_weights": "regime.refresh"}, upstream_wait_s=5 * 3600)
    key = latest_closed_key(regime_pdef, datetime.now(UTC))
    with pytest.raises(dg.RetryRequested):
        io.load_input(input_context(regime_pdef, [key]))
    old = format_key(datetime(2026, 11, 20, 8, tzinfo=UTC))
    with pytest.raises(MissingUpstreamPartitionError, match="cryptorun schedule run regime.refresh --partition 2026-11-20-08:00"):
        io.load_input(input_context(regime_pdef, [old]))
    no_wait = ArtifactIOManager(artifacts_dir=str(tmp_path), upstream_wait_s=0)
    with pytest.raises(MissingUpstreamPartitionError):
        no_wait.load_input(input_context(regime_pdef, [key]))


def test_multi_partition_load_returns_partitioned_values(tmp_path, regime_pdef):
    from cryptorun_core.artifacts import atomic_write, json_bytes

    io = ArtifactIOManager(artifacts_dir=str(tmp_path))
    keys = ["2026-11-20-00:00", "2026-11-20-04:00", "2026-11-20-08:00"]
    for key in keys:
        end = regime_pdef.time_window_for_partition_key(key).end
        atomic_write(io.path_for("regime_weights", end), json_bytes({"partition_key": key}))
    loaded = io.load_input(input_context(regime_pdef, keys))
    assert isinstance(loaded, PartitionedValues) and {k: v["partition_key"] for k, v in loaded.items()} == dict(zip(keys, keys))
    single = io.load_input(input_context(regime_pdef, keys[1:2]))
    assert single == {"partition_key": keys[1]}
    assert io.path_for("regime_weights", datetime(2026, 11, 20, 12, tzinfo=UTC)) == tmp_path.resolve() / "2026-11-20T12-00-00Z" / "regime.json"
    assert io.path_for("universe_ranking", datetime(2026, 11, 20, 12, tzinfo=UTC)) == (
        tmp_path.resolve() / ".pipeline" / "2026-11-20T12-00-00Z" / "universe.parquet"
    )


def test_old_market_snapshots_are_pruned_and_nothing_else(tmp_path):
    from cryptorun_pipelines.io_managers.artifacts import ARTIFACT_LAYOUT

    io = ArtifactIOManager(artifacts_dir=str(tmp_path), snapshot_retention_hours=48)
    hot = ARTIFACT_LAYOUT["hot_market_snapshot"]
    newest = datetime(2026, 11, 27, 12, tzinfo=UTC)
    made = {}
    for label, when in {"old": datetime(2026, 11, 24, 12, tzinfo=UTC), "edge": datetime(2026, 11, 25, 12, tzinfo=UTC),
                        "recent": datetime(2026, 11, 26, 12, tzinfo=UTC)}.items():
        snap = io.path_for("hot_market_snapshot", when)
        snap.mkdir(parents=True)
        (snap / "meta.json").write_text("{}")
        warm = io.path_for("warm_market_snapshot", when)
        warm.mkdir(parents=True)
        spec_file = io.path_for("hot_signals", when)
        spec_file.parent.mkdir(parents=True, exist_ok=True)
        spec_file.write_text("timestamp\n")
        made[label] = (snap, warm, spec_file)
    stranger = tmp_path / ".pipeline" / "not-an-as-of" / "snapshots" / "scan_hot"
    stranger.mkdir(parents=True)

    # everything was just written: a run may still read it, so nothing goes yet
    assert io.prune_snapshots(hot, newest) == []
    later = __import__("time").time() + 7200
    removed = io.prune_snapshots(hot, newest, now=later)
    assert removed == [made["old"][0]]  # 72 h old; the one exactly 48 h old stays
    assert not made["old"][0].exists()
    assert made["old"][1].is_dir() and made["old"][2].is_file()  # other kinds and SPEC §9 files stay
    assert made["edge"][0].is_dir() and made["recent"][0].is_dir() and stranger.is_dir()
    keep_all = ArtifactIOManager(artifacts_dir=str(tmp_path), snapshot_retention_hours=0)
    assert keep_all.prune_snapshots(hot, newest, now=later + 10**7) == []


def test_retention_comes_from_the_config():
    from cryptorun_pipelines.build import build_definitions

    config = load_config(check_artifacts_dir=False)
    shorter = config.model_copy(update={"global_": config.global_.model_copy(update={"snapshot_retention_hours": 6})})
    io = build_definitions(shorter).resources["io_manager"]  # a configure_at_launch partial resource
    assert io.resource_cls is ArtifactIOManager
    assert io.data["snapshot_retention_hours"] == 6
