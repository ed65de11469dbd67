"""The regime window (groups ``universe`` and ``regime``): ranking, indicators and regime.json every 4 h.

One step computes the three assets of a window (SPEC §2, §6) with
:func:`cryptorun_core.regime_window.compute_windows`: a single-run backfill of any range reads the
market once and shares that read between the ranking and the indicators inside the step, so
nothing passes between steps outside the IO manager (any executor works).
"""


from collections import Counter
from typing import Any

import dagster as dg
import pandas as pd

from cryptorun_core.asset_keys import REGIME_INDICATORS, REGIME_WEIGHTS, UNIVERSE_RANKING
from cryptorun_core.regime import INDICATORS
from cryptorun_core.regime_window import RegimeWindow, compute_windows
from cryptorun_core.schemas import RegimeIndicatorsSchema, UniverseRankingSchema
from cryptorun_pipelines.assets.common import (
    RegimeJsonType, duration_metadata, frame_metadata, pack, partition_keys, regime_metadata, table_type, timed,
)
from cryptorun_pipelines.assets.partition_metadata import add_partition_metadata
from cryptorun_pipelines.charts import regime_chart_metadata
from cryptorun_pipelines.freshness import freshness_policy
from cryptorun_pipelines.partitions import Cadences, as_of_for_key, segment_sizes
from cryptorun_pipelines.resources import CryptoRunConfigResource, MarketSourceResource

UniverseRankingType = table_type(
    UniverseRankingSchema,
    "One row per canonical BASE/USD symbol: rank by ADV, tier, venues, complete 24h periods, "
    "eligibility or exclusion reason, and segment (hot / warm / none).",
)
RegimeIndicatorsType = table_type(
    RegimeIndicatorsSchema,
    "One row per regime time T: realized_vol_7d, pct_above_20ma, breadth_thrust of the eligible universe "
    "(plus as_of, partition_key, universe_size, benchmark, timeframe).",
)

OUTS = (UNIVERSE_RANKING, REGIME_INDICATORS, REGIME_WEIGHTS)


def ranking_metadata(ranking: pd.DataFrame) -> dict[str, Any]:
    """What one partition's ranking holds: eligible, segment sizes, exclusions by reason."""
    segments = Counter(ranking["segment"].tolist())
    reasons = Counter(r for r in ranking["exclusion_reason"].tolist() if r is not None and r == r)
    return {
        "dagster/row_count": dg.MetadataValue.int(len(ranking)),
        "eligible": int(ranking["eligible"].to_numpy(dtype=bool).sum()),
        "hot": segments.get("hot", 0),
        "warm": segments.get("warm", 0),
        "excluded": dg.MetadataValue.json(dict(sorted(reasons.items()))),
    }


def indicator_metadata(window: RegimeWindow) -> dict[str, Any]:
    """The three indicators as numbers (Dagster plots numeric metadata over the partitions)."""
    return {**{k: dg.MetadataValue.float(float(window.indicators[k])) for k in INDICATORS}, "universe_size": window.universe_size}


def data_quality_metadata(window: RegimeWindow) -> dict[str, Any]:
    """What the bar sanitation rejected or repaired at T and the files the source could not read
    (regime.json's format is fixed by SPEC §9, so the report lives here and in the run log)."""
    dq = window.data_quality
    return {"data_quality": dg.MetadataValue.json(dq),
            "bars_rejected_or_repaired": sum(int(b["n_bars"]) for b in dq["bars"]),
            "unreadable_files": len(dq["files"])}


def log_data_quality(log, key: str, window: RegimeWindow) -> None:
    dq = window.data_quality
    if not dq["counts"]:
        return
    parts = [f"{b['venue']} {b['symbol']}: {b['n_bars']} bar(s) {b['action']} ({b['reason']})" for b in dq["bars"]]
    parts += [f"{f['venue']} {f['symbol']}: {f['reason']}: {f['detail']}" for f in dq["files"]]
    log.warning(f"regime {key}: data quality: " + "; ".join(parts))


def weights_metadata(regime: dict) -> dict[str, Any]:
    return {**regime_metadata(regime), "weight_blend": dg.MetadataValue.json(regime["weight_blend"])}


