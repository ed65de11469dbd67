"""VADR — volume-adjusted daily range (SPEC §5).

For 24h period d (aligned to T, from :func:`cryptorun_core.periods.period_table`):
``range_d = (max high − min low)/last close``, ``usd_d = Σ close·volume``;
``VADR = √((range₀/mean(range₁..₂₀))·(usd₀/mean(usd₁..₂₀)))``.

Freeze: with fewer than ``vadr.min_prior_periods`` (20) *complete* (24-bar) periods among
periods 1..20, or no period 0 at all, VADR is not computed: ``vadr`` NaN, ``vadr_frozen`` True.
Period 0 is used as it stands (it may miss its newest 1–2 bars while still Fresh).
A ratio whose denominator is not positive gives NaN (not frozen; the gate then fails as
``vadr_below_threshold``).

Threshold: ``p80`` = the ``vadr.percentile`` (80th) percentile, numpy's default linear
interpolation, of the finite unfrozen VADRs across the whole ranked universe (hot + warm symbols
present in the bars, each at its reference venue), used only when at least
``vadr.min_symbols_for_percentile`` (20) symbols have one; ``vadr_min = max(p80, tier_min)``,
or ``tier_min`` when p80 is unavailable or the job does not use the percentile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from cryptorun_core.config import AppConfig
from cryptorun_core.rows import runs

VADR_COLUMNS = ("symbol", "venue", "vadr", "vadr_frozen", "complete_prior_periods", "range0", "range_mean", "usd0", "usd_mean")


def period_cube(periods: pd.DataFrame, venues: np.ndarray, symbols: np.ndarray, n_periods: int) -> dict[str, np.ndarray]:
    """(n × n_periods) matrices (row i = the pair (``venues[i]``, ``symbols[i]``), column d = period d) of
    high, low, close, usd, n_bars and range from a period table; NaN where the pair has no such
    period (a None venue: an empty row), ``n_bars`` 0 there."""
    n = len(venues)
    mats = {k: np.full((n, n_periods), np.nan) for k in ("high", "low", "close", "usd", "n_bars")}
    if n and len(periods):
        period = periods["period"].to_numpy(np.int64)
        sel = np.flatnonzero((period >= 0) & (period < n_periods))
        pv, ps = periods["venue"].to_numpy(object)[sel], periods["symbol"].to_numpy(object)[sel]
        # each run of one (venue, symbol) in the table → the cube row asking for that pair (−1: none)
        start = runs(pv, ps)
        wanted = {(v, s): i for i, (v, s) in enumerate(zip(venues, symbols)) if v is not None}
        run_row = np.array([wanted.get((v, s), -1) for v, s in zip(pv[start], ps[start])], dtype=np.int64)
        r = np.repeat(run_row, np.diff(np.append(start, len(sel))))
        hit = r >= 0
        rows, cols, take = r[hit], period[sel][hit], sel[hit]
        for name, col in (("high", "high"), ("low", "low"), ("close", "close"), ("usd", "usd_volume"), ("n_bars", "n_bars")):
            mats[name][rows, cols] = periods[col].to_numpy(float)[take]
    with np.errstate(divide="ignore", invalid="ignore"):
        mats["range"] = (mats["high"] - mats["low"]) / mats["close"]
    mats["n_bars"] = np.nan_to_num(mats["n_bars"], nan=0.0)
    return mats


def period_matrices(periods: pd.DataFrame, pairs: Mapping[str, str | None], n_periods: int) -> dict[str, np.ndarray]:
    """(n × n_periods) matrices (column d = period d) of high, low, close, usd, n_bars and range for ``pairs``
    (symbol → venue, in row order)."""
    symbols = list(pairs)
    return period_cube(periods, np.array([pairs[s] for s in symbols], dtype=object), np.array(symbols, dtype=object), n_periods)


def vadr_from_matrices(rng: np.ndarray, usd: np.ndarray, n_bars: np.ndarray, min_prior: int = 20, bars_per_period: int = 24) -> dict[str, np.ndarray]:
    """VADR per row from period matrices with at least ``min_prior + 1`` columns."""
    prior = slice(1, min_prior + 1)
    complete = (n_bars[:, prior] >= bars_per_period).sum(axis=1)
    frozen = (complete < min_prior) | ~(n_bars[:, 0] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_mean = rng[:, prior].mean(axis=1)
        u_mean = usd[:, prior].mean(axis=1)
        prod = (rng[:, 0] / r_mean) * (usd[:, 0] / u_mean)
        v = np.sqrt(prod)
    ok = ~frozen & (r_mean > 0) & (u_mean > 0) & np.isfinite(prod) & (prod >= 0)
    return {
        "vadr": np.where(ok, v, np.nan),
        "vadr_frozen": frozen,
        "complete_prior_periods": complete.astype(np.int64),
        "range0": rng[:, 0],
        "range_mean": np.where(frozen, np.nan, r_mean),
        "usd0": usd[:, 0],
        "usd_mean": np.where(frozen, np.nan, u_mean),
    }


def vadr_table(periods: pd.DataFrame, pairs: Mapping[str, str | None], config: AppConfig, bars_per_period: int = 24) -> pd.DataFrame:
    """One row per symbol of ``pairs`` (symbol → reference venue): VADR and its parts (:data:`VADR_COLUMNS`)."""
    k = config.vadr.min_prior_periods
    mats = period_matrices(periods, pairs, k + 1)
    res = vadr_from_matrices(mats["range"], mats["usd"], mats["n_bars"], k, bars_per_period)
    frame = pd.DataFrame({"symbol": list(pairs), "venue": [pairs[s] for s in pairs], **res})
    return frame[list(VADR_COLUMNS)]


@dataclass(frozen=True)
class VadrThreshold:
    p80: float | None  # None when fewer than min_symbols_for_percentile symbols have a VADR
    n_unfrozen: int
    percentile: float
    min_symbols: int

    def vadr_min(self, tier_min: float, use_percentile: bool = True) -> float:
        if use_percentile and self.p80 is not None:
            return max(float(self.p80), float(tier_min))
        return float(tier_min)

    def to_dict(self) -> dict:
        return {"p80": self.p80, "n_unfrozen": self.n_unfrozen, "percentile": self.percentile,
                "min_symbols_for_percentile": self.min_symbols, "used": self.p80 is not None}


def vadr_threshold(vadrs: np.ndarray | pd.Series, config: AppConfig) -> VadrThreshold:
    v = np.asarray(vadrs, dtype=float)
    v = np.sort(v[np.isfinite(v)])  # sorted: the percentile does not depend on row order
    n = int(v.size)
    p = float(np.percentile(v, config.vadr.percentile)) if n >= config.vadr.min_symbols_for_percentile else None
    return VadrThreshold(p, n, float(config.vadr.percentile), int(config.vadr.min_symbols_for_percentile))
