"""The ccxt source itself: one ccxt exchange per venue, requests per venue in sequence (venues at
once), retries with backoff, a TTL cache and the incremental bar store (see the package docstring)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Awaitable, Callable, Mapping, Sequence, TypeVar

import ccxt.async_support as ccxt_async
import pandas as pd

from cryptorun_core.config import KNOWN_VENUES, AppConfig, JobConfig, MarketConfig, packaged_config
from cryptorun_core.market.base import (
    TIMEFRAME_DELTA,
    FetchResult,
    MarketInfo,
    MarketSource,
    OrderBook,
    Ticker,
    Timeframe,
    VenueHealth,
)
from cryptorun_core.market.cache import TTLCache
from cryptorun_core.market.ccxt_live.bar_store import BarStores
from cryptorun_core.market.ccxt_live.credentials import CREDENTIAL_FIELDS, NO_CREDENTIALS_VENUES, Redactor, credentials_from_env
from cryptorun_core.market.ccxt_live.errors import VENUE_LEVEL_ERRORS, FetchFailure, VenueUnavailable, classify_error
from cryptorun_core.market.ccxt_live.loop import LoopThread
from cryptorun_core.market.ccxt_live.ohlcv import OhlcvRequests
from cryptorun_core.market.ccxt_live.payloads import (
    book_side, map_markets, ms_to_datetime, ticker_from_ccxt,
    validate_book,
)
from cryptorun_core.market.ratelimit import Clock, RateLimiter, Sleep
from cryptorun_core.timefmt import to_utc, utcnow

log = logging.getLogger("cryptorun_core.market.ccxt_live")

T = TypeVar("T")

#: ccxt exchange id of each venue.
VENUE_IDS: dict[str, str] = {"kraken": "kraken", "okx": "okx", "coinbase": "coinbase"}
_DETAIL_MAX_CHARS = 240


@dataclass
class _VenueMarket:
    info: MarketInfo
    ccxt_symbol: str  # what ccxt is called with (its unified symbol, e.g. "BTC/USDT")


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


class CcxtMarket(OhlcvRequests, MarketSource):
    """Live venue-native market data (kraken, okx, coinbase) through ccxt's async clients.

    ``exchanges`` lets tests inject pre-built ``ccxt.async_support`` objects (whose ``fetch``
    they replace); otherwise one is built per venue. ``clock``/``sleep`` drive both the rate
    limiters and the retry backoff (and ``clock`` the TTL cache), ``now`` stamps books and
    tickers the venue did not time-stamp; all default to the real thing.
    """

    name = "ccxt"
    costly_books = True

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
        self._now = now or utcnow
        self.cache_ttl_s = float(cache_ttl_s)
        self.request_rate_per_s = float(request_rate_per_s)
        self._ttl_cache: TTLCache[tuple, tuple[datetime, Any]] = TTLCache(market_cfg.cache.max_entries)
        self._bars = BarStores(ohlcv_cache_dir)
        self.backoff_log: list[tuple[str, float]] = []  # (venue, seconds) of every retry backoff
        self._redactor = Redactor()
        self._loop: LoopThread | None = None
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
        self._redactor.add(*creds.values())
        if creds and venue in NO_CREDENTIALS_VENUES:
            # public endpoints only: these keys would make ccxt call private ones
            log.warning("%s: configured API credentials are not used (public endpoints only)", venue)
            creds = {}
        klass = getattr(ccxt_async, VENUE_IDS[venue])
        return klass({"enableRateLimit": True, "timeout": int(self._ccxt_cfg.timeout_ms), **creds})

    def _prepare_venue(self, venue: str, exchange: Any) -> _Venue:
        """Wire the exchange to our limiter/meter and trim what load_markets asks for."""
        self._redactor.add(*(getattr(exchange, attr, None) for attr in CREDENTIAL_FIELDS))
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
        except FetchFailure as exc:
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
            f"request_rate_per_s={self.request_rate_per_s:g}, ohlcv_cache_dir={str(self._bars.directory) if self._bars.directory else None!r})"
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
            self._loop = LoopThread()
        return self._loop.run(coro)

    def _venue(self, venue: str) -> _Venue:
        try:
            return self._venues[venue]
        except KeyError:
            raise ValueError(f"venue '{venue}' is not configured for this source ({', '.join(self._venue_names)})") from None

    def _redact(self, text: str) -> str:
        """Remove every echo of a credential from a message (:class:`Redactor`), then keep it short."""
        text = self._redactor(text)
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

        Raises :class:`FetchFailure` with a reason code once the failure is final. A payload
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
            except FetchFailure as exc:
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
                    raise FetchFailure(reason, self._redact(f"{state.name} {what} failed{tries} ({reason}): {message}")) from None
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
            state.markets = {sym: _VenueMarket(info, ccxt_symbol) for sym, (info, ccxt_symbol)
                             in map_markets(state.name, state.exchange.markets or {}, self._usd_quotes).items()}
        return state.markets

    async def _markets_or_failures(self, state: _Venue, symbols: Sequence[str], kind: str):
        """(markets, None) or (None, one failure result per symbol) when markets cannot load."""
        before = state.http_requests
        try:
            return await self._ensure_markets(state), None
        except FetchFailure as exc:
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
        except FetchFailure as exc:
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
            raise FetchFailure("bad_response", f"{what}: malformed levels ({type(exc).__name__})") from None
        validate_book(bids, asks, what)
        stamp = ms_to_datetime(raw.get("timestamp")) or self._now()
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
        except FetchFailure as exc:
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
        except FetchFailure as exc:
            return FetchResult(state.name, vm.info.symbol, None, error=exc.reason, detail=exc.detail, requests=state.http_requests - before)
        return dataclasses.replace(self._ticker_result(state, vm, raw, as_of), requests=state.http_requests - before)

    def _ticker_result(self, state: _Venue, vm: _VenueMarket, raw: Mapping[str, Any] | None, as_of: datetime) -> FetchResult:
        symbol = vm.info.symbol
        if not raw:
            return FetchResult(state.name, symbol, None, error="no_data", detail=f"{state.name} returned no ticker for {symbol}")
        try:
            ticker = ticker_from_ccxt(raw, f"{state.name} ticker {symbol}")
        except FetchFailure as exc:
            self._record_error(state, exc.reason, f"ticker {symbol}", exc.detail)
            return FetchResult(state.name, symbol, None, error=exc.reason, detail=exc.detail)
        stamped = to_utc(ms_to_datetime(raw.get("timestamp")) or self._now())
        self._cache_put(("ticker", state.name, symbol), (ticker, stamped), as_of)
        return FetchResult(state.name, symbol, ticker, stamped_at=stamped)
