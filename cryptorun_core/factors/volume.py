"""Volume factor (SPEC §4): surge ``s = usd₀ / mean(usd₁..₇)`` over the 24h periods aligned to T,
``volume = 100·clip(0.5 + 0.25·log₂ s, 0, 1)`` (s = 1 → 50, s = 4 → 100, s ≤ 1/4 → 0).

``usd`` is an (n × P) matrix of period USD volumes (Σ close·volume, from ``periods.period_table``),
column d = period d (0 newest). Period 0 is used as it stands (it may lack its newest 1–2 bars
when the data is still Fresh); the mean of periods 1..7 is taken over the periods present
(NaN when none, or when that mean is not positive).
"""

from __future__ import annotations

import warnings

import numpy as np


def volume_surge(usd: np.ndarray, periods: int = 7) -> np.ndarray:
    usd = np.asarray(usd, dtype=float)
    n = usd.shape[0]
    if usd.shape[1] < 2:
        return np.full(n, np.nan)
    prior = usd[:, 1 : periods + 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        base = np.nanmean(prior, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = usd[:, 0] / base
    return np.where(np.isfinite(base) & (base > 0) & np.isfinite(usd[:, 0]), s, np.nan)


def volume_score(surge: np.ndarray) -> np.ndarray:
    surge = np.asarray(surge, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        val = 100.0 * np.clip(0.5 + 0.25 * np.log2(surge), 0.0, 1.0)
    return np.where(np.isfinite(surge), val, np.nan)


def volume_factor(usd: np.ndarray, periods: int = 7) -> dict[str, np.ndarray]:
    s = volume_surge(usd, periods)
    return {"volume": volume_score(s), "volume_surge": s}
