"""The hourly bar matrix of the factors (:func:`cryptorun_core.factors.bar_matrix_rows`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

import cryptorun_core.factors as F
from cryptorun_core.factors import bar_matrix_rows

T = pd.Timestamp("2026-11-10T12:00:00Z")
HOUR = 3_600_000_000_000


def _ranges():
    """Two pairs' bars as row ranges: pair 0 has hours 5, 4, 2 (3 missing) and a bar after T; pair 1 hours 1, 0."""
    opens = [T.value - k * HOUR for k in (6, 5, 3, 1)] + [T.value + HOUR]  # bar k closes k − 1 hours before T
    opens += [T.value - 2 * HOUR, T.value - HOUR]
    ts = np.array(opens, dtype=np.int64)
    close = np.arange(1.0, 8.0)
    cols = {"open": close - 0.5, "high": close + 1, "low": close - 1, "close": close, "volume": close * 10}
    return ts, cols, np.array([0, 5]), np.array([5, 7])


def test_bar_matrix_rows_places_and_fills_bars():
    ts, cols, start, stop = _ranges()
    m = bar_matrix_rows(ts, cols, start, stop, [("A", "okx"), ("B", "okx")], T, 6)
    # columns k = 5 … 0; pair 0: k 5, 4, 2, 0 observed (the bar after T is left out), k 3, 1 filled
    assert m.observed.tolist() == [[True, True, False, True, False, True], [False, False, False, False, True, True]]
    np.testing.assert_array_equal(m.close[0], [1, 2, 2, 3, 3, 4])
    np.testing.assert_array_equal(m.high[0], [2, 3, 2, 4, 3, 5])  # a missing bar is flat at the previous close
    np.testing.assert_array_equal(m.volume[0], [10, 20, 0, 30, 0, 40])
    assert np.isnan(m.close[1, :4]).all() and m.close[1, 4:].tolist() == [6, 7]
    assert m.n_bars.tolist() == [4, 2]


def test_bar_matrix_rows_builds_only_the_matrices_asked_for_and_blocks_change_nothing(monkeypatch):
    ts, cols, start, stop = _ranges()
    pairs = [("A", "okx"), ("B", "okx"), ("C", None)]
    start, stop = np.append(start, 0), np.append(stop, 0)
    whole = bar_matrix_rows(ts, cols, start, stop, pairs, T, 6)
    some = bar_matrix_rows(ts, cols, start, stop, pairs, T, 6, values=("high", "low"))
    assert some.open is None and some.volume is None
    for name in ("high", "low", "close", "observed"):
        np.testing.assert_array_equal(getattr(some, name), getattr(whole, name))
    monkeypatch.setattr(F, "_SCATTER_BLOCK_ROWS", 1)
    monkeypatch.setattr(F, "_FFILL_BLOCK_ROWS", 2)
    blocked = bar_matrix_rows(ts, cols, start, stop, pairs, T, 6)
    for name in ("open", "high", "low", "close", "volume", "observed"):
        np.testing.assert_array_equal(getattr(blocked, name), getattr(whole, name))
    assert np.isnan(whole.close[2]).all() and whole.n_bars[2] == 0
