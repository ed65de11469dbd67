"""SPEC §4 quality factor."""

from __future__ import annotations

import numpy as np
import pytest

from cryptorun_core.factors.quality import quality_factor


def test_hand_value():
    out = quality_factor(
        tier_score=np.array([70.0]), spread_bps=np.array([25.0]), spread_cap_bps=np.array([50.0]),
        depth_usd=np.array([75_000.0]), depth_min_usd=np.array([75_000.0]), bars_present=np.array([360]),
        bars_expected=720, sources=np.array([3]), n_venues=3,
    )
    # 70, 100·(1 − 25/50) = 50, 100·75k/150k = 50, 100·360/720 = 50, 100·3/3 = 100 → mean 64
    assert out["quality"][0] == pytest.approx(64.0)


def test_clipping_and_no_book():
    out = quality_factor(np.array([100.0, 40.0]), np.array([0.0, np.nan]), np.array([25.0, 80.0]),
                         np.array([1e9, np.nan]), np.array([150_000.0, 25_000.0]), np.array([720, 0]), 720,
                         np.array([2, 0]), 3)
    assert out["quality"][0] == pytest.approx((100 + 100 + 100 + 100 + 200 / 3) / 5)
    assert out["quality"][1] == pytest.approx(40 / 5)  # spread/depth/completeness/sources all 0
