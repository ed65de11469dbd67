"""Live market data from the venues' public REST APIs through ``ccxt.async_support``.

How a cycle is served
---------------------
- One ccxt exchange per venue (ids ``kraken``, ``okx``, ``coinbase``), public endpoints only,
  ``enableRateLimit`` on. ccxt calls ``exchange.throttle(cost)`` before every HTTP request; that
  hook is pointed at our own :class:`RateLimiter` so pacing uses an injectable clock/sleep and
  every HTTP request is counted exactly (``FetchResult.requests``, :class:`VenueHealth`).
- Markets are loaded once per venue and mapped to canonical ``BASE/USD`` (ccxt's unified base,
  a quote from ``market.usd_quotes``, spot only); the venue's own spelling is kept beside it.
- Venues run concurrently (``asyncio.gather``); inside a venue requests are sequential, which
  is what its rate limit allows anyway and keeps the per-result request accounting exact.
- OHLCV is incremental: closed bars are kept per (venue, symbol, timeframe) in memory and,
  optionally, as parquet under ``ohlcv_cache_dir``; a later cycle asks only for bars newer than
  the newest stored one (``since=``). Only closed bars (open + one bar ≤ as_of) are stored or
  served.
- A TTL cache (the job's ``cache_ttl_s``) answers repeated OHLCV/book/ticker requests without
  any request: ``from_cache=True``, ``ttl_remaining_s`` set, ``requests=0``.
- Failures never raise out of the batch methods: ccxt's network family and ``BadResponse`` are
  retried with exponential backoff, then reported as reason codes (``timeout``, ``venue_down``,
  ``rate_limited``, ``bad_response``); ``BadSymbol`` is ``bad_symbol``; malformed payloads are
  ``bad_response`` for that symbol only.

The synchronous :class:`MarketSource` methods run the async work on an event loop owned by the
instance, in a background thread, so ccxt's HTTP sessions are reused across calls and cycles.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import math
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Sequence, TypeVar

import ccxt
import ccxt.async_support as ccxt_async
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cryptorun_core.artifacts import safe_join
from cryptorun_core.config import KNOWN_VENUES, AppConfig, JobConfig, MarketConfig, packaged_config
from cryptorun_core.market.base import (
    BAR_COLUMNS,
    TIMEFRAME_DELTA,
    UTC,
    FetchResult,
    MarketDataError,
    MarketInfo,
    MarketSource,
    OrderBook,
    Ticker,
    Timeframe,
    VenueHealth,
    empty_bars,
    to_utc,
)
from cryptorun_core.market.cache import TTLCache
from cryptorun_core.market.ratelimit import Clock, RateLimiter, Sleep

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ccxt exchange id of each venue.
VENUE_IDS: dict[str, str] = {"kraken": "kraken", "okx": "okx", "coinbase": "coinbase"}
#: Most bars one OHLCV request returns (kraken: its last 720; okx candles and coinbase: 300).
MAX_BARS_PER_REQUEST: dict[str, int] = {"kraken": 720, "okx": 300, "coinbase": 300}
DEFAULT_BARS_PER_REQUEST = 300
#: Bars kept per (venue, symbol, timeframe) in the incremental store (older ones are dropped).
MAX_STORED_BARS = 5000
#: Failures that say the venue, not the symbol, is in trouble: the rest of the batch is skipped.
VENUE_LEVEL_ERRORS = frozenset({"timeout", "venue_down", "rate_limited"})
_DETAIL_MAX_CHARS = 240
#: Venues whose ccxt client switches to private endpoints as soon as it holds credentials
#: (coinbase's load_markets then also calls the private fee summary): keys are not handed over.
NO_CREDENTIALS_VENUES = frozenset({"coinbase"})


class VenueUnavailable(MarketDataError):
    """A venue could not list its markets (after retries); ``reason`` is the reason code."""

    def __init__(self, venue: str, reason: str, detail: str):
        self.venue = venue
        self.reason = reason
        self.detail = detail
        super().__init__(detail)


class _FetchFailure(Exception):
    """An already classified failure: a reason code and a (redacted) sentence."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(detail)


# --------------------------------------------------------------------------------------------
# error classification


def classify_error(exc: BaseException) -> tuple[str, bool, bool] | None:
    """``(reason, retryable, venue_fault)`` for an exception raised while talking to a venue.

    ccxt 4.5's hierarchy: RequestTimeout, ExchangeNotAvailable (→ OnMaintenance),
    DDoSProtection and RateLimitExceeded are *siblings* under NetworkError (RateLimitExceeded is
    no longer a DDoSProtection), BadResponse (→ NullResponse) sits under OperationFailed, and
    BadSymbol under BadRequest/ExchangeError. Order matters: specific classes first.
    Returns None for exceptions that are not about the venue (programming errors), which the
    caller re-raises.
    """
    if isinstance(exc, ccxt.BadSymbol):
        return "bad_symbol", False, False  # our request named something the venue lacks
    if isinstance(exc, ccxt.RequestTimeout):
        return "timeout", True, True
    if isinstance(exc, ccxt.RateLimitExceeded):
        return "rate_limited", True, True
    if isinstance(exc, ccxt.DDoSProtection):  # separate branch: not a RateLimitExceeded in 4.5
        return "rate_limited", True, True
    if isinstance(exc, ccxt.ExchangeNotAvailable):
        return "venue_down", True, True
    if isinstance(exc, ccxt.NetworkError):
        return "venue_down", True, True
    if isinstance(exc, ccxt.BadResponse):
        return "bad_response", True, True
    if isinstance(exc, ccxt.BaseError):
        return "bad_response", False, True  # the venue answered with an error of its own
    if isinstance(exc, (TypeError, ValueError, KeyError, IndexError, AttributeError, ArithmeticError)):
        return "bad_response", False, True  # ccxt choked while parsing a malformed payload
    return None


