"""ccxt answers → CryptoRun values: bar frames, book sides, tickers, canonical markets, bar-window times.

Bars are only shaped here (numbers, UTC open times); judging them is :mod:`cryptorun_core.quality`'s
job, which drops just the bad bar with a reason code. Books and tickers are validated here: one
bad level or price makes that answer a ``bad_response``.
"""

from __future__ import annotations

import functools
import math
from datetime import datetime
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from cryptorun_core.market.base import BAR_COLUMNS, TIMEFRAME_DELTA, UTC, MarketInfo, Ticker, Timeframe, empty_bars, to_utc
from cryptorun_core.market.ccxt_live.errors import FetchFailure


def floor_time(ts: pd.Timestamp, timeframe: Timeframe) -> pd.Timestamp:
    """``ts`` rounded down to a bar boundary of ``timeframe``."""
    return ts.floor("1h" if timeframe == "1h" else "1D")


@functools.lru_cache(maxsize=64)
def last_closed_open(as_of: datetime, timeframe: Timeframe) -> pd.Timestamp:
    """Open time of the newest bar closed at or before ``as_of`` (memoised: a cycle asks once per
    (venue, symbol) with the same T)."""
    return floor_time(pd.Timestamp(to_utc(as_of)) - TIMEFRAME_DELTA[timeframe], timeframe)


@functools.lru_cache(maxsize=64)
def bar_window(as_of: datetime, timeframe: Timeframe, limit: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``(first_open, last_open)``: open times of the oldest and newest of the ``limit`` newest bars
    closed at or before ``as_of`` (memoised like :func:`last_closed_open`)."""
    last_open = last_closed_open(as_of, timeframe)
    return last_open - (int(limit) - 1) * TIMEFRAME_DELTA[timeframe], last_open


@functools.lru_cache(maxsize=64)
def seconds_to_next_close(as_of: datetime, timeframe: Timeframe) -> float:
    """Seconds from ``as_of`` until the next bar after the newest closed one closes (≥ 0; memoised)."""
    next_close = last_closed_open(as_of, timeframe) + 2 * TIMEFRAME_DELTA[timeframe]
    return max((next_close - pd.Timestamp(as_of)).total_seconds(), 0.0)


def ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)


def ohlcv_frame(rows: Sequence[Sequence[Any]] | None) -> pd.DataFrame:
    """ccxt OHLCV rows ``[ms, o, h, l, c, v]`` → a bars frame (no validation, None → NaN)."""
    if not rows:
        return empty_bars()
    arr = [list(r)[:6] + [None] * (6 - len(list(r)[:6])) for r in rows]
    frame = pd.DataFrame(arr, columns=list(BAR_COLUMNS))
    stamps = pd.to_numeric(frame["timestamp"], errors="coerce")
    frame["timestamp"] = pd.to_datetime(stamps, unit="ms", utc=True)
    for col in BAR_COLUMNS[1:]:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    return frame


def sorted_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """The bars of one answer in time order, one per open time (a venue's later copy wins: pages
    overlap and re-send the newest bar). Rows without an open time cannot be placed in time and
    are dropped (ccxt itself already drops them when asked with ``since=``, as we always ask).
    Bad values are left for :func:`cryptorun_core.quality.sanitize_bars`, which drops just that
    bar with its reason code."""
    out = frame[frame["timestamp"].notna()].drop_duplicates("timestamp", keep="last").sort_values("timestamp")
    return out.reset_index(drop=True)


def book_side(levels: Any, descending: bool) -> np.ndarray:
    """ccxt levels ``[[price, amount, ...], ...]`` → sorted (n, 2) float array."""
    rows = [list(lvl)[:2] for lvl in (levels or [])]
    arr = np.asarray([[np.nan if v is None else v for v in row] for row in rows], dtype=float).reshape(-1, 2)
    order = np.argsort(-arr[:, 0] if descending else arr[:, 0], kind="stable")
    return arr[order]


def validate_book(bids: np.ndarray, asks: np.ndarray, what: str) -> None:
    """Raise ``bad_response`` when any level has a non-finite/non-positive price or a bad amount."""
    for side, arr in (("bid", bids), ("ask", asks)):
        if len(arr) == 0:
            continue
        bad = ~np.isfinite(arr).all(axis=1) | (arr[:, 0] <= 0) | (arr[:, 1] < 0)
        if bad.any():
            raise FetchFailure("bad_response", f"{what}: {int(bad.sum())} malformed {side} level(s) in the payload")


def _positive(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x > 0 else None


def _optional_volume(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x >= 0 else None


def ticker_from_ccxt(raw: Mapping[str, Any], what: str) -> Ticker:
    """A validated :class:`Ticker`. Venues whose bulk tickers carry no quote (coinbase's public
    product list has a price but empty bid/ask) get bid = ask = last, so spreads must come from
    order books (as SPEC §3 requires anyway)."""
    last = _positive(raw.get("last"))
    bid = _positive(raw.get("bid"))
    ask = _positive(raw.get("ask"))
    if last is None and bid is not None and ask is not None:
        last = (bid + ask) / 2
    if last is None:
        raise FetchFailure("bad_response", f"{what}: ticker has no valid price")
    for name, value in (("bid", raw.get("bid")), ("ask", raw.get("ask"))):
        if value not in (None, "") and _positive(value) is None:
            raise FetchFailure("bad_response", f"{what}: ticker {name} {value!r} is not a positive number")
    return Ticker(
        bid=bid if bid is not None else last,
        ask=ask if ask is not None else last,
        last=last,
        base_volume_24h=_optional_volume(raw.get("baseVolume")),
        quote_volume_24h=_optional_volume(raw.get("quoteVolume")),
    )


def ms_to_datetime(ms: Any) -> datetime | None:
    try:
        value = int(ms)
    except (TypeError, ValueError):
        return None
    return pd.Timestamp(value, unit="ms", tz=UTC).to_pydatetime()


def map_markets(venue: str, ccxt_markets: Mapping[str, Mapping[str, Any]], usd_quotes: Sequence[str]) -> dict[str, tuple[MarketInfo, str]]:
    """Spot markets quoted in a USD-like quote → canonical ``BASE/USD``: ``(info, ccxt symbol)``.

    When a venue lists one base against several USD-like quotes, the quote earlier in
    ``usd_quotes`` wins (USD before USDT/USDC), then the active one.
    """
    best: dict[str, tuple[tuple[int, int], MarketInfo, str]] = {}
    for m in ccxt_markets.values():
        quote, base = m.get("quote"), m.get("base")
        if not m.get("spot") or quote not in usd_quotes or not base:
            continue
        active = m.get("active") is not False
        info = MarketInfo(
            venue=venue,
            symbol=f"{base}/USD",
            native_symbol=native_symbol(m),
            base=str(base),
            quote=str(quote),
            active=active,
            listed_at=ms_to_datetime(m.get("created")),
        )
        rank = (list(usd_quotes).index(quote), 0 if active else 1)
        current = best.get(info.symbol)
        if current is None or rank < current[0]:
            best[info.symbol] = (rank, info, str(m["symbol"]))
    return {sym: (info, ccxt_symbol) for sym, (_, info, ccxt_symbol) in sorted(best.items())}


def native_symbol(market: Mapping[str, Any]) -> str:
    """How the venue spells the pair: kraken's ``wsname`` (``XBT/USD``) or the market id."""
    info = market.get("info") or {}
    return str(info.get("wsname") or market.get("id") or market.get("symbol"))
