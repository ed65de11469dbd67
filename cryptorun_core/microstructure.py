"""Venue-native microstructure (SPEC §3): spread, depth, venue choice, Fresh and Depth badges.

Everything here is computed from one venue's own order book; nothing is averaged across
venues. Aggregators are refused in code: :func:`book_metrics` raises ``ValueError`` on a
books table whose ``venue`` names an aggregator (:func:`cryptorun_core.config.is_aggregator`).

This module imports only numpy, pandas, the standard library and :mod:`cryptorun_core.config`
(a static test checks it), so it cannot reach an aggregator client.

Interpretive choices (documented here, tested in ``tests/core/test_microstructure.py``):

- Only book levels stamped at or before T are used; when a (venue, symbol) has several book
  stamps the newest one at or before T is the book. Levels with ``amount == 0`` are ignored.
- A book is invalid, with the first matching reason in this order:
  ``bad_levels`` (a non-finite or non-positive price, a negative or non-finite amount, or a
  side other than bid/ask), ``empty_book`` (no level with a positive amount),
  ``one_sided_book`` (bids or asks missing), ``crossed_book`` (best bid ≥ best ask — a locked
  book has no usable spread and counts as crossed), ``absurd_spread`` (spread above
  ``gates.absurd_spread_bps``, default 2500 bps = 25%: a broken or fat-fingered book whose mid,
  and so its ±2% depth, mean nothing; the venue is then not chosen).
- Depth band: bids priced ≥ mid·(1 − b) and asks priced ≤ mid·(1 + b), b = ``gates.depth_band_pct``/100.
- Bar freshness lag = (T − close time of the newest closed bar) in hours; bars are fresh when the
  lag is ≤ ``gates.fresh_max_bar_lag``. A book is fresh when ``0 ≤ T − book_time ≤ fresh_max_book_age_s``.
- Venue of a symbol: the venue with the largest ``depth_usd`` among valid books (ties: venue order
  given, i.e. the job's/config's venue order). A symbol with no valid book on any venue falls back
  to the venue with the most closed bars in the window (ties: fresher newest bar, then venue
  order); its spread/depth are then missing and the spread/depth gates fail as ``no_book``.
- Sources n = number of venues with a valid book (at or before T) *and* fresh bars.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from cryptorun_core.config import AppConfig, is_aggregator
from cryptorun_core.timefmt import utc_timestamp

BOOK_METRIC_COLUMNS = (
    "venue", "symbol", "best_bid", "best_ask", "mid", "spread_bps", "depth_usd", "bid_depth_usd", "ask_depth_usd",
    "n_bid_levels", "n_ask_levels", "book_time", "book_age_s", "valid", "invalid_reason",
)
BAR_STATUS_COLUMNS = ("venue", "symbol", "n_bars", "last_bar_close", "bar_lag_bars", "bars_fresh")
VENUE_CHOICE_COLUMNS = (
    "symbol", "venue", "has_book", "book_invalid_reason", "best_bid", "best_ask", "mid", "spread_bps", "depth_usd",
    "bid_depth_usd", "ask_depth_usd", "book_time", "book_age_s", "n_bars", "bar_lag_bars", "bars_fresh", "book_fresh",
    "fresh_ok", "fresh", "sources", "depth_min_usd", "depth_ok", "depth_badge",
)
FRESH_BADGE = {True: "●", False: "○"}
DEPTH_BADGE = {True: "✓", False: "✗"}
INVALID_REASONS = ("bad_levels", "empty_book", "one_sided_book", "crossed_book", "absurd_spread")
_HOUR = pd.Timedelta(hours=1)
_NAT = np.iinfo(np.int64).min  # NaT as int64 ns


def utc_series(values) -> pd.Series:
    """A ``datetime64[ns, UTC]`` Series (fast path when already tz-aware)."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC")
    else:
        s = pd.to_datetime(s, utc=True)
    return s.astype("datetime64[ns, UTC]")


def utc_times(ns: np.ndarray) -> pd.DatetimeIndex:
    """``datetime64[ns, UTC]`` values of int64 ns since the epoch (int64 min → NaT)."""
    return pd.DatetimeIndex(np.asarray(ns, dtype=np.int64).view("M8[ns]")).tz_localize("UTC")


