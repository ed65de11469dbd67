"""Reading one scan segment at T (SPEC §3): bars of the segment and books of the symbols that can still
matter. With a live source each book costs a rate-limited request, so books of symbols whose best
attainable score (quality = 100) misses the job's ``score_min`` are not requested; each skipped
(venue, symbol) stays in the fetch log as a failed ``book`` fetch with error ``score_unreachable``.
"""

from __future__ import annotations

import warnings

import pandas as pd

from cryptorun_core.config import AppConfig, JobConfig
from cryptorun_core.engine import score_upper_bound
from cryptorun_core.market.snapshot import (
    MARKET_COLUMNS, SNAPSHOT_BOOK_COLUMNS, SNAPSHOT_FETCH_COLUMNS, MarketSnapshot, collect_snapshot,
)
from cryptorun_core.rows import runs
from cryptorun_core.universe import segment_symbols


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
    books for free, so their snapshots (and artifacts) keep every book (``MarketSource.costly_books``)."""
    return bool(getattr(source, "costly_books", False))


SKIPPED_BOOK_ERROR = "score_unreachable"


def score_bounds(bars: pd.DataFrame, source, config: AppConfig, job: JobConfig, ranking: pd.DataFrame, as_of, regime) -> pd.Series:
    """Best attainable score per hot symbol from the bars alone (quality = 100; :func:`score_upper_bound`)."""
    snap = MarketSnapshot(
        as_of=as_of, timeframe=source.native_timeframe, source=source.name, bars=bars,
        books=pd.DataFrame(columns=list(SNAPSHOT_BOOK_COLUMNS)), fetches=pd.DataFrame(columns=list(SNAPSHOT_FETCH_COLUMNS)),
        markets=pd.DataFrame(columns=list(MARKET_COLUMNS)),
    )
    return score_upper_bound(snap, ranking, regime, config, job)


def skipped_rows(skipped: dict[tuple[str, str], float], score_min: float, as_of) -> pd.DataFrame:
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
    (:func:`cryptorun_core.engine.score_upper_bound`: quality = 100) reaches the job's
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
        bound = score_bounds(bars, source, config, job, ranking, as_of, regime)
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
            snapshot.fetches = pd.concat([snapshot.fetches, skipped_rows(skipped, score_min, as_of)], ignore_index=True)
    return snapshot
