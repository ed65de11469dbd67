"""Hot and warm market snapshots (group ``market``): what each scan cycle read at its T."""


import dagster as dg
import pandas as pd

from cryptorun_core.asset_keys import REGIME_WEIGHTS, SNAPSHOT, UNIVERSE_RANKING
from cryptorun_core.book_pruning import distinct_pairs, read_segment
from cryptorun_core.config import JobConfig
from cryptorun_core.market.snapshot import MarketSnapshot
from cryptorun_core.quality import source_file_problems
from cryptorun_pipelines.assets.common import MarketSnapshotType, duration_metadata, timed
from cryptorun_pipelines.partitions import Cadences, as_of_for_key
from cryptorun_pipelines.resources import CryptoRunConfigResource, MarketSourceResource


def snapshot_metadata(snapshot: MarketSnapshot) -> dict:
    fetches = snapshot.fetches
    failed = fetches[~fetches["ok"].astype(bool)] if not fetches.empty else fetches
    errors = failed["error"].value_counts().to_dict() if not failed.empty else {}
    cached = int(fetches["from_cache"].astype(bool).sum()) if not fetches.empty else 0
    return {
        "as_of": snapshot.as_of.isoformat(),
        "timeframe": snapshot.timeframe,
        "source": snapshot.source,
        "symbols": len(snapshot.symbols),
        "bars": len(snapshot.bars),
        "book_levels": len(snapshot.books),
        "symbols_with_book": len(distinct_pairs(snapshot.books)),
        "fetch_errors": dg.MetadataValue.json({str(k): int(v) for k, v in errors.items()}),
        "from_cache": cached,
        "venue_health": dg.MetadataValue.json(snapshot.health or {}),
    }


def build_market_assets(cadences: Cadences) -> list[dg.AssetsDefinition]:
    """The hot and warm snapshot assets."""
    assets = []
    for segment, job, pdef in (("hot", cadences.hot_job, cadences.hot), ("warm", cadences.warm_job, cadences.warm)):
        if job is None:
            continue
        assets.append(_snapshot_asset(cadences, segment, job, pdef))
    return assets


def _snapshot_asset(cadences: Cadences, segment: str, job: JobConfig, pdef) -> dg.AssetsDefinition:
    doc = {
        "hot": "The hot cycle's market snapshot at T: closed hourly bars of the whole ranked universe "
        "(hot + warm, for the VADR p80) and venue-native order books of the hot segment.",
        "warm": "The warm cycle's market snapshot at T: closed bars and venue-native order books of the "
        "warm segment, read through the TTL cache at the warm job's request rate.",
    }[segment]

    mapping = cadences.scan_mapping(segment)
    ins = {"universe_ranking": dg.AssetIn(key=UNIVERSE_RANKING, partition_mapping=mapping)}
    # A live (ccxt) hot cycle requests books only where the score can still reach the threshold,
    # which needs the cycle's regime (weights): the same closed window the scan reads. Offline
    # sources fetch every book (read_segment decides from the run's source). The input is there
    # whatever the source: a step process or Celery worker rebuilds the job from its own
    # environment, and a graph that followed the source would run another step there.
    if segment == "hot":
        ins["regime_weights"] = dg.AssetIn(key=REGIME_WEIGHTS, partition_mapping=mapping)

    @dg.asset(
        name=SNAPSHOT[segment],
        group_name="market",
        partitions_def=pdef,
        dagster_type=MarketSnapshotType,
        kinds={"parquet"},
        description=doc,
        ins=ins,
        metadata={"job": job.name, "stored_as": f"{{cache_dir}}/{{as_of}}/snapshots/{job.dagster_name}/"},
    )
    def _asset(context: dg.AssetExecutionContext, cryptorun_config: CryptoRunConfigResource, market_source: MarketSourceResource,
               universe_ranking: pd.DataFrame, **more):
        config = cryptorun_config.load()
        job_cfg = config.job(job.name)
        as_of = as_of_for_key(pdef, context.partition_key)
        with timed() as t, market_source.open(job_cfg) as source:
            snapshot = read_segment(source, config, job_cfg, universe_ranking, as_of, segment, regime=more.get("regime_weights"))
        for problem in source_file_problems(snapshot.fetches, job_cfg.config.venues):  # also in explain.json data_quality.files
            context.log.warning(f"{problem['venue']} {problem['symbol']} skipped: {problem['reason']}: {problem['detail']}")
        context.add_output_metadata(
            {
                **snapshot_metadata(snapshot),
                **duration_metadata(t["seconds"]),
                "universe_partition": context.asset_partition_key_for_input("universe_ranking"),
            }
        )
        return snapshot

    return _asset
