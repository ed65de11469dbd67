"""The framework floor of a regime backfill: the same three-asset partitioned lineage as
``regime_refresh`` (ranking → indicators → weights, 4h partitions, ``BackfillPolicy.single_run()``)
with no-op bodies and an IO manager that stores nothing — no CryptoRun code at all.

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
    common = dict(partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run(), io_manager_key="null_io")

    @dg.asset(**common)
    def floor_ranking() -> None:
        """Nothing: stands for universe_ranking."""

    @dg.asset(deps=[floor_ranking], **common)
    def floor_indicators() -> None:
        """Nothing: stands for regime_indicators."""

    @dg.asset(deps=[floor_indicators], **common)
    def floor_weights() -> None:
        """Nothing: stands for regime_weights."""

    job = dg.define_asset_job("floor_backfill", selection=[floor_ranking, floor_indicators, floor_weights])
    defs = dg.Definitions(assets=[floor_ranking, floor_indicators, floor_weights], jobs=[job],
                          resources={"null_io": NullIOManager()})
    return defs, "floor_backfill"
