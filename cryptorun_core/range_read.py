"""Rankings and regime indicators of many regime windows from one read (single-run backfills).

A backfill of N consecutive 4h windows used to build N market snapshots per asset — each holding
720 bars per (venue, symbol) of which 716 the previous window held already — and to clean,
aggregate and rank each of them. Sources that can serve a range (``bar_windows``, see
:mod:`cryptorun_core.market.windows`) are read once for the whole range; the 24h periods of every
pair are aggregated once over that history (:class:`cryptorun_core.periods.PeriodHistory`) and
each window's ranking and indicators are computed from its slice of them, by the same functions a
single window uses (:func:`cryptorun_core.universe.rank_pairs`,
:func:`cryptorun_core.regime.indicators_from_periods`). Every result equals, byte for byte, what
``rank_universe`` / ``compute_indicators`` give on ``collect_snapshot(source, symbols, T, venues,
limit=…, with_books=False)`` (tests compare them). A window the range read cannot serve (a venue
that cannot list its markets at T, no bar at all at T) is read the ordinary way, as are sources
without ``bar_windows`` (live ccxt).

:func:`windows` computes both T by T from one read: the ranking's read holds every pair the
indicators need, and the ranking's periods are theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from cryptorun_core.config import AppConfig
from cryptorun_core.market.base import to_utc
from cryptorun_core.market.snapshot import MARKET_COLUMNS, collect_snapshot
from cryptorun_core.periods import PairPeriods, PeriodHistory
from cryptorun_core.regime import compute_indicators, indicators_from_periods, regime_universe
from cryptorun_core.universe import listed_pairs, listing_activity, rank_pairs, rank_universe

@dataclass(frozen=True)
class Listing:
    """The markets listed at one T: the snapshot's ``markets`` table (shared by every T with the same
    listing; read-only), its active pairs (the ones ``collect_snapshot`` reads bars of) and its
    :func:`cryptorun_core.universe.listing_activity`."""

    frame: pd.DataFrame
    venue: np.ndarray  # object, active rows
    symbol: np.ndarray
    activity: dict

    @classmethod
    def of(cls, frame: pd.DataFrame, venues: tuple[str, ...]) -> "Listing":
        active = frame["active"].to_numpy(bool)
        return cls(frame, frame["venue"].to_numpy(object)[active], frame["symbol"].to_numpy(object)[active],
                   listing_activity(frame, venues))

    def requests(self, symbols: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(venue, symbol) of the active listings (of ``symbols``)."""
        if symbols is None:
            return self.venue, self.symbol
        wanted = set(symbols)
        keep = np.fromiter((s in wanted for s in self.symbol.tolist()), dtype=bool, count=len(self.symbol))
        return self.venue[keep], self.symbol[keep]


class _Markets:
    """``list_markets`` of every venue at each T (one :class:`Listing` per distinct listing)."""

    def __init__(self, source, venues: tuple[str, ...]):
        self.source, self.venues = source, venues
        self._listings: dict[tuple, Listing] = {}

    def at(self, as_of: datetime) -> Listing | None:
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
        listing = self._listings.get(key)
        if listing is None:
            listing = Listing.of(pd.DataFrame(rows, columns=list(MARKET_COLUMNS)), self.venues)
            if len(self._listings) > 64:
                self._listings.clear()
            self._listings[key] = listing
        return listing


@dataclass
class RangeRead:
    """The market over a range of cycle times, read once: the listing at each T (None: that T is
    read the ordinary way) and the sanitized bars' period history (None: no range read)."""

    as_ofs: list[datetime]
    markets: list[Listing | None]
    history: PeriodHistory | None

    def clean_rows(self, i: int, venue: np.ndarray, symbol: np.ndarray) -> np.ndarray | None:
        """:meth:`PeriodHistory.rows` of the pairs read at the i-th T, −1 where no clean bar is left;
        None when the range read cannot stand in for that T's snapshot (no listing, no bar at all)."""
        h = self.history
        if h is None or self.markets[i] is None or not len(venue):
            return None
        j = h.rows(venue, symbol)
        if not (np.where(j >= 0, h.raw_count[i, j], 0) > 0).any():
            return None  # no bars at all at T: collect_snapshot decides what that means
        return np.where((j >= 0) & (h.stop[i, j] > h.start[i, j]), j, -1)


