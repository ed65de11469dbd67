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

from datetime import datetime
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from cryptorun_core.config import AppConfig, is_aggregator

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


def _utc(ts: datetime | pd.Timestamp | str) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def utc_series(values) -> pd.Series:
    """A ``datetime64[ns, UTC]`` Series (fast path when already tz-aware)."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC")
    else:
        s = pd.to_datetime(s, utc=True)
    return s.astype("datetime64[ns, UTC]")


def refuse_aggregators(venues: Sequence[str], what: str = "books") -> None:
    """Raise ``ValueError`` when any venue id names an aggregator (SPEC §3: venue-native only)."""
    bad = sorted({str(v) for v in venues if is_aggregator(str(v))})
    if bad:
        raise ValueError(
            f"{what} from aggregator source(s) {bad} refused: spread, depth and order books come only from "
            "venue-native exchange adapters (SPEC §3)"
        )


def empty_book_metrics() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series([], dtype="float64") for c in BOOK_METRIC_COLUMNS})
    return frame.astype(
        {"venue": object, "symbol": object, "invalid_reason": object, "valid": bool, "n_bid_levels": "int64",
         "n_ask_levels": "int64", "book_time": "datetime64[ns, UTC]"}
    )


def book_metrics(books: pd.DataFrame, as_of: datetime, config: AppConfig) -> pd.DataFrame:
    """Per (venue, symbol) book metrics from the long levels table, sorted by venue, symbol.

    Columns :data:`BOOK_METRIC_COLUMNS`; metrics of invalid books are NaN except the level
    counts, ``book_time`` and ``book_age_s``.
    """
    if books is None or len(books) == 0:
        return empty_book_metrics()
    refuse_aggregators(books["venue"].astype(str).unique().tolist())
    t = _utc(as_of)
    band = config.gates.depth_band_pct / 100.0
    b = pd.DataFrame(
        {
            "venue": books["venue"].astype(str).to_numpy(),
            "symbol": books["symbol"].astype(str).to_numpy(),
            "side": books["side"].astype(str).to_numpy(),
            "price": pd.to_numeric(books["price"], errors="coerce").to_numpy(float),
            "amount": pd.to_numeric(books["amount"], errors="coerce").to_numpy(float),
        }
    )
    b["book_time"] = utc_series(books["book_time"].reset_index(drop=True)).array
    b = b[b["book_time"] <= t]  # point in time: books taken after T do not exist yet
    if b.empty:
        return empty_book_metrics()
    newest = b.groupby(["venue", "symbol"], sort=False)["book_time"].transform("max")
    b = b[b["book_time"] == newest]
    # canonical order: every sum below is then independent of the input row order
    b = b.sort_values(["venue", "symbol", "side", "price", "amount"], kind="mergesort").reset_index(drop=True)

    keys = b[["venue", "symbol"]].drop_duplicates().reset_index(drop=True)
    code = b.groupby(["venue", "symbol"], sort=True).ngroup().to_numpy()
    n = len(keys)
    price = b["price"].to_numpy(float)
    amount = b["amount"].to_numpy(float)
    side = b["side"].to_numpy()
    is_bid = side == "bid"
    is_ask = side == "ask"
    bad = ~np.isfinite(price) | (price <= 0) | ~np.isfinite(amount) | (amount < 0) | ~(is_bid | is_ask)
    live = ~bad & (amount > 0)
    live_bid = live & is_bid
    live_ask = live & is_ask

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(code[mask], minlength=n).astype(np.int64)

    n_bad, n_bid, n_ask = count(bad), count(live_bid), count(live_ask)
    best_bid = np.full(n, -np.inf)
    np.maximum.at(best_bid, code[live_bid], price[live_bid])
    best_ask = np.full(n, np.inf)
    np.minimum.at(best_ask, code[live_ask], price[live_ask])
    best_bid[n_bid == 0] = np.nan
    best_ask[n_ask == 0] = np.nan
    book_time = b.groupby(code, sort=True)["book_time"].max().to_numpy()

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

    mid = np.where(valid, (best_bid + best_ask) / 2.0, np.nan)
    spread_bps = np.where(valid, (best_ask - best_bid) / mid * 1e4, np.nan)
    lvl_mid = mid[code]
    notional = price * amount
    in_bid = live_bid & (price >= lvl_mid * (1.0 - band))
    in_ask = live_ask & (price <= lvl_mid * (1.0 + band))
    bid_depth = np.bincount(code[in_bid], weights=notional[in_bid], minlength=n)
    ask_depth = np.bincount(code[in_ask], weights=notional[in_ask], minlength=n)
    bid_depth = np.where(valid, bid_depth, np.nan)
    ask_depth = np.where(valid, ask_depth, np.nan)

    out = keys.assign(
        best_bid=np.where(valid, best_bid, np.nan),
        best_ask=np.where(valid, best_ask, np.nan),
        mid=mid,
        spread_bps=spread_bps,
        depth_usd=bid_depth + ask_depth,
        bid_depth_usd=bid_depth,
        ask_depth_usd=ask_depth,
        n_bid_levels=n_bid,
        n_ask_levels=n_ask,
        book_time=pd.to_datetime(book_time, utc=True).astype("datetime64[ns, UTC]"),
    )
    out["book_age_s"] = (t - out["book_time"]).dt.total_seconds().astype(float)
    out["valid"] = valid
    out["invalid_reason"] = reason
    return out[list(BOOK_METRIC_COLUMNS)]


def bar_status(bars: pd.DataFrame, as_of: datetime, config: AppConfig, window_bars: int | None = None) -> pd.DataFrame:
    """Per (venue, symbol): closed bars in the window, close time of the newest one, lag in bars, fresh flag.

    Only hourly bars closed at or before T count; ``window_bars`` (default
    ``market.history_bars``) limits the count to bars opened within the last that many hours.
    """
    t = _utc(as_of)
    window = int(window_bars or config.market.history_bars)
    if bars is None or len(bars) == 0:
        frame = pd.DataFrame({c: pd.Series([], dtype="float64") for c in BAR_STATUS_COLUMNS})
        return frame.astype({"venue": object, "symbol": object, "n_bars": "int64", "last_bar_close": "datetime64[ns, UTC]",
                             "bars_fresh": bool})
    ts = utc_series(bars["timestamp"].reset_index(drop=True))
    keep = ((ts + _HOUR <= t) & (ts >= t - window * _HOUR)).to_numpy()
    sel = pd.DataFrame({"venue": bars["venue"].astype(str).to_numpy()[keep],
                        "symbol": bars["symbol"].astype(str).to_numpy()[keep],
                        "timestamp": ts[keep].reset_index(drop=True)})
    grp = sel.groupby(["venue", "symbol"], sort=True)["timestamp"]
    out = pd.DataFrame({"n_bars": grp.nunique(), "last_open": grp.max()}).reset_index()
    out["n_bars"] = out["n_bars"].astype("int64")
    out["last_bar_close"] = out["last_open"] + _HOUR
    out["bar_lag_bars"] = (t - out["last_bar_close"]).dt.total_seconds() / 3600.0
    out["bars_fresh"] = out["bar_lag_bars"] <= config.gates.fresh_max_bar_lag
    return out[list(BAR_STATUS_COLUMNS)]


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
    refuse_aggregators(list(venues), what="venues")
    venue_rank = {v: i for i, v in enumerate(venues)}
    symbols = list(dict.fromkeys(symbols))
    grid = pd.MultiIndex.from_product([symbols, list(venues)], names=["symbol", "venue"]).to_frame(index=False)
    grid["vorder"] = grid["venue"].map(venue_rank).astype("int64")
    m = metrics[metrics["venue"].isin(venue_rank)] if len(metrics) else metrics
    grid = grid.merge(m, on=["symbol", "venue"], how="left")
    bs = bars_status[bars_status["venue"].isin(venue_rank)] if len(bars_status) else bars_status
    grid = grid.merge(bs, on=["symbol", "venue"], how="left")
    grid["valid"] = grid["valid"].astype("boolean").fillna(False).astype(bool)
    grid["bars_fresh"] = grid["bars_fresh"].astype("boolean").fillna(False).astype(bool)
    grid["n_bars"] = grid["n_bars"].fillna(0).astype("int64")
    grid["has_rows"] = grid["invalid_reason"].notna() | grid["valid"]

    grid["source_ok"] = grid["valid"] & grid["bars_fresh"]
    sources = grid.groupby("symbol", sort=False)["source_ok"].sum()

    # venue with a valid book: largest depth, ties by venue order
    with_book = grid[grid["valid"]].sort_values(["symbol", "depth_usd", "vorder"], ascending=[True, False, True], kind="mergesort")
    best_book = with_book.drop_duplicates("symbol", keep="first").set_index("symbol")
    # fallback without a valid book: most bars, then fresher, then venue order
    fb = grid.assign(_lag=grid["bar_lag_bars"].fillna(np.inf)).sort_values(
        ["symbol", "n_bars", "_lag", "vorder"], ascending=[True, False, True, True], kind="mergesort"
    )
    fallback = fb.drop_duplicates("symbol", keep="first").set_index("symbol")
    # invalid reason to report for book-less symbols: first invalid book in venue order
    invalid = grid[grid["has_rows"] & ~grid["valid"]].sort_values(["symbol", "vorder"], kind="mergesort")
    invalid_reason = invalid.drop_duplicates("symbol").set_index("symbol")["invalid_reason"]

    rows = []
    for sym in symbols:  # one row per symbol: a loop over symbols, not over levels or bars
        has_book = sym in best_book.index
        r = best_book.loc[sym] if has_book else fallback.loc[sym]
        has_bars = int(r["n_bars"]) > 0
        venue = r["venue"] if (has_book or has_bars) else None
        rows.append(
            {
                "symbol": sym,
                "venue": venue,
                "has_book": has_book,
                "book_invalid_reason": None if has_book else (invalid_reason.get(sym) or "no_book"),
                **{c: (float(r[c]) if has_book else np.nan) for c in (
                    "best_bid", "best_ask", "mid", "spread_bps", "depth_usd", "bid_depth_usd", "ask_depth_usd", "book_age_s")},
                "book_time": r["book_time"] if has_book else pd.NaT,
                "n_bars": int(r["n_bars"]),
                "bar_lag_bars": float(r["bar_lag_bars"]) if has_bars else np.nan,
                "bars_fresh": bool(r["bars_fresh"]),
                "sources": int(sources.get(sym, 0)),
            }
        )
    out = pd.DataFrame(rows, columns=[c for c in VENUE_CHOICE_COLUMNS if c not in (
        "book_fresh", "fresh_ok", "fresh", "depth_min_usd", "depth_ok", "depth_badge")])
    out["book_time"] = pd.to_datetime(out["book_time"], utc=True)
    age = out["book_age_s"].to_numpy(float)
    out["book_fresh"] = out["has_book"].to_numpy(bool) & (age >= 0) & (age <= config.gates.fresh_max_book_age_s)
    out["fresh_ok"] = out["bars_fresh"].to_numpy(bool) & out["book_fresh"].to_numpy(bool)
    out["fresh"] = out["fresh_ok"].map(FRESH_BADGE)
    tier_depth = {t.name: t.depth_min_usd for t in config.universe.tiers}
    tiers = tiers or {}
    out["depth_min_usd"] = [float(tier_depth[tiers[s]]) if tiers.get(s) in tier_depth else np.nan for s in out["symbol"]]
    out["depth_ok"] = (out["depth_usd"].to_numpy(float) >= out["depth_min_usd"].to_numpy(float))
    out["depth_badge"] = out["depth_ok"].map(DEPTH_BADGE)
    return out[list(VENUE_CHOICE_COLUMNS)].reset_index(drop=True)
