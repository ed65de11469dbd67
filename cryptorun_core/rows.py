"""Integer-coded helpers over long tables grouped in row ranges (no string-keyed pandas work).

The engine's long tables (bars, book levels) come grouped: the snapshot's clean bars are sorted by
(venue, symbol, time) and every (venue, symbol) pair is a contiguous row range; book levels come
in runs of one (venue, symbol, side). The helpers here work on such ranges with numpy:

- :func:`runs`: start of every run of equal consecutive keys (object columns compared elementwise,
  which is cheap for the repeated string objects of a snapshot);
- :func:`first_row`: per range, the first row whose (monotone) predicate holds — a vectorised
  bisection, O(ranges · log rows);
- :func:`expand`: the row numbers of a set of ranges, and the range of each row;
- :func:`group_rows`: a raw long table (any order, duplicates) put in canonical (venue, symbol, …)
  order with its pair ranges, for the public functions that take plain frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd


def run_changes(*columns: np.ndarray) -> np.ndarray:
    """Per row, True where a run starts: the first row and every row whose ``columns`` values are not
    all equal to the previous row's (bool)."""
    n = len(columns[0]) if columns else 0
    change = np.zeros(n, dtype=bool)
    if n == 0:
        return change
    change[0] = True
    for col in columns:
        change[1:] |= col[1:] != col[:-1]
    return change


def runs(*columns: np.ndarray) -> np.ndarray:
    """Start row of every run of rows whose ``columns`` values are all equal to the previous row's (int64)."""
    return np.flatnonzero(run_changes(*columns)).astype(np.int64)


def expand(start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, owner)``: the row numbers of the ranges ``start[i]:stop[i]`` concatenated in range order,
    and for each of them the index ``i`` of its range."""
    start = np.asarray(start, dtype=np.int64)
    lens = np.maximum(np.asarray(stop, dtype=np.int64) - start, 0)
    total = int(lens.sum())
    owner = np.repeat(np.arange(len(start), dtype=np.int64), lens)
    if total == 0:
        return np.zeros(0, dtype=np.int64), owner
    # row = start of its range + position inside it
    offsets = np.cumsum(lens) - lens
    rows = np.arange(total, dtype=np.int64) - np.repeat(offsets - start, lens)
    return rows, owner


def first_row(values: np.ndarray, start: np.ndarray, stop: np.ndarray, pred: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Per range ``start[i]:stop[i]``, the first row ``r`` with ``pred(values[r])`` True (``stop[i]`` when
    none), for a predicate that is monotone along each range (False … False True … True)."""
    lo = np.asarray(start, dtype=np.int64).copy()
    hi = np.asarray(stop, dtype=np.int64).copy()
    active = lo < hi
    while active.any():
        idx = np.flatnonzero(active)
        mid = (lo[idx] + hi[idx]) // 2
        ok = np.asarray(pred(values[mid]), dtype=bool)
        hi[idx[ok]] = mid[ok]
        lo[idx[~ok]] = mid[~ok] + 1
        active = lo < hi
    return lo


@dataclass(frozen=True)
class GroupedRows:
    """Rows of a long table in canonical order, grouped by (venue, symbol).

    ``order``: positions in the input of the canonical rows; ``venue``/``symbol``: per pair (str,
    sorted by venue then symbol); ``start``/``stop``: each pair's range in the canonical rows."""

    order: np.ndarray
    venue: np.ndarray
    symbol: np.ndarray
    start: np.ndarray
    stop: np.ndarray


def group_rows(venue: np.ndarray, symbol: np.ndarray, keys: Sequence[np.ndarray] = ()) -> GroupedRows:
    """Canonical order of a long table: by venue, symbol (as strings), then ``keys`` in the given
    priority (stable, NaN last as numpy sorts them)."""
    vcode, vuniq = pd.factorize(np.asarray(venue, dtype=object), sort=True)
    scode, suniq = pd.factorize(np.asarray(symbol, dtype=object), sort=True)
    order = np.lexsort(tuple(reversed([vcode, scode, *keys]))) if len(vcode) else np.zeros(0, dtype=np.int64)
    vo, so = vcode[order], scode[order]
    start = runs(vo, so)
    stop = np.append(start[1:], len(order)).astype(np.int64)
    return GroupedRows(order.astype(np.int64), np.asarray(vuniq, dtype=object)[vo[start]],
                       np.asarray(suniq, dtype=object)[so[start]], start, stop)
