"""cryptorun_pipelines/storage/pooled_postgres.py on a real PostgreSQL server: a pool instead of one
connection per event, and a failed single-run backfill whose partitions are still marked failed.

What Dagster's partition status (the UI's partition bar, ``get_and_update_asset_status_cache_value``)
reports after a failed single-run backfill, per storage:

- SQLite as shipped (one planned event per partition): every partition of the run *failed*;
- SQLite with ``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1``: *none* failed (the one planned
  event per asset names no partition), the partitions show as missing — why the local profile
  does not set it;
- the pooled Postgres event log (which always takes the one-event path): every partition failed.

While such a backfill runs, its partitions show *in progress* on the pooled log, and none on SQLite
with the switch (the same lost rows).
"""

# no `from __future__ import annotations`: Dagster reads the asset's annotations at definition time

import shutil
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value
from sqlalchemy import event

from cryptorun_pipelines.cli.instance import profile_file
from cryptorun_pipelines.storage import pooled_postgres
from cryptorun_pipelines.storage.pooled_postgres import PooledPostgresEventLogStorage
from tests.deploy.production_support import PROCESS_ENV_VARS, pg_env, production_home

SUBSET_SWITCH = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
PARTITIONS = dg.TimeWindowPartitionsDefinition(cron_schedule="0 */4 * * *", start=datetime(2026, 11, 1, tzinfo=timezone.utc),
                                              fmt="%Y-%m-%d-%H:%M", timezone="UTC")
KEYS = PARTITIONS.get_partition_keys()[:6]
RANGE = {"dagster/asset_partition_range_start": KEYS[0], "dagster/asset_partition_range_end": KEYS[-1]}
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class _Outcome(dg.ConfigurableResource):
    fail: bool
    probe: bool = False  # record the partition status the UI shows while the step runs


#: partitions of window_weights shown in progress, as read from inside a running backfill step
SEEN_IN_PROGRESS: list[set[str]] = []


@dg.multi_asset(
    partitions_def=PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run(), can_subset=False,
    outs={"window_ranking": dg.AssetOut(io_manager_key="mem"), "window_weights": dg.AssetOut(io_manager_key="mem")},
    internal_asset_deps={"window_ranking": set(), "window_weights": {dg.AssetKey("window_ranking")}},
)
def window(context: dg.AssetExecutionContext, outcome: _Outcome):
    """Two outputs per partition range, like regime_window; fails when told to."""
    if outcome.probe:
        value = get_and_update_asset_status_cache_value(context.instance, dg.AssetKey("window_weights"), PARTITIONS)
        SEEN_IN_PROGRESS.append(set(value.deserialize_in_progress_partition_subsets(PARTITIONS).get_partition_keys())
                                if value is not None else set())
    if outcome.fail:
        raise RuntimeError("the venue went away mid-backfill")
    yield dg.Output({k: 1 for k in context.partition_keys}, output_name="window_ranking")
    yield dg.Output({k: 2 for k in context.partition_keys}, output_name="window_weights")


class _Mem(dg.IOManager):
    def handle_output(self, context, obj) -> None:
        return None

    def load_input(self, context):
        return None


def _job(fail: bool, probe: bool = False) -> dg.JobDefinition:
    defs = dg.Definitions(assets=[window], jobs=[dg.define_asset_job("window_job", selection=[window])],
                          resources={"mem": _Mem(), "outcome": _Outcome(fail=fail, probe=probe)})
    return defs.resolve_job_def("window_job")


def _backfill(instance: dg.DagsterInstance, fail: bool, probe: bool = False) -> dg.ExecuteInProcessResult:
    return _job(fail, probe).execute_in_process(instance=instance, tags=RANGE, run_config=QUIET, raise_on_error=False)


def _status(instance: dg.DagsterInstance, asset: str) -> tuple[set[str], set[str]]:
    value = get_and_update_asset_status_cache_value(instance, dg.AssetKey(asset), PARTITIONS)
    if value is None:
        return set(), set()
    return (set(value.deserialize_failed_partition_subsets(PARTITIONS).get_partition_keys()),
            set(value.deserialize_materialized_partition_subsets(PARTITIONS).get_partition_keys()))


