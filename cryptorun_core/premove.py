"""Premove — coiled-spring setups before a move (SPEC §8).

- ``compression = 100·(1 − pr)`` where the percentile rank ``pr`` of range₀ among range₀..₁₉ is
  defined as the fraction of the *other* available periods (1..19) whose range is strictly
  below range₀: ``pr = #{j ≥ 1: range_j < range₀} / (m − 1)``, m = number of periods 0..19 with a
  range. So the tightest day of the 20 scores 100, the widest 0, and ties count as not below.
  NaN when range₀ is missing or m < 2.
- ``volume_build = usd₀ / mean(usd₁..₇)`` (same as the volume surge).
- ``book_imbalance = (bid − ask depth)/(bid + ask depth)`` within ±``gates.depth_band_pct`` of mid.
- component gates: compression ≥ 70, volume_build ≥ 1.5, imbalance ≥ 0.15 (a NaN fails).
- ``premove_score = 0.45·compression + 0.30·100·clip((volume_build − 1)/2, 0, 1) +
  0.25·100·clip(imbalance/0.3, 0, 1)``; a NaN component contributes 0.
- state: QUIET < 50 ≤ WATCH < 70 ≤ PREPARE < 85 ≤ PRIME; EXECUTE = PRIME with ≥ 2 of 3 gates.
- ``execution_risk``: HIGH when the job's spread or depth gate fails (always without a book);
  else LOW when spread ≤ 25 bps and depth ≥ 2 × the tier's depth minimum; MEDIUM otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptorun_core.config import PremoveConfig
from cryptorun_core.factors.volume import volume_surge

PREMOVE_COLUMNS = (
    "timestamp", "symbol", "venue", "premove_score", "state", "compression", "volume_build", "book_imbalance",
    "gates_passed", "execution_risk", "spread_bps", "depth_usd",
)
STATES = ("QUIET", "WATCH", "PREPARE", "PRIME", "EXECUTE")


def compression(rng: np.ndarray, periods: int = 20) -> np.ndarray:
    """Compression from an (n × ≥periods) matrix of period ranges (column d = period d)."""
    r = np.asarray(rng, dtype=float)[:, :periods]
    r0 = r[:, 0]
    others = r[:, 1:]
    avail = np.isfinite(others).sum(axis=1)
    with np.errstate(invalid="ignore"):
        below = (others < r0[:, None]).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pr = below / avail
    return np.where(np.isfinite(r0) & (avail >= 1), 100.0 * (1.0 - pr), np.nan)


def book_imbalance(bid_depth: np.ndarray, ask_depth: np.ndarray) -> np.ndarray:
    b, a = np.asarray(bid_depth, float), np.asarray(ask_depth, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        imb = (b - a) / (b + a)
    return np.where((b + a) > 0, imb, np.nan)


def premove_score(comp: np.ndarray, vbuild: np.ndarray, imb: np.ndarray, cfg: PremoveConfig) -> np.ndarray:
    c = np.nan_to_num(np.asarray(comp, float), nan=0.0)
    v = np.nan_to_num(100.0 * np.clip((np.asarray(vbuild, float) - 1.0) / cfg.volume_build_span, 0.0, 1.0), nan=0.0)
    i = np.nan_to_num(100.0 * np.clip(np.asarray(imb, float) / cfg.imbalance_cap, 0.0, 1.0), nan=0.0)
    return cfg.weight_compression * c + cfg.weight_volume * v + cfg.weight_imbalance * i


def premove_gates(comp: np.ndarray, vbuild: np.ndarray, imb: np.ndarray, cfg: PremoveConfig) -> np.ndarray:
    """(n × 3) bool: compression, volume_build, imbalance gates."""
    with np.errstate(invalid="ignore"):
        return np.column_stack([
            np.asarray(comp, float) >= cfg.compression_min,
            np.asarray(vbuild, float) >= cfg.volume_build_min,
            np.asarray(imb, float) >= cfg.imbalance_min,
        ])


def premove_state(score: np.ndarray, gates_passed: np.ndarray, cfg: PremoveConfig) -> np.ndarray:
    s = np.asarray(score, float)
    state = np.select(
        [s >= cfg.prime_min, s >= cfg.prepare_min, s >= cfg.watch_min], ["PRIME", "PREPARE", "WATCH"], default="QUIET"
    ).astype(object)
    state[(state == "PRIME") & (np.asarray(gates_passed) >= cfg.execute_min_gates)] = "EXECUTE"
    return state


def execution_risk(spread_bps, depth_usd, tier_depth_min, spread_gate, depth_gate, cfg: PremoveConfig) -> np.ndarray:
    sp, dp, dm = (np.asarray(a, float) for a in (spread_bps, depth_usd, tier_depth_min))
    high = ~np.asarray(spread_gate, bool) | ~np.asarray(depth_gate, bool)
    with np.errstate(invalid="ignore"):
        low = (sp <= cfg.low_risk_spread_bps) & (dp >= cfg.low_risk_depth_multiple * dm)
    return np.where(high, "HIGH", np.where(low, "LOW", "MEDIUM")).astype(object)


def premove_frame(
    evaluated: pd.DataFrame, rng: np.ndarray, usd: np.ndarray, cfg: PremoveConfig, timestamp: str
) -> pd.DataFrame:
    """Premove table for the rows of ``evaluated`` (needs symbol, venue, bid_depth_usd, ask_depth_usd,
    spread_bps, depth_usd, depth_min_usd, gate_spread, gate_depth) with period matrices in the same row order.
    Sorted by premove_score descending, ties by symbol."""
    comp = compression(rng, cfg.compression_periods)
    vb = volume_surge(usd, cfg.volume_build_periods)
    imb = book_imbalance(evaluated["bid_depth_usd"].to_numpy(float), evaluated["ask_depth_usd"].to_numpy(float))
    score = premove_score(comp, vb, imb, cfg)
    gp = premove_gates(comp, vb, imb, cfg).sum(axis=1).astype(np.int64)
    # premove_score descending, ties by symbol
    symbol = evaluated["symbol"].to_numpy(object)
    order = np.lexsort((pd.factorize(symbol, sort=True)[0], -score)) if len(score) else np.zeros(0, dtype=np.int64)
    out = pd.DataFrame(
        {
            "timestamp": np.full(len(score), timestamp, dtype=object),
            "symbol": evaluated["symbol"].to_numpy(object),
            "venue": evaluated["venue"].to_numpy(object),
            "premove_score": score,
            "state": premove_state(score, gp, cfg),
            "compression": comp,
            "volume_build": vb,
            "book_imbalance": imb,
            "gates_passed": gp,
            "execution_risk": execution_risk(
                evaluated["spread_bps"], evaluated["depth_usd"], evaluated["depth_min_usd"],
                evaluated["gate_spread"], evaluated["gate_depth"], cfg,
            ),
            "spread_bps": evaluated["spread_bps"].to_numpy(float),
            "depth_usd": evaluated["depth_usd"].to_numpy(float),
        },
        columns=list(PREMOVE_COLUMNS),
    )
    return out.take(order).reset_index(drop=True)
