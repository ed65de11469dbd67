"""SPEC §5 VADR: hand-computed value, freeze at < 20 complete prior periods, p80 precedence."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _builders as B  # noqa: E402

from cryptorun_core.periods import period_table  # noqa: E402
from cryptorun_core.vadr import vadr_table, vadr_threshold  # noqa: E402

CFG = B.config()
T = B.T0


def _bars(n_periods: int, p0_high=104.0, p0_low=96.0, p0_volume=2.0, symbol="AAA/USD"):
    n = 24 * n_periods
    close = np.full(n, 100.0)
    high, low, vol = np.full(n, 101.0), np.full(n, 99.0), np.ones(n)
    high[-5], low[-7] = p0_high, p0_low  # inside period 0 (the newest 24 bars)
    vol[-24:] = p0_volume
    return B.bars(symbol, "kraken", close, vol, end=T, highs=high, lows=low)


def test_hand_computed_vadr():
    bars = _bars(21)
    v = vadr_table(period_table(bars, T), {"AAA/USD": "kraken"}, CFG).iloc[0]
    # prior: range (101 − 99)/100 = 0.02, usd 24·100·1 = 2400; period 0: range 0.08, usd 4800
    assert v["range0"] == pytest.approx(0.08) and v["range_mean"] == pytest.approx(0.02)
    assert v["usd0"] == pytest.approx(4800) and v["usd_mean"] == pytest.approx(2400)
    assert v["vadr"] == pytest.approx(math.sqrt(4 * 2))
    assert not v["vadr_frozen"]


def test_ordinary_day_is_one():
    v = vadr_table(period_table(_bars(25, 101, 99, 1.0), T), {"AAA/USD": "kraken"}, CFG).iloc[0]
    assert v["vadr"] == pytest.approx(1.0)


@pytest.mark.parametrize("periods, frozen", [(20, True), (21, False), (5, True), (30, False)])
def test_freeze_threshold(periods, frozen):
    v = vadr_table(period_table(_bars(periods), T), {"AAA/USD": "kraken"}, CFG).iloc[0]
    assert bool(v["vadr_frozen"]) is frozen
    assert bool(np.isnan(v["vadr"])) is frozen


def test_a_gap_in_a_prior_period_freezes():
    bars = _bars(21).drop(index=100).reset_index(drop=True)  # period 20 loses a bar
    v = vadr_table(period_table(bars, T), {"AAA/USD": "kraken"}, CFG).iloc[0]
    assert v["vadr_frozen"] and v["complete_prior_periods"] == 19


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 50), st.floats(0.5, 3.0), st.booleans())
def test_19_prior_periods_frozen_20_not(seed, vol_mult, twenty):
    rng = np.random.default_rng(seed)
    n = 24 * (21 if twenty else 20)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    bars = B.bars("X/USD", "okx", c, rng.uniform(0.5, 2, n) * vol_mult, end=T)
    v = vadr_table(period_table(bars, T), {"X/USD": "okx"}, CFG).iloc[0]
    assert bool(v["vadr_frozen"]) is (not twenty)
    if twenty:
        assert np.isfinite(v["vadr"]) and v["vadr"] > 0


def test_p80_threshold_precedence():
    thr = vadr_threshold(np.arange(1, 26, dtype=float), CFG)
    # 25 values 1..25: 80th percentile (linear) at index 0.8·24 = 19.2 → 20 + 0.2 = 20.2
    assert thr.p80 == pytest.approx(20.2) and thr.n_unfrozen == 25
    assert thr.vadr_min(1.85) == pytest.approx(20.2)
    assert thr.vadr_min(1.85, use_percentile=False) == 1.85
    low = vadr_threshold(np.full(30, 1.2), CFG)
    assert low.vadr_min(1.85) == 1.85  # max(p80, tier_min)


def test_p80_needs_20_symbols():
    assert vadr_threshold(np.r_[np.arange(1, 20, dtype=float), np.nan, np.nan], CFG).p80 is None
    assert vadr_threshold(np.arange(1, 21, dtype=float), CFG).p80 is not None
    thr = vadr_threshold(np.arange(1, 20, dtype=float), CFG)
    assert thr.vadr_min(1.75) == 1.75


def test_shuffle_invariant():
    bars = pd.concat([_bars(21, symbol="A/USD"), _bars(22, 103, 97, 3.0, symbol="B/USD")], ignore_index=True)
    pairs = {"A/USD": "kraken", "B/USD": "kraken"}
    a = vadr_table(period_table(bars, T), pairs, CFG)
    b = vadr_table(period_table(bars.sample(frac=1, random_state=1), T), pairs, CFG)
    pd.testing.assert_frame_equal(a, b)