def refuse_aggregators(venues: Sequence[str], what: str = "books") -> None:
    """Raise ``ValueError`` when any venue id names an aggregator (SPEC §3: venue-native only)."""
    bad = sorted({str(v) for v in venues if is_aggregator(str(v))})
    if bad:
        raise ValueError(
            f"{what} from aggregator source(s) {bad} refused: spread, depth and order books come only from "
            "venue-native exchange adapters (SPEC §3)"
        )


_BOOK_METRIC_DTYPES = {"venue": object, "symbol": object, "invalid_reason": object, "valid": bool, "n_bid_levels": "int64",
                       "n_ask_levels": "int64", "book_time": "datetime64[ns, UTC]"}  # the other columns: float64


@functools.cache
def _empty_book_metrics() -> pd.DataFrame:
    """The empty metrics table, built once (never handed out: callers get copies)."""
    return pd.DataFrame({c: pd.Series([], dtype=_BOOK_METRIC_DTYPES.get(c, "float64")) for c in BOOK_METRIC_COLUMNS})


def empty_book_metrics() -> pd.DataFrame:
    """An empty :func:`book_metrics` table (columns :data:`BOOK_METRIC_COLUMNS` with their dtypes); a new
    frame each call, so callers may modify it."""
    return _empty_book_metrics().copy()


def _pair_codes(venue: np.ndarray, symbol: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pair, pair_venue, pair_symbol)``: per row the index of its (venue, symbol) among the distinct
    pairs, which are sorted by venue then symbol."""
    vcode, vuniq = pd.factorize(venue, sort=True)
    scode, suniq = pd.factorize(symbol, sort=True)
    key = vcode.astype(np.int64) * max(len(suniq), 1) + scode
    uniq, pair = np.unique(key, return_inverse=True)
    ns = max(len(suniq), 1)
    return (pair.astype(np.int64), np.asarray(vuniq, dtype=object)[uniq // ns],
            np.asarray(suniq, dtype=object)[uniq % ns])


def book_metrics(books: pd.DataFrame, as_of: datetime, config: AppConfig) -> pd.DataFrame:
    """Per (venue, symbol) book metrics from the long levels table, sorted by venue, symbol.

    Columns :data:`BOOK_METRIC_COLUMNS`; metrics of invalid books are NaN except the level
    counts, ``book_time`` and ``book_age_s``.
    """
    if books is None or len(books) == 0:
        return empty_book_metrics()
    refuse_aggregators(books["venue"].astype(str).unique().tolist())
    t = utc_timestamp(as_of)
    times = utc_series(books["book_time"].reset_index(drop=True)).array.asi8
    rows = np.flatnonzero((times != _NAT) & (times <= t.value))  # point in time: books taken after T do not exist yet
    if len(rows) == 0:
        return empty_book_metrics()
    pair, pair_venue, pair_symbol = _pair_codes(books["venue"].astype(str).to_numpy()[rows],
                                                books["symbol"].astype(str).to_numpy()[rows])
    side = books["side"].astype(str).to_numpy()[rows]
    return pd.DataFrame(book_metrics_arrays(
        pair_venue, pair_symbol, pair, np.where(side == "bid", 0, np.where(side == "ask", 1, 2)).astype(np.int8),
        pd.to_numeric(books["price"], errors="coerce").to_numpy(float)[rows],
        pd.to_numeric(books["amount"], errors="coerce").to_numpy(float)[rows], times[rows], t, config))


def _price_order(group: np.ndarray, price: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Row order by (group, price, amount) ascending for finite values (rows equal in all three are
    interchangeable). One argsort of the prices gives dense price ranks; one argsort of the int64 key
    (group, price rank) orders the rows; rows tied on (group, price) are then ordered by amount."""
    n = len(group)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    by_price = np.argsort(price)
    ps = price[by_price]
    rank = np.empty(n, dtype=np.int64)
    rank[by_price] = np.concatenate([[0], np.cumsum(ps[1:] != ps[:-1])])
    key = group.astype(np.int64) * (int(rank.max()) + 1) + rank
    order = np.argsort(key)
    ks = key[order]
    tied = np.zeros(n, dtype=bool)
    same = ks[1:] == ks[:-1]
    tied[1:] |= same
    tied[:-1] |= same
    if tied.any():  # the same price twice in one group: those rows by amount (a stable sort of the few)
        pos = np.flatnonzero(tied)
        block = np.cumsum(np.concatenate([[True], ~same]))[pos]
        order[pos] = order[pos[np.lexsort((amount[order[pos]], block))]]
    return order


