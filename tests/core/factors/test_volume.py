"""SPEC §4 volume factor."""

from __future__ import annotations

import numpy as np
import pytest

from cryptorun_core.factors.volume import volume_factor


@pytest.mark.parametrize("usd0, expected", [(100.0, 50.0), (400.0, 100.0), (200.0, 75.0), (25.0, 0.0), (800.0, 100.0), (50.0, 25.0)])
def test_hand_values(usd0, expected):
    usd = np.array([[usd0] + [100.0] * 7 + [999.0] * 3])  # periods ≥ 8 are not used
    out = volume_factor(usd)
    assert out["volume_surge"][0] == pytest.approx(usd0 / 100.0)
    assert out["volume"][0] == pytest.approx(expected)


def test_mean_of_periods_1_to_7():
    usd = np.array([[300.0, 50, 100, 150, 100, 100, 50, 150]])  # mean of 1..7 = 100
    assert volume_factor(usd)["volume_surge"][0] == pytest.approx(3.0)
    # 0.5 + 0.25·log2(3) = 0.8962
    assert volume_factor(usd)["volume"][0] == pytest.approx(100 * (0.5 + 0.25 * np.log2(3)))


def test_missing_history_is_nan():
    assert np.isnan(volume_factor(np.array([[100.0, np.nan, np.nan]]))["volume"][0])
