"""The market factor every simulated coin loads on, and its volatility (calibrated, see
docs/simulated_market.md).

The factor's annualised volatility is log-normal around :data:`VOL_MEDIAN` and clusters the way
crypto volatility does: a slow component (weeks), spikes that jump up and decay over days (the
right tail: sell-offs), and day-to-day noise. Its drift trends (a slow AR(1)), which is what
makes breadth swing as a whole. Hourly shocks are Student-t. A weak pull back to
the epoch level keeps prices plausible for decades. All of it is laid out once per seed over the
whole horizon (~12,800 days, a few milliseconds), so any hour's value is a pure function of
(seed, hour) whatever was asked before.

The hidden regime *state* of a day (0 calm, 1 normal, 2 volatile) is read off the factor's
volatility that day; it scales traded volume and book liquidity.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from cryptorun_core.market.simulated.keys import _frozen, _rng, student_t

BLOCK_HOURS = 1024
HORIZON_BLOCKS = 300  # the factor is laid out to ~2055; later hours are refused
HORIZON_DAYS = HORIZON_BLOCKS * BLOCK_HOURS // 24
HOURS_PER_YEAR = 24 * 365

VOL_MEDIAN = 0.62  # annualised factor volatility, median day
SLOW_PHI, SLOW_SD = 0.95, 0.18  # AR(1) per day of log vol, stationary sd
SPIKE_P, SPIKE_MEAN, SPIKE_PHI = 0.06, 0.40, 0.90  # daily chance, mean jump of log vol, daily decay
DAY_NOISE_SD = 0.22
SHOCK_DF = 4.0  # Student-t degrees of freedom of hourly shocks
TREND_PHI, TREND_SD = 0.97, 0.004  # AR(1) per day of the factor's daily drift (trends), stationary sd
LEVEL_PULL_PER_DAY = 0.002  # share of the factor's log level taken back per day
CALM_VOL, VOLATILE_VOL = 0.45, 0.85  # factor vol (annualised) separating the hidden states


class MarketFactor(NamedTuple):
    day_sigma: np.ndarray  # hourly sigma of the factor, per day since the epoch
    day_state: np.ndarray  # hidden regime state per day
    ret: np.ndarray  # hourly log return, hour 0 .. HORIZON_BLOCKS * BLOCK_HOURS


def _ar1(shocks: np.ndarray, phi: float) -> np.ndarray:
    out = np.empty_like(shocks)
    x = 0.0
    for i, e in enumerate(shocks.tolist()):
        x = phi * x + e
        out[i] = x
    return out


@lru_cache(maxsize=8)
def market_factor(seed: int) -> MarketFactor:
    """The factor's volatility, state and hourly returns over the whole horizon (see module docstring)."""
    rng = _rng(seed, "market-vol")
    slow = _ar1(SLOW_SD * math.sqrt(1.0 - SLOW_PHI**2) * rng.standard_normal(HORIZON_DAYS), SLOW_PHI)
    jumps = (rng.random(HORIZON_DAYS) < SPIKE_P) * rng.exponential(SPIKE_MEAN, HORIZON_DAYS)
    spikes = _ar1(jumps, SPIKE_PHI)
    log_vol = slow + spikes - np.median(spikes) + DAY_NOISE_SD * rng.standard_normal(HORIZON_DAYS)
    vol = VOL_MEDIAN * np.exp(log_vol)
    day_sigma = vol / math.sqrt(HOURS_PER_YEAR)
    day_state = np.where(vol < CALM_VOL, 0, np.where(vol > VOLATILE_VOL, 2, 1)).astype(np.int8)
    z = np.concatenate([student_t(_rng(seed, "market", k), SHOCK_DF, BLOCK_HOURS) for k in range(HORIZON_BLOCKS)])
    noise = (np.repeat(day_sigma, 24) * z).reshape(HORIZON_DAYS, 24)
    day_noise = noise.sum(axis=1)
    trend = _ar1(TREND_SD * math.sqrt(1.0 - TREND_PHI**2) * rng.standard_normal(HORIZON_DAYS), TREND_PHI)
    drift = np.empty(HORIZON_DAYS)
    level = 0.0
    for d, (move, tr) in enumerate(zip(day_noise.tolist(), trend.tolist())):  # the pull depends on the level
        drift[d] = tr - LEVEL_PULL_PER_DAY * level
        level += drift[d] + move
    ret = (noise + (drift / 24.0)[:, None]).reshape(-1)
    out = MarketFactor(day_sigma, day_state, ret)
    _frozen(*out)
    return out


def regime_states(seed: int, hours: np.ndarray) -> np.ndarray:
    """The hidden regime state (0 calm, 1 normal, 2 volatile) of each hour index."""
    return market_factor(seed).day_state[np.asarray(hours) // 24]


class MarketBlock(NamedTuple):
    ret: np.ndarray  # market factor hourly log return
    sigma: np.ndarray  # its hourly sigma
    state: np.ndarray  # regime state per hour


@lru_cache(maxsize=512)
def market_block(seed: int, k: int) -> MarketBlock:
    if not 0 <= k < HORIZON_BLOCKS:
        raise ValueError(f"simulated market covers 2020-01-01 to about 2055 (block {k} is outside)")
    f = market_factor(seed)
    sl = slice(k * BLOCK_HOURS, (k + 1) * BLOCK_HOURS)
    days = np.arange(sl.start, sl.stop) // 24
    out = MarketBlock(f.ret[sl], f.day_sigma[days], f.day_state[days])
    _frozen(out.sigma, out.state)
    return out