def book_metrics_arrays(
    pair_venue: np.ndarray, pair_symbol: np.ndarray, pair: np.ndarray, side: np.ndarray, price: np.ndarray,
    amount: np.ndarray, book_time: np.ndarray, as_of: pd.Timestamp, config: AppConfig,
) -> dict[str, np.ndarray]:
    """:func:`book_metrics` (as columns) of levels given as arrays: per level its pair (index into ``pair_venue`` /
    ``pair_symbol``, sorted by venue then symbol, every pair with a level), side (0 bid, 1 ask, 2 other),
    price, amount and ``book_time`` (int64 ns UTC, all at or before T)."""
    n = len(pair_venue)
    if n == 0:
        empty = empty_book_metrics()
        return {c: empty[c] for c in BOOK_METRIC_COLUMNS}
    t = utc_timestamp(as_of)
    band = config.gates.depth_band_pct / 100.0
    # the book of a pair is its newest stamp at or before T
    newest = np.full(n, _NAT, dtype=np.int64)
    np.maximum.at(newest, pair, book_time)
    keep = book_time == newest[pair]
    pair, side, price, amount = pair[keep], side[keep], price[keep], amount[keep]

    is_bid = side == 0
    is_ask = side == 1
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(price) | (price <= 0) | ~np.isfinite(amount) | (amount < 0) | ~(is_bid | is_ask)
        live = ~bad & (amount > 0)
    live_bid = live & is_bid
    live_ask = live & is_ask

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(pair[mask], minlength=n).astype(np.int64)

    n_bad, n_bid, n_ask = count(bad), count(live_bid), count(live_ask)
    best_bid = np.full(n, -np.inf)
    np.maximum.at(best_bid, pair[live_bid], price[live_bid])
    best_ask = np.full(n, np.inf)
    np.minimum.at(best_ask, pair[live_ask], price[live_ask])
    best_bid[n_bid == 0] = np.nan
    best_ask[n_ask == 0] = np.nan

    reason = np.full(n, None, dtype=object)
    two_sided = (n_bid > 0) & (n_ask > 0) & (best_bid < best_ask)
    with np.errstate(invalid="ignore", divide="ignore"):
        raw_spread = np.where(two_sided, (best_ask - best_bid) / ((best_ask + best_bid) / 2.0) * 1e4, np.nan)
        reason[two_sided & (raw_spread > config.gates.absurd_spread_bps)] = "absurd_spread"
    crossed = (n_bid > 0) & (n_ask > 0) & ~(best_bid < best_ask)
    reason[crossed] = "crossed_book"
    reason[(n_bid == 0) ^ (n_ask == 0)] = "one_sided_book"
    reason[(n_bid == 0) & (n_ask == 0)] = "empty_book"
    reason[n_bad > 0] = "bad_levels"
    valid = np.array([r is None for r in reason], dtype=bool)

    with np.errstate(invalid="ignore", divide="ignore"):
        mid = np.where(valid, (best_bid + best_ask) / 2.0, np.nan)
        spread_bps = np.where(valid, (best_ask - best_bid) / mid * 1e4, np.nan)
        lvl_mid = mid[pair]
        in_bid = live_bid & (price >= lvl_mid * (1.0 - band))
        in_ask = live_ask & (price <= lvl_mid * (1.0 + band))

    def depth(mask: np.ndarray) -> np.ndarray:
        # Σ price·amount per pair in ascending (price, amount) order: the same float sum whatever the row order
        rows = np.flatnonzero(mask)
        rows = rows[_price_order(pair[rows], price[rows], amount[rows])]
        total = np.bincount(pair[rows], weights=price[rows] * amount[rows], minlength=n)
        return np.where(valid, total, np.nan)

    bid_depth, ask_depth = depth(in_bid), depth(in_ask)
    book_time_s = utc_times(newest)
    return {
        "venue": pair_venue, "symbol": pair_symbol,
        "best_bid": np.where(valid, best_bid, np.nan), "best_ask": np.where(valid, best_ask, np.nan),
        "mid": mid, "spread_bps": spread_bps, "depth_usd": bid_depth + ask_depth,
        "bid_depth_usd": bid_depth, "ask_depth_usd": ask_depth, "n_bid_levels": n_bid, "n_ask_levels": n_ask,
        "book_time": book_time_s, "book_age_s": (t.value - newest) / 1e9, "valid": valid, "invalid_reason": reason,
    }


