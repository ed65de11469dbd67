"""Each job writes exactly the SPEC §9 files into its as_of folder; reruns replace only their own files."""

from __future__ import annotations

import pytest

import json
import os
from pathlib import Path

import pandas as pd

from cryptorun_core.artifacts import PREMOVE_COLUMNS, SIGNALS_COLUMNS, WARM_SIGNALS_COLUMNS
from cryptorun_core.market.factory import build_market_source
from cryptorun_core.market.snapshot import MarketSnapshot, collect_snapshot
from cryptorun_core.regime import compute_regime
from cryptorun_core.artifacts import json_bytes
from cryptorun_core.regime_window import regime_json_from_row
from cryptorun_pipelines.checks import regime_problems

from .conftest import SPEC_REGIME, SPEC_SCAN_HOT, SPEC_SCAN_WARM, failure_text

pytestmark = pytest.mark.usefixtures("clean_env")


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if not p.name.startswith(".")}  # .sets: the hot set's run folders


def test_as_of_folders_hold_exactly_the_spec_files(materialized):
    art = materialized.artifacts
    folders = {p.name: files_in(p) for p in art.iterdir() if not p.name.startswith(".")}
    assert folders == {
        "2026-11-20T08-00-00Z": SPEC_REGIME,  # regime 04:00
        "2026-11-20T10-00-00Z": SPEC_SCAN_WARM,  # warm 08:00
        "2026-11-20T11-45-00Z": SPEC_SCAN_HOT,  # hot 11:30
        "2026-11-20T12-00-00Z": SPEC_REGIME | SPEC_SCAN_HOT | SPEC_SCAN_WARM,  # regime 08:00, hot 11:45, warm 10:00
        "2026-11-20T12-15-00Z": SPEC_SCAN_HOT,  # hot 12:00
    }
    # pipeline-internal tables and snapshots live outside the as_of folders
    cache = art / ".pipeline" / "2026-11-20T12-00-00Z"
    assert (cache / "universe.parquet").is_file() and (cache / "regime_indicators.parquet").is_file()
    assert MarketSnapshot.read_parquet(cache / "snapshots" / "scan_hot").as_of.isoformat() == "2026-11-20T12:00:00+00:00"
    assert (cache / "snapshots" / "scan_warm" / "meta.json").is_file()


def test_artifact_formats(materialized):
    folder = materialized.artifacts / "2026-11-20T12-00-00Z"
    for name, cols in (("signals.csv", SIGNALS_COLUMNS), ("premove.csv", PREMOVE_COLUMNS), ("warm_signals.csv", WARM_SIGNALS_COLUMNS)):
        data = (folder / name).read_bytes()
        assert data.endswith(b"\n")
        header = data.decode().splitlines()[0].split(",")
        assert header[: len(cols)] == list(cols), name
        frame = pd.read_csv(folder / name)
        if len(frame):
            assert set(frame["timestamp"]) == {"2026-11-20T12:00:00Z"}
    for name in ("regime.json", "explain.json"):
        text = (folder / name).read_text()
        assert text.endswith("\n")
        assert json_bytes(json.loads(text)) == text.encode(), f"{name} is not canonical (sorted keys)"
    regime = json.loads((folder / "regime.json").read_text())
    assert regime["partition_key"] == "2026-11-20-08:00" and regime["as_of"] == "2026-11-20T12:00:00Z"
    assert regime_problems(regime) == []
    explain = json.loads((folder / "explain.json").read_text())
    assert explain["job"] == "scan.hot" and explain["as_of"] == "2026-11-20T12:00:00Z"


