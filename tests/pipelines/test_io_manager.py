"""ArtifactIOManager details: multi-partition values, paths, snapshot pruning, in-run hand-off."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg
import pytest
import yaml

from cryptorun_core.config import DEFAULT_CONFIG_PATH, load_config
from cryptorun_pipelines.io_managers.artifacts import ArtifactIOManager, PartitionedValues
from cryptorun_pipelines.partitions import build_cadences
from cryptorun_pipelines.resources import CryptoRunConfigResource

UTC = timezone.utc


def io_manager(artifacts_dir, config_path=DEFAULT_CONFIG_PATH, **fields) -> ArtifactIOManager:
    """An ArtifactIOManager over ``artifacts_dir`` with the config of ``config_path``."""
    config = CryptoRunConfigResource(config_path=str(config_path), artifacts_dir=str(artifacts_dir))
    return ArtifactIOManager(config=config, **fields)


@pytest.fixture
def regime_pdef():
    return build_cadences(load_config(check_artifacts_dir=False)).regime


def input_context(pdef, keys):
    return dg.build_input_context(
        asset_key="regime_weights",
        asset_partitions_def=pdef,
        asset_partition_key_range=dg.PartitionKeyRange(keys[0], keys[-1]),
    )


def test_multi_partition_load_returns_partitioned_values(tmp_path, regime_pdef):
    from cryptorun_core.artifacts import atomic_write, json_bytes

    io = io_manager(tmp_path)
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
    from cryptorun_core.artifacts import BY_ASSET

    io = io_manager(tmp_path)  # the default config keeps snapshots 48 h
    hot = BY_ASSET["hot_snapshot"]
    newest = datetime(2026, 11, 27, 12, tzinfo=UTC)
    made = {}
    for label, when in {"old": datetime(2026, 11, 24, 12, tzinfo=UTC), "edge": datetime(2026, 11, 25, 12, tzinfo=UTC),
                        "recent": datetime(2026, 11, 26, 12, tzinfo=UTC)}.items():
        snap = io.path_for("hot_snapshot", when)
        snap.mkdir(parents=True)
        (snap / "meta.json").write_text("{}")
        warm = io.path_for("warm_snapshot", when)
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
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["global"]["snapshot_retention_hours"] = 0
    keep_path = tmp_path.parent / "keep_all.yaml"
    keep_path.write_text(yaml.safe_dump(raw))
    keep_all = io_manager(tmp_path, keep_path)
    assert keep_all.prune_snapshots(hot, newest, now=later + 10**7) == []


def test_the_run_config_resource_carries_the_launchers_settings(tmp_path):
    """The IO manager reads artifacts_dir and retention from the run's config resource, which carries
    the config file and the launcher's effective overrides (not the worker's environment)."""
    from cryptorun_pipelines.build import build_definitions

    config = load_config(check_artifacts_dir=False)
    config = config.model_copy(update={"global_": config.global_.model_copy(update={"artifacts_dir": str(tmp_path)})})
    resources = build_definitions(config, config_path=DEFAULT_CONFIG_PATH).resources
    settings = resources["cryptorun_config"].data
    assert settings == {"config_path": str(DEFAULT_CONFIG_PATH), "artifacts_dir": str(tmp_path), "market_source": "simulated"}
    assert resources["io_manager"].data["config"] is resources["cryptorun_config"]  # one resource, shared


def test_a_written_snapshot_is_handed_to_the_next_step_as_is_and_reads_back_equal(tmp_path):
    """The scan step gets the snapshot object the market step wrote (no parquet read back); what a
    later run reads from the files is equal to it, so both give the same scan."""
    import pandas as pd

    from cryptorun_core.market.factory import build_market_source
    from cryptorun_core.market.snapshot import collect_snapshot

    config = load_config(check_artifacts_dir=False)
    cad = build_cadences(config)
    job = config.job("scan.hot")
    as_of = datetime(2026, 11, 20, 12, tzinfo=UTC)
    source = build_market_source(config, job)
    symbols = sorted({m.symbol for v in job.config.venues for m in source.list_markets(v, as_of)})[:12]
    snapshot = collect_snapshot(source, symbols, as_of, venues=job.config.venues, limit=200, with_books=True, book_depth=20)
    source.close()
    io = io_manager(tmp_path)
    key = "2026-11-20-11:45"
    out = dg.build_output_context(asset_key="hot_snapshot", partition_key=key, asset_partitions_def=cad.hot)
    io.handle_output(out, snapshot)
    folder = io.path_for("hot_snapshot", as_of)
    assert (folder / "meta.json").is_file() and (folder / "bars.parquet").is_file()

    in_ctx = dg.build_input_context(asset_key="hot_snapshot", partition_key=key, asset_partitions_def=cad.hot)
    assert io.load_input(in_ctx) is snapshot
    fresh = io_manager(tmp_path)  # another run: reads the files
    back = fresh.load_input(in_ctx)
    assert back is not snapshot
    for name in ("bars", "books", "fetches", "markets"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(snapshot, name), check_exact=True)
    assert (back.as_of, back.timeframe, back.source, back.health) == (snapshot.as_of, snapshot.timeframe, snapshot.source, snapshot.health)


def _same_frame(a, b) -> None:
    """Equal values, dtypes, index — and the same Python objects in object columns (None stays None, NaN NaN)."""
    import pandas as pd

    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert type(a.index) is type(b.index) and a.index.equals(b.index)
    for col in a.columns:
        assert [type(x) for x in a[col].tolist()] == [type(x) for x in b[col].tolist()], col


def test_tables_written_in_a_run_are_handed_on_as_a_read_would_give_them(tmp_path, monkeypatch, clean_env):
    """A real regime run: each parquet table kept for the rest of the run equals what reading its
    file gives (so the next step computes the same), and each load hands out a copy of its own."""
    from cryptorun_core.artifacts import BY_ASSET
    from cryptorun_pipelines.io_managers import artifacts as io_mod
    from cryptorun_pipelines.io_managers import serialization as ser

    from .conftest import make_pipeline

    recorded = []
    original = io_mod.ArtifactIOManager._write

    def recording(self, spec, values, keys):
        recorded.extend((spec, path, value) for path, value in values.items())
        return original(self, spec, values, keys)

    monkeypatch.setattr(io_mod.ArtifactIOManager, "_write", recording)
    p = make_pipeline(tmp_path)
    assert p.run("regime_refresh", "2026-11-20-08:00").success
    tables = [(spec, path, value) for spec, path, value in recorded if spec.kind == "parquet"]
    assert {path.name for _, path, _ in tables} == {"universe.parquet", "regime_indicators.parquet"}
    for spec, path, value in tables:
        from_file = ser.deserialize(spec, path.read_bytes())
        kept = ser.kept(spec, value, path.read_bytes())
        _same_frame(ser.from_kept(spec, kept), from_file)
        first = ser.from_kept(spec, kept)
        first.iloc[:, 0] = first.iloc[::-1, 0].to_numpy()  # a step changing its input in place
        _same_frame(ser.from_kept(spec, kept), from_file)
    # a frame with a non-default index is handed on with the index a read gives
    import pandas as pd

    spec = BY_ASSET["universe_ranking"]
    frame = pd.DataFrame({"a": [3.0, 1.0], "b": ["x", None]}, index=[7, 2])
    data = ser.serialize(spec, frame)
    _same_frame(ser.from_kept(spec, ser.kept(spec, frame, data)), ser.deserialize(spec, data))