def bar_status(bars: pd.DataFrame, as_of: datetime, config: AppConfig, window_bars: int | None = None) -> pd.DataFrame:
    """Per (venue, symbol): closed bars in the window, close time of the newest one, lag in bars, fresh flag.

    Only hourly bars closed at or before T count; ``window_bars`` (default
    ``market.history_bars``) limits the count to bars opened within the last that many hours.
    Distinct open times are counted (copies of one bar count once).
    """
    window = int(window_bars or config.market.history_bars)
    if bars is None or len(bars) == 0:
        return pd.DataFrame(bar_status_arrays(np.zeros(0, dtype=object), np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64),
                                              np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), as_of, config, window))
    ts = utc_series(bars["timestamp"].reset_index(drop=True)).array.asi8
    known = np.flatnonzero(ts != _NAT)
    pair, pair_venue, pair_symbol = _pair_codes(bars["venue"].astype(str).to_numpy()[known],
                                                bars["symbol"].astype(str).to_numpy()[known])
    order = np.lexsort((ts[known], pair))
    p, tso = pair[order], ts[known][order]
    distinct = np.ones(len(p), dtype=bool)  # one row per (pair, open time)
    distinct[1:] = (p[1:] != p[:-1]) | (tso[1:] != tso[:-1])
    p, tso = p[distinct], tso[distinct]
    start = np.searchsorted(p, np.arange(len(pair_venue)), side="left")
    stop = np.searchsorted(p, np.arange(len(pair_venue)), side="right")
    return pd.DataFrame(bar_status_arrays(pair_venue, pair_symbol, tso, start, stop, as_of, config, window))


def bar_status_arrays(venue: np.ndarray, symbol: np.ndarray, ts: np.ndarray, start: np.ndarray, stop: np.ndarray,
                      as_of: datetime, config: AppConfig, window: int) -> dict[str, np.ndarray]:
    """:func:`bar_status` (as columns) of pairs whose bars are ``ts[start[i]:stop[i]]`` (int64 ns open times, strictly
    increasing within a pair): one row per pair with at least one closed bar in the window, in the
    order given."""
    t = utc_timestamp(as_of).value
    hour = _HOUR.value
    start, stop = np.asarray(start, dtype=np.int64), np.asarray(stop, dtype=np.int64)
    # closed bars are a prefix of each pair's rows, bars in the window a suffix of that prefix
    end = _first_at_least(ts, start, stop, t - hour + 1)
    n_bars = end - _first_at_least(ts, start, end, t - window * hour)
    has = np.flatnonzero(n_bars > 0)
    last_close = ts[end[has] - 1] + hour
    lag = (t - last_close) / 1e9 / 3600.0
    return {
        "venue": np.asarray(venue, dtype=object)[has], "symbol": np.asarray(symbol, dtype=object)[has],
        "n_bars": n_bars[has].astype(np.int64),
        "last_bar_close": utc_times(last_close),
        "bar_lag_bars": lag, "bars_fresh": lag <= config.gates.fresh_max_bar_lag,
    }


def _first_at_least(ts: np.ndarray, start: np.ndarray, stop: np.ndarray, value: int) -> np.ndarray:
    """Per range ``start[i]:stop[i]`` of the non-decreasing ``ts``, the first row with ``ts ≥ value``
    (``stop[i]`` when none): a bisection of all ranges at once."""
    lo, hi = start.copy(), stop.copy()
    active = np.flatnonzero(lo < hi)
    while len(active):
        mid = (lo[active] + hi[active]) // 2
        up = ts[mid] >= value
        hi[active[up]] = mid[up]
        lo[active[~up]] = mid[~up] + 1
        active = active[lo[active] < hi[active]]
    return lo


