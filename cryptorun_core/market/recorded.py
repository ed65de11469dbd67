"""Replay of a recording (:mod:`cryptorun_core.market.recording`) as a :class:`MarketSource`.

A replayed cycle at T reads what the live cycle at T read (SPEC §3, issue #17):

- **books**: the book the live cycle at T recorded for the (venue, symbol), with its own venue
  timestamp (``collect_snapshot`` then applies the live grace rule to it, exactly as it did live).
  For a T no live cycle recorded, the newest recorded book a live cycle at T could have used: taken
  at most ``fresh_max_book_age_s`` before T or at most the live grace (:data:`LIVE_BOOK_GRACE_S`)
  after it; never a later one. A request the live cycle at T saw fail fails with the same reason.
- **bars**: closed bars (open + 1 h ≤ T), each in the newest version recorded at or before T (a bar
  first recorded later is served as first recorded), the newest ``limit`` of them.
- **markets**: the newest listing recorded at or before T (else the first one recorded).

Offline: no requests, no health accounting. ``costly_books`` is true so the hot cycle skips the
books the live run skipped (the bound is a function of the bars, which are the live run's).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from cryptorun_core.market.base import (
    BAR_COLUMNS,
    TIMEFRAME_DELTA,
    FetchResult,
    MarketDataError,
    MarketInfo,
    MarketSource,
    OrderBook,
    Ticker,
    Timeframe,
    empty_bars,
    to_utc,
)
from cryptorun_core.market.recording import FORMAT, MARKER, part_files, read_part
from cryptorun_core.market.snapshot import LIVE_BOOK_GRACE_S

_NS = 10**9


class RecordedListingError(MarketDataError):
    """The venue's listing failed in the recorded live cycle at T (``reason`` is its code)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