# --------------------------------------------------------------------------------------------
# small pure helpers


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


def _ms(ts: pd.Timestamp) -> int:
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


def bar_problems(frame: pd.DataFrame) -> pd.Series:
    """Per row, a description of what is wrong with the bar ('' when it is sound)."""
    prices = frame[["open", "high", "low", "close"]]
    problems = pd.Series("", index=frame.index, dtype=object)
    problems[frame["timestamp"].isna()] = "missing timestamp"
    bad_price = ~np.isfinite(prices.to_numpy(float)).all(axis=1) | (prices <= 0).any(axis=1).to_numpy()
    problems[(problems == "") & bad_price] = "non-finite or non-positive price"
    bad_volume = ~np.isfinite(frame["volume"].to_numpy(float)) | (frame["volume"] < 0).to_numpy()
    problems[(problems == "") & bad_volume] = "non-finite or negative volume"
    problems[(problems == "") & (frame["high"] < frame["low"])] = "high below low"
    return problems


def validate_bars(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """Sorted, de-duplicated bars, or :class:`_FetchFailure` (``bad_response``) on garbage."""
    problems = bar_problems(frame)
    bad = problems[problems != ""]
    if len(bad):
        first = bad.index[0]
        stamp = frame.loc[first, "timestamp"]
        when = stamp.isoformat() if not pd.isna(stamp) else "?"
        raise _FetchFailure(
            "bad_response", f"{what}: {len(bad)} malformed bar(s) in the payload, first at {when}: {bad.iloc[0]}"
        )
    out = frame.drop_duplicates("timestamp", keep="last").sort_values("timestamp")
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
            raise _FetchFailure("bad_response", f"{what}: {int(bad.sum())} malformed {side} level(s) in the payload")


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
        raise _FetchFailure("bad_response", f"{what}: ticker has no valid price")
    for name, value in (("bid", raw.get("bid")), ("ask", raw.get("ask"))):
        if value not in (None, "") and _positive(value) is None:
            raise _FetchFailure("bad_response", f"{what}: ticker {name} {value!r} is not a positive number")
    return Ticker(
        bid=bid if bid is not None else last,
        ask=ask if ask is not None else last,
        last=last,
        base_volume_24h=_optional_volume(raw.get("baseVolume")),
        quote_volume_24h=_optional_volume(raw.get("quoteVolume")),
    )


def _ms_to_datetime(ms: Any) -> datetime | None:
    try:
        value = int(ms)
    except (TypeError, ValueError):
        return None
    return pd.Timestamp(value, unit="ms", tz=UTC).to_pydatetime()


def credentials_from_env(venue: str, api_key_env: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """ccxt credential fields of ``venue`` read from the env vars named in ``api_key_env``.

    Keys of ``api_key_env``: ``<venue>`` or ``<venue>.apiKey`` (the key), ``<venue>.secret``,
    ``<venue>.password``; values are environment variable *names*. Nothing here is ever logged.
    """
    environ = os.environ if environ is None else environ
    fields = {venue: "apiKey", f"{venue}.apiKey": "apiKey", f"{venue}.secret": "secret", f"{venue}.password": "password"}
    out: dict[str, str] = {}
    for key, field_name in fields.items():
        env_name = api_key_env.get(key)
        value = environ.get(env_name) if env_name else None
        if value:
            out[field_name] = value
    return out


# --------------------------------------------------------------------------------------------
# per-venue state


@dataclass
class _VenueMarket:
    info: MarketInfo
    ccxt_symbol: str  # what ccxt is called with (its unified symbol, e.g. "BTC/USDT")


@dataclass
class _BarStore:
    bars: pd.DataFrame  # sorted by timestamp, one bar per timestamp, no NaT
    covered_from: pd.Timestamp  # bars are complete (as the venue serves them) from here on
    stamps: np.ndarray = dataclasses.field(init=False)  # bars' open times, int64 ns UTC (windows are cut on them)

    def __post_init__(self) -> None:
        self.stamps = self.bars["timestamp"].array.as_unit("ns").asi8


@dataclass
class _Venue:
    name: str
    exchange: Any  # ccxt.async_support.Exchange
    limiter: RateLimiter
    health: VenueHealth
    markets: dict[str, _VenueMarket] | None = None
    http_requests: int = 0  # lifetime count, used as a meter for per-result request costs
    # one batch at a time per venue, so the request meter deltas belong to a single result even
    # when several threads submit batches to the loop at once
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)


class _LoopThread:
    """An asyncio loop running forever in a daemon thread; ``run`` submits and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="cryptorun-ccxt-loop", daemon=True)
        self._thread.start()
        self.closed = False

    def run(self, coro: Awaitable[T]) -> T:
        if self.closed:
            raise RuntimeError("CcxtMarket is closed")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()


# --------------------------------------------------------------------------------------------
# the source


class CcxtMarket(MarketSource):
    """Live venue-native market data (kraken, okx, coinbase) through ccxt's async clients.

    ``exchanges`` lets tests inject pre-built ``ccxt.async_support`` objects (whose ``fetch``
    they replace); otherwise one is built per venue. ``clock``/``sleep`` drive both the rate
    limiters and the retry backoff (and ``clock`` the TTL cache), ``now`` stamps books and
    tickers the venue did not time-stamp; all default to the real thing.
    """

    name = "ccxt"

    def __init__(
        self,
        venues: Sequence[str] = KNOWN_VENUES,
        config: AppConfig | MarketConfig | None = None,
        exchanges: Mapping[str, Any] | None = None,
        *,
        cache_ttl_s: float = 0.0,
        request_rate_per_s: float = 0.0,
        ohlcv_cache_dir: str | os.PathLike[str] | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        now: Callable[[], datetime] | None = None,
        environ: Mapping[str, str] | None = None,
    ):
        market_cfg = config.market if isinstance(config, AppConfig) else (config or packaged_config().market)
        unknown = [v for v in venues if v not in VENUE_IDS]
        if unknown:
            raise ValueError(f"unknown venue(s) for ccxt: {unknown} (known: {', '.join(VENUE_IDS)})")
        self._venue_names = tuple(venues)
        self._cfg = market_cfg
        self._ccxt_cfg = market_cfg.ccxt
        self._usd_quotes = tuple(market_cfg.usd_quotes)
        self._clock: Clock = clock or time.monotonic
        self._sleep: Sleep = sleep or asyncio.sleep
        self._now = now or (lambda: datetime.now(UTC))
        self.cache_ttl_s = float(cache_ttl_s)
        self.request_rate_per_s = float(request_rate_per_s)
        self._ttl_cache: TTLCache[tuple, tuple[datetime, Any]] = TTLCache(market_cfg.cache.max_entries)
        self._bar_dir = Path(ohlcv_cache_dir) if ohlcv_cache_dir else None
        self._bars: dict[tuple[str, str, str], _BarStore] = {}
        self.backoff_log: list[tuple[str, float]] = []  # (venue, seconds) of every retry backoff
        self._secrets: list[str] = []
        self._loop: _LoopThread | None = None
        self._closed = False
        self._venues: dict[str, _Venue] = {}
        for venue in self._venue_names:
            exchange = (exchanges or {}).get(venue)
            if exchange is None:
                exchange = self._build_exchange(venue, environ)
            self._venues[venue] = self._prepare_venue(venue, exchange)

    # ---- construction -----------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: AppConfig, job: JobConfig | None = None, **kwargs: Any) -> "CcxtMarket":
        """The live source for ``job`` (its venues, cache TTL and request rate) or, without a job,
        for every configured venue with the ``market.cache`` TTL."""
        if job is not None:
            venues = tuple(v for v in config.market.venues if v in job.config.venues)
            ttl = job.config.cache_ttl_s
            rate = job.config.request_rate_per_s
        else:
            venues, ttl, rate = tuple(config.market.venues), config.market.cache.ttl_s, 0.0
        kwargs.setdefault("ohlcv_cache_dir", config.market.ccxt.ohlcv_cache_dir or None)
        return cls(venues, config, cache_ttl_s=ttl, request_rate_per_s=rate, **kwargs)

    def _build_exchange(self, venue: str, environ: Mapping[str, str] | None) -> Any:
        """A public-endpoint ccxt client; credentials only if the config names env vars for them."""
        creds = credentials_from_env(venue, self._ccxt_cfg.api_key_env, environ)
        self._secrets.extend(v for v in creds.values() if v)
        if creds and venue in NO_CREDENTIALS_VENUES:
            # public endpoints only: these keys would make ccxt call private ones
            log.warning("%s: configured API credentials are not used (public endpoints only)", venue)
            creds = {}
        klass = getattr(ccxt_async, VENUE_IDS[venue])
        return klass({"enableRateLimit": True, "timeout": int(self._ccxt_cfg.timeout_ms), **creds})

    def _prepare_venue(self, venue: str, exchange: Any) -> _Venue:
        """Wire the exchange to our limiter/meter and trim what load_markets asks for."""
        for attr in ("apiKey", "secret", "password"):
            value = getattr(exchange, attr, None)
            if isinstance(value, str) and value:
                self._secrets.append(value)
        limiter = RateLimiter.for_venue(
            float(getattr(exchange, "rateLimit", 1000) or 1000),
            self.request_rate_per_s,
            clock=self._clock,
            sleep=self._sleep,
            name=venue,
        )
        state = _Venue(name=venue, exchange=exchange, limiter=limiter, health=VenueHealth(venue))
        exchange.enableRateLimit = True  # ccxt then calls throttle() before every HTTP request

        async def throttle(cost: float | None = None) -> None:
            # ccxt's own leaky bucket is replaced: our limiter is testable and counts requests
            state.http_requests += 1
            state.health.requests += 1
            await limiter.acquire(1.0 if cost is None else cost)

        exchange.throttle = throttle
        if venue == "okx":
            # spot only: skips the futures/swap/option instrument listings (4 extra requests)
            exchange.options["fetchMarkets"] = {**(exchange.options.get("fetchMarkets") or {}), "types": ["spot"]}
            # okx's currency list is a private endpoint ccxt calls during load_markets once keys
            # are set; we never need it, so market loading stays public whatever the config
            exchange.has["fetchCurrencies"] = False
        return state

    # ---- MarketSource -------------------------------------------------------------------------

    @property
    def venues(self) -> tuple[str, ...]:
        return self._venue_names

    def list_markets(self, venue: str, as_of: datetime) -> list[MarketInfo]:
        """Spot USD(-like) markets of ``venue`` listed at ``as_of``; raises :class:`VenueUnavailable`."""
        state = self._venue(venue)

        async def load() -> dict[str, _VenueMarket]:
            async with state.lock:
                return await self._ensure_markets(state)

        try:
            markets = self._run(load())
        except _FetchFailure as exc:
            raise VenueUnavailable(venue, exc.reason, exc.detail) from None
        as_of = to_utc(as_of)
        listed = [m.info for m in markets.values() if m.info.listed_at is None or m.info.listed_at <= as_of]
        return sorted(listed, key=lambda m: m.symbol)

    def fetch_ohlcv(
        self,
        requests: Sequence[tuple[str, str]],
        as_of: datetime,
        timeframe: Timeframe = "1h",
        limit: int = 720,
    ) -> list[FetchResult[pd.DataFrame]]:
        as_of = to_utc(as_of)
        if timeframe not in TIMEFRAME_DELTA:
            raise ValueError(f"unsupported timeframe {timeframe!r}")
        return self._run(self._batch(requests, lambda v, syms: self._venue_ohlcv(v, syms, as_of, timeframe, limit)))

    def fetch_tickers(self, requests: Sequence[tuple[str, str]], as_of: datetime) -> list[FetchResult[Ticker]]:
        as_of = to_utc(as_of)
        return self._run(self._batch(requests, lambda v, syms: self._venue_tickers(v, syms, as_of)))

    def fetch_order_books(
        self, requests: Sequence[tuple[str, str]], as_of: datetime, depth: int = 100
    ) -> list[FetchResult[OrderBook]]:
        as_of = to_utc(as_of)
        return self._run(self._batch(requests, lambda v, syms: self._venue_books(v, syms, as_of, depth)))

    def health(self) -> dict[str, VenueHealth]:
        """A copy of the per-venue accounting since the last :meth:`reset_health`."""
        return {
            v: dataclasses.replace(s.health, latencies_ms=list(s.health.latencies_ms)) for v, s in self._venues.items()
        }

    def reset_health(self) -> None:
        for state in self._venues.values():
            state.health = VenueHealth(state.name)
            state.limiter.reset_stats()

    def exchange(self, venue: str) -> Any:
        """The ccxt exchange object of ``venue`` (for diagnostics and tests)."""
        return self._venue(venue).exchange

    def rate_limit_waits(self) -> dict[str, list[float]]:
        """Seconds each venue's requests waited for the rate limiter since the last reset."""
        return {v: list(s.limiter.stats.waits) for v, s in self._venues.items()}

    @property
    def cache_stats(self) -> dict[str, int]:
        return self._ttl_cache.stats.to_dict()

    def close(self) -> None:
        """Close every exchange's HTTP session and stop the loop thread; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._loop is None:
            return

        async def close_all() -> None:
            await asyncio.gather(*(s.exchange.close() for s in self._venues.values()), return_exceptions=True)

        try:
            self._loop.run(close_all())
        finally:
            self._loop.stop()

    def __repr__(self) -> str:  # deliberately nothing from the exchanges (they may hold keys)
        return (
            f"CcxtMarket(venues={list(self._venue_names)}, cache_ttl_s={self.cache_ttl_s:g}, "
            f"request_rate_per_s={self.request_rate_per_s:g}, ohlcv_cache_dir={str(self._bar_dir) if self._bar_dir else None!r})"
        )

    def __enter__(self) -> "CcxtMarket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing ---------------------------------------------------------------------------

    def _run(self, coro: Awaitable[T]) -> T:
        if self._closed:
            raise RuntimeError("CcxtMarket is closed")
        if self._loop is None:
            self._loop = _LoopThread()
        return self._loop.run(coro)

    def _venue(self, venue: str) -> _Venue:
        try:
            return self._venues[venue]
        except KeyError:
            raise ValueError(f"venue '{venue}' is not configured for this source ({', '.join(self._venue_names)})") from None

    def _redact(self, text: str) -> str:
        """Remove any credential value from a message, then keep it short."""
        for secret in self._secrets:
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text if len(text) <= _DETAIL_MAX_CHARS else text[: _DETAIL_MAX_CHARS - 1] + "…"

    async def _batch(self, requests: Sequence[tuple[str, str]], per_venue) -> list[FetchResult]:
        """Group requests by venue, run venues concurrently, return results in request order."""
        results: list[FetchResult | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, (venue, symbol) in enumerate(requests):
            if venue not in self._venues:
                results[i] = FetchResult(venue, symbol, None, error="venue_down", detail=f"venue '{venue}' is not configured for the ccxt source")
                continue
            groups.setdefault(venue, []).append(i)

        async def run_group(venue: str, idx: list[int]) -> None:
            state = self._venues[venue]
            async with state.lock:
                out = await per_venue(state, [requests[i][1] for i in idx])
            for i, r in zip(idx, out):
                results[i] = r

        await asyncio.gather(*(run_group(v, idx) for v, idx in groups.items()))
        return results  # type: ignore[return-value]  # every slot is filled by now

    async def _call(
        self,
        state: _Venue,
        what: str,
        make_call: Callable[[], Awaitable[Any]],
        parse: Callable[[Any], T] | None = None,
    ) -> T:
        """Run one ccxt call (and ``parse`` its answer) with retries and exponential backoff.

        Raises :class:`_FetchFailure` with a reason code once the failure is final. A payload
        that ``parse`` rejects is a venue fault but is not retried (the venue would send the
        same garbage again).
        """
        max_retries = int(self._ccxt_cfg.max_retries)
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                raw = await make_call()
                result = parse(raw) if parse is not None else raw
            except _FetchFailure as exc:
                self._record_latency(state, started)
                self._record_error(state, exc.reason, what, exc.detail)
                raise
            except Exception as exc:  # noqa: BLE001 - classified below, unknown ones re-raised
                self._record_latency(state, started)
                verdict = classify_error(exc)
                if verdict is None:
                    raise
                reason, retryable, venue_fault = verdict
                message = self._redact(f"{type(exc).__name__}: {exc}")
                if venue_fault:
                    self._record_error(state, reason, what, message)
                if not retryable or attempt >= max_retries:
                    tries = f" after {attempt + 1} attempts" if attempt else ""
                    raise _FetchFailure(reason, self._redact(f"{state.name} {what} failed{tries} ({reason}): {message}")) from None
                delay = min(float(self._ccxt_cfg.backoff_base_s) * (2.0**attempt), float(self._ccxt_cfg.backoff_max_s))
                attempt += 1
                state.health.retries += 1
                self.backoff_log.append((state.name, delay))
                log.info("%s %s: %s; retry %d/%d in %.2fs", state.name, what, reason, attempt, max_retries, delay)
                await self._sleep(delay)
            else:
                self._record_latency(state, started)
                return result

    @staticmethod
    def _record_latency(state: _Venue, started: float) -> None:
        state.health.latencies_ms.append((time.perf_counter() - started) * 1000.0)

    def _record_error(self, state: _Venue, reason: str, what: str, message: str) -> None:
        state.health.errors += 1
        state.health.last_error = self._redact(f"{reason}: {what}: {message}")

    # ---- markets ----------------------------------------------------------------------------

    async def _ensure_markets(self, state: _Venue) -> dict[str, _VenueMarket]:
        """The venue's canonical markets, loading them (once) on first use."""
        if state.markets is None:
            await self._call(state, "load_markets", lambda: state.exchange.load_markets())
            state.markets = self._map_markets(state.name, state.exchange.markets or {})
        return state.markets

    def _map_markets(self, venue: str, ccxt_markets: Mapping[str, Mapping[str, Any]]) -> dict[str, _VenueMarket]:
        """Spot markets quoted in a USD-like quote → canonical ``BASE/USD``.

        When a venue lists one base against several USD-like quotes, the quote earlier in
        ``usd_quotes`` wins (USD before USDT/USDC), then the active one.
        """
        best: dict[str, tuple[tuple[int, int], _VenueMarket]] = {}
        for m in ccxt_markets.values():
            quote, base = m.get("quote"), m.get("base")
            if not m.get("spot") or quote not in self._usd_quotes or not base:
                continue
            active = m.get("active") is not False
            info = MarketInfo(
                venue=venue,
                symbol=f"{base}/USD",
                native_symbol=self._native_symbol(m),
                base=str(base),
                quote=str(quote),
                active=active,
                listed_at=_ms_to_datetime(m.get("created")),
            )
            rank = (self._usd_quotes.index(quote), 0 if active else 1)
            current = best.get(info.symbol)
            if current is None or rank < current[0]:
                best[info.symbol] = (rank, _VenueMarket(info=info, ccxt_symbol=str(m["symbol"])))
        return {sym: vm for sym, (_, vm) in sorted(best.items())}

    @staticmethod
    def _native_symbol(market: Mapping[str, Any]) -> str:
        """How the venue spells the pair: kraken's ``wsname`` (``XBT/USD``) or the market id."""
        info = market.get("info") or {}
        return str(info.get("wsname") or market.get("id") or market.get("symbol"))

    async def _markets_or_failures(self, state: _Venue, symbols: Sequence[str], kind: str):
        """(markets, None) or (None, one failure result per symbol) when markets cannot load."""
        before = state.http_requests
        try:
            return await self._ensure_markets(state), None
        except _FetchFailure as exc:
            cost = state.http_requests - before
            return None, [
                FetchResult(state.name, s, None, error=exc.reason, detail=f"{kind}: markets unavailable: {exc.detail}",
                            requests=cost if i == 0 else 0)
                for i, s in enumerate(symbols)
            ]

    def _unlisted(self, state: _Venue, symbol: str) -> FetchResult:
        return FetchResult(state.name, symbol, None, error="bad_symbol", detail=f"{state.name} lists no spot market for {symbol}")

    @staticmethod
    def _skipped(state: _Venue, symbol: str, cause: FetchResult) -> FetchResult:
        return FetchResult(state.name, symbol, None, error=cause.error,
                           detail=f"skipped: {state.name} failed earlier in this batch ({cause.error})")

    async def _per_symbol(self, state: _Venue, symbols: Sequence[str], markets, one) -> list[FetchResult]:
        """Sequential per-symbol work with a breaker: once the venue itself fails, stop asking it."""
        out: list[FetchResult] = []
        tripped: FetchResult | None = None
        for symbol in symbols:
            vm = markets.get(symbol)
            if vm is None:
                out.append(self._unlisted(state, symbol))
            elif tripped is not None:
                out.append(self._skipped(state, symbol, tripped))
            else:
                result = await one(vm)
                if result.error in VENUE_LEVEL_ERRORS:
                    tripped = result
                out.append(result)
        return out

    # ---- TTL cache --------------------------------------------------------------------------

    def _cache_get(self, key: tuple, as_of: datetime) -> tuple[Any, float] | None:
        """A live cached answer taken for a cycle at or before ``as_of`` (never a later one)."""
        if self.cache_ttl_s <= 0:
            return None
        hit = self._ttl_cache.get(key, self._clock())
        if hit is None:
            return None
        (taken_for, value), remaining = hit
        return (value, remaining) if taken_for <= as_of else None

    def _cache_put(self, key: tuple, value: Any, as_of: datetime) -> None:
        if self.cache_ttl_s > 0:
            self._ttl_cache.put(key, (as_of, value), self.cache_ttl_s, self._clock())

    # ---- OHLCV ------------------------------------------------------------------------------

    async def _venue_ohlcv(self, state: _Venue, symbols: Sequence[str], as_of: datetime, timeframe: Timeframe, limit: int):
        markets, failures = await self._markets_or_failures(state, symbols, "ohlcv")
        if failures is not None:
            return failures
        return await self._per_symbol(state, symbols, markets, lambda vm: self._one_ohlcv(state, vm, as_of, timeframe, limit))

    async def _one_ohlcv(self, state: _Venue, vm: _VenueMarket, as_of: datetime, timeframe: Timeframe, limit: int) -> FetchResult:
        symbol = vm.info.symbol
        key = ("ohlcv", state.name, symbol, timeframe, int(limit))
        cached = self._cache_get(key, as_of)
        if cached is not None:
            frame, remaining = cached
            # the cache keeps its frame: every answer gets a copy of its own
            return self._bars_result(state, symbol, frame.copy(), as_of, timeframe, from_cache=True, ttl=remaining, requests=0, latency=0.0)
        before, started = state.http_requests, time.perf_counter()
        try:
            frame = await self._incremental_bars(state, vm, as_of, timeframe, limit)
        except _FetchFailure as exc:
            return FetchResult(state.name, symbol, None, error=exc.reason, detail=exc.detail,
                               latency_ms=(time.perf_counter() - started) * 1000.0, requests=state.http_requests - before)
        cost = state.http_requests - before
        latency = (time.perf_counter() - started) * 1000.0
        if len(frame) == 0:
            return FetchResult(state.name, symbol, None, error="no_data", latency_ms=latency, requests=cost,
                               detail=f"{state.name} served no closed {timeframe} bars for {symbol} up to {as_of.isoformat()}")
        if self.cache_ttl_s > 0:
            self._cache_put(key, frame.copy(), as_of)  # the answer below hands `frame` itself out
        # answered from the local bar store alone: "cached" until the next bar closes
        local_ttl = seconds_to_next_close(as_of, timeframe) if cost == 0 else None
        return self._bars_result(state, symbol, frame, as_of, timeframe, from_cache=cost == 0, ttl=local_ttl, requests=cost, latency=latency)

    @staticmethod
    def _bars_result(state, symbol, frame, as_of, timeframe, *, from_cache, ttl, requests, latency) -> FetchResult:
        """The answer for ``frame``, which the caller hands over (a frame of its own, never the store's or the cache's)."""
        newest = frame["timestamp"].array[-1]
        stamped = (newest + TIMEFRAME_DELTA[timeframe]).to_pydatetime()
        return FetchResult(state.name, symbol, frame, stamped_at=min(stamped, as_of), from_cache=from_cache,
                           ttl_remaining_s=ttl, latency_ms=latency, requests=requests)

    async def _incremental_bars(self, state: _Venue, vm: _VenueMarket, as_of: datetime, timeframe: Timeframe, limit: int) -> pd.DataFrame:
        """The newest ``limit`` closed bars at ``as_of``, asking the venue only for what the
        store lacks (bars newer than its newest, or the whole window when it does not reach back)."""
        # open times as int64 ns: this runs once per (venue, symbol) every cycle
        step_ns = pd.Timedelta(TIMEFRAME_DELTA[timeframe]).value
        first_open, last_open = bar_window(as_of, timeframe, int(limit))
        store = self._load_store(state.name, vm.info.symbol, timeframe)
        if store is not None and len(store.stamps) and store.covered_from <= first_open:
            next_open = int(store.stamps[-1]) + step_ns
            since = max(next_open, first_open.value)
            covered_from = store.covered_from if since == next_open else first_open
        else:
            since, covered_from = first_open.value, first_open
        if since <= last_open.value:
            fresh = await self._fetch_bar_pages(state, vm, pd.Timestamp(since, tz="UTC"), last_open, timeframe)
            merged = pd.concat([store.bars if store is not None else empty_bars(), fresh], ignore_index=True)
            merged = merged.drop_duplicates("timestamp", keep="last").sort_values("timestamp").iloc[-MAX_STORED_BARS:]
            store = _BarStore(bars=merged.reset_index(drop=True), covered_from=covered_from)
            self._save_store(state.name, vm.info.symbol, timeframe, store)
        if store is None:
            return empty_bars()
        # the store is sorted by time without duplicates or NaT: the window is one slice of it
        lo = int(np.searchsorted(store.stamps, first_open.value, side="left"))
        hi = int(np.searchsorted(store.stamps, last_open.value, side="right"))
        return store.bars.iloc[max(lo, hi - int(limit)):hi].reset_index(drop=True)  # a copy: the store stays the store's

    async def _fetch_bar_pages(self, state: _Venue, vm: _VenueMarket, since: pd.Timestamp, last_open: pd.Timestamp, timeframe: Timeframe) -> pd.DataFrame:
        """Closed bars from ``since`` to ``last_open``, page by page (``since=`` walks forward)."""
        step = TIMEFRAME_DELTA[timeframe]
        page_size = MAX_BARS_PER_REQUEST.get(state.name, DEFAULT_BARS_PER_REQUEST)
        wanted = int((last_open - since) / step) + 1
        max_pages = math.ceil(wanted / page_size) + 1  # bound: a venue that never advances cannot loop us
        what = f"OHLCV {vm.info.symbol}"
        pages: list[pd.DataFrame] = []
        cursor = since
        for _ in range(max_pages):
            frame = await self._call(
                state,
                what,
                lambda c=cursor: state.exchange.fetch_ohlcv(vm.ccxt_symbol, timeframe, since=_ms(c), limit=page_size),
                lambda rows, c=cursor: self._closed_page(rows, c, last_open, f"{state.name} {what}"),
            )
            if frame.empty:
                break
            pages.append(frame)
            newest = frame["timestamp"].iloc[-1]
            if newest >= last_open:
                break
            cursor = newest + step
        return pd.concat(pages, ignore_index=True) if pages else empty_bars()

    @staticmethod
    def _closed_page(rows: Any, cursor: pd.Timestamp, last_open: pd.Timestamp, what: str) -> pd.DataFrame:
        """One OHLCV answer reduced to validated closed bars from ``cursor`` on.

        The venue's still-open bar (and anything before the cursor) is dropped before
        validation, so a half-built live candle can never poison the stored history.
        """
        frame = ohlcv_frame(rows)
        frame = frame[frame["timestamp"].isna() | ((frame["timestamp"] >= cursor) & (frame["timestamp"] <= last_open))]
        return validate_bars(frame, what)

    # ---- on-disk bar store ------------------------------------------------------------------

    def _store_path(self, venue: str, symbol: str, timeframe: str) -> Path | None:
        if self._bar_dir is None:
            return None
        # symbols come from the venue's market list: never let one name a path outside the cache dir
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", symbol.replace("/", "-")).lstrip(".") or "_"
        return safe_join(self._bar_dir, venue, f"{safe}_{timeframe}.parquet")

    def _load_store(self, venue: str, symbol: str, timeframe: str) -> _BarStore | None:
        key = (venue, symbol, timeframe)
        if key in self._bars:
            return self._bars[key]
        path = self._store_path(venue, symbol, timeframe)
        if path is None or not path.exists():
            return None
        try:
            table = pq.read_table(path)
            covered = (table.schema.metadata or {}).get(b"covered_from")
            bars = table.to_pandas()
            bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True)
            bars = bars[list(BAR_COLUMNS)].astype({c: float for c in BAR_COLUMNS[1:]})
            # the store's invariant (what _incremental_bars slices by): time order, one bar per time, no NaT
            bars = bars.dropna(subset=["timestamp"]).drop_duplicates("timestamp", keep="last").sort_values("timestamp")
            store = _BarStore(bars=bars.reset_index(drop=True),
                              covered_from=pd.Timestamp(covered.decode()) if covered else bars["timestamp"].min())
        except Exception as exc:  # noqa: BLE001 - a damaged cache file is just a cache miss
            log.warning("ignoring unreadable OHLCV cache file %s: %s", path, type(exc).__name__)
            return None
        self._bars[key] = store
        return store

    def _save_store(self, venue: str, symbol: str, timeframe: str, store: _BarStore) -> None:
        self._bars[(venue, symbol, timeframe)] = store
        path = self._store_path(venue, symbol, timeframe)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_pandas(store.bars, preserve_index=False)
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"covered_from": store.covered_from.isoformat().encode()})
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            try:
                pq.write_table(table, tmp)
                os.replace(tmp, path)  # readers never see half a file
            finally:
                Path(tmp).unlink(missing_ok=True)
        except OSError as exc:  # the disk cache is an optimisation; the cycle goes on without it
            log.warning("cannot write OHLCV cache file %s: %s", path, exc.strerror)

    # ---- order books ------------------------------------------------------------------------

    async def _venue_books(self, state: _Venue, symbols: Sequence[str], as_of: datetime, depth: int):
        markets, failures = await self._markets_or_failures(state, symbols, "book")
        if failures is not None:
            return failures
        return await self._per_symbol(state, symbols, markets, lambda vm: self._one_book(state, vm, as_of, depth))

    async def _one_book(self, state: _Venue, vm: _VenueMarket, as_of: datetime, depth: int) -> FetchResult:
        symbol = vm.info.symbol
        key = ("book", state.name, symbol, int(depth))
        cached = self._cache_get(key, as_of)
        if cached is not None:
            book, remaining = cached
            return FetchResult(state.name, symbol, book, stamped_at=book.timestamp, from_cache=True, ttl_remaining_s=remaining)
        before, started = state.http_requests, time.perf_counter()
        what = f"order book {symbol}"
        try:
            book = await self._call(state, what, lambda: state.exchange.fetch_order_book(vm.ccxt_symbol, int(depth)),
                                    lambda raw: self._book(raw, depth, f"{state.name} {what}"))
        except _FetchFailure as exc:
            return FetchResult(state.name, symbol, None, error=exc.reason, detail=exc.detail,
                               latency_ms=(time.perf_counter() - started) * 1000.0, requests=state.http_requests - before)
        cost, latency = state.http_requests - before, (time.perf_counter() - started) * 1000.0
        if len(book.bids) == 0 and len(book.asks) == 0:
            return FetchResult(state.name, symbol, None, error="no_book", detail=f"{state.name} returned an empty book for {symbol}",
                               latency_ms=latency, requests=cost)
        self._cache_put(key, book, as_of)
        return FetchResult(state.name, symbol, book, stamped_at=book.timestamp, latency_ms=latency, requests=cost)

    def _book(self, raw: Mapping[str, Any], depth: int, what: str) -> OrderBook:
        """Sorted, validated, depth-trimmed book stamped with the venue's time (or receipt time)."""
        try:
            bids = book_side(raw.get("bids"), descending=True)
            asks = book_side(raw.get("asks"), descending=False)
        except (TypeError, ValueError) as exc:
            raise _FetchFailure("bad_response", f"{what}: malformed levels ({type(exc).__name__})") from None
        validate_book(bids, asks, what)
        stamp = _ms_to_datetime(raw.get("timestamp")) or self._now()
        return OrderBook(bids=bids[: int(depth)], asks=asks[: int(depth)], timestamp=to_utc(stamp))

    # ---- tickers ----------------------------------------------------------------------------

    async def _venue_tickers(self, state: _Venue, symbols: Sequence[str], as_of: datetime):
        markets, failures = await self._markets_or_failures(state, symbols, "ticker")
        if failures is not None:
            return failures
        results: dict[int, FetchResult] = {}
        misses: list[tuple[int, _VenueMarket]] = []
        for i, symbol in enumerate(symbols):
            vm = markets.get(symbol)
            cached = self._cache_get(("ticker", state.name, symbol), as_of) if vm is not None else None
            if vm is None:
                results[i] = self._unlisted(state, symbol)
            elif cached is not None:
                (ticker, stamped), remaining = cached
                results[i] = FetchResult(state.name, symbol, ticker, stamped_at=stamped, from_cache=True, ttl_remaining_s=remaining)
            else:
                misses.append((i, vm))
        if misses and state.exchange.has.get("fetchTickers"):
            results.update(await self._bulk_tickers(state, misses, as_of))
        elif misses:
            fetched = await self._per_symbol(state, [vm.info.symbol for _, vm in misses], markets,
                                             lambda vm: self._one_ticker(state, vm, as_of))
            results.update({i: r for (i, _), r in zip(misses, fetched)})
        return [results[i] for i in range(len(symbols))]

    async def _bulk_tickers(self, state: _Venue, misses: list[tuple[int, _VenueMarket]], as_of: datetime) -> dict[int, FetchResult]:
        """One ``fetch_tickers`` request for all missing symbols; its cost goes on the first result."""
        before, started = state.http_requests, time.perf_counter()
        try:
            raw = await self._call(state, "tickers", lambda: state.exchange.fetch_tickers([vm.ccxt_symbol for _, vm in misses]))
        except _FetchFailure as exc:
            cost = state.http_requests - before
            return {i: FetchResult(state.name, vm.info.symbol, None, error=exc.reason, detail=exc.detail,
                                   requests=cost if n == 0 else 0) for n, (i, vm) in enumerate(misses)}
        cost, latency = state.http_requests - before, (time.perf_counter() - started) * 1000.0
        out: dict[int, FetchResult] = {}
        for n, (i, vm) in enumerate(misses):
            result = self._ticker_result(state, vm, (raw or {}).get(vm.ccxt_symbol), as_of)
            out[i] = dataclasses.replace(result, requests=cost if n == 0 else 0, latency_ms=latency)
        return out

    async def _one_ticker(self, state: _Venue, vm: _VenueMarket, as_of: datetime) -> FetchResult:
        before = state.http_requests
        try:
            raw = await self._call(state, f"ticker {vm.info.symbol}", lambda: state.exchange.fetch_ticker(vm.ccxt_symbol))
        except _FetchFailure as exc:
            return FetchResult(state.name, vm.info.symbol, None, error=exc.reason, detail=exc.detail, requests=state.http_requests - before)
        return dataclasses.replace(self._ticker_result(state, vm, raw, as_of), requests=state.http_requests - before)

    def _ticker_result(self, state: _Venue, vm: _VenueMarket, raw: Mapping[str, Any] | None, as_of: datetime) -> FetchResult:
        symbol = vm.info.symbol
        if not raw:
            return FetchResult(state.name, symbol, None, error="no_data", detail=f"{state.name} returned no ticker for {symbol}")
        try:
            ticker = ticker_from_ccxt(raw, f"{state.name} ticker {symbol}")
        except _FetchFailure as exc:
            self._record_error(state, exc.reason, f"ticker {symbol}", exc.detail)
            return FetchResult(state.name, symbol, None, error=exc.reason, detail=exc.detail)
        stamped = to_utc(_ms_to_datetime(raw.get("timestamp")) or self._now())
        self._cache_put(("ticker", state.name, symbol), (ticker, stamped), as_of)
        return FetchResult(state.name, symbol, ticker, stamped_at=stamped)
