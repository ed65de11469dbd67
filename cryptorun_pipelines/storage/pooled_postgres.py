"""Dagster's Postgres event log with a connection pool and one-statement planned events.

dagster-postgres' ``PostgresEventLogStorage`` builds its engine with ``NullPool`` so that no
instance holds idle connections: every event a run worker stores opens a new connection (a hot
scan opened 134). :class:`PooledPostgresEventLogStorage` keeps a small pool per process instead
(``pool_size`` idle connections at most, checked with ``pool_pre_ping``, recycled hourly, returned
by :meth:`dispose`); the webserver still swaps in its own engine (``optimize_for_webserver``).

Planned events of a single-run backfill: without ``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS``
Dagster emits one ``ASSET_MATERIALIZATION_PLANNED`` event per asset *and partition* (6,570 for a
year of the three regime assets), each logged and stored on its own. With the switch it emits one
event per asset carrying the partition subset, but stores it with ``partition = NULL``, and
Dagster's partition status (``get_latest_asset_partition_materialization_attempts_without_materializations``)
only sees planned rows that name a partition: the partitions of a failed or running backfill are
then shown as *missing* instead of *failed* / *in progress*. This storage takes the cheap path (its
``supports_partition_subset_in_asset_materialization_planned_events`` is always true, whatever the
environment) and stores such an event as the per-partition rows Dagster would have written, in one
INSERT, so failed and in-progress partitions stay marked (tests/pipelines/storage/).

``event_batch_size`` (config) sets ``DAGSTER_EVENT_BATCH_SIZE`` in every process that opens the
instance, unless the environment already sets it: Dagster then writes the materialisations of one
output of a backfill step in batches of that many rows instead of one INSERT each. It must be at
least the partitions of the largest single-run backfill (2,190 for a year of 4h regime windows)
for one INSERT per output.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import Field, IntSource

from dagster._core.events import AssetMaterializationPlannedData, DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.config import pg_config
from dagster._core.storage.event_log import SqlEventLogStorageTable
from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

#: idle connections one process keeps (a run worker stores events from one thread at a time)
POOL_SIZE = 2
#: extra connections under a burst (event-batch flushes overlapping the step thread)
MAX_OVERFLOW = 8
#: Dagster reads the batch size from this variable at every event (dagster._core.instance.utils)
EVENT_BATCH_SIZE_ENV = "DAGSTER_EVENT_BATCH_SIZE"
#: seconds after which a pooled connection is replaced (servers and proxies drop idle ones)
POOL_RECYCLE_S = 3600


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    """``PostgresEventLogStorage`` with a per-process connection pool and expanded subset planned events."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True,
                 inst_data: ConfigurableClassData | None = None, token_provider=None,
                 event_batch_size: int | None = None):
        if event_batch_size:
            # every process that opens this instance (CLI run, daemon, run worker) batches the events
            # of a step: one INSERT per output of a backfill instead of one per partition; a value
            # already in the environment wins (the operator's override)
            os.environ.setdefault(EVENT_BATCH_SIZE_ENV, str(event_batch_size))
        super().__init__(postgres_url, should_autocreate_tables, inst_data=inst_data, token_provider=token_provider)
        self._engine.dispose()
        self._engine = create_pg_engine(
            self.postgres_url, self._token_provider, isolation_level="AUTOCOMMIT",
            pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, pool_recycle=POOL_RECYCLE_S, pool_pre_ping=True,
        )

    @classmethod
    def config_type(cls):
        return {**pg_config(), "event_batch_size": Field(IntSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]):
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
            event_batch_size=config_value.get("event_batch_size"),
        )

    @property
    def supports_partition_subset_in_asset_materialization_planned_events(self) -> bool:
        return True  # store_event expands the subset: nothing is lost (module doc)

    def store_event(self, event: EventLogEntry) -> None:
        rows = _per_partition_planned(event)
        if rows is None:
            return super().store_event(event)
        self._store_planned_rows(rows)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        # a run's planned events come as one batch: asset planned events (expanded here) and
        # asset-check planned events (Dagster's own path)
        planned: list[EventLogEntry] = []
        others: list[EventLogEntry] = []
        for event in events:
            rows = _per_partition_planned(event)
            if rows is not None:
                planned.extend(rows)
            else:
                others.append(event)
        if planned:
            self._store_planned_rows(planned)
        if others:
            super().store_event_batch(others)

    def _store_planned_rows(self, rows: Sequence[EventLogEntry]) -> None:
        """One INSERT for the rows, then the asset index as Dagster updates it for the last one."""
        with self._connect() as conn:
            result = conn.execute(self.prepare_insert_event_batch(rows).returning(SqlEventLogStorageTable.c.id))
            ids = [int(r[0]) for r in result.fetchall()]
        last_by_asset: dict[Any, tuple[EventLogEntry, int]] = {}
        for row, event_id in zip(rows, ids):
            last_by_asset[row.get_dagster_event().asset_key] = (row, event_id)
        with self.index_transaction() as conn:
            for row, event_id in last_by_asset.values():
                self._store_asset_event(conn, row, event_id)

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()


def _per_partition_planned(event: EventLogEntry) -> list[EventLogEntry] | None:
    """The per-partition planned events a subset planned event stands for (None: not such an event)."""
    dagster_event = event.dagster_event
    if dagster_event is None or dagster_event.event_type != DagsterEventType.ASSET_MATERIALIZATION_PLANNED:
        return None
    data = dagster_event.event_specific_data
    if not isinstance(data, AssetMaterializationPlannedData) or data.partitions_subset is None:
        return None
    return [
        event._replace(dagster_event=dagster_event._replace(
            event_specific_data=AssetMaterializationPlannedData(data.asset_key, partition=key, partitions_subset=None),
        ))
        for key in data.partitions_subset.get_partition_keys()
    ]
