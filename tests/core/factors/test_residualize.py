"""SPEC §4 residualization: order, OLS with intercept, clip(50 + residual), momentum protected."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cryptorun_core.factors.residualize import residualize


def _factors():
    return {
        "momentum": np.array([1.0, 2.0, 3.0, 4.0, 5.0]),
        "technical": np.array([50.0, 60.0, 70.0, 90.0, 80.0]),
        "volume": np.array([40.0, 45.0, 70.0, 50.0, 65.0]),
        "quality": np.array([60.0, 62.0, 61.0, 70.0, 66.0]),
    }


def test_hand_computed_technical_on_momentum():
    out = residualize(_factors(), True, 3)
    # technical ~ 1 + momentum: x̄ = 3, ȳ = 70, Sxy = (−2)(−20)+(−1)(−10)+0+(1)(20)+(2)(10) = 90, Sxx = 10
    # slope 9, intercept 43 → fitted 52, 61, 70, 79, 88 → residuals −2, −1, 0, 11, −8
    assert out["technical"] == pytest.approx([48.0, 49.0, 50.0, 61.0, 42.0])
    assert out["momentum"] == pytest.approx(_factors()["momentum"])  # protected
    assert out["residualized"].all()


def test_later_factors_are_orthogonal_to_the_earlier_ones():
    out = residualize(_factors(), True, 3)
    m, t = out["momentum"], out["technical"]
    v = out["volume"] - 50
    q = out["quality"] - 50
    for resid, regs in ((v, [m, t]), (q, [m, t, out["volume"]])):
        assert resid.sum() == pytest.approx(0, abs=1e-9)
        for x in regs:
            assert float(resid @ x) == pytest.approx(0, abs=1e-7)


def test_volume_regressed_on_residualized_technical():
    f = _factors()
    out = residualize(f, True, 3)
    X = np.column_stack([np.ones(5), f["momentum"], out["technical"]])
    beta, *_ = np.linalg.lstsq(X, f["volume"], rcond=None)
    assert out["volume"] == pytest.approx(np.clip(50 + f["volume"] - X @ beta, 0, 100))


def test_small_cross_section_or_disabled_is_unchanged():
    f = _factors()
    for out in (residualize(f, True, 10), residualize(f, False, 3)):
        for k in f:
            assert out[k] == pytest.approx(f[k])
        assert not out["residualized"].any()


def test_rows_with_nan_are_left_out():
    f = _factors()
    f["volume"][2] = np.nan
    out = residualize(f, True, 3)
    assert not out["residualized"][2] and np.isnan(out["volume"][2])
    assert out["technical"][2] == 70.0  # raw value kept outside the cross-section


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(*[st.floats(0, 100)] * 4), min_size=10, max_size=30))
def test_residualized_stay_in_0_100(rows):
    arr = np.array(rows)
    out = residualize({k: arr[:, i] for i, k in enumerate(["momentum", "technical", "volume", "quality"])}, True, 10)
    for k in ("technical", "volume", "quality"):
        assert ((out[k] >= 0) & (out[k] <= 100)).all()
