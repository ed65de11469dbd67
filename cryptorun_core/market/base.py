"""The one interface the rest of CryptoRun uses to read market data.

Every implementation (simulated, ccxt live, replay) answers the same four questions as of a
cycle time ``as_of`` (SPEC §1): which markets a venue lists, its closed OHLCV bars, its L1
tickers and its L2 order books. Results are batched over (venue, symbol) requests so a live
source can query venues concurrently, and every result is a :class:`FetchResult` stamped with
venue, time, cache status and, on failure, a stable reason code instead of an exception: a
venue that errors is reported and the cycle goes on with what is valid.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, Literal, Sequence, TypeVar

import numpy as np
import pandas as pd

from cryptorun_core.timefmt import UTC, to_utc  # noqa: F401 (to_utc: the adapters' import path)

Timeframe = Literal["1h", "1d"]
TIMEFRAME_DELTA: dict[str, timedelta] = {"1h": timedelta(hours=1), "1d": timedelta(days=1)}
BAR_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")

T = TypeVar("T")


@dataclass(frozen=True)
class MarketInfo:
    """One market of one venue: canonical ``BASE/USD`` beside the venue's own symbol."""

    venue: str
    symbol: str  # canonical, e.g. "BTC/USD"
    native_symbol: str  # as the venue spells it, e.g. "XBT/USD", "BTC-USD"
    base: str
    quote: str  # the venue's quote currency (USD, or USDT/USDC when usd_quotes allows)
    active: bool = True
    listed_at: datetime | None = None


@dataclass(frozen=True)
class Ticker:
    """L1 quote."""

    bid: float
    ask: float
    last: float
    base_volume_24h: float | None = None
    quote_volume_24h: float | None = None


@dataclass(frozen=True)
class OrderBook:
    """L2 book: ``bids`` descending and ``asks`` ascending, each an (n, 2) array of price, amount."""

    bids: np.ndarray
    asks: np.ndarray
    timestamp: datetime  # when the venue took the book (a simulated/replayed book is stamped T)

    @staticmethod
    def from_levels(bids: Sequence[Sequence[float]], asks: Sequence[Sequence[float]], timestamp: datetime) -> "OrderBook":
        b = np.asarray([lvl[:2] for lvl in bids], dtype=float).reshape(-1, 2)
        a = np.asarray([lvl[:2] for lvl in asks], dtype=float).reshape(-1, 2)
        return OrderBook(bids=b, asks=a, timestamp=timestamp)


@dataclass(frozen=True)
class FetchResult(Generic[T]):
    """The answer to one (venue, symbol) request.

    ``data`` is None exactly when ``error`` is set. ``error`` is a stable reason code
    (``venue_down``, ``bad_symbol``, ``bad_response``, ``no_data``, ``no_book``, …) and
    ``detail`` a sentence for humans. ``stamped_at`` is the time the data describes (≤ as_of).
    """

    venue: str
    symbol: str
    data: T | None
    stamped_at: datetime | None = None
    from_cache: bool = False
    ttl_remaining_s: float | None = None
    error: str | None = None
    detail: str = ""
    latency_ms: float = 0.0
    requests: int = 0  # network requests this answer cost (0 from cache or simulation)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class VenueHealth:
    """Per-venue request accounting for one cycle (feeds the CLI header and explain.json)."""

    venue: str
    requests: int = 0
    errors: int = 0
    retries: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    last_error: str | None = None

    @property
    def status(self) -> Literal["ok", "degraded", "down"]:
        if self.requests and self.errors >= self.requests:
            return "down"
        if self.errors or self.retries:
            return "degraded"
        return "ok"

    @property
    def avg_latency_ms(self) -> float:
        return float(np.mean(self.latencies_ms)) if self.latencies_ms else 0.0

    def to_dict(self) -> dict:
        return {
            "venue": self.venue,
            "status": self.status,
            "requests": self.requests,
            "errors": self.errors,
            "retries": self.retries,
            "avg_latency_ms": round(self.avg_latency_ms, 1),
            "last_latency_ms": round(self.latencies_ms[-1], 1) if self.latencies_ms else None,
            "last_error": self.last_error,
        }