def read_range(source, as_ofs: Sequence[datetime], venues: Sequence[str], limit: int, rules=None) -> RangeRead:
    """One ``source.bar_windows`` read of every pair listed over ``as_ofs``.

    Bars the sanitation (with ``rules``, :class:`cryptorun_core.quality.BarRules`) would reject or
    repair must reach each cycle's data-quality report: then there is no range read (every T is
    read the ordinary way)."""
    from cryptorun_core.quality import windows_need_sanitation

    as_ofs = [to_utc(a) for a in as_ofs]
    venues = tuple(venues or source.venues)
    listing = _Markets(source, venues)
    markets = [listing.at(a) for a in as_ofs]
    wanted: dict[tuple[str, str], None] = {}
    for m in markets:
        if m is not None:
            v, s = m.requests()
            wanted.update(dict.fromkeys(zip(v.tolist(), s.tolist())))
    try:
        windows = source.bar_windows(list(wanted), as_ofs, timeframe=source.native_timeframe, limit=limit)
    except NotImplementedError:
        return RangeRead(as_ofs, markets, None)
    if windows_need_sanitation(windows, rules):
        return RangeRead(as_ofs, markets, None)
    return RangeRead(as_ofs, markets, PeriodHistory(windows, source.native_timeframe))


def windows(source, read: RangeRead, config: AppConfig, hot_size: int,
            warm_size: int) -> Iterator[tuple[pd.DataFrame, list[str], dict[str, float]]]:
    """``(ranking, regime universe, indicators)`` at every T of ``read``: ``rank_universe`` of
    ``collect_snapshot(source, None, T, venues, limit=…, with_books=False)``, its
    :func:`regime_universe`, and ``compute_indicators`` of ``collect_snapshot(source, universe ∪
    {benchmark}, T, …)`` (validation left to the caller's output types). ``read`` holds every pair
    the universe needs (each is a listed pair), and the indicators take their pairs' periods from
    the ranking's instead of aggregating them again."""
    for i in range(len(read.as_ofs)):
        ranking, periods = _ranking_at(source, read, i, config, hot_size, warm_size)
        universe = regime_universe(ranking, config)
        yield ranking, universe, _indicators_at(source, read, i, config, ranking, universe, periods)


def _ranking_at(source, read: RangeRead, i: int, config: AppConfig, hot_size: int,
                warm_size: int) -> tuple[pd.DataFrame, PairPeriods | None]:
    """The ranking at the i-th T and the listed pairs' periods it was ranked from (None: read the
    ordinary way)."""
    venues, limit = tuple(config.market.venues), config.market.history_bars
    markets = read.markets[i]
    req_v, req_s = markets.requests() if markets is not None else (np.zeros(0, object), np.zeros(0, object))
    rows = read.clean_rows(i, req_v, req_s)
    if rows is None:
        snapshot = collect_snapshot(source, None, read.as_ofs[i], venues=venues, limit=limit, with_books=False)
        return rank_universe(snapshot, config, hot_size=hot_size, warm_size=warm_size, validate=False), None
    clean = rows >= 0
    venue, symbol, active = listed_pairs(req_v[clean], req_s[clean], markets.activity, venues)
    row_of = dict(zip(zip(req_v[clean].tolist(), req_s[clean].tolist()), rows[clean].tolist()))
    listed_rows = np.array([row_of.get(k, -1) for k in zip(venue.tolist(), symbol.tolist())], dtype=np.int64)
    periods = read.history.at(i, venue, symbol, listed_rows)
    return rank_pairs(periods, active, config, source.native_timeframe, hot_size, warm_size, validate=False), periods


def _indicators_at(source, read: RangeRead, i: int, config: AppConfig, ranking: pd.DataFrame, symbols: list[str],
                   listed: PairPeriods | None = None) -> dict[str, float]:
    """The indicators at the i-th T over the universe ``symbols``; ``listed``: the periods of the
    listed pairs at that T, when the ranking has them (the same numbers ``history.at`` gives)."""
    venues, limit = tuple(config.market.venues), config.market.history_bars
    bench = config.regime.benchmark
    n_periods = max(config.regime.ma_periods, config.regime.thrust_periods + 1)
    wanted = sorted(set(symbols) | {bench})
    markets = read.markets[i]
    req_v, req_s = markets.requests(wanted) if markets is not None else (np.zeros(0, object), np.zeros(0, object))
    rows = read.clean_rows(i, req_v, req_s) if symbols else None
    if rows is None:
        snapshot = collect_snapshot(source, wanted, read.as_ofs[i], venues=venues, limit=limit, with_books=False)
        return compute_indicators(snapshot, ranking, config, validate=False)
    clean = rows >= 0
    venue, symbol, rows = req_v[clean], req_s[clean], rows[clean]
    series = {v: read.history.bars(i, v, s) for v, s in zip(venue.tolist(), symbol.tolist()) if s == bench}
    periods = listed.take(venue, symbol, n_periods) if listed is not None else None
    if periods is None:
        periods = read.history.at(i, venue, symbol, rows, max_periods=n_periods)
    return indicators_from_periods(periods, series, symbols, config, source.native_timeframe, validate=False)[0]