def _first_by(keys: list[np.ndarray], candidate: np.ndarray) -> np.ndarray:
    """Per row of the (symbols × venues) ``candidate`` mask, the column of the first candidate in the
    order of ``keys`` (each symbols × venues, ascending, earlier keys first; ties: lower column); −1 when none."""
    n, m = candidate.shape
    best = np.full(n, -1, dtype=np.int64)
    for j in range(m):
        take = candidate[:, j] & (best < 0)
        better = np.zeros(n, dtype=bool)
        rows = np.flatnonzero(candidate[:, j] & (best >= 0))
        if len(rows):
            b = best[rows]
            decided = np.zeros(len(rows), dtype=bool)
            for key in keys:
                cur, old = key[rows, j], key[rows, b]
                better[rows] |= ~decided & (cur < old)
                decided |= cur != old
        best[take | better] = j
    return best


def choose_venue(
    metrics: pd.DataFrame,
    bars_status: pd.DataFrame,
    symbols: Sequence[str],
    venues: Sequence[str],
    config: AppConfig,
    tiers: Mapping[str, str | None] | None = None,
) -> pd.DataFrame:
    """One row per symbol (in the order given): chosen venue, its book numbers, sources n and badges.

    ``metrics`` is :func:`book_metrics` output, ``bars_status`` is :func:`bar_status` output,
    ``venues`` the venues to consider in tie-break order, ``tiers`` symbol → tier name (for Depth ✓).
    """
    return pd.DataFrame(choose_venue_arrays(metrics, bars_status, symbols, venues, config, tiers), columns=list(VENUE_CHOICE_COLUMNS))


def _column(table, name: str) -> np.ndarray:
    return table[name].to_numpy() if isinstance(table, pd.DataFrame) else np.asarray(table[name])


