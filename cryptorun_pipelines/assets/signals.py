"""Hot signals / premove / explain and warm signals (group ``signals``): the scan results at T."""


from typing import Any

import dagster as dg
import pandas as pd

from cryptorun_core.timefmt import iso_z
from cryptorun_core.asset_keys import (
    HOT_EXPLAIN, HOT_PREMOVE, HOT_SIGNALS, HOT_SNAPSHOT, REGIME_WEIGHTS, UNIVERSE_RANKING, WARM_SIGNALS, WARM_SNAPSHOT,
)
from cryptorun_core.config import JobConfig
from cryptorun_core.engine import run_scan
from cryptorun_core.schemas import PremoveSchema, SignalsSchema, WarmSignalsSchema
from cryptorun_pipelines.assets.common import (
    ExplainJsonType,
    duration_metadata,
    frame_metadata,
    regime_metadata,
    table_type,
    timed,
)
from cryptorun_pipelines.charts import hot_scan_chart_metadata
from cryptorun_pipelines.freshness import freshness_policy
from cryptorun_pipelines.checks import artifact_check_specs, columns_check, explain_check
from cryptorun_pipelines.partitions import Cadences, as_of_for_key
from cryptorun_pipelines.resources import CryptoRunConfigResource

SignalsType = table_type(
    SignalsSchema,
    "signals.csv (SPEC §9): hot entries, score descending — timestamp, symbol, score, momentum_core, vadr, "
    "spread_bps, depth_usd, regime, fresh, venue, sources.",
)
PremoveType = table_type(
    PremoveSchema,
    "premove.csv (SPEC §8/§9): coiled-spring setups of the hot segment with state and execution risk.",
)
WarmSignalsType = table_type(
    WarmSignalsSchema,
    "warm_signals.csv (SPEC §9): warm entries with the signals.csv columns plus cached, ttl_remaining_s.",
)

SIGNAL_PREVIEW = ("symbol", "score", "momentum_core", "vadr", "spread_bps", "depth_usd", "regime", "fresh", "depth_badge", "venue", "sources")
PREMOVE_PREVIEW = ("symbol", "venue", "premove_score", "state", "gates_passed", "execution_risk")


def _scan_inputs(context: dg.AssetExecutionContext, snapshot_asset: str) -> dict[str, str]:
    """{input asset: partition key} of everything the scan read (recorded in explain.json)."""
    return {
        snapshot_asset: context.partition_key,
        UNIVERSE_RANKING: context.asset_partition_key_for_input("universe_ranking"),
        REGIME_WEIGHTS: context.asset_partition_key_for_input("regime_weights"),
    }


def annotate_explain(explain: dict[str, Any], *, partition_key: str, as_of, job: JobConfig, inputs: dict, regime: dict) -> dict:
    """Add what only the orchestrator knows: the partition and the partition of every input."""
    out = dict(explain)
    out["partition_key"] = partition_key
    out.setdefault("as_of", iso_z(as_of))
    out.setdefault("job", job.name)
    out["inputs"] = dict(sorted(inputs.items()))
    used = dict(out.get("regime") or {})
    used.setdefault("label", regime.get("regime"))
    used.setdefault("confidence", regime.get("confidence"))
    used.setdefault("as_of", regime.get("as_of"))
    used["partition_key"] = regime.get("partition_key")
    out["regime"] = used
    return out


def _scan_counts(explain: dict[str, Any]) -> dict[str, Any]:
    counts = explain.get("counts")
    return {"counts": dg.MetadataValue.json(counts)} if isinstance(counts, dict) else {}


def build_signal_assets(cadences: Cadences) -> list[dg.AssetsDefinition]:
    assets: list[dg.AssetsDefinition] = []
    if cadences.hot_job is not None:
        assets.append(_hot_scan(cadences, cadences.hot_job))
    if cadences.warm_job is not None:
        assets.append(_warm_scan(cadences, cadences.warm_job))
    return assets


