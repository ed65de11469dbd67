"""The regime window a scan reads, computed on demand when no regime.refresh run has produced it.

A scan at T reads the universe ranking and regime of the latest regime window closed at T. On a
fresh install, after the daemon was down, or for a past partition launched from the UI, nobody
may have computed that window: the scan then computes it itself, with exactly the functions the
regime job uses (:func:`cryptorun_core.regime_window.compute_window`), so its files are the ones
the regime job would have written. A window whose own run is queued or running is waited for
instead (the scheduled 12:00 scan and regime runs tick together).
"""


from typing import Any

import dagster as dg

from cryptorun_core.artifacts import ROLE_ASSETS
from cryptorun_core.asset_keys import REGIME_INDICATORS, REGIME_WEIGHTS, UNIVERSE_RANKING
from cryptorun_core.regime_window import compute_window
from cryptorun_pipelines.partitions import (
    PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG, as_of_for_key, build_cadences, parse_key, segment_sizes,
)
from cryptorun_pipelines.resources.market import MarketSourceResource
from cryptorun_pipelines.schedules import schedule_name

#: the assets of a regime window (what the regime job materialises for one partition)
WINDOW_ASSETS = ROLE_ASSETS["regime"]
IN_FLIGHT = (
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
)


class RegimeWindowResource(dg.ConfigurableResource):
    """Computes a missing regime window for a scan, and tells whether a run is producing it."""

    market_source: MarketSourceResource

    @property
    def regime_job(self):
        return build_cadences(self.market_source.config.load()).regime_job

    def compute(self, partition_key: str) -> dict[str, Any]:
        """``{asset: value}`` of the regime window ``partition_key``, as the regime job computes it."""
        config = self.market_source.config.load()
        cadences = build_cadences(config)
        hot_size, warm_size = segment_sizes(cadences)
        with self.market_source.open(cadences.regime_job) as source:
            window = compute_window(source, config, as_of_for_key(cadences.regime, partition_key), hot_size, warm_size)
        return {
            UNIVERSE_RANKING: window.ranking,
            REGIME_INDICATORS: window.indicator_row(partition_key),
            REGIME_WEIGHTS: window.regime_json(partition_key),
        }

    def producing_run(self, instance: dg.DagsterInstance, partition_key: str) -> str | None:
        """The id of a queued or running regime run that fills ``partition_key`` (alone or in a range)."""
        job = self.regime_job.dagster_name
        records = instance.get_run_records(dg.RunsFilter(job_name=job, statuses=list(IN_FLIGHT)), limit=50)
        wanted = parse_key(partition_key)
        for record in records:
            tags = record.dagster_run.tags
            if tags.get(PARTITION_TAG) == partition_key:
                return record.dagster_run.run_id
            start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
            try:
                if start and end and parse_key(start) <= wanted <= parse_key(end):
                    return record.dagster_run.run_id
            except ValueError:
                continue
        return None

    def schedule_running(self, instance: dg.DagsterInstance) -> bool:
        """The regime schedule is on and the daemon alive: a run for a window that just closed is coming."""
        from dagster._core.definitions.run_request import InstigatorType
        from dagster._core.scheduler.instigation import InstigatorStatus

        name = schedule_name(self.regime_job.dagster_name)
        try:
            states = instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
            beat = instance.get_daemon_heartbeats().get("SCHEDULER")
        except Exception:  # noqa: BLE001 - an instance without schedule storage or daemon
            return False
        import time

        alive = beat is not None and time.time() - beat.timestamp < 90
        return alive and any(s.name == name and s.status == InstigatorStatus.RUNNING for s in states)
