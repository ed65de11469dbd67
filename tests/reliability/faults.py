"""Fault injection for the reliability suite.

:class:`FaultyMarket` wraps any :class:`MarketSource` (normally the deterministic
:class:`SimulatedMarket`) and corrupts exactly what a test asks for, through the same interface
the rest of CryptoRun uses:

- **venue faults** (:class:`VenueFault`): a venue whose calls raise a ccxt error class, on every
  call or on a deterministic fraction of them; the wrapper keeps :class:`VenueHealth`
  accounting (requests, errors, retries) like a live source, including bounded retries with
  exponential backoff recorded in :attr:`FaultyMarket.backoff_log` (nothing really sleeps);
- **garbage bars** (:data:`BAR_FAULTS`): NaN, zero or negative prices, zero volume, high < low,
  duplicated / out-of-order bars and bars stamped after T, per (venue, symbol);
- **garbage books** (:data:`BOOK_FAULTS`): crossed, empty, one-sided books and absurd spreads;
- **vanishing symbols**: symbols that are no longer listed (nor served) from a given time on.

Everything is deterministic: the same faults and the same T give the same bytes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable, Sequence

import ccxt
import numpy as np
import pandas as pd

from cryptorun_core.market.base import (
    FetchResult,
    MarketInfo,
    MarketSource,
    OrderBook,
    Ticker,
    Timeframe,
    VenueHealth,
    to_utc,
)
from cryptorun_core.market.ccxt_live import classify_error

#: ccxt error classes a venue may raise, and the reason code each must end up as.
CCXT_ERRORS: dict[str, tuple[type[Exception], str]] = {
    "RequestTimeout": (ccxt.RequestTimeout, "timeout"),
    "ExchangeNotAvailable": (ccxt.ExchangeNotAvailable, "venue_down"),
    "DDoSProtection": (ccxt.DDoSProtection, "rate_limited"),
    "RateLimitExceeded": (ccxt.RateLimitExceeded, "rate_limited"),
    "BadResponse": (ccxt.BadResponse, "bad_response"),
}

BAR_FAULTS = (
    "nan_price",  # close (and high) NaN on a few bars
    "zero_price",  # open 0 on a few bars
    "negative_price",  # close negative on a few bars
    "zero_volume",  # every bar of the pair traded nothing
    "high_below_low",  # high and low swapped on a few bars
    "duplicate_bar",  # a few bars repeated (once with a different value)
    "out_of_order",  # rows shuffled
    "bar_after_as_of",  # bars stamped after T appended (a source leaking the future)
)
BOOK_FAULTS = ("crossed_book", "empty_book", "one_sided_book", "absurd_spread")


@dataclass
class VenueFault:
    """A venue raising ``error`` (a ccxt class) on every call, or on ``every``-th call only.

    ``every=None``: every call fails (the venue is down); ``every=k``: calls 1, k+1, 2k+1, …
    fail and the retry after them succeeds (intermittent). ``scope`` limits which calls fail:
    ``'all'`` (markets, bars, books) or ``'data'`` (bars and books; markets load fine).
    """

    error: type[Exception]
    every: int | None = None
    scope: str = "all"
    calls: int = 0

    def should_fail(self) -> bool:
        self.calls += 1
        if self.every is None:
            return True
        return (self.calls - 1) % self.every == 0


@dataclass
class FaultyMarket(MarketSource):
    """A :class:`MarketSource` wrapper injecting venue faults, garbage data and vanishing symbols."""

    inner: MarketSource
    venue_faults: dict[str, VenueFault] = field(default_factory=dict)
    bar_faults: dict[tuple[str | None, str], str] = field(default_factory=dict)  # (venue or None=all, symbol) → fault
    book_faults: dict[tuple[str | None, str], str] = field(default_factory=dict)
    vanished: dict[str, datetime] = field(default_factory=dict)  # symbol → gone from this time on
    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    backoff_log: list[tuple[str, float]] = field(default_factory=list)
    _health: dict[str, VenueHealth] = field(default_factory=dict)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property
    def venues(self) -> tuple[str, ...]:
        return self.inner.venues

    @property
    def native_timeframe(self) -> Timeframe:
        return self.inner.native_timeframe

    # -- health ---------------------------------------------------------------------------------

    def health(self) -> dict[str, VenueHealth]:
        return {v: dataclasses.replace(h, latencies_ms=list(h.latencies_ms)) for v, h in self._health.items()}

    def reset_health(self) -> None:
        self._health = {v: VenueHealth(v) for v in self.venues}
        self.inner.reset_health()

    def _h(self, venue: str) -> VenueHealth:
        return self._health.setdefault(venue, VenueHealth(venue))

    def _call(self, venue: str, kind: str, fn: Callable[[], object]) -> tuple[object | None, str | None, str]:
        """One "request" with bounded retries: (result, reason code or None, detail)."""
        fault = self.venue_faults.get(venue)
        h = self._h(venue)
        attempt = 0
        while True:
            h.requests += 1
            h.latencies_ms.append(1.0)
            failing = fault is not None and (fault.scope == "all" or kind != "markets") and fault.should_fail()
            if not failing:
                return fn(), None, ""
            exc = fault.error(f"{venue} {kind}: injected {fault.error.__name__}")
            reason, retryable, _ = classify_error(exc)
            h.errors += 1
            h.last_error = f"{reason}: {kind}: {type(exc).__name__}: {exc}"
            if not retryable or attempt >= self.max_retries:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                return None, reason, f"{venue} {kind} failed{tries} ({reason}): {type(exc).__name__}: {exc}"
            delay = min(self.backoff_base_s * 2.0**attempt, self.backoff_max_s)
            attempt += 1
            h.retries += 1
            self.backoff_log.append((venue, delay))

    def _gone(self, symbol: str, as_of: datetime) -> bool:
        when = self.vanished.get(symbol)
        return when is not None and to_utc(as_of) >= to_utc(when)

    # -- MarketSource -----------------------------------------------------------------------------

    def list_markets(self, venue: str, as_of: datetime) -> list[MarketInfo]:
        out, reason, detail = self._call(venue, "markets", lambda: self.inner.list_markets(venue, as_of))
        if reason is not None:
            raise RuntimeError(detail)
        return [m for m in out if not self._gone(m.symbol, as_of)]  # type: ignore[union-attr]

    def _per_request(self, requests, as_of, kind, fetch) -> list[FetchResult]:
        out: list[FetchResult] = []
        for venue, symbol in requests:
            if self._gone(symbol, as_of):
                out.append(FetchResult(venue, symbol, None, error="bad_symbol", detail=f"{symbol} is no longer listed on {venue}"))
                continue
            res, reason, detail = self._call(venue, kind, lambda v=venue, s=symbol: fetch([(v, s)])[0])
            out.append(res if reason is None else FetchResult(venue, symbol, None, error=reason, detail=detail))  # type: ignore[arg-type]
        return out

    def fetch_ohlcv(self, requests: Sequence[tuple[str, str]], as_of: datetime, timeframe: Timeframe = "1h",
                    limit: int = 720) -> list[FetchResult[pd.DataFrame]]:
        results = self._per_request(requests, as_of, "ohlcv", lambda r: self.inner.fetch_ohlcv(r, as_of, timeframe, limit))
        return [self._corrupt_bars(r, as_of, timeframe) for r in results]

    def fetch_tickers(self, requests: Sequence[tuple[str, str]], as_of: datetime) -> list[FetchResult[Ticker]]:
        return self._per_request(requests, as_of, "ticker", lambda r: self.inner.fetch_tickers(r, as_of))

    def fetch_order_books(self, requests: Sequence[tuple[str, str]], as_of: datetime, depth: int = 100) -> list[FetchResult[OrderBook]]:
        results = self._per_request(requests, as_of, "book", lambda r: self.inner.fetch_order_books(r, as_of, depth))
        return [self._corrupt_book(r) for r in results]

    def close(self) -> None:
        self.inner.close()

    # -- corruption -------------------------------------------------------------------------------

    def _fault_for(self, table: dict, venue: str, symbol: str) -> str | None:
        return table.get((venue, symbol)) or table.get((None, symbol))

    def _corrupt_bars(self, r: FetchResult, as_of: datetime, timeframe: Timeframe) -> FetchResult:
        kind = self._fault_for(self.bar_faults, r.venue, r.symbol)
        if kind is None or not r.ok or r.data is None or r.data.empty:
            return r
        return dataclasses.replace(r, data=corrupt_bars(r.data, kind, as_of, timeframe))

    def _corrupt_book(self, r: FetchResult) -> FetchResult:
        kind = self._fault_for(self.book_faults, r.venue, r.symbol)
        if kind is None or not r.ok or r.data is None:
            return r
        return dataclasses.replace(r, data=corrupt_book(r.data, kind))


def _rows(n: int, count: int = 3) -> list[int]:
    """A few deterministic rows among the newest day (so the fault lands where factors look)."""
    return sorted({max(0, n - k) for k in (2, 7, 13)})[:count]


def corrupt_bars(frame: pd.DataFrame, kind: str, as_of: datetime, timeframe: Timeframe = "1h") -> pd.DataFrame:
    """A corrupted copy of one pair's bars (see :data:`BAR_FAULTS`)."""
    f = frame.copy().reset_index(drop=True)
    n = len(f)
    rows = _rows(n)
    if kind == "nan_price":
        f.loc[rows, "close"] = np.nan
        f.loc[rows[:1], "high"] = np.nan
    elif kind == "zero_price":
        f.loc[rows, "open"] = 0.0
    elif kind == "negative_price":
        f.loc[rows, "close"] = -f.loc[rows, "close"].abs()
    elif kind == "zero_volume":
        f["volume"] = 0.0
    elif kind == "high_below_low":
        hi = f.loc[rows, "high"].to_numpy()
        f.loc[rows, "high"] = f.loc[rows, "low"].to_numpy()
        f.loc[rows, "low"] = hi
    elif kind == "duplicate_bar":
        dup = f.loc[rows].copy()
        dup.loc[dup.index[0], "close"] = dup.loc[dup.index[0], "close"] * 1.5  # a conflicting copy
        f = pd.concat([f, dup], ignore_index=True)
    elif kind == "out_of_order":
        f = f.sample(frac=1.0, random_state=7).reset_index(drop=True)
    elif kind == "bar_after_as_of":
        step = pd.Timedelta(hours=1) if timeframe == "1h" else pd.Timedelta(days=1)
        last = f.iloc[-1]
        extra = []
        for i in range(1, 4):  # the still-open bar at T and two from the future, with a huge move
            extra.append({**last.to_dict(), "timestamp": last["timestamp"] + i * step,
                          "open": last["close"] * 3, "high": last["close"] * 3.2, "low": last["close"] * 2.9,
                          "close": last["close"] * 3.1, "volume": last["volume"] * 50})
        f = pd.concat([f, pd.DataFrame(extra)], ignore_index=True)
    else:
        raise ValueError(f"unknown bar fault {kind!r}")
    f["timestamp"] = pd.to_datetime(f["timestamp"], utc=True)
    return f


def corrupt_book(book: OrderBook, kind: str) -> OrderBook:
    """A corrupted copy of one book (see :data:`BOOK_FAULTS`)."""
    bids, asks = book.bids.copy(), book.asks.copy()
    if kind == "crossed_book":
        bids[:, 0] = bids[:, 0] * 1.05  # every bid above the best ask
    elif kind == "empty_book":
        bids, asks = bids[:0], asks[:0]
    elif kind == "one_sided_book":
        asks = asks[:0]
    elif kind == "absurd_spread":
        asks[:, 0] = asks[:, 0] * 4.0  # best ask 300% above the best bid; depth still looks huge
        asks[:, 1] = asks[:, 1] * 1000.0
        bids[:, 1] = bids[:, 1] * 1000.0
    else:
        raise ValueError(f"unknown book fault {kind!r}")
    return OrderBook(bids=bids, asks=asks, timestamp=book.timestamp)


def symbols_with(ranking: pd.DataFrame, segment: str, n: int, skip: Iterable[str] = ()) -> list[str]:
    """The first ``n`` symbols of a segment (rank order), skipping ``skip``."""
    sel = ranking[ranking["segment"] == segment].sort_values("rank")["symbol"].tolist()
    return [s for s in sel if s not in set(skip)][:n]
