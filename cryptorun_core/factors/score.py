"""Score (SPEC §4): ``Σ weight_blend[f]·factor_f`` over momentum, technical, volume, quality.

Each factor is 0–100 and the blend sums to 1, so the score is 0–100. A NaN factor makes the
score NaN (the score gate then fails).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from cryptorun_core.config import FACTORS


def contributions(factors: Mapping[str, np.ndarray], weight_blend: Mapping[str, float]) -> dict[str, np.ndarray]:
    missing = [f for f in FACTORS if f not in weight_blend]
    if missing:
        raise ValueError(f"weight_blend lacks factor(s) {missing}")
    return {f: float(weight_blend[f]) * np.asarray(factors[f], dtype=float) for f in FACTORS}


def blend_score(factors: Mapping[str, np.ndarray], weight_blend: Mapping[str, float]) -> np.ndarray:
    parts = contributions(factors, weight_blend)
    return np.clip(sum(parts[f] for f in FACTORS), 0.0, 100.0)