def build_regime_assets(cadences: Cadences) -> list[dg.AssetsDefinition]:
    pdef = cadences.regime
    hot_size, warm_size = segment_sizes(cadences)
    policy = dg.BackfillPolicy.single_run()

    @dg.multi_asset(
        name="regime_window",
        partitions_def=pdef,
        backfill_policy=policy,
        can_subset=False,
        outs={
            UNIVERSE_RANKING: dg.AssetOut(
                dagster_type=UniverseRankingType, group_name="universe", kinds={"pandas", "parquet"},
                description="The trading universe at T: every USD market of the configured venues ranked by ADV, with "
                "liquidity tier, exclusion reason and hot (top N) / warm (next M) segment (SPEC §2).",
                metadata={"hot_size": hot_size, "warm_size": warm_size, "stored_as": "{artifacts_dir}/.pipeline/{as_of}/universe.parquet"},
            ),
            REGIME_INDICATORS: dg.AssetOut(
                dagster_type=RegimeIndicatorsType, group_name="regime", kinds={"pandas", "parquet"},
                description="The three regime indicators at T over the eligible universe (top 100 by ADV): 7-day realized "
                "vol of the benchmark, % of symbols above their 20-period MA, and the breadth thrust EMA.",
                metadata={"stored_as": "{artifacts_dir}/.pipeline/{as_of}/regime_indicators.parquet"},
            ),
            REGIME_WEIGHTS: dg.AssetOut(
                dagster_type=RegimeJsonType, group_name="regime", kinds={"json"},
                freshness_policy=freshness_policy(cadences.regime_job.schedule),
                description="regime.json: the regime label (calm / normal / volatile) voted by the three indicators, its "
                "confidence, and the momentum/technical/volume/quality factor weight blend the scans use.",
                metadata={"artifact": "{artifacts_dir}/{as_of}/regime.json"},
            ),
        },
        internal_asset_deps={
            UNIVERSE_RANKING: set(),
            REGIME_INDICATORS: {dg.AssetKey(UNIVERSE_RANKING)},
            REGIME_WEIGHTS: {dg.AssetKey(REGIME_INDICATORS)},
        },
    )
    def regime_window(context: dg.AssetExecutionContext, cryptorun_config: CryptoRunConfigResource, market_source: MarketSourceResource):
        """The regime window at each partition's T: the ranked universe, its three indicators and the
        voted regime with its weight blend."""
        config = cryptorun_config.load()
        keys = partition_keys(context)
        with timed() as t, market_source.open(config.job(cadences.regime_job.name)) as source:
            windows = dict(zip(keys, compute_windows(source, config, [as_of_for_key(pdef, k) for k in keys], hot_size, warm_size)))
        values = {
            UNIVERSE_RANKING: {k: w.ranking for k, w in windows.items()},
            REGIME_INDICATORS: {k: w.indicator_row(k) for k, w in windows.items()},
            REGIME_WEIGHTS: {k: w.regime_json(k) for k, w in windows.items()},
        }
        metadata = {}
        for key, window in windows.items():  # each partition's own numbers, never the last one's
            metadata[UNIVERSE_RANKING, key] = ranking_metadata(window.ranking)
            metadata[REGIME_INDICATORS, key] = indicator_metadata(window)
            metadata[REGIME_WEIGHTS, key] = {**weights_metadata(values[REGIME_WEIGHTS][key]), **indicator_metadata(window),
                                             **data_quality_metadata(window)}
            log_data_quality(context.log, key, window)
        add_partition_metadata(context, metadata)
        run_wide = _run_metadata(context, config, pdef, keys, values, t["seconds"], source.name)
        for name in OUTS:
            yield dg.Output(pack(values[name], keys), output_name=name, metadata=run_wide.get(name, {}))

    return [regime_window]


def _run_metadata(context, config, pdef, keys: list[str], values: dict, seconds: float, source: str) -> dict[str, dict]:
    """Metadata of the whole step: for one partition, previews, duration and the chart (they describe
    that partition); for a range, nothing — Dagster would copy it onto every partition — and the
    totals go to the run's log."""
    if len(keys) > 1:
        labels = Counter(r["regime"] for r in values[REGIME_WEIGHTS].values())
        newest = keys[-1]
        context.log.info(
            f"regime backfill of {len(keys)} partitions ({keys[0]} … {newest}) from {source} in {seconds:.1f}s: "
            + ", ".join(f"{k} {v}" for k, v in sorted(labels.items()))
            + f"; each partition's materialisation carries its own regime and indicators, and the newest ({newest}) "
            "the chart of the cycles up to it"
        )
        # one chart, on the partition it ends at: drawing it for every partition would cost a
        # render per partition for pictures nobody opens
        chart = regime_chart_metadata(config.global_.artifacts_dir, pdef, values[REGIME_WEIGHTS], logger=context.log)
        context.add_asset_metadata(chart, asset_key=REGIME_WEIGHTS, partition_key=newest)
        return {}
    key = keys[0]
    regime = values[REGIME_WEIGHTS][key]
    return {
        UNIVERSE_RANKING: {**frame_metadata(values[UNIVERSE_RANKING][key]), **duration_metadata(seconds), "source": source},
        REGIME_INDICATORS: frame_metadata(values[REGIME_INDICATORS][key]),
        REGIME_WEIGHTS: regime_chart_metadata(config.global_.artifacts_dir, pdef, {key: regime}, logger=context.log),
    }