def _hot_scan(cadences: Cadences, job: JobConfig) -> dg.AssetsDefinition:
    pdef = cadences.hot
    mapping = cadences.scan_mapping("hot")

    @dg.multi_asset(
        name="hot_scan",
        group_name="signals",
        partitions_def=pdef,
        can_subset=False,
        outs={
            HOT_SIGNALS: dg.AssetOut(
                dagster_type=SignalsType,
                freshness_policy=freshness_policy(job.schedule),
                kinds={"pandas", "csv"},
                description="signals.csv: the hot scan's entries at T (every gate passed), score descending.",
                metadata={"artifact": "{artifacts_dir}/{as_of}/signals.csv", "job": job.name},
            ),
            HOT_PREMOVE: dg.AssetOut(
                dagster_type=PremoveType,
                kinds={"pandas", "csv"},
                description="premove.csv: premove (coiled-spring) setups of the hot segment at T.",
                metadata={"artifact": "{artifacts_dir}/{as_of}/premove.csv", "job": job.name},
            ),
            HOT_EXPLAIN: dg.AssetOut(
                dagster_type=ExplainJsonType,
                kinds={"json"},
                description="explain.json: every evaluated hot symbol with factors, gate results and decision, "
                "the regime used and the partition of every input.",
                metadata={"artifact": "{artifacts_dir}/{as_of}/explain.json", "job": job.name},
            ),
        },
        ins={
            "snapshot": dg.AssetIn(key=HOT_SNAPSHOT),
            "universe_ranking": dg.AssetIn(key=UNIVERSE_RANKING, partition_mapping=mapping),
            "regime_weights": dg.AssetIn(key=REGIME_WEIGHTS, partition_mapping=mapping),
        },
        check_specs=artifact_check_specs((HOT_SIGNALS, HOT_PREMOVE, HOT_EXPLAIN)),
    )
    def hot_scan(
        context: dg.AssetExecutionContext,
        cryptorun_config: CryptoRunConfigResource,
        snapshot,
        universe_ranking: pd.DataFrame,
        regime_weights: dict,
    ):
        """Scores, gates and premove of the hot segment at T with the latest closed regime's weights;
        each output's SPEC §9 check follows it (evaluated on the value just written)."""
        config = cryptorun_config.load()
        job_cfg = config.job(job.name)
        key = context.partition_key
        as_of = as_of_for_key(pdef, key)
        with timed() as t:
            # validate=False: the output types (dagster-pandera) validate signals and premove, once
            result = run_scan(snapshot, universe_ranking, regime_weights, config, job_cfg, validate=False)
        inputs = _scan_inputs(context, HOT_SNAPSHOT)
        explain = annotate_explain(result.explain, partition_key=key, as_of=as_of, job=job_cfg, inputs=inputs, regime=regime_weights)
        common = {**regime_metadata(regime_weights), **duration_metadata(t["seconds"]), "inputs": dg.MetadataValue.json(inputs)}
        premove = result.premove if result.premove is not None else pd.DataFrame(columns=list(PremoveSchema.columns))
        # score_chart / gate_rejections / top_evaluated: every evaluated symbol, not only the entries
        charts = hot_scan_chart_metadata(result.evaluated, explain, score_min=float(job_cfg.config.score_min), logger=context.log)
        yield dg.Output(
            result.signals, output_name=HOT_SIGNALS, metadata={**frame_metadata(result.signals, SIGNAL_PREVIEW), **common, **charts}
        )
        yield columns_check(HOT_SIGNALS, result.signals)
        yield dg.Output(premove, output_name=HOT_PREMOVE, metadata={**frame_metadata(premove, PREMOVE_PREVIEW), **common})
        yield columns_check(HOT_PREMOVE, premove)
        yield dg.Output(
            explain,
            output_name=HOT_EXPLAIN,
            metadata={**common, **_scan_counts(explain), "evaluated": len(result.evaluated) if result.evaluated is not None else 0},
        )
        yield explain_check(explain)

    return hot_scan


def _warm_scan(cadences: Cadences, job: JobConfig) -> dg.AssetsDefinition:
    pdef = cadences.warm
    mapping = cadences.scan_mapping("warm")

    @dg.asset(
        name=WARM_SIGNALS,
        group_name="signals",
        partitions_def=pdef,
        dagster_type=WarmSignalsType,
        freshness_policy=freshness_policy(job.schedule),
        kinds={"pandas", "csv"},
        ins={
            "snapshot": dg.AssetIn(key=WARM_SNAPSHOT),
            "universe_ranking": dg.AssetIn(key=UNIVERSE_RANKING, partition_mapping=mapping),
            "regime_weights": dg.AssetIn(key=REGIME_WEIGHTS, partition_mapping=mapping),
        },
        metadata={"artifact": "{artifacts_dir}/{as_of}/warm_signals.csv", "job": job.name},
        check_specs=artifact_check_specs((WARM_SIGNALS,)),
    )
    def warm_signals(
        context: dg.AssetExecutionContext,
        cryptorun_config: CryptoRunConfigResource,
        snapshot,
        universe_ranking: pd.DataFrame,
        regime_weights: dict,
    ):
        """warm_signals.csv: the warm scan's entries at T (relaxed gates), with whether each row's data
        came from the cache and the cache entry's remaining TTL; then its SPEC §9 column check."""
        config = cryptorun_config.load()
        job_cfg = config.job(job.name)
        with timed() as t:
            result = run_scan(snapshot, universe_ranking, regime_weights, config, job_cfg, validate=False)
        inputs = _scan_inputs(context, WARM_SNAPSHOT)
        yield dg.Output(
            result.signals,
            metadata={
                **frame_metadata(result.signals, SIGNAL_PREVIEW + ("cached", "ttl_remaining_s")),
                **regime_metadata(regime_weights),
                **duration_metadata(t["seconds"]),
                **_scan_counts(result.explain or {}),
                "inputs": dg.MetadataValue.json(inputs),
            },
        )
        yield columns_check(WARM_SIGNALS, result.signals)

    return warm_signals
