"""Market snapshots of many regime windows from one read (single-run backfills).

A backfill of N consecutive 4h windows used to call ``collect_snapshot`` N times per asset — each
reading 720 bars per (venue, symbol) of which 716 the previous window had read already. Sources
that can serve a range (``bar_windows``, see :mod:`cryptorun_core.market.windows`) are read once
for the whole range; each window's snapshot is then cut out with contiguous slices. Every snapshot
is the one ``collect_snapshot(source, symbols, T, venues, limit=…, with_books=False)`` builds
(same rows, order, dtypes; tests compare them table by table). Sources without ``bar_windows``
(live ccxt) keep the per-window ``collect_snapshot``.

The bars read by ``universe_ranking`` are kept (one entry, this process) for ``regime_indicators``
of the same run, which reads a subset of the same pairs at the same times.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from cryptorun_core.market.base import VenueHealth, to_utc
from cryptorun_core.market.snapshot import (
    MARKET_COLUMNS, SNAPSHOT_BAR_COLUMNS, SNAPSHOT_BOOK_COLUMNS, SNAPSHOT_FETCH_COLUMNS, MarketSnapshot, collect_snapshot,
)
from cryptorun_core.market.windows import BarWindows

SymbolsAt = Callable[[int], "Sequence[str] | None"]

_CACHE_LOCK = threading.Lock()
_CACHE: dict = {}  # at most one entry: {key: BarWindows}


def remember(key, windows: BarWindows) -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
        _CACHE[key] = windows


def recall(key, pop: bool = True) -> BarWindows | None:
    with _CACHE_LOCK:
        return _CACHE.pop(key, None) if pop else _CACHE.get(key)


def cache_key(config, as_ofs: Sequence[datetime]) -> tuple:
    """What the kept bars depend on: the market config (source, venues, history) and the times."""
    return (config.market.model_dump_json(), tuple(to_utc(a).isoformat() for a in as_ofs))


def can_batch(source, n_keys: int) -> bool:
    return n_keys > 1 and callable(getattr(source, "bar_windows", None))


class _Markets:
    """``list_markets`` of every venue at each T as the snapshot table (one frame per distinct listing)."""

    def __init__(self, source, venues: tuple[str, ...]):
        self.source, self.venues = source, venues
        self._frames: dict[tuple, pd.DataFrame] = {}

    def at(self, as_of: datetime) -> pd.DataFrame | None:
        rows: list[tuple] = []
        for venue in self.venues:
            try:
                listed = self.source.list_markets(venue, as_of)
            except Exception:  # noqa: BLE001 - a venue down at T: that T is read the ordinary way
                return None
            rows.extend((m.venue, m.symbol, m.native_symbol, m.base, m.quote, m.active) for m in listed)
        if not rows:
            return None  # nothing listed: collect_snapshot raises what a single run raises
        key = tuple(rows)
        frame = self._frames.get(key)
        if frame is None:
            frame = pd.DataFrame(rows, columns=list(MARKET_COLUMNS))
            if len(self._frames) > 64:
                self._frames.clear()
            self._frames[key] = frame
        return frame.copy()


def _requests(markets: pd.DataFrame, symbols: Sequence[str] | None) -> list[tuple[str, str]]:
    active = markets[markets["active"]]
    if symbols is not None:
        active = active[active["symbol"].isin(set(symbols))]
    return list(active[["venue", "symbol"]].itertuples(index=False, name=None))


def _empty_books() -> pd.DataFrame:
    return pd.DataFrame(columns=list(SNAPSHOT_BOOK_COLUMNS))


def _snapshot_at(source, w: BarWindows, i: int, index: dict, as_of: datetime, venues: tuple[str, ...],
                 markets: pd.DataFrame, requests: list[tuple[str, str]]) -> MarketSnapshot | None:
    """The snapshot at T = ``w.as_of_ns[i]`` from the windows (None: read this T the ordinary way)."""
    if not requests:
        return None
    js = np.fromiter((index[p] for p in requests), dtype=np.int64, count=len(requests))
    start, stop = w.start[i, js], w.stop[i, js]
    lengths = np.maximum(stop - start, 0)
    ok = lengths > 0
    if not ok.any():
        return None  # no bars at all at T: collect_snapshot decides what that means
    req_venue = np.array([p[0] for p in requests], dtype=object)
    req_symbol = np.array([p[1] for p in requests], dtype=object)
    spans = [(a, b) for a, b in zip(start[ok].tolist(), stop[ok].tolist())]  # contiguous rows per pair
    values = np.concatenate([w.values[a:b] for a, b in spans])
    ts = np.concatenate([w.ts[a:b] for a, b in spans])
    # one float block (the (n, 5) values) plus three columns: no per-column stacking copies
    bars = pd.DataFrame(values, columns=list(SNAPSHOT_BAR_COLUMNS[3:]), copy=False)
    bars.insert(0, "venue", np.repeat(req_venue, lengths))
    bars.insert(1, "symbol", np.repeat(req_symbol, lengths))
    bars.insert(2, "timestamp", pd.DatetimeIndex(ts.view("datetime64[ns]")).tz_localize("UTC"))
    n = len(requests)
    error = np.full(n, None, dtype=object)
    detail = np.full(n, "", dtype=object)
    for k in np.flatnonzero(~ok):
        error[k] = "no_data"
        detail[k] = w.no_data_detail(requests[k][0], requests[k][1], as_of)
    fetches = pd.DataFrame(
        {
            "venue": req_venue, "symbol": req_symbol, "kind": np.full(n, "ohlcv", dtype=object), "ok": ok,
            "error": error, "detail": detail, "from_cache": np.zeros(n, dtype=bool),
            "ttl_remaining_s": np.full(n, None, dtype=object),
            "stamped_at": pd.DatetimeIndex(np.full(n, pd.Timestamp(as_of).value, dtype=np.int64).view("datetime64[ns]")).tz_localize("UTC"),
            "latency_ms": np.zeros(n, dtype=np.float64), "requests": np.zeros(n, dtype=np.int64),
        },
        columns=list(SNAPSHOT_FETCH_COLUMNS),
    )
    counts = pd.Series(req_venue).value_counts().to_dict()
    health = {v: VenueHealth(v, requests=int(counts.get(v, 0))).to_dict() for v in venues if v in tuple(source.venues)}
    return MarketSnapshot(
        as_of=as_of, timeframe=source.native_timeframe, source=source.name, bars=bars, books=_empty_books(),
        fetches=fetches, markets=markets, health=health,
    )


def snapshots(
    source,
    as_ofs: Sequence[datetime],
    venues: Sequence[str],
    limit: int,
    symbols_at: SymbolsAt | None = None,
    windows: BarWindows | None = None,
    keep: Callable[[BarWindows], None] | None = None,
) -> Iterator[MarketSnapshot]:
    """``collect_snapshot(source, symbols_at(i), as_ofs[i], venues, limit=limit, with_books=False)`` for
    every i, from one ``source.bar_windows`` read over the range (or ``windows`` read earlier, when it
    covers the same times and every pair needed). ``keep`` receives the windows read here."""
    as_ofs = [to_utc(a) for a in as_ofs]
    venues = tuple(venues or source.venues)
    pick = symbols_at or (lambda i: None)
    listing = _Markets(source, venues)
    markets = [listing.at(a) for a in as_ofs]
    requests = [None if m is None else _requests(m, pick(i)) for i, m in enumerate(markets)]
    wanted = list(dict.fromkeys(p for r in requests if r for p in r))
    t_ns = np.array([pd.Timestamp(a).value for a in as_ofs], dtype=np.int64)
    if windows is not None:
        if len(windows.as_of_ns) != len(t_ns) or (windows.as_of_ns != t_ns).any() or not set(wanted) <= set(windows.pairs):
            windows = None
    if windows is None:
        try:
            windows = source.bar_windows(wanted, as_ofs, timeframe=source.native_timeframe, limit=limit)
        except NotImplementedError:
            windows = None
        if windows is not None and keep is not None:
            keep(windows)
    index = windows.index() if windows is not None else {}
    for i, as_of in enumerate(as_ofs):
        snap = None
        if windows is not None and markets[i] is not None:
            snap = _snapshot_at(source, windows, i, index, as_of, venues, markets[i], requests[i])
        if snap is None:
            snap = collect_snapshot(source, pick(i), as_of, venues=venues, limit=limit, with_books=False)
        yield snap
