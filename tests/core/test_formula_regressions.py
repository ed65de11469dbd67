"""Formulas that broke silently before: each test here goes red when the formula is changed on
purpose — two factor weights swapped (in scheduler.yaml, in the blend or in the score), or VADR
averaged over 10 prior periods instead of 20 (in the engine's slicing, in ``vadr_from_matrices``
or in the config). The expected numbers come from SPEC's own tables and formulas, never from the
code under test."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _builders as B  # noqa: E402

from cryptorun_core.engine import run_scan  # noqa: E402
from cryptorun_core.regime import regime_result  # noqa: E402

CFG = B.config()
HOT = CFG.job("scan.hot")

# SPEC §6 factor weights (momentum/technical/volume/quality) and §4 momentum timeframe weights
SPEC_FACTOR_WEIGHTS = {
    "calm": {"momentum": 0.40, "technical": 0.30, "volume": 0.20, "quality": 0.10},
    "normal": {"momentum": 0.35, "technical": 0.25, "volume": 0.25, "quality": 0.15},
    "volatile": {"momentum": 0.30, "technical": 0.20, "volume": 0.30, "quality": 0.20},
}
SPEC_TIMEFRAME_WEIGHTS = {
    "calm": {"1h": 0.15, "4h": 0.30, "12h": 0.35, "24h": 0.15, "7d": 0.05},
    "normal": {"1h": 0.20, "4h": 0.35, "12h": 0.30, "24h": 0.15, "7d": 0.00},
    "volatile": {"1h": 0.25, "4h": 0.40, "12h": 0.25, "24h": 0.10, "7d": 0.00},
}


def _spec_blend(label: str, confidence: float) -> dict[str, float]:
    w = SPEC_FACTOR_WEIGHTS
    return {f: confidence * w[label][f] + (1 - confidence) * w["normal"][f] for f in w["normal"]}


def test_shipped_weights_are_the_spec_tables():
    assert {k: dict(v) for k, v in CFG.regime.weights.items()} == SPEC_FACTOR_WEIGHTS
    assert {k: dict(v) for k, v in CFG.factors.momentum.weights.items()} == SPEC_TIMEFRAME_WEIGHTS


@pytest.mark.parametrize("label,confidence", [("calm", 0.7), ("volatile", 0.45), ("normal", 0.9)])
def test_regime_weight_blend_is_spec_formula(label, confidence):
    """Indicators that vote ``label`` → regime.json's weight_blend = c·W[label] + (1 − c)·W[normal]."""
    indicators = {"calm": {"realized_vol_7d": 0.2, "pct_above_20ma": 85.0, "breadth_thrust": 0.8},
                  "volatile": {"realized_vol_7d": 1.2, "pct_above_20ma": 30.0, "breadth_thrust": 0.2},
                  "normal": {"realized_vol_7d": 0.6, "pct_above_20ma": 57.0, "breadth_thrust": 0.5}}[label]
    result = regime_result(indicators, pd.Timestamp("2026-11-10T12:00:00Z").to_pydatetime(), 50, CFG)
    assert result.label == label
    expected = _spec_blend(label, result.confidence)
    assert result.weight_blend == pytest.approx(expected, abs=1e-12)


@pytest.fixture(scope="module")
def calm_scan():
    snap, rk = B.universe(30, strong=(0, 3, 5), seed=4)
    return run_scan(snap, rk, B.regime("calm", 0.7), CFG, HOT)


def test_score_is_the_spec_blend_of_the_four_factors(calm_scan):
    """score = Σ weight_blend[f]·factor_f with SPEC's weights (calm at confidence 0.7)."""
    ev = calm_scan.evaluated
    w = _spec_blend("calm", 0.7)
    expected = (w["momentum"] * ev["momentum_core"] + w["technical"] * ev["technical"] + w["volume"] * ev["volume"]
                + w["quality"] * ev["quality"]).clip(0, 100)
    ok = ev["score"].notna()
    assert ok.sum() >= 25
    # the factors differ enough that any swap of two weights moves scores by far more than the tolerance
    assert (ev.loc[ok, "momentum_core"] - ev.loc[ok, "technical"]).abs().max() > 5
    np.testing.assert_allclose(ev.loc[ok, "score"], expected[ok], rtol=0, atol=1e-9)
    explained = {s["symbol"]: s for s in calm_scan.explain["symbols"]}
    for sym, wb in ((s, explained[s]["factors"]) for s in ev.loc[ok, "symbol"]):
        assert {f: wb[f]["weight"] for f in w} == pytest.approx(w, abs=1e-6), sym


def _vadr_bars() -> pd.DataFrame:
    """25 periods of one symbol: prior ranges 0.02 (periods 1–10) and 0.04 (11–20), prior USD volume
    growing with the period index, a wide and loud period 0 — so a 10-period average differs."""
    n_periods = 25
    close = np.full(24 * n_periods, 100.0)
    high, low = np.full(len(close), 101.0), np.full(len(close), 99.0)
    vol = np.zeros(len(close))
    for d in range(n_periods):
        rows = slice(len(close) - 24 * (d + 1), len(close) - 24 * d)
        vol[rows] = 20.0 if d == 0 else float(d)
        if 11 <= d <= 20:
            high[rows], low[rows] = 102.0, 98.0
    high[-5], low[-7] = 104.0, 96.0  # period 0 range 0.08
    return B.bars("AAA/USD", "kraken", close, vol, highs=high, lows=low)


def _spec_vadr() -> float:
    r0, r_mean = 0.08, (10 * 0.02 + 10 * 0.04) / 20
    u0, u_mean = 24 * 100 * 20.0, 24 * 100 * np.mean(np.arange(1, 21))
    return math.sqrt((r0 / r_mean) * (u0 / u_mean))


def test_vadr_in_the_scan_averages_the_20_prior_periods():
    bars = _vadr_bars()
    snap = B.snapshot(bars, B.book("kraken", "AAA/USD", 100.0))
    res = run_scan(snap, B.ranking(["AAA/USD"]), B.regime("normal"), CFG, HOT)
    row = res.evaluated.set_index("symbol").loc["AAA/USD"]
    assert not row["vadr_frozen"] and row["complete_prior_periods"] == 20
    assert row["vadr"] == pytest.approx(_spec_vadr(), rel=1e-12)
    assert res.explain["symbols"][0]["vadr"]["value"] == round(_spec_vadr(), 2)
