"""SPEC §4 technical factor: RSI(4h), ADX(1h), range position — hand-computed tiny cases."""

from __future__ import annotations

import numpy as np
import pytest

from cryptorun_core.factors.technical import adx, position_in_range, rsi, technical_factor, to_4h, wilder


def test_wilder_seed_and_recursion():
    x = np.array([[np.nan, 2.0, 4.0, 6.0, 0.0]])
    out = wilder(x, 2)
    # seed = mean(2, 4) = 3 at index 2; then 3 + (6 − 3)/2 = 4.5; 4.5 + (0 − 4.5)/2 = 2.25
    assert np.isnan(out[0, :2]).all()
    assert out[0, 2:] == pytest.approx([3.0, 4.5, 2.25])


def test_rsi_hand_computed_period_3():
    closes = np.array([[10, 11, 10.5, 11.5, 12, 11]], float)
    # deltas +1, −0.5, +1, +0.5, −1; seed gain 2/3, loss 1/6; then gain 11/18, loss 1/9; then 11/27, 11/27 → RS 1
    assert rsi(closes, 3)[0] == pytest.approx(50.0)
    # one step earlier: RS = (11/18)/(1/9) = 5.5 → RSI = 100 − 100/6.5
    assert rsi(closes[:, :-1], 3)[0] == pytest.approx(100 - 100 / 6.5)


def test_rsi_edges():
    assert rsi(np.array([[1, 2, 3, 4, 5.0]]), 3)[0] == 100.0
    assert rsi(np.array([[2, 2, 2, 2, 2.0]]), 3)[0] == 50.0
    assert np.isnan(rsi(np.array([[1, 2, 3.0]]), 3)[0])


def test_adx_hand_computed_period_2():
    high = np.array([[10, 11, 12, 11.5, 13]], float)
    low = np.array([[8, 9, 10, 9.5, 10]], float)
    close = np.array([[9, 10, 11, 10, 12.5]], float)
    # TR 2,2,2,3; +DM 1,1,0,1.5; −DM 0,0,.5,0 → smoothed (n=2) TR 2,2,2.5; +DM 1,.5,1; −DM 0,.25,.125
    # DI+ 50,25,40; DI− 0,12.5,5; DX 100, 33.33, 77.78; ADX seed (100+33.33)/2 = 66.67 → 66.67 + (77.78−66.67)/2
    assert adx(high, low, close, 2)[0] == pytest.approx(650 / 9)


def test_to_4h_last_bar_ends_at_T():
    c = np.arange(10, dtype=float)[None, :]
    c4, h4, l4 = to_4h(c, c + 0.5, c - 0.5)
    assert c4[0].tolist() == [5.0, 9.0]  # blocks [2..5] and [6..9]; the first 2 hours are dropped
    assert h4[0].tolist() == [5.5, 9.5] and l4[0].tolist() == [1.5, 5.5]


def test_position_in_range():
    high = np.array([[10, 12, 11, 9.0]])
    low = np.array([[8, 9, 7, 8.0]])
    close = np.array([[9, 10, 8, 8.5]])
    # over the last 3 bars: high 12, low 7 → (8.5 − 7)/5 = 30%
    assert position_in_range(high, low, close, 3)[0] == pytest.approx(30.0)
    assert position_in_range(np.ones((1, 4)), np.ones((1, 4)), np.ones((1, 4)), 3)[0] == 50.0


def test_technical_is_mean_of_components():
    rng = np.random.default_rng(2)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (4, 720)), axis=1))
    h, l = c * 1.003, c * 0.997
    out = technical_factor(h, l, c, 14, 14, 480)
    want = (out["rsi_4h"] + 100 * np.minimum(out["adx_1h"] / 50, 1) + out["range_position"]) / 3
    assert out["technical"] == pytest.approx(want)
    assert ((out["technical"] >= 0) & (out["technical"] <= 100)).all()


def test_technical_factor_in_blocks_of_rows_equals_the_whole_matrix(monkeypatch):
    import cryptorun_core.factors.technical as T

    rng = np.random.default_rng(7)
    n, h = 11, 600
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, h)), axis=1))
    high, low = close * (1 + rng.random((n, h)) * 0.01), close * (1 - rng.random((n, h)) * 0.01)
    close[2, :300] = high[2, :300] = low[2, :300] = np.nan  # a late listing
    close[5] = high[5] = low[5] = np.nan  # no bars at all
    whole = technical_factor(high, low, close)
    monkeypatch.setattr(T, "TECHNICAL_BLOCK_ROWS", 3)  # several blocks, the last one short
    blocks = technical_factor(high, low, close)
    for k in whole:
        np.testing.assert_array_equal(blocks[k], whole[k])
    assert np.isnan(blocks["technical"][5]) and np.isfinite(blocks["technical"][2])
    assert technical_factor(high[:0], low[:0], close[:0])["technical"].shape == (0,)
