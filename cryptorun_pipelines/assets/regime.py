"""Regime indicators and regime weights (group ``regime``), refreshed every 4 h (SPEC §6)."""


from pathlib import Path

import dagster as dg
import pandas as pd

from cryptorun_core.config import AppConfig
from cryptorun_core.market.base import to_utc
from cryptorun_core.market.snapshot import collect_snapshot
from cryptorun_core.regime import (
    INDICATORS,
    RegimeResult,
    blend_weights,
    compute_indicators,
    confidence,
    iso_z,
    majority,
    next_refresh,
    regime_universe,
    vote,
)
from cryptorun_core.schemas import RegimeIndicatorsSchema
from cryptorun_pipelines.assets import history
from cryptorun_pipelines.assets.common import (
    RegimeJsonType,
    duration_metadata,
    frame_metadata,
    pack,
    partition_keys,
    per_partition,
    regime_metadata,
    table_type,
    timed,
)
from cryptorun_pipelines.charts import regime_chart_metadata
from cryptorun_pipelines.partitions import Cadences, as_of_for_key
from cryptorun_pipelines.resources import MarketSourceResource

RegimeIndicatorsType = table_type(
    RegimeIndicatorsSchema,
    "One row per regime time T: realized_vol_7d, pct_above_20ma, breadth_thrust of the eligible universe "
    "(plus as_of, partition_key, universe_size, benchmark, timeframe).",
)


def regime_from_indicators(row: pd.Series | dict, config: AppConfig) -> dict:
    """regime.json content (SPEC §9) from one indicators row: votes → label → confidence → blend.

    The same chain as :func:`cryptorun_core.regime.compute_regime` (a test checks both agree byte for byte).
    """
    rc = config.regime
    indicators = {k: float(row[k]) for k in INDICATORS}
    votes = vote(indicators, rc.thresholds)
    label = majority(votes)
    conf = confidence(indicators, votes, label, rc.thresholds)
    as_of = to_utc(row["as_of"])
    thresholds = {i: {"calm": getattr(rc.thresholds, i).calm, "volatile": getattr(rc.thresholds, i).volatile} for i in INDICATORS}
    result = RegimeResult(
        label=label,
        confidence=conf,
        indicators=indicators,
        votes=votes,
        weight_blend=blend_weights(label, conf, rc.weights),
        as_of=as_of,
        next_refresh=next_refresh(as_of, rc.refresh_hours),
        universe_size=int(row["universe_size"]),
        benchmark=rc.benchmark,
        thresholds=thresholds,
    )
    return {**result.to_dict(), "partition_key": str(row["partition_key"])}


def _indicator_row(values: dict, key: str, as_of, universe_size: int, benchmark: str, timeframe: str) -> pd.DataFrame:
    """The regime_indicators row of one partition."""
    return pd.DataFrame(
        [
            {
                **{k: float(values[k]) for k in INDICATORS},
                "as_of": iso_z(as_of),
                "partition_key": key,
                "universe_size": universe_size,
                "benchmark": benchmark,
                "timeframe": timeframe,
            }
        ]
    )


# Dagster copies a multi-partition run's output metadata onto every partition's materialisation:
# a year-long backfill would store the same ~40 kB chart 2,190 times in the event log.
CHART_MAX_PARTITIONS = 42  # one week of 4h windows


def _chart_metadata(config: AppConfig, pdef, out: dict, keys: list[str], log) -> dict:
    if len(keys) > CHART_MAX_PARTITIONS:
        return {
            "regime_chart": dg.MetadataValue.text(
                f"not rendered for a {len(keys)}-partition backfill (limit {CHART_MAX_PARTITIONS}); "
                "materialise one partition to see its chart"
            )
        }
    return regime_chart_metadata(Path(config.global_.artifacts_dir), pdef, out, logger=log)


