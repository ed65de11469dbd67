"""SPEC §7 gates: order, thresholds per profile, reasons, details, decision and primary reason."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _builders as B  # noqa: E402

from cryptorun_core.gates import GATES, evaluate_gates, symbol_gates, tier_thresholds  # noqa: E402
from cryptorun_core.vadr import VadrThreshold  # noqa: E402

CFG = B.config()
HOT = CFG.job("scan.hot").config
WARM = CFG.job("scan.warm").config
VTHR = VadrThreshold(p80=2.5, n_unfrozen=40, percentile=80, min_symbols=20)


def _row(**kw):
    row = dict(symbol="A/USD", tier="tier1", n_bars=720, fresh_ok=True, bar_lag_bars=0.0, book_age_s=0.0, has_book=True,
               book_invalid_reason=None, score=80.0, vadr=3.0, vadr_frozen=False, complete_prior_periods=20,
               spread_bps=10.0, depth_usd=200_000.0, r_24h=0.02, rsi_4h=55.0, accel=0.5)
    row.update(kw)
    return row


def _run(rows, settings=HOT, vthr=VTHR):
    return evaluate_gates(pd.DataFrame(rows), CFG, settings, vthr)


def test_all_pass_is_entry_and_results_are_complete():
    frame, results = _run([_row()])
    assert frame.loc[0, "decision"] == "entry" and frame.loc[0, "primary_reason"] is None
    assert [r["gate"] for r in results[0]] == list(GATES)
    for r in results[0]:
        assert set(r) == {"gate", "passed", "value", "threshold", "reason", "detail"}
        assert r["passed"] and r["reason"] is None and r["detail"].endswith(".")


@pytest.mark.parametrize(
    "change, gate, reason",
    [
        ({"n_bars": 191}, "history", "insufficient_history"),
        ({"fresh_ok": False, "bar_lag_bars": 3.0}, "freshness", "stale_data"),
        ({"score": 74.9}, "score", "score_below_threshold"),
        ({"vadr": 2.49}, "vadr", "vadr_below_threshold"),
        ({"vadr": np.nan, "vadr_frozen": True, "complete_prior_periods": 19}, "vadr", "vadr_frozen"),
        ({"spread_bps": 25.1}, "spread", "spread_too_wide"),
        ({"depth_usd": 149_999.0}, "depth", "insufficient_depth"),
        ({"r_24h": 0.13, "rsi_4h": 71.0, "accel": 0.0}, "fatigue", "fatigue"),
    ],
)
def test_each_gate_fails_with_its_reason(change, gate, reason):
    frame, results = _run([_row(**change)])
    res = {r["gate"]: r for r in results[0]}
    assert not res[gate]["passed"] and res[gate]["reason"] == reason
    assert all(r["passed"] for g, r in res.items() if g != gate)
    assert frame.loc[0, "decision"] == "reject" and frame.loc[0, "primary_reason"] == reason


def test_boundaries_pass():
    frame, _ = _run([_row(n_bars=192, score=75.0, vadr=2.5, spread_bps=25.0, depth_usd=150_000.0)])
    assert frame.loc[0, "decision"] == "entry"


def test_fatigue_needs_all_three():
    for change in ({"r_24h": 0.12, "rsi_4h": 80, "accel": -1}, {"r_24h": 0.2, "rsi_4h": 70, "accel": -1},
                   {"r_24h": 0.2, "rsi_4h": 80, "accel": 0.01}):
        frame, _ = _run([_row(**change)])
        assert frame.loc[0, "gate_fatigue"]


def test_no_book_fails_spread_and_depth_as_no_book():
    frame, results = _run([_row(has_book=False, spread_bps=np.nan, depth_usd=np.nan, book_invalid_reason="crossed_book")])
    res = {r["gate"]: r for r in results[0]}
    assert res["spread"]["reason"] == "no_book" and res["depth"]["reason"] == "no_book"
    assert "crossed_book" in res["spread"]["detail"]
    assert frame.loc[0, "primary_reason"] == "no_book"


def test_primary_reason_is_first_failure_in_order():
    frame, results = _run([_row(score=10.0, spread_bps=100.0, n_bars=10)])
    assert frame.loc[0, "primary_reason"] == "insufficient_history"
    assert frame.loc[0, "gates_failed"] == "history,score,spread"


def test_warm_profile_thresholds():
    thr = tier_thresholds(CFG, WARM, VTHR)["tier2"]
    assert thr.score_min == 65 and thr.vadr_min == 1.80  # percentile not used
    assert thr.spread_max_bps == pytest.approx(75.0) and thr.depth_min_usd == pytest.approx(37_500.0)
    hot = tier_thresholds(CFG, HOT, VTHR)["tier2"]
    assert hot.vadr_min == 2.5 and hot.spread_max_bps == 50 and hot.depth_min_usd == 75_000
    row = _row(tier="tier2", score=66.0, vadr=1.9, spread_bps=70.0, depth_usd=40_000.0)
    assert _run([row], WARM)[0].loc[0, "decision"] == "entry"
    assert _run([row], HOT)[0].loc[0, "primary_reason"] == "score_below_threshold"


def test_details_carry_the_numbers():
    res = {r["gate"]: r for r in symbol_gates(_row(spread_bps=30.0), CFG, tier_thresholds(CFG, HOT, VTHR)["tier1"], 75)}
    assert "30.0 bps" in res["spread"]["detail"] and "25.0 bps" in res["spread"]["detail"]
    assert res["spread"]["value"] == 30.0 and res["spread"]["threshold"] == 25.0
    assert "VADR 3.00" in res["vadr"]["detail"] and "2.50" in res["vadr"]["detail"]
