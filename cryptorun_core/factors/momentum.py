"""Momentum core (SPEC §4), never residualized.

``z_h = ln(1 + r_h) / (σ₁ₕ·√h)`` with ``r_h = close(T)/close(T − h) − 1`` and σ₁ₕ the sample stdev
(ddof = 1) of the hourly log returns over the last ``vol_window`` (168) bars, i.e. the returns
between the last 169 closes, skipping returns that span a missing bar.
``raw = Σ w_h·z_h``; acceleration ``a = z_4h(T) − z_4h(T − 4h)`` where ``z_4h(T − 4h)`` is the
4h z-score *as it was* at T − 4h (its own σ over the 168 returns ending at T − 4h);
``momentum_core = clip(50 + 50·tanh(raw/k) + 2·tanh(a), 0, 100)``.

Choices: a z that cannot be computed (close(T − h) before the symbol's history, σ unavailable)
contributes 0 (neutral); σ = 0 (a flat series) gives z = 0; a symbol with no close at all gets NaN.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from cryptorun_core.config import TIMEFRAME_HOURS, TIMEFRAME_KEYS


def hourly_log_returns(close: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
    """(n × H−1) log returns; column i is the return from close i to close i+1 (NaN across gaps)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = close[:, 1:] / close[:, :-1]
        np.log(lr, out=lr)  # in place: one (n × H−1) array, not three
    if observed is not None:
        lr[~(observed[:, 1:] & observed[:, :-1])] = np.nan
    return lr


def sigma_1h(log_returns: np.ndarray, window: int = 168, end_lag: int = 0) -> np.ndarray:
    """Sample stdev of the last ``window`` hourly returns ending ``end_lag`` hours before T (NaN if < 2)."""
    n_ret = log_returns.shape[1]
    stop = n_ret - end_lag
    start = max(stop - window, 0)
    if stop <= start:
        return np.full(log_returns.shape[0], np.nan)
    seg = log_returns[:, start:stop]
    cnt = np.isfinite(seg).sum(axis=1)
    mean = np.nansum(seg, axis=1) / np.maximum(cnt, 1)
    ss = np.nansum((seg - mean[:, None]) ** 2, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(ss / (cnt - 1))
    return np.where(cnt >= 2, sd, np.nan)


def log_change(close: np.ndarray, hours: int, end_lag: int = 0) -> np.ndarray:
    """ln(close(T − end_lag) / close(T − end_lag − hours)); NaN when out of range."""
    h = close.shape[1]
    last, first = h - 1 - end_lag, h - 1 - end_lag - hours
    if first < 0 or last < 0:
        return np.full(close.shape[0], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(close[:, last] / close[:, first])


def z_score(log_ret: np.ndarray, sigma: np.ndarray, hours: int) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        z = log_ret / (sigma * np.sqrt(hours))
    return np.where(np.isfinite(sigma) & (sigma == 0) & np.isfinite(log_ret), 0.0, z)


def momentum_core_from(z: np.ndarray, accel: np.ndarray, weights: Mapping[str, float], k: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(raw, momentum_core) from z (n × 5, columns in TIMEFRAME_KEYS order) and acceleration."""
    w = np.array([weights[key] for key in TIMEFRAME_KEYS], dtype=float)
    raw = np.nan_to_num(z, nan=0.0) @ w
    a = np.nan_to_num(accel, nan=0.0)
    core = np.clip(50.0 + 50.0 * np.tanh(raw / k) + 2.0 * np.tanh(a), 0.0, 100.0)
    return raw, core


def momentum_factor(
    close: np.ndarray,
    observed: np.ndarray | None,
    weights: Mapping[str, float],
    k: float = 1.0,
    vol_window: int = 168,
    sigma: np.ndarray | None = None,
    sigma_lag4: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Momentum of every row of the (n × H) close matrix (oldest → newest, last column = T).

    ``sigma``/``sigma_lag4`` override σ₁ₕ at T and at T − 4h (used by property tests that hold σ fixed).
    Returns arrays: ``z`` (n × 5), ``sigma``, ``raw``, ``accel``, ``momentum_core``, ``r_24h``, ``z_4h_lag4``.
    """
    close = np.asarray(close, dtype=float)
    lr = hourly_log_returns(close, observed)
    s_now = sigma_1h(lr, vol_window, 0) if sigma is None else np.asarray(sigma, float)
    s_lag = sigma_1h(lr, vol_window, 4) if sigma_lag4 is None else np.asarray(sigma_lag4, float)
    z = np.column_stack([z_score(log_change(close, TIMEFRAME_HOURS[key]), s_now, TIMEFRAME_HOURS[key]) for key in TIMEFRAME_KEYS])
    z4_lag = z_score(log_change(close, 4, end_lag=4), s_lag, 4)
    accel = z[:, TIMEFRAME_KEYS.index("4h")] - z4_lag
    raw, core = momentum_core_from(z, accel, weights, k)
    core = np.where(np.isfinite(close[:, -1]) if close.shape[1] else np.zeros(len(close), bool), core, np.nan)
    r_24h = np.expm1(log_change(close, 24))
    return {"z": z, "sigma": s_now, "raw": raw, "accel": accel, "momentum_core": core, "r_24h": r_24h, "z_4h_lag4": z4_lag}
