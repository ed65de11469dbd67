"""Hot and warm market snapshots (group ``market``): what each scan cycle read at its T."""


import dagster as dg
import pandas as pd

from cryptorun_core.config import AppConfig, JobConfig
from cryptorun_core.market.snapshot import MarketSnapshot, collect_snapshot
from cryptorun_core.universe import segment_symbols
from cryptorun_pipelines.assets.common import MarketSnapshotType, duration_metadata, timed
from cryptorun_pipelines.partitions import Cadences, as_of_for_key
from cryptorun_pipelines.resources import MarketSourceResource


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
        "symbols_with_book": int(snapshot.books[["venue", "symbol"]].drop_duplicates().shape[0]) if not snapshot.books.empty else 0,
        "fetch_errors": dg.MetadataValue.json({str(k): int(v) for k, v in errors.items()}),
        "from_cache": cached,
        "venue_health": dg.MetadataValue.json(snapshot.health or {}),
    }


def read_segment(
    source, config: AppConfig, job: JobConfig, ranking: pd.DataFrame, as_of, segment: str
) -> MarketSnapshot:
    """Bars (and books) of one segment at ``as_of``.

    hot: bars of the whole ranked universe (hot + warm, for the VADR p80 of SPEC §5) and books of
    the hot symbols only; warm: bars and books of the warm symbols.
    """
    hot = segment_symbols(ranking, "hot")
    warm = segment_symbols(ranking, "warm")
    if segment == "hot":
        symbols, with_books = hot + warm, set(hot)
    else:
        symbols, with_books = warm, set(warm)

    def book_filter(bars: pd.DataFrame):
        if bars.empty:
            return []
        pairs = bars[["venue", "symbol"]].drop_duplicates()
        return [(v, s) for v, s in pairs.itertuples(index=False, name=None) if s in with_books]

    return collect_snapshot(
        source,
        symbols,
        as_of,
        venues=job.config.venues,
        limit=config.market.history_bars,
        with_books=True,
        book_depth=config.market.book_depth_levels,
        book_filter=book_filter,
    )


def build_market_assets(cadences: Cadences) -> list[dg.AssetsDefinition]:
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

    @dg.asset(
        name=f"{segment}_market_snapshot",
        group_name="market",
        partitions_def=pdef,
        dagster_type=MarketSnapshotType,
        kinds={"parquet"},
        description=doc,
        ins={"universe_ranking": dg.AssetIn(partition_mapping=cadences.scan_mapping(segment))},
        metadata={"job": job.name, "stored_as": f"{{cache_dir}}/{{as_of}}/snapshots/{job.dagster_name}/"},
    )
    def _asset(context: dg.AssetExecutionContext, market_source: MarketSourceResource, universe_ranking: pd.DataFrame):
        config = market_source.app_config()
        job_cfg = config.job(job.name)
        as_of = as_of_for_key(pdef, context.partition_key)
        with timed() as t, market_source.open(job_cfg, config) as source:
            snapshot = read_segment(source, config, job_cfg, universe_ranking, as_of, segment)
        context.add_output_metadata(
            {
                **snapshot_metadata(snapshot),
                **duration_metadata(t["seconds"]),
                "universe_partition": context.asset_partition_key_for_input("universe_ranking"),
            }
        )
        return snapshot

    return _asset
