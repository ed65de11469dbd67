"""Universe ranking (group ``universe``): every USD market ranked by ADV at the regime time T."""


from collections import Counter

import dagster as dg

from cryptorun_core.market.snapshot import collect_snapshot
from cryptorun_core.schemas import UniverseRankingSchema
from cryptorun_core.universe import rank_universe
from cryptorun_pipelines.assets import history
from cryptorun_pipelines.assets.common import duration_metadata, frame_metadata, pack, partition_keys, table_type, timed
from cryptorun_pipelines.partitions import Cadences, as_of_for_key
from cryptorun_pipelines.resources import MarketSourceResource

UniverseRankingType = table_type(
    UniverseRankingSchema,
    "One row per canonical BASE/USD symbol: rank by ADV, tier, venues, complete 24h periods, "
    "eligibility or exclusion reason, and segment (hot / warm / none).",
)


def segment_sizes(cadences: Cadences) -> tuple[int, int]:
    hot = cadences.hot_job.config.max_sample if cadences.hot_job else 0
    warm = cadences.warm_job.config.max_sample if cadences.warm_job else 0
    return hot, warm


def build_universe_assets(cadences: Cadences) -> list[dg.AssetsDefinition]:
    hot_size, warm_size = segment_sizes(cadences)

    @dg.asset(
        name="universe_ranking",
        group_name="universe",
        partitions_def=cadences.regime,
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_type=UniverseRankingType,
        kinds={"pandas", "parquet"},
        metadata={"hot_size": hot_size, "warm_size": warm_size, "stored_as": "{cache_dir}/{as_of}/universe.parquet"},
    )
    def universe_ranking(context: dg.AssetExecutionContext, market_source: MarketSourceResource):
        """The trading universe at T: every USD market of the configured venues ranked by ADV, with
        liquidity tier, exclusion reason and hot (top N) / warm (next M) segment (SPEC §2)."""
        config = market_source.app_config()
        keys = partition_keys(context)
        as_ofs = [as_of_for_key(cadences.regime, key) for key in keys]
        with timed() as t, market_source.open(cadences.regime_job, config) as source:
            if history.can_batch(source, len(keys)):
                # one read of the whole range, periods aggregated once, one ranking per key (identical to
                # a single-partition run's); the read stays in memory for regime_indicators of this run
                read = history.read_range(source, as_ofs, config.market.venues, config.market.history_bars)
                history.remember(history.cache_key(config, as_ofs), read)
                ranked = history.rankings(source, read, config, hot_size, warm_size)
            else:
                # the output type (dagster-pandera UniverseRankingSchema) validates the frame
                ranked = (
                    rank_universe(
                        collect_snapshot(source, None, as_of, venues=config.market.venues, limit=config.market.history_bars, with_books=False),
                        config, hot_size=hot_size, warm_size=warm_size, validate=False,
                    )
                    for as_of in as_ofs
                )
            out = dict(zip(keys, ranked))
        last = out[keys[-1]]
        segments = Counter(last["segment"])
        reasons = Counter(r for r in last["exclusion_reason"] if r is not None and r == r)
        context.add_output_metadata(
            {
                **frame_metadata(last),
                **duration_metadata(t["seconds"]),
                "eligible": int(last["eligible"].sum()),
                "hot": segments.get("hot", 0),
                "warm": segments.get("warm", 0),
                "excluded": dg.MetadataValue.json(dict(sorted(reasons.items()))),
                "source": config.market.source,
                "partitions": dg.MetadataValue.text(keys[0] if len(keys) == 1 else f"{keys[0]} … {keys[-1]} ({len(keys)})"),
            }
        )
        return pack(out, keys)

    return [universe_ranking]