@pytest.fixture
def pg_instance(postgres_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in pg_env(postgres_db).items():
        monkeypatch.setenv(name, value)
    for name in (*PROCESS_ENV_VARS, SUBSET_SWITCH):
        monkeypatch.delenv(name, raising=False)
    with dg.DagsterInstance.from_config(str(production_home(tmp_path / "home"))) as instance:
        yield instance


@pytest.fixture
def sqlite_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(SUBSET_SWITCH, raising=False)
    home = tmp_path / "sqlite_home"
    home.mkdir()
    shutil.copy(profile_file("local"), home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def _planned_partitions(instance: dg.DagsterInstance, asset: str) -> list[str | None]:
    records = instance.get_event_records(dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                                                               asset_key=dg.AssetKey(asset)))
    return sorted((r.event_log_entry.dagster_event.partition for r in records), key=str)


def test_a_failed_backfill_marks_its_partitions_failed_on_postgres(pg_instance: dg.DagsterInstance) -> None:
    assert isinstance(pg_instance.event_log_storage, PooledPostgresEventLogStorage)
    result = _backfill(pg_instance, fail=True)
    assert not result.success
    for asset in ("window_ranking", "window_weights"):
        assert _planned_partitions(pg_instance, asset) == KEYS  # one planned row per partition, as without the switch
        failed, materialized = _status(pg_instance, asset)
        assert failed == set(KEYS) and not materialized, asset


def test_a_successful_backfill_then_shows_them_materialised(pg_instance: dg.DagsterInstance) -> None:
    assert not _backfill(pg_instance, fail=True).success
    assert _backfill(pg_instance, fail=False).success
    for asset in ("window_ranking", "window_weights"):
        failed, materialized = _status(pg_instance, asset)
        assert materialized == set(KEYS) and not failed, asset
        record = pg_instance.get_asset_records([dg.AssetKey(asset)])[0]
        assert record.asset_entry.last_run_id is not None


def test_sqlite_as_shipped_marks_them_failed(sqlite_instance: dg.DagsterInstance) -> None:
    assert not _backfill(sqlite_instance, fail=True).success
    assert _planned_partitions(sqlite_instance, "window_weights") == KEYS
    assert _status(sqlite_instance, "window_weights") == (set(KEYS), set())


def test_sqlite_with_the_subset_switch_loses_the_failed_marks(sqlite_instance: dg.DagsterInstance,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SUBSET_SWITCH, "1")
    assert not _backfill(sqlite_instance, fail=True).success
    assert _planned_partitions(sqlite_instance, "window_weights") == [None]  # one event, no partition named
    assert _status(sqlite_instance, "window_weights") == (set(), set())  # shown as missing, not failed


def test_a_running_backfill_shows_its_partitions_in_progress_on_postgres(pg_instance: dg.DagsterInstance) -> None:
    SEEN_IN_PROGRESS.clear()
    assert _backfill(pg_instance, fail=False, probe=True).success
    assert SEEN_IN_PROGRESS == [set(KEYS)]


def test_sqlite_with_the_subset_switch_shows_none_in_progress(sqlite_instance: dg.DagsterInstance,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SUBSET_SWITCH, "1")
    SEEN_IN_PROGRESS.clear()
    assert _backfill(sqlite_instance, fail=False, probe=True).success
    assert SEEN_IN_PROGRESS == [set()]  # the trade-off the pooled log avoids


def test_a_run_reuses_pooled_connections(pg_instance: dg.DagsterInstance) -> None:
    engine = pg_instance.event_log_storage._engine
    connects: list[int] = []
    event.listen(engine, "connect", lambda *_: connects.append(1))
    assert _backfill(pg_instance, fail=False).success
    stored = len(pg_instance.all_logs(_latest_run_id(pg_instance)))
    # NullPool (dagster-postgres' default) opens at least one connection per stored event
    assert stored > 20
    assert len(connects) <= pooled_postgres.POOL_SIZE + pooled_postgres.MAX_OVERFLOW


def _latest_run_id(instance: dg.DagsterInstance) -> str:
    return instance.get_runs(limit=1)[0].run_id
