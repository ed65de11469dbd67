"""Hot and warm market snapshots (group ``market``): what each scan cycle read at its T."""


import warnings

import dagster as dg
import pandas as pd

from cryptorun_core.config import AppConfig, JobConfig
from cryptorun_core.market.snapshot import MarketSnapshot, collect_snapshot
from cryptorun_core.rows import runs
from cryptorun_core.universe import segment_symbols
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


def distinct_pairs(frame: pd.DataFrame) -> list[tuple]:
    """The distinct (venue, symbol) of a long table in order of first appearance (as
    ``frame[["venue", "symbol"]].drop_duplicates()``). The first row of a pair always starts a run of
    equal consecutive pairs, so only the run starts are deduplicated (tables come grouped by pair)."""
    if frame.empty:
        return []
    venue, symbol = frame["venue"].to_numpy(), frame["symbol"].to_numpy()
    starts = runs(venue, symbol)
    heads = pd.DataFrame({"venue": venue[starts], "symbol": symbol[starts]}).drop_duplicates()
    return list(heads.itertuples(index=False, name=None))


def books_cost_requests(source) -> bool:
    """True when each order book is a rate-limited venue request (live ccxt): only then are books of
    symbols that cannot reach the score threshold skipped. Offline sources (simulated, replay) serve
    books for free, so their snapshots (and artifacts) keep every book. A source may say so itself
    with a ``costly_books`` attribute."""
    flag = getattr(source, "costly_books", None)
    return bool(flag) if flag is not None else getattr(source, "name", "") == "ccxt"


SKIPPED_BOOK_ERROR = "score_unreachable"


def _score_bounds(bars: pd.DataFrame, source, config: AppConfig, job: JobConfig, ranking: pd.DataFrame, as_of, regime) -> pd.Series:
    """Best attainable score per hot symbol from the bars alone (quality = 100; engine.bar_factor_upper_bound)."""
    from cryptorun_core.engine import bar_factor_upper_bound
    from cryptorun_core.market.snapshot import MARKET_COLUMNS, SNAPSHOT_BOOK_COLUMNS, SNAPSHOT_FETCH_COLUMNS

    snap = MarketSnapshot(
        as_of=as_of, timeframe=source.native_timeframe, source=source.name, bars=bars,
        books=pd.DataFrame(columns=list(SNAPSHOT_BOOK_COLUMNS)), fetches=pd.DataFrame(columns=list(SNAPSHOT_FETCH_COLUMNS)),
        markets=pd.DataFrame(columns=list(MARKET_COLUMNS)),
    )
    return bar_factor_upper_bound(snap, ranking, regime, config, job)


def _skipped_rows(skipped: dict[tuple[str, str], float], score_min: float, as_of) -> pd.DataFrame:
    rows = [
        {"venue": v, "symbol": s, "kind": "book", "ok": False, "error": SKIPPED_BOOK_ERROR,
         "detail": (f"book not requested: best attainable score {b:.1f} < score_min {score_min:g} (quality 100)"
                    if b == b else f"book not requested: no score can be computed from the bars (score_min {score_min:g})"),
         "from_cache": False, "ttl_remaining_s": None, "stamped_at": pd.NaT, "latency_ms": 0.0, "requests": 0}
        for (v, s), b in sorted(skipped.items())
    ]
    frame = pd.DataFrame(rows)
    frame["stamped_at"] = pd.to_datetime(frame["stamped_at"], utc=True)
    return frame.astype({"ok": bool, "from_cache": bool, "latency_ms": float, "requests": "int64"})


