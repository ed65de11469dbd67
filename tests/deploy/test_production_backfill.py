"""A 30-partition single-run regime backfill on the production profile (PostgreSQL) writes the
same artifacts, byte for byte, as on the local profile (SQLite), and records every partition."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from cryptorun_core.config import ARTIFACTS_DIR_ENV, CONFIG_PATH_ENV, MARKET_SOURCE_ENV
from cryptorun_pipelines.cli.instance import profile_file
from tests.deploy.production_support import PROCESS_ENV_VARS, pg_env, production_home
from tests.pipeline_support import failure_text, make_pipeline

FIRST, LAST = "2026-11-01-00:00", "2026-11-05-20:00"  # 5 days x 6 = 30 partitions
RANGE = {"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": LAST}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (CONFIG_PATH_ENV, ARTIFACTS_DIR_ENV, MARKET_SOURCE_ENV, *PROCESS_ENV_VARS):
        monkeypatch.delenv(var, raising=False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _backfill(root: Path, instance: dg.DagsterInstance) -> dict[str, bytes]:
    pipeline = make_pipeline(root, instance=instance)
    result = pipeline.defs.resolve_job_def("regime_refresh").execute_in_process(
        instance=instance, tags=RANGE, raise_on_error=False)
    assert result.success, failure_text(result)
    partitions = instance.get_materialized_partitions(dg.AssetKey("regime_weights"))
    assert len(partitions) == 30 and min(partitions) == FIRST and max(partitions) == LAST
    return _files(pipeline.artifacts)


def test_thirty_partitions_on_postgres_equal_sqlite_byte_for_byte(postgres_db, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in pg_env(postgres_db).items():
        monkeypatch.setenv(name, value)
    sqlite_home = tmp_path / "sqlite_home"
    sqlite_home.mkdir()
    shutil.copy(profile_file("local"), sqlite_home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(sqlite_home)) as instance:
        on_sqlite = _backfill(tmp_path / "sqlite", instance)
    with dg.DagsterInstance.from_config(str(production_home(tmp_path / "pg_home"))) as instance:
        on_postgres = _backfill(tmp_path / "postgres", instance)
    assert sum(name.endswith("regime.json") for name in on_sqlite) == 30
    assert sorted(on_postgres) == sorted(on_sqlite)
    assert [name for name in on_sqlite if on_sqlite[name] != on_postgres[name]] == []