def test_checks_and_metadata(materialized):
    result = materialized.run("scan_hot", "2026-11-20-11:45")
    assert result.success, failure_text(result)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["signals_spec_columns"] and checks["premove_spec_columns"] and checks["explain_spec_keys"]
    assert not [c for c in checks if c.endswith("_fresh")]  # freshness is the assets' policy, not a check of a partition
    mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    meta = mats["hot_signals"].step_materialization_data.materialization.metadata
    for key in ("dagster/row_count", "preview", "regime", "duration_s", "artifact_paths", "inputs"):
        assert key in meta, key
    assert meta["artifact_paths"].value == [str(materialized.artifacts / "2026-11-20T12-00-00Z" / "signals.csv")]


def test_rerun_replaces_only_its_own_files(materialized):
    folder = materialized.artifacts / "2026-11-20T12-00-00Z"
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir() if p.is_file()}
    os.utime(folder / "regime.json", ns=(1, 1))
    os.utime(folder / "signals.csv", ns=(1, 1))
    result = materialized.run("scan_warm", "2026-11-20-10:00")
    assert result.success, failure_text(result)
    after = {p.name: p for p in folder.iterdir() if p.is_file()}
    assert set(after) == set(before)
    assert after["regime.json"].stat().st_mtime_ns == 1 and after["signals.csv"].stat().st_mtime_ns == 1
    assert after["warm_signals.csv"].stat().st_mtime_ns > 1
    assert after["warm_signals.csv"].read_bytes() == before["warm_signals.csv"][1], "rerun must be deterministic"
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_regime_weights_equal_compute_regime(materialized):
    """The stored indicators row gives back regime.json, and both equal cryptorun_core.regime.compute_regime."""
    config = materialized.config
    cache = materialized.artifacts / ".pipeline" / "2026-11-20T12-00-00Z"
    ranking = pd.read_parquet(cache / "universe.parquet")
    indicators = pd.read_parquet(cache / "regime_indicators.parquet").iloc[0]
    written = json.loads((materialized.artifacts / "2026-11-20T12-00-00Z" / "regime.json").read_text())
    assert regime_json_from_row(indicators, config) == written
    source = build_market_source(config, config.job("regime.refresh"))
    symbols = sorted(set(ranking.loc[ranking["eligible"], "symbol"]) | {"BTC/USD"})
    snap = collect_snapshot(source, symbols, pd.Timestamp("2026-11-20T12:00:00Z").to_pydatetime(), venues=config.market.venues, with_books=False)
    direct = {**compute_regime(snap, ranking, config).to_dict(), "partition_key": "2026-11-20-08:00"}
    assert json_bytes(direct) == json_bytes(written)


def test_table_types_validate_each_frame_and_report_pandera_failures():
    """The Dagster table types check frames with validate_frame; a failing frame (one partition of a
    backfill is enough) fails with dagster-pandera's report; the UI keeps the schema table."""
    import dagster as dg
    import numpy as np

    from cryptorun_pipelines.assets.regime import RegimeIndicatorsType
    from cryptorun_pipelines.io_managers.artifacts import PartitionedValues

    row = pd.DataFrame({"realized_vol_7d": [0.4], "pct_above_20ma": [55.0], "breadth_thrust": [0.2],
                        "partition_key": ["2026-11-20-08:00"]})
    assert isinstance(RegimeIndicatorsType.metadata["schema"].value, dg.TableSchema)
    assert dg.check_dagster_type(RegimeIndicatorsType, row).success
    assert dg.check_dagster_type(RegimeIndicatorsType, PartitionedValues(a=row, b=row)).success
    bad = row.assign(pct_above_20ma=[101.0])
    for value in (bad, PartitionedValues(a=row, b=bad)):
        result = dg.check_dagster_type(RegimeIndicatorsType, value)
        assert not result.success
        assert "pct_above_20ma" in result.description and "in_range(0, 100) failure cases: 101.0" in result.description
    result = dg.check_dagster_type(RegimeIndicatorsType, row.assign(realized_vol_7d=[np.inf]))
    assert not result.success and "must be finite" in result.description
    assert not dg.check_dagster_type(RegimeIndicatorsType, {"realized_vol_7d": 0.4}).success  # not a frame
