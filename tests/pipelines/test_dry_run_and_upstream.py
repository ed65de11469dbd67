"""Dry runs write nothing; a missing upstream partition fails with the command to run, and
ensure_upstream materialises it first."""

from __future__ import annotations

import pytest

from pathlib import Path

import dagster as dg
import yaml

from cryptorun_core.config import DEFAULT_CONFIG_PATH
from cryptorun_pipelines.upstream import ensure_upstream, latest_closed_partition, missing_upstream

from .conftest import failure_text

pytestmark = pytest.mark.usefixtures("clean_env")

DRY_RUN_CONFIG = yaml.safe_load((DEFAULT_CONFIG_PATH.parent / "dry_run.yaml").read_text())


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_dry_run_computes_everything_and_writes_nothing(pipeline, capsys):
    # regime dry run: nothing written, checks still ran on the bytes that would have been written
    result = pipeline.run("regime_refresh", "2026-11-20-08:00", run_config=DRY_RUN_CONFIG)
    assert result.success, failure_text(result)
    assert all_files(pipeline.artifacts) == []
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()}["regime_sanity"]
    mat = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    meta = mat["regime_weights"].step_materialization_data.materialization.metadata
    assert meta["dry_run"].value is True
    assert meta["artifact_paths"].value == [str(pipeline.artifacts / "2026-11-20T12-00-00Z" / "regime.json")]

    # scan dry run on top of a real regime partition: adds no file
    real = pipeline.run("regime_refresh", "2026-11-20-08:00")
    assert real.success, failure_text(real)
    before = {p: p.read_bytes() for p in all_files(pipeline.artifacts)}
    for job, key in (("scan_hot", "2026-11-20-11:45"), ("scan_warm", "2026-11-20-10:00")):
        result = pipeline.run(job, key, run_config=DRY_RUN_CONFIG)
        assert result.success, failure_text(result)
        assert all(e.passed for e in result.get_asset_check_evaluations() if not e.check_name.endswith("_fresh"))
    assert {p: p.read_bytes() for p in all_files(pipeline.artifacts)} == before


def test_missing_upstream_fails_with_the_command_to_run(pipeline):
    result = pipeline.run("scan_hot", "2026-11-20-11:45")
    assert not result.success
    text = failure_text(result)
    assert "partition 2026-11-20-08:00 is missing" in text
    assert "cryptorun schedule run regime.refresh --partition 2026-11-20-08:00" in text
    assert '-j regime_refresh --tags \'{"dagster/partition": "2026-11-20-08:00"}\'' in text
    assert pipeline.artifacts.exists() is False or not any(pipeline.artifacts.glob("*/signals.csv"))


def test_ensure_upstream_materialises_missing_partitions_first(pipeline):
    missing = missing_upstream("scan.hot", "2026-11-20-11:45", config=pipeline.config, defs=pipeline.defs)
    assert {(m.asset, m.partition_key, m.job) for m in missing} == {
        ("universe_ranking", "2026-11-20-08:00", "regime.refresh"),
        ("regime_weights", "2026-11-20-08:00", "regime.refresh"),
    }
    said: list[str] = []
    runs = ensure_upstream(pipeline.instance, "scan_hot", "2026-11-20-11:45", config=pipeline.config, defs=pipeline.defs, log=said.append)
    assert runs == [("regime.refresh", "2026-11-20-08:00")]
    assert said and said[0].startswith("materialising missing upstream")
    assert pipeline.instance.get_materialized_partitions(dg.AssetKey("regime_weights")) == {"2026-11-20-08:00"}
    # idempotent, and the warm cycle ending at 12:00 needs the same window
    assert ensure_upstream(pipeline.instance, "scan.warm", "2026-11-20-10:00", config=pipeline.config, defs=pipeline.defs) == []
    result = pipeline.run("scan_hot", "2026-11-20-11:45")
    assert result.success, failure_text(result)


def test_latest_closed_partition_is_the_cli_default(pipeline):
    from datetime import datetime, timezone

    now = datetime(2026, 11, 20, 12, 7, tzinfo=timezone.utc)
    assert latest_closed_partition("scan.hot", now, pipeline.config) == "2026-11-20-11:45"
    assert latest_closed_partition("scan_warm", now, pipeline.config) == "2026-11-20-10:00"
    assert latest_closed_partition("regime.refresh", now, pipeline.config) == "2026-11-20-08:00"
