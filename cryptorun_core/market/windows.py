"""Bars of many cycle times at once: one fetch over a range of T, one contiguous window per (T, pair).

A single-run backfill of N consecutive regime windows needs, for each T, the same bars a
``fetch_ohlcv(requests, T, limit=L)`` would have served. Consecutive 4h windows share 716 of
their 720 hourly bars, so an offline source that can serve a whole range (:class:`SimulatedMarket`,
:class:`ReplayMarket`) answers :meth:`bar_windows` instead: every pair's bars once, sorted by open
time, plus the row range ``[start, stop)`` that ``fetch_ohlcv`` at each T would have returned.
Sources without it (live ccxt) are read once per T as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


@dataclass(frozen=True)
class BarWindows:
    """The bars of ``pairs`` over a range of cycle times ``as_of_ns`` (ascending int64 ns).

    ``ts`` (bar open time, int64 ns) and ``values`` (columns open, high, low, close, volume) hold every pair's bars one pair after
    the other (pair ``j`` in rows ``offsets[j]:offsets[j + 1]``, strictly ascending time: one bar per
    open time, checked by :func:`pack_series`). ``start``/``stop``
    (shape ``(len(as_of_ns), len(pairs))``, absolute rows) are the window ``fetch_ohlcv`` serves for
    the pair at that T; ``stop <= start`` means it answers ``no_data`` with ``no_data_detail``.
    """

    pairs: tuple[tuple[str, str], ...]
    as_of_ns: np.ndarray
    ts: np.ndarray
    values: np.ndarray  # (rows, 5): open, high, low, close, volume
    offsets: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    no_data_detail: Callable[[str, str, object], str]

    @property
    def open(self) -> np.ndarray:
        return self.values[:, 0]

    @property
    def high(self) -> np.ndarray:
        return self.values[:, 1]

    @property
    def low(self) -> np.ndarray:
        return self.values[:, 2]

    @property
    def close(self) -> np.ndarray:
        return self.values[:, 3]

    @property
    def volume(self) -> np.ndarray:
        return self.values[:, 4]

    def index(self) -> dict[tuple[str, str], int]:
        return {p: j for j, p in enumerate(self.pairs)}


def pack_series(
    pairs: Sequence[tuple[str, str]],
    as_of_ns: np.ndarray,
    series: Sequence[tuple[np.ndarray, ...]],
    windows: Sequence[tuple[np.ndarray, np.ndarray]],
    no_data_detail: Callable[[str, str, object], str],
) -> BarWindows:
    """:class:`BarWindows` from per-pair ``(ts, open, high, low, close, volume)`` arrays and per-pair
    ``(start, stop)`` arrays relative to that pair's own series."""
    for (venue, symbol), s in zip(pairs, series):
        if len(s[0]) > 1 and not (np.diff(s[0]) > 0).all():
            raise ValueError(f"bar_windows: the bars of {symbol} on {venue} are not in strictly ascending open-time order")
    lengths = np.array([len(s[0]) for s in series], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

    ts = np.concatenate([s[0] for s in series]).astype(np.int64, copy=False) if series else np.zeros(0, np.int64)
    values = np.empty((len(ts), 5), dtype=np.float64)
    for j, s in enumerate(series):
        for c in range(5):
            values[offsets[j]:offsets[j + 1], c] = s[1 + c]

    n_t = len(as_of_ns)
    start = np.zeros((n_t, len(pairs)), dtype=np.int64)
    stop = np.zeros((n_t, len(pairs)), dtype=np.int64)
    for j, (lo, hi) in enumerate(windows):
        start[:, j] = offsets[j] + lo
        stop[:, j] = offsets[j] + np.maximum(hi, lo)
    return BarWindows(
        pairs=tuple(pairs), as_of_ns=np.asarray(as_of_ns, dtype=np.int64), ts=ts, values=values,
        offsets=offsets, start=start, stop=stop, no_data_detail=no_data_detail,
    )