def choose_venue_arrays(
    metrics: Mapping[str, np.ndarray] | pd.DataFrame,
    bars_status: Mapping[str, np.ndarray] | pd.DataFrame,
    symbols: Sequence[str],
    venues: Sequence[str],
    config: AppConfig,
    tiers: Mapping[str, str | None] | None = None,
) -> dict[str, np.ndarray]:
    """:func:`choose_venue` as columns, from metrics and bar status given as frames or columns
    (name → array). Computed on (symbols × venues) matrices: each metrics / status row is placed in its cell."""
    refuse_aggregators(list(venues), what="venues")
    symbols = list(dict.fromkeys(symbols))
    venues = list(venues)
    n, m = len(symbols), len(venues)
    sym_index, ven_index = pd.Index(symbols), pd.Index(venues)

    def cells(frame) -> tuple[np.ndarray, np.ndarray]:
        if frame is None or len(frame) == 0 or len(_column(frame, "symbol")) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        i = sym_index.get_indexer(_column(frame, "symbol"))
        j = ven_index.get_indexer(_column(frame, "venue"))
        ok = (i >= 0) & (j >= 0)
        return np.flatnonzero(ok), i[ok] * m + j[ok]

    book_cols = ("best_bid", "best_ask", "mid", "spread_bps", "depth_usd", "bid_depth_usd", "ask_depth_usd", "book_age_s")
    num = {c: np.full(n * m, np.nan) for c in book_cols}
    valid = np.zeros(n * m, dtype=bool)
    has_rows = np.zeros(n * m, dtype=bool)
    reason = np.full(n * m, None, dtype=object)
    book_time = np.full(n * m, _NAT, dtype=np.int64)
    src, cell = cells(metrics)
    if len(src):
        for c in book_cols:
            num[c][cell] = _column(metrics, c).astype(float)[src]
        valid[cell] = _column(metrics, "valid").astype(bool)[src]
        reason[cell] = _column(metrics, "invalid_reason").astype(object)[src]
        has_rows[cell] = pd.notna(reason[cell]) | valid[cell]
        book_time[cell] = utc_series(pd.Series(metrics["book_time"])).array.asi8[src]
    n_bars = np.zeros(n * m, dtype=np.int64)
    lag = np.full(n * m, np.nan)
    fresh_bars = np.zeros(n * m, dtype=bool)
    src, cell = cells(bars_status)
    if len(src):
        n_bars[cell] = pd.Series(_column(bars_status, "n_bars")).fillna(0).to_numpy(np.int64)[src]
        lag[cell] = _column(bars_status, "bar_lag_bars").astype(float)[src]
        fresh_bars[cell] = pd.Series(_column(bars_status, "bars_fresh")).astype("boolean").fillna(False).to_numpy(bool)[src]
    shape = (n, m)
    valid_m, depth_m = valid.reshape(shape), num["depth_usd"].reshape(shape)
    sources = (valid & fresh_bars).reshape(shape).sum(axis=1).astype(np.int64)

    # venue with a valid book: largest depth (NaN last), ties by venue order
    neg_depth = np.where(np.isnan(depth_m), np.inf, -depth_m)
    best_book = _first_by([np.isnan(depth_m).astype(np.int8), neg_depth], valid_m)
    # fallback without a valid book: most bars, then fresher, then venue order
    fb = _first_by([-n_bars.reshape(shape), np.where(np.isnan(lag), np.inf, lag).reshape(shape)], np.ones(shape, dtype=bool))
    # invalid reason to report for book-less symbols: first invalid book in venue order
    inval = (has_rows & ~valid).reshape(shape)
    first_invalid = np.where(inval.any(axis=1), inval.argmax(axis=1), -1) if m else np.full(n, -1)

    has_book = best_book >= 0
    col = np.where(has_book, best_book, fb)
    if m == 0:  # no venue: nothing to choose
        col = np.zeros(n, dtype=np.int64)
        num = {c: np.full(n, np.nan) for c in book_cols}
        n_bars, lag, fresh_bars, book_time, venue_arr = (np.zeros(n, dtype=np.int64), np.full(n, np.nan),
                                                         np.zeros(n, dtype=bool), np.full(n, _NAT), np.full(1, None))
        cell = np.arange(n)
    else:
        cell = np.arange(n) * m + col
        venue_arr = np.asarray(venues, dtype=object)
    nb = n_bars[cell]
    has_bars = nb > 0
    chosen = np.where(has_book | has_bars, venue_arr[col], None).astype(object)
    inv = reason[np.arange(n) * m + np.maximum(first_invalid, 0)] if m else np.full(n, None)
    invalid_reason = np.array([None if hb else ((r if fi >= 0 else None) or "no_book")
                               for hb, r, fi in zip(has_book, inv, first_invalid)], dtype=object)
    book = {c: np.where(has_book, num[c][cell], np.nan) for c in book_cols}
    bars_fresh = fresh_bars[cell]
    with np.errstate(invalid="ignore"):
        book_fresh = has_book & (book["book_age_s"] >= 0) & (book["book_age_s"] <= config.gates.fresh_max_book_age_s)
    fresh_ok = bars_fresh & book_fresh
    tier_depth = {t.name: t.depth_min_usd for t in config.universe.tiers}
    tiers = tiers or {}
    depth_min = np.array([float(tier_depth[tiers[s]]) if tiers.get(s) in tier_depth else np.nan for s in symbols], dtype=float)
    with np.errstate(invalid="ignore"):
        depth_ok = book["depth_usd"] >= depth_min
    return {
        "symbol": np.asarray(symbols, dtype=object), "venue": chosen, "has_book": has_book,
        "book_invalid_reason": invalid_reason, **{c: book[c] for c in book_cols[:7]},
        "book_time": utc_times(np.where(has_book, book_time[cell], _NAT)), "book_age_s": book["book_age_s"],
        "n_bars": nb.astype(np.int64), "bar_lag_bars": np.where(has_bars, lag[cell], np.nan), "bars_fresh": bars_fresh,
        "book_fresh": book_fresh, "fresh_ok": fresh_ok,
        "fresh": np.where(fresh_ok, FRESH_BADGE[True], FRESH_BADGE[False]).astype(object), "sources": sources,
        "depth_min_usd": depth_min, "depth_ok": depth_ok,
        "depth_badge": np.where(depth_ok, DEPTH_BADGE[True], DEPTH_BADGE[False]).astype(object),
    }
