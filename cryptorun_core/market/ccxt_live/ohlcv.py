"""OHLCV requests of the ccxt source: the TTL cache, then the incremental bar store, then the venue
for only the bars the store lacks, page by page (``since=`` walks forward). Only closed bars are
stored or served; a bad bar is served as the venue sent it, for :mod:`cryptorun_core.quality`."""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from cryptorun_core.market.base import TIMEFRAME_DELTA, FetchResult, Timeframe, empty_bars
from cryptorun_core.market.ccxt_live.bar_store import MAX_STORED_BARS, BarStore
from cryptorun_core.market.ccxt_live.errors import FetchFailure
from cryptorun_core.market.ccxt_live.payloads import bar_window, ms, ohlcv_frame, seconds_to_next_close, sorted_bars

if TYPE_CHECKING:  # pragma: no cover
    from cryptorun_core.market.ccxt_live.market import _Venue, _VenueMarket

#: Most bars one OHLCV request returns (kraken: its last 720; okx candles and coinbase: 300).
MAX_BARS_PER_REQUEST: dict[str, int] = {"kraken": 720, "okx": 300, "coinbase": 300}
DEFAULT_BARS_PER_REQUEST = 300


class OhlcvRequests:
    """The OHLCV half of :class:`~cryptorun_core.market.ccxt_live.market.CcxtMarket` (which provides
    the venues, the cache, the bar store and the retrying ``_call``)."""

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
        except FetchFailure as exc:
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
        store = self._bars.load(state.name, vm.info.symbol, timeframe)
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
            store = BarStore(bars=merged.reset_index(drop=True), covered_from=covered_from)
            self._bars.save(state.name, vm.info.symbol, timeframe, store)
        if store is None:
            return empty_bars()
        # the store is sorted by time without duplicates or NaT: the window is one slice of it
        lo = int(np.searchsorted(store.stamps, first_open.value, side="left"))
        hi = int(np.searchsorted(store.stamps, last_open.value, side="right"))
        return store.bars.iloc[max(lo, hi - int(limit)):hi].reset_index(drop=True)  # a copy: the store stays the store's

    async def _fetch_bar_pages(self, state: _Venue, vm: _VenueMarket, since: pd.Timestamp, last_open: pd.Timestamp,
                               timeframe: Timeframe) -> pd.DataFrame:
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
                lambda c=cursor: state.exchange.fetch_ohlcv(vm.ccxt_symbol, timeframe, since=ms(c), limit=page_size),
                lambda rows, c=cursor: self._closed_page(rows, c, last_open),
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
    def _closed_page(rows: Any, cursor: pd.Timestamp, last_open: pd.Timestamp) -> pd.DataFrame:
        """One OHLCV answer reduced to the closed bars from ``cursor`` on (:func:`sorted_bars`).

        The venue's still-open bar (and anything before the cursor) is dropped, so a half-built
        live candle never enters the stored history. A bar with a bad value is kept as served:
        :func:`cryptorun_core.quality.sanitize_bars` drops just that bar with its reason code
        every cycle that reads it, instead of the whole answer being lost.
        """
        frame = ohlcv_frame(rows)
        frame = frame[frame["timestamp"].isna() | ((frame["timestamp"] >= cursor) & (frame["timestamp"] <= last_open))]
        return sorted_bars(frame)
