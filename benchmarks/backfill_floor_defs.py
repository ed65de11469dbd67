"""The framework floor of a regime backfill: the same lineage as ``regime_refresh`` — one multi-asset
step with three outputs (ranking → indicators → weights), 4h partitions,
``BackfillPolicy.single_run()`` — with a no-op body and an IO manager that stores nothing: no
CryptoRun code at all.

A single-run backfill of this job costs what Dagster itself charges per partition on the instance
(planned and materialisation events of three assets per partition); the real backfill cannot be
cheaper than this without changing the lineage graph.
"""

from __future__ import annotations

from datetime import datetime

import dagster as dg

PARTITION_FMT = "%Y-%m-%d-%H:%M"


class NullIOManager(dg.IOManager):
    """Stores nothing and loads ``None``: the floor measures Dagster, not storage."""

    def handle_output(self, context, obj) -> None:
        return None

    def load_input(self, context):
        return None


def build_floor_job(start: datetime) -> tuple[dg.Definitions, str]:
    partitions = dg.TimeWindowPartitionsDefinition(cron_schedule="0 */4 * * *", start=start, fmt=PARTITION_FMT,
                                                   timezone="UTC")

    @dg.multi_asset(
        name="floor_window", partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=False,
        outs={name: dg.AssetOut(io_manager_key="null_io") for name in ("floor_ranking", "floor_indicators", "floor_weights")},
        internal_asset_deps={"floor_ranking": set(), "floor_indicators": {dg.AssetKey("floor_ranking")},
                             "floor_weights": {dg.AssetKey("floor_indicators")}},
    )
    def floor_window():
        """Nothing: stands for regime_window (universe_ranking → regime_indicators → regime_weights)."""
        for name in ("floor_ranking", "floor_indicators", "floor_weights"):
            yield dg.Output(None, output_name=name)

    job = dg.define_asset_job("floor_backfill", selection=[floor_window])
    defs = dg.Definitions(assets=[floor_window], jobs=[job], resources={"null_io": NullIOManager()})
    return defs, "floor_backfill"