def read_segment(
    source, config: AppConfig, job: JobConfig, ranking: pd.DataFrame, as_of, segment: str, regime=None
) -> MarketSnapshot:
    """Bars (and books) of one segment at ``as_of``.

    hot: bars of the whole ranked universe (hot + warm, for the VADR p80 of SPEC §5) and books of
    the hot symbols only; warm: bars and books of the warm symbols.

    With ``regime`` (the cycle's regime.json) and a source whose books cost requests
    (:func:`books_cost_requests`), books are requested only for symbols whose best attainable score
    (:func:`cryptorun_core.engine.bar_factor_upper_bound`: quality = 100) reaches the job's
    ``score_min``; the others are rejected by the score gate whatever their book, and the fetch log
    records each skipped (venue, symbol) as a failed ``book`` fetch with error ``score_unreachable``.
    """
    hot = segment_symbols(ranking, "hot")
    warm = segment_symbols(ranking, "warm")
    if segment == "hot":
        symbols, with_books = hot + warm, set(hot)
    else:
        symbols, with_books = warm, set(warm)
    prune = regime is not None and books_cost_requests(source)
    score_min = float(job.config.score_min)
    skipped: dict[tuple[str, str], float] = {}

    def book_filter(bars: pd.DataFrame):
        if bars.empty:
            return []
        wanted = [(v, s) for v, s in distinct_pairs(bars) if s in with_books]
        if not prune or not wanted:
            return wanted
        bound = _score_bounds(bars, source, config, job, ranking, as_of, regime)
        reach = {s for s, b in bound.items() if b >= score_min}
        skipped.update({(v, s): float(bound.get(s, float("nan"))) for v, s in wanted if s not in reach})
        return [(v, s) for v, s in wanted if s in reach]

    snapshot = collect_snapshot(
        source,
        symbols,
        as_of,
        venues=job.config.venues,
        limit=config.market.history_bars,
        with_books=True,
        book_depth=config.market.book_depth_levels,
        book_filter=book_filter,
    )
    if skipped:
        with warnings.catch_warnings():  # all-NA columns (ttl, stamped_at) of the new rows: dtypes checked in tests
            warnings.simplefilter("ignore", FutureWarning)
            snapshot.fetches = pd.concat([snapshot.fetches, _skipped_rows(skipped, score_min, as_of)], ignore_index=True)
    return snapshot


def build_market_assets(cadences: Cadences, source: str | None = None) -> list[dg.AssetsDefinition]:
    """The hot and warm snapshot assets; ``source`` is the configured ``market.source`` (with
    ``ccxt`` the hot snapshot also reads the cycle's regime, to skip books that cannot matter)."""
    assets = []
    for segment, job, pdef in (("hot", cadences.hot_job, cadences.hot), ("warm", cadences.warm_job, cadences.warm)):
        if job is None:
            continue
        assets.append(_snapshot_asset(cadences, segment, job, pdef, source))
    return assets


def _snapshot_asset(cadences: Cadences, segment: str, job: JobConfig, pdef, source: str | None = None) -> dg.AssetsDefinition:
    doc = {
        "hot": "The hot cycle's market snapshot at T: closed hourly bars of the whole ranked universe "
        "(hot + warm, for the VADR p80) and venue-native order books of the hot segment.",
        "warm": "The warm cycle's market snapshot at T: closed bars and venue-native order books of the "
        "warm segment, read through the TTL cache at the warm job's request rate.",
    }[segment]

    mapping = cadences.scan_mapping(segment)
    ins = {"universe_ranking": dg.AssetIn(partition_mapping=mapping)}
    # A live (ccxt) hot cycle requests books only where the score can still reach the threshold,
    # which needs the cycle's regime (weights): the same closed window the scan reads. Offline
    # sources fetch every book and do not read the regime here, so the input exists only for ccxt.
    prune_books = segment == "hot" and source in ("ccxt", "recording")  # a recording replays the live reads
    if prune_books:
        ins["regime_weights"] = dg.AssetIn(partition_mapping=mapping)

    @dg.asset(
        name=f"{segment}_market_snapshot",
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
        context.add_output_metadata(
            {
                **snapshot_metadata(snapshot),
                **duration_metadata(t["seconds"]),
                "universe_partition": context.asset_partition_key_for_input("universe_ranking"),
            }
        )
        return snapshot

    return _asset
