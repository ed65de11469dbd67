"""SPEC §8 premove: compression, volume build, imbalance, score, states, execution risk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryptorun_core.config import packaged_config
from cryptorun_core.premove import (
    PREMOVE_COLUMNS, book_imbalance, compression, execution_risk, premove_frame, premove_gates, premove_score, premove_state,
)

CFG = packaged_config().premove


def test_compression_percentile_rank():
    others = np.arange(2.0, 21.0)  # 19 prior ranges 2..20
    assert compression(np.r_[1.0, others][None, :])[0] == 100.0  # tightest of 20
    assert compression(np.r_[21.0, others][None, :])[0] == 0.0  # widest
    # range0 = 6.5: 5 of 19 prior ranges (2..6) are strictly below → 100·(1 − 5/19)
    assert compression(np.r_[6.5, others][None, :])[0] == pytest.approx(100 * (1 - 5 / 19))
    # ties are not "below": range0 = 6 → 4 below
    assert compression(np.r_[6.0, others][None, :])[0] == pytest.approx(100 * (1 - 4 / 19))
    assert np.isnan(compression(np.array([[np.nan] + [1.0] * 19]))[0])


def test_imbalance():
    assert book_imbalance(np.array([300.0]), np.array([100.0]))[0] == pytest.approx(0.5)
    assert np.isnan(book_imbalance(np.array([np.nan]), np.array([np.nan]))[0])


def test_hand_computed_score_and_state():
    # 0.45·80 + 0.30·100·clip((2 − 1)/2) + 0.25·100·clip(0.15/0.3) = 36 + 15 + 12.5 = 63.5
    s = premove_score(np.array([80.0]), np.array([2.0]), np.array([0.15]), CFG)
    assert s[0] == pytest.approx(63.5)
    g = premove_gates(np.array([80.0]), np.array([2.0]), np.array([0.15]), CFG)
    assert g.tolist() == [[True, True, True]]
    assert premove_state(s, g.sum(1), CFG).tolist() == ["WATCH"]
    # caps: 0.45·100 + 0.30·100 + 0.25·100 = 100
    assert premove_score(np.array([100.0]), np.array([5.0]), np.array([0.9]), CFG)[0] == pytest.approx(100.0)


@pytest.mark.parametrize("score, gates, state", [
    (49.9, 3, "QUIET"), (50.0, 0, "WATCH"), (69.9, 3, "WATCH"), (70.0, 0, "PREPARE"), (84.9, 3, "PREPARE"),
    (85.0, 1, "PRIME"), (85.0, 2, "EXECUTE"), (99.0, 3, "EXECUTE"),
])
def test_states(score, gates, state):
    assert premove_state(np.array([score]), np.array([gates]), CFG)[0] == state


def test_execution_risk():
    r = execution_risk([20.0, 30.0, 20.0, np.nan], [400_000, 400_000, 200_000, np.nan], [150_000] * 4,
                       [True, True, True, False], [True, True, True, False], CFG)
    assert r.tolist() == ["LOW", "MEDIUM", "MEDIUM", "HIGH"]
    assert execution_risk([10.0], [1e7], [1.0], [True], [False], CFG).tolist() == ["HIGH"]


def test_frame_columns_and_order():
    ev = pd.DataFrame({"symbol": ["B/USD", "A/USD"], "venue": ["okx", "kraken"], "bid_depth_usd": [300.0, 100.0],
                       "ask_depth_usd": [100.0, 100.0], "spread_bps": [5.0, 5.0], "depth_usd": [400.0, 200.0],
                       "depth_min_usd": [100.0, 100.0], "gate_spread": [True, True], "gate_depth": [True, True]})
    rng = np.tile(np.r_[1.0, np.arange(2.0, 21.0)], (2, 1))
    usd = np.tile(np.r_[300.0, [100.0] * 19], (2, 1))
    out = premove_frame(ev, rng, usd, CFG, "2026-11-10T12:00:00Z")
    assert tuple(out.columns) == PREMOVE_COLUMNS
    # B: 45 + 30 + 25 = 100 → PRIME with 3 gates → EXECUTE; A: imbalance 0 → 75 → PREPARE
    assert out["symbol"].tolist() == ["B/USD", "A/USD"]
    assert out["premove_score"].tolist() == pytest.approx([100.0, 75.0])
    assert out["state"].tolist() == ["EXECUTE", "PREPARE"]
    assert out["gates_passed"].tolist() == [3, 2]