def build_regime_assets(cadences: Cadences) -> list[dg.AssetsDefinition]:
    pdef = cadences.regime
    policy = dg.BackfillPolicy.single_run()

    @dg.asset(
        name="regime_indicators",
        group_name="regime",
        partitions_def=pdef,
        backfill_policy=policy,
        dagster_type=RegimeIndicatorsType,
        kinds={"pandas", "parquet"},
        metadata={"stored_as": "{cache_dir}/{as_of}/regime_indicators.parquet"},
    )
    def regime_indicators(context: dg.AssetExecutionContext, market_source: MarketSourceResource, universe_ranking):
        """The three regime indicators at T over the eligible universe (top 100 by ADV): 7-day realized
        vol of the benchmark, % of symbols above their 20-period MA, and the breadth thrust EMA."""
        config = market_source.app_config()
        keys = partition_keys(context)
        rankings = per_partition(universe_ranking, keys)
        as_ofs = [as_of_for_key(pdef, key) for key in keys]
        ranked = [rankings[key] for key in keys]
        universes = [regime_universe(ranking, config) for ranking in ranked]
        with timed() as t, market_source.open(cadences.regime_job, config) as source:
            if history.can_batch(source, len(keys)):
                # the range universe_ranking read in this run (else one read here); one row per key,
                # identical to a single-partition run's
                wanted = [sorted(set(symbols) | {config.regime.benchmark}) for symbols in universes]
                read = history.read_range(
                    source, as_ofs, config.market.venues, config.market.history_bars, symbols_at=wanted.__getitem__,
                    reuse=history.recall(history.cache_key(config, as_ofs)),
                )
                values = history.indicators(source, read, config, ranked)
            else:
                # the output type (dagster-pandera RegimeIndicatorsSchema) validates the row
                values = (
                    compute_indicators(
                        collect_snapshot(source, sorted(set(symbols) | {config.regime.benchmark}), as_of,
                                         venues=config.market.venues, limit=config.market.history_bars, with_books=False),
                        ranking, config, validate=False,
                    )
                    for symbols, as_of, ranking in zip(universes, as_ofs, ranked)
                )
            timeframe = source.native_timeframe
            rows = {
                key: _indicator_row(value, key, as_of, len(symbols), config.regime.benchmark, timeframe)
                for key, as_of, symbols, value in zip(keys, as_ofs, universes, values)
            }
        context.add_output_metadata(
            {**frame_metadata(rows[keys[-1]]), **duration_metadata(t["seconds"]), "n_partitions": len(keys)}
        )
        return pack(rows, keys)

    @dg.asset(
        name="regime_weights",
        group_name="regime",
        partitions_def=pdef,
        backfill_policy=policy,
        dagster_type=RegimeJsonType,
        kinds={"json"},
        metadata={"artifact": "{artifacts_dir}/{as_of}/regime.json"},
    )
    def regime_weights(context: dg.AssetExecutionContext, market_source: MarketSourceResource, regime_indicators):
        """regime.json: the regime label (calm / normal / volatile) voted by the three indicators, its
        confidence, and the momentum/technical/volume/quality factor weight blend used by the scans."""
        config = market_source.app_config()
        keys = partition_keys(context)
        frames = per_partition(regime_indicators, keys)
        with timed() as t:
            out = {key: regime_from_indicators(frames[key].iloc[0], config) for key in keys}
        last = out[keys[-1]]
        labels = pd.Series([r["regime"] for r in out.values()]).value_counts().to_dict()
        context.add_output_metadata(
            {
                **regime_metadata(last),
                **duration_metadata(t["seconds"]),
                "weight_blend": dg.MetadataValue.json(last["weight_blend"]),
                "regimes": dg.MetadataValue.json({str(k): int(v) for k, v in labels.items()}),
                "n_partitions": len(keys),
                # regime_chart / regime_history: this cycle and the previous ones found in artifacts_dir
                **_chart_metadata(config, pdef, out, keys, context.log),
            }
        )
        return pack(out, keys)

    return [regime_indicators, regime_weights]