class MarketSource(abc.ABC):
    """Read-only market data as of a time T. Implementations must never return data after T."""

    name: str = "abstract"
    #: each order book is a rate-limited venue request (live venues): the hot cycle then skips the
    #: books of symbols that cannot reach the score threshold (book_pruning); offline sources serve
    #: books for free and keep every one
    costly_books: bool = False

    @property
    @abc.abstractmethod
    def venues(self) -> tuple[str, ...]:
        """Venues this source can answer for, in config order."""

    @property
    def native_timeframe(self) -> Timeframe:
        """"1h" for sources with hourly bars, "1d" for daily-only sources (replay of daily history)."""
        return "1h"

    @abc.abstractmethod
    def list_markets(self, venue: str, as_of: datetime) -> list[MarketInfo]:
        """Markets the venue lists at ``as_of`` (USD quotes, canonical symbols)."""

    # The batch methods own the loop over requests: a source answers one request at a time
    # (``*_request``, T already UTC, one FetchResult each, never raising for a bad request).
    # A source that batches differently (ccxt: venues at once, a breaker per venue) overrides them.

    def fetch_ohlcv(
        self,
        requests: Sequence[tuple[str, str]],
        as_of: datetime,
        timeframe: Timeframe = "1h",
        limit: int = 720,
    ) -> list[FetchResult[pd.DataFrame]]:
        """Closed bars for each (venue, symbol): at most ``limit`` bars whose close ≤ ``as_of``.

        Frames have columns :data:`BAR_COLUMNS`, ``timestamp`` being the bar's open time as a
        tz-aware UTC pandas Timestamp, sorted ascending, unique.
        """
        as_of = to_utc(as_of)
        return [self.ohlcv_request(venue, symbol, as_of, timeframe, limit) for venue, symbol in requests]

    def fetch_tickers(self, requests: Sequence[tuple[str, str]], as_of: datetime) -> list[FetchResult[Ticker]]:
        """L1 tickers; a venue with a bulk endpoint answers all its symbols in one request."""
        as_of = to_utc(as_of)
        return [self.ticker_request(venue, symbol, as_of) for venue, symbol in requests]

    def fetch_order_books(
        self, requests: Sequence[tuple[str, str]], as_of: datetime, depth: int = 100
    ) -> list[FetchResult[OrderBook]]:
        """L2 books taken at or before ``as_of``."""
        as_of = to_utc(as_of)
        return [self.book_request(venue, symbol, as_of, depth) for venue, symbol in requests]

    def ohlcv_request(self, venue: str, symbol: str, as_of: datetime, timeframe: Timeframe, limit: int) -> FetchResult[pd.DataFrame]:
        """One OHLCV request of :meth:`fetch_ohlcv`."""
        raise NotImplementedError(f"{type(self).__name__} answers no OHLCV request")

    def ticker_request(self, venue: str, symbol: str, as_of: datetime) -> FetchResult[Ticker]:
        """One ticker request of :meth:`fetch_tickers`."""
        raise NotImplementedError(f"{type(self).__name__} answers no ticker request")

    def book_request(self, venue: str, symbol: str, as_of: datetime, depth: int) -> FetchResult[OrderBook]:
        """One order-book request of :meth:`fetch_order_books`."""
        raise NotImplementedError(f"{type(self).__name__} answers no book request")

    def data_problems(self, venue: str, as_of: datetime) -> list["FetchResult[None]"]:
        """Inputs of ``venue`` this source could not read at ``as_of`` (a replay file that is empty,
        corrupt or outside its folder): one failed result per symbol, with a reason code and a
        sentence naming the input. The snapshot reports them (fetch log ``kind`` = ``file``)."""
        return []

    def health(self) -> dict[str, VenueHealth]:
        """Request accounting since the last :meth:`reset_health` (empty for offline sources)."""
        return {}

    def reset_health(self) -> None:
        return None

    def close(self) -> None:
        """Release connections; safe to call twice."""
        return None


class MarketDataError(RuntimeError):
    """Raised when no venue could supply anything at all for a cycle."""


def empty_bars() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
            **{c: pd.Series([], dtype="float64") for c in BAR_COLUMNS[1:]},
        }
    )


def closed_bars(frame: pd.DataFrame, as_of: datetime, timeframe: Timeframe = "1h", limit: int | None = None) -> pd.DataFrame:
    """Keep only bars closed at or before ``as_of`` (open + one bar ≤ T), newest ``limit`` of them."""
    cutoff = pd.Timestamp(to_utc(as_of)) - TIMEFRAME_DELTA[timeframe]
    out = frame[frame["timestamp"] <= cutoff]
    if limit is not None:
        out = out.iloc[-limit:]
    return out.reset_index(drop=True)