class RecordedMarket(MarketSource):
    """A recording folder served as the venues it recorded."""

    name = "recording"
    costly_books = True

    def __init__(self, path: str | os.PathLike[str], venues: Sequence[str] | None = None, *,
                 max_book_age_s: float, book_grace_s: float = LIVE_BOOK_GRACE_S):
        self.path = Path(path)
        marker = self.path / MARKER
        if not marker.is_file():
            raise ValueError(f"{self.path} is not a recording (no {MARKER})")
        if json.loads(marker.read_text()).get("format") != FORMAT:
            raise ValueError(f"{marker}: not a CryptoRun recording")
        self.max_book_age_s = float(max_book_age_s)
        self.book_grace_s = float(book_grace_s)
        self._lock = threading.Lock()
        self._tables: dict[str, pd.DataFrame] = {}
        recorded = list(dict.fromkeys(self._table("markets")["venue"].astype(str)))
        self._venues = tuple(venues) if venues is not None else tuple(recorded)
        self._pairs: dict[tuple[str, str, str], pd.DataFrame] | None = None
        self._days: dict[tuple[str, str], pd.DataFrame] = {}
        self._near_cache: dict[tuple, dict] = {}

    # -- reading ------------------------------------------------------------------------------

    def _table(self, name: str) -> pd.DataFrame:
        with self._lock:
            if name not in self._tables:
                files = part_files(self.path, name)
                frames = [read_part(p) for p in files]
                frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
                for c in ("recorded_for", "timestamp", "book_time", "fetched_at", "listed_at"):
                    if c in frame.columns:
                        frame[c] = pd.to_datetime(frame[c], utc=True).astype("datetime64[ns, UTC]")
                self._tables[name] = frame
            return self._tables[name]

    def _near(self, name: str, as_of: datetime) -> dict[tuple[str, str], pd.DataFrame]:
        """Rows of ``name`` (books or failures, partitioned by the day of their cycle) from the day
        before T to the day after, by (venue, symbol): the only cycles whose books T can use."""
        t = pd.Timestamp(as_of)
        days = [(t + pd.Timedelta(days=d)).strftime("%Y-%m-%d") for d in (-1, 0, 1)]
        parts = [self._day(name, d) for d in days]
        key = (name, tuple(days))
        with self._lock:
            hit = self._near_cache.get(key)
        if hit is None:
            frames = [p for p in parts if len(p)]
            frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
            hit = {tuple(map(str, k)): g for k, g in frame.groupby(["venue", "symbol"], sort=False)} if len(frame) else {}
            with self._lock:
                self._near_cache = {key: hit, **{k: v for k, v in self._near_cache.items() if k[0] != name}}
        return hit

    def _day(self, name: str, day: str) -> pd.DataFrame:
        key = (name, day)
        with self._lock:
            if key in self._days:
                return self._days[key]
        files = sorted((self.path / name / f"day={day}").glob("part-*.parquet"))
        frames = [read_part(p) for p in files]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        for c in ("recorded_for", "book_time", "fetched_at"):
            if c in frame.columns:
                frame[c] = pd.to_datetime(frame[c], utc=True).astype("datetime64[ns, UTC]")
        with self._lock:
            self._days[key] = frame
            while len(self._days) > 8:  # a replay walks forward in time: keep the recent days only
                self._days.pop(next(iter(self._days)))
        return frame

    def _bar_pairs(self) -> dict[tuple[str, str, str], pd.DataFrame]:
        if self._pairs is None:
            bars = self._table("bars")
            pairs: dict[tuple[str, str, str], pd.DataFrame] = {}
            if len(bars):
                bars = bars.sort_values(["venue", "symbol", "timeframe", "timestamp", "recorded_for"], kind="stable")
                for key, frame in bars.groupby(["venue", "symbol", "timeframe"], sort=False):
                    pairs[tuple(map(str, key))] = frame.reset_index(drop=True)
            self._pairs = pairs
        return self._pairs

    def _failure(self, venue: str, symbol: str, kind: str, as_of: datetime) -> pd.Series | None:
        f = self._near("failures", as_of).get((venue, symbol))
        if f is None:
            return None
        hit = f[(f["recorded_for"] == pd.Timestamp(as_of)) & (f["kind"] == kind)]
        return None if hit.empty else hit.iloc[-1]

    # -- MarketSource -------------------------------------------------------------------------

    @property
    def venues(self) -> tuple[str, ...]:
        return self._venues

    def list_markets(self, venue: str, as_of: datetime) -> list[MarketInfo]:
        as_of = to_utc(as_of)
        failed = self._failure(venue, "*", "markets", as_of)
        if failed is not None:
            raise RecordedListingError(str(failed["error"]), str(failed["detail"]))
        m = self._table("markets")
        mine = m[m["venue"] == venue] if len(m) else m
        if mine.empty:
            raise ValueError(f"recording {self.path} holds no market listing of venue '{venue}'")
        times = mine["recorded_for"]
        earlier = times[times <= pd.Timestamp(as_of)]
        pick = earlier.max() if len(earlier) else times.min()
        rows = mine[times == pick].sort_values("symbol", kind="stable")
        return [MarketInfo(venue, r.symbol, r.native_symbol, r.base, r.quote, active=bool(r.active),
                           listed_at=None if pd.isna(r.listed_at) else pd.Timestamp(r.listed_at).to_pydatetime())
                for r in rows.itertuples(index=False)]

    def fetch_ohlcv(self, requests: Sequence[tuple[str, str]], as_of: datetime, timeframe: Timeframe = "1h",
                    limit: int = 720) -> list[FetchResult[pd.DataFrame]]:
        as_of = to_utc(as_of)
        cutoff = pd.Timestamp(as_of) - TIMEFRAME_DELTA[timeframe]
        pairs = self._bar_pairs()
        out = []
        for venue, symbol in requests:
            failed = self._failure(venue, symbol, "ohlcv", as_of)
            if failed is not None:
                out.append(FetchResult(venue, symbol, None, stamped_at=as_of, error=str(failed["error"]), detail=str(failed["detail"])))
                continue
            frame = pairs.get((venue, symbol, timeframe))
            bars = empty_bars() if frame is None else _versions_at(frame[frame["timestamp"] <= cutoff], as_of)
            bars = bars.iloc[-limit:].reset_index(drop=True) if limit else bars
            if bars.empty:
                out.append(FetchResult(venue, symbol, None, stamped_at=as_of, error="no_data",
                                       detail=f"no recorded {timeframe} bar of {symbol} on {venue} closed by {as_of.isoformat()}"))
                continue
            stamped = min(bars["timestamp"].iloc[-1] + TIMEFRAME_DELTA[timeframe], pd.Timestamp(as_of)).to_pydatetime()
            out.append(FetchResult(venue, symbol, bars, stamped_at=stamped))
        return out

    def fetch_tickers(self, requests: Sequence[tuple[str, str]], as_of: datetime) -> list[FetchResult[Ticker]]:
        """No recorded quotes: bid = ask = last = the last recorded close at or before T."""
        out = []
        for r in self.fetch_ohlcv(requests, as_of, limit=24):
            if not r.ok:
                out.append(FetchResult(r.venue, r.symbol, None, stamped_at=r.stamped_at, error=r.error, detail=r.detail))
                continue
            last = float(r.data["close"].iloc[-1])
            ticker = Ticker(last, last, last, float(r.data["volume"].sum()), float((r.data["volume"] * r.data["close"]).sum()))
            out.append(FetchResult(r.venue, r.symbol, ticker, stamped_at=r.stamped_at))
        return out

    def fetch_order_books(self, requests: Sequence[tuple[str, str]], as_of: datetime,
                          depth: int = 100) -> list[FetchResult[OrderBook]]:
        as_of = to_utc(as_of)
        t = pd.Timestamp(as_of)
        books = self._near("books", as_of)
        out = []
        for venue, symbol in requests:
            empty = self._failure(venue, symbol, "empty_book", as_of)
            if empty is not None:
                stamp = to_utc(str(empty["detail"]))
                out.append(FetchResult(venue, symbol, OrderBook.from_levels([], [], stamp), stamped_at=stamp))
                continue
            failed = self._failure(venue, symbol, "book", as_of)
            mine = books.get((venue, symbol))
            book = None
            if mine is not None and len(mine):
                live = mine[mine["recorded_for"] == t]
                if len(live):  # what the live cycle at T used
                    book = live[live["fetched_at"] == live["fetched_at"].max()]
                elif failed is None:  # no live cycle at T: the newest book a live cycle at T could have used
                    taken = mine["book_time"]
                    usable = mine[(taken <= t + pd.Timedelta(seconds=self.book_grace_s))
                                  & (taken >= t - pd.Timedelta(seconds=self.max_book_age_s))]
                    if len(usable):
                        newest = usable[usable["book_time"] == usable["book_time"].max()]
                        book = newest[newest["fetched_at"] == newest["fetched_at"].max()]
            if book is None:
                if failed is not None:
                    out.append(FetchResult(venue, symbol, None, stamped_at=as_of, error=str(failed["error"]), detail=str(failed["detail"])))
                else:
                    out.append(FetchResult(venue, symbol, None, stamped_at=as_of, error="no_book",
                                           detail=f"{symbol}: no recorded {venue} book usable at {as_of.isoformat()} "
                                                  f"(taken ≤ {self.max_book_age_s:g} s before T or ≤ {self.book_grace_s:g} s after)"))
                continue
            stamp = pd.Timestamp(book["book_time"].iloc[0]).to_pydatetime()
            sides = {}
            for side in ("bid", "ask"):
                lv = book[book["side"] == side].sort_values("level", kind="stable")
                sides[side] = lv[["price", "amount"]].to_numpy(float)[: int(depth)]
            out.append(FetchResult(venue, symbol, OrderBook(bids=sides["bid"], asks=sides["ask"], timestamp=stamp), stamped_at=stamp))
        return out


def _versions_at(frame: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """One row per open time (``frame`` sorted by timestamp, recorded_for): the newest version recorded
    at or before T, else the first version recorded."""
    if frame.empty:
        return empty_bars()
    ts = frame["timestamp"].array.asi8
    if len(ts) > 1 and (np.diff(ts) == 0).any():
        eligible = (frame["recorded_for"] <= pd.Timestamp(as_of)).to_numpy()
        new_group = np.concatenate([[True], np.diff(ts) != 0])
        group = np.cumsum(new_group) - 1
        n = int(group[-1]) + 1
        pick = np.full(n, -1, dtype=np.int64)
        idx = np.arange(len(ts))
        first = idx[new_group]
        last_eligible = np.full(n, -1, dtype=np.int64)
        np.maximum.at(last_eligible, group[eligible], idx[eligible])
        pick = np.where(last_eligible >= 0, last_eligible, first)
        frame = frame.iloc[pick]
    out = frame[list(BAR_COLUMNS)].reset_index(drop=True)
    out["timestamp"] = out["timestamp"].astype("datetime64[ns, UTC]")
    return out
