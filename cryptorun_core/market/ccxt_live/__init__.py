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
  ``rate_limited``, ``bad_response``); ``BadSymbol`` is ``bad_symbol``; a malformed book or
  ticker is ``bad_response`` for that symbol only. Bars are passed on as served (closed ones, in
  time order): :mod:`cryptorun_core.quality` drops just a bad bar with its reason code.

The synchronous :class:`MarketSource` methods run the async work on an event loop owned by the
instance, in a background thread, so ccxt's HTTP sessions are reused across calls and cycles.

Modules: :mod:`.market` (the source), :mod:`.errors` (reason codes), :mod:`.payloads` (ccxt
answers → frames, books, tickers, markets), :mod:`.bar_store` (incremental OHLCV store),
:mod:`.loop` (the loop thread), :mod:`.credentials` (env credentials and their redaction).
"""

from __future__ import annotations

from cryptorun_core.market.ccxt_live.bar_store import MAX_STORED_BARS, BarStore
from cryptorun_core.market.ccxt_live.credentials import NO_CREDENTIALS_VENUES, Redactor, credentials_from_env
from cryptorun_core.market.ccxt_live.errors import VENUE_LEVEL_ERRORS, FetchFailure, VenueUnavailable, classify_error
from cryptorun_core.market.ccxt_live.market import VENUE_IDS, CcxtMarket
from cryptorun_core.market.ccxt_live.ohlcv import DEFAULT_BARS_PER_REQUEST, MAX_BARS_PER_REQUEST
from cryptorun_core.market.ccxt_live.payloads import (
    bar_window, book_side, floor_time, last_closed_open, ohlcv_frame, seconds_to_next_close, sorted_bars, ticker_from_ccxt,
    validate_book,
)

__all__ = [
    "BarStore", "CcxtMarket", "DEFAULT_BARS_PER_REQUEST", "FetchFailure", "MAX_BARS_PER_REQUEST", "MAX_STORED_BARS",
    "NO_CREDENTIALS_VENUES", "Redactor", "VENUE_IDS", "VENUE_LEVEL_ERRORS", "VenueUnavailable", "bar_window", "book_side",
    "classify_error", "credentials_from_env", "floor_time", "last_closed_open", "ohlcv_frame", "seconds_to_next_close",
    "sorted_bars", "ticker_from_ccxt", "validate_book",
]
