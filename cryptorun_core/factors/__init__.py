"""Factors of SPEC §4, vectorised across symbols.

Bars of each symbol's chosen venue are pivoted into a (symbols × hours) matrix aligned to T
(:func:`bar_matrix`); every factor is then a few numpy operations over that matrix.

Grid: column ``j`` of an ``H``-column matrix holds the hourly bar whose open time ``ts`` has
``floor((T − ts)/1h) − 1 == H − 1 − j``: the last column is the newest bar closed at or before T
(closed exactly at T when T is on the hour). Only bars closed at or before T and opened within
the last ``H`` hours are placed, so appending bars after T never changes anything.

Missing bars inside the window: ``observed`` is False there; ``close`` is forward-filled from the
previous observed close and ``open``/``high``/``low`` are set to that close, ``volume`` to 0 (a
flat, zero-volume bar). Hourly log returns used for σ₁ₕ are taken only between two *observed*
consecutive bars. Cells before a symbol's first bar stay NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from cryptorun_core.factors.momentum import momentum_factor
from cryptorun_core.factors.quality import quality_factor
from cryptorun_core.factors.residualize import residualize
from cryptorun_core.factors.score import blend_score
from cryptorun_core.factors.technical import adx, position_in_range, rsi, technical_factor, to_4h
from cryptorun_core.factors.volume import volume_factor, volume_surge
from cryptorun_core.rows import expand, first_row, group_rows
from cryptorun_core.timefmt import utc_timestamp

__all__ = [
    "BarMatrix", "bar_matrix", "momentum_factor", "technical_factor", "rsi", "adx", "position_in_range", "to_4h",
    "volume_factor", "volume_surge", "quality_factor", "residualize", "blend_score",
]


@dataclass(frozen=True)
class BarMatrix:
    """Hourly OHLCV of ``symbols`` (rows) over the ``H`` hours before T (columns, oldest first)."""

    symbols: tuple[str, ...]
    venues: tuple[str | None, ...]
    open: np.ndarray | None  # None when not asked for (``values`` of :func:`bar_matrix_rows`)
    high: np.ndarray | None
    low: np.ndarray | None
    close: np.ndarray
    volume: np.ndarray | None
    observed: np.ndarray

    @property
    def n_bars(self) -> np.ndarray:
        return self.observed.sum(axis=1)


#: rows per block of :func:`_ffill_inplace` (its index temporaries stay small)
_FFILL_BLOCK_ROWS = 256


def _ffill_inplace(a: np.ndarray) -> np.ndarray:
    """Forward-fill NaN along axis 1 of the C-ordered ``a`` in place (leading NaN stay NaN); returns ``a``."""
    positions = np.arange(a.shape[1])[None, :]
    for s in range(0, a.shape[0], _FFILL_BLOCK_ROWS):
        block = a[s:s + _FFILL_BLOCK_ROWS]
        idx = np.where(np.isfinite(block), positions, 0)
        np.maximum.accumulate(idx, axis=1, out=idx)
        block[...] = np.take_along_axis(block, idx, axis=1)
    return a


def bar_matrix(
    bars: pd.DataFrame, pairs: Mapping[str, str | None] | Sequence[tuple[str, str | None]], as_of: datetime, n_hours: int
) -> BarMatrix:
    """Pivot long bars into a :class:`BarMatrix` for ``pairs`` (symbol → venue, in row order).

    The bars are put in canonical order first (venue, symbol, open time, then the values), so copies
    of one bar resolve the same way whatever the input order (the last in that order is placed)."""
    items = list(pairs.items()) if isinstance(pairs, Mapping) else list(pairs)
    n = len(items)
    start = np.zeros(n, dtype=np.int64)
    stop = np.zeros(n, dtype=np.int64)
    ts = np.zeros(0, dtype=np.int64)
    cols = {k: np.zeros(0) for k in _BAR_VALUES}
    if n and bars is not None and len(bars):
        t_all = utc_ns(bars["timestamp"])
        known = np.flatnonzero(t_all != _NAT)
        vals = {k: pd.to_numeric(bars[k], errors="coerce").to_numpy(float)[known] for k in _BAR_VALUES}
        g = group_rows(bars["venue"].astype(str).to_numpy()[known], bars["symbol"].astype(str).to_numpy()[known],
                       [t_all[known], *(vals[k] for k in _BAR_VALUES)])
        ts = t_all[known][g.order]
        cols = {k: v[g.order] for k, v in vals.items()}
        where = {(v, s): i for i, (v, s) in enumerate(zip(g.venue, g.symbol))}
        for r, (sym, venue) in enumerate(items):
            i = where.get((venue, sym)) if venue is not None else None
            if i is not None:
                start[r], stop[r] = g.start[i], g.stop[i]
    return bar_matrix_rows(ts, cols, start, stop, items, as_of, n_hours)


_BAR_VALUES = ("open", "high", "low", "close", "volume")
_NAT = np.iinfo(np.int64).min


def utc_ns(values: pd.Series) -> np.ndarray:
    """int64 ns since the epoch (UTC) of a time column (NaT → int64 min)."""
    s = values.reset_index(drop=True)
    s = s.dt.tz_convert("UTC") if isinstance(s.dtype, pd.DatetimeTZDtype) else pd.to_datetime(s, utc=True)
    return s.astype("datetime64[ns, UTC]").array.asi8


def bar_matrix_rows(
    ts: np.ndarray, cols: Mapping[str, np.ndarray], start: np.ndarray, stop: np.ndarray,
    pairs: Sequence[tuple[str, str | None]], as_of: datetime, n_hours: int, values: Sequence[str] = _BAR_VALUES,
) -> BarMatrix:
    """:class:`BarMatrix` whose row i holds the bars ``start[i]:stop[i]`` of the arrays ``ts`` (int64 ns
    open times, non-decreasing within a range) and ``cols`` (open … volume); ``pairs`` names the rows.

    Only the matrices named in ``values`` are built (``close`` always: it defines ``observed``), the
    others are None — each is a symbols × hours float64 array, the bulk of the scan's memory."""
    symbols = tuple(s for s, _ in pairs)
    venues = tuple(v for _, v in pairs)
    n, h = len(pairs), int(n_hours)
    mats = {k: np.full((n, h), np.nan) for k in _BAR_VALUES if k in values or k == "close"}
    t = utc_timestamp(as_of).value

    def grid_k(x: np.ndarray) -> np.ndarray:  # whole hours between the bar's close and T
        return np.floor((t - x) / 1e9 / 3600.0 - 1.0)

    if n and len(ts):
        # the rows inside the grid (0 ≤ k < h) are one block of each (time-ordered) range
        first = first_row(ts, start, stop, lambda x: grid_k(x) < h)
        end = first_row(ts, first, stop, lambda x: grid_k(x) < 0)
        # placed a block of rows at a time: the row numbers and cells of one block are alive at once
        for a in range(0, n, _SCATTER_BLOCK_ROWS):
            rows, owner = expand(first[a:a + _SCATTER_BLOCK_ROWS], end[a:a + _SCATTER_BLOCK_ROWS])
            owner += a
            cell = _grid_cells(ts[rows], owner, t, h)
            for name, m in mats.items():
                m.reshape(-1)[cell] = cols[name][rows]
    close = mats["close"]
    observed = np.isfinite(close)
    _ffill_inplace(close)
    fill = ~observed & np.isfinite(close)
    for name in ("open", "high", "low"):
        if name in mats:
            mats[name][fill] = close[fill]
    if "volume" in mats:
        mats["volume"][fill] = 0.0
    return BarMatrix(symbols, venues, mats.get("open"), mats.get("high"), mats.get("low"), close, mats.get("volume"), observed)


#: matrix rows placed per block in :func:`bar_matrix_rows`
_SCATTER_BLOCK_ROWS = 256


def _grid_cells(open_ns: np.ndarray, owner: np.ndarray, t: int, h: int) -> np.ndarray:
    """Flat index ``owner·h + column`` in an (n × h) grid of bars opened at ``open_ns`` (all inside the
    grid), column = h − 1 − k with k = ⌊(T − open)/1h − 1⌋; in-place steps, so one float and one int
    array of the bars' length at a time (``owner`` is overwritten)."""
    k = np.subtract(t, open_ns) / 1e9  # the same float steps as grid_k
    k /= 3600.0
    k -= 1.0
    np.floor(k, out=k)
    cell = k.astype(np.int64)  # integral values of at most h: exact
    del k
    np.subtract(h - 1, cell, out=cell)
    owner *= h
    cell += owner
    return cell
