"""Quality factor (SPEC §4): the mean of five 0–100 components.

1. tier score (``universe.tiers[*].score``: 100/70/40; 0 for a symbol without a tier);
2. ``100·clip(1 − spread_bps/cap, 0, 1)`` with cap = the tier's ``spread_max_bps`` (the tier's own
   cap, not the job-relaxed one, so the factor does not depend on the job);
3. ``100·clip(depth_usd/(2·tier depth_min_usd), 0, 1)``;
4. bar completeness = 100·(closed hourly bars present in the history window of the chosen venue /
   ``market.history_bars`` expected);
5. ``100·sources/venues`` with venues = the number of venues the job scans.

A symbol without a valid book scores 0 on components 2 and 3.
"""

from __future__ import annotations

import numpy as np


def quality_factor(
    tier_score: np.ndarray,
    spread_bps: np.ndarray,
    spread_cap_bps: np.ndarray,
    depth_usd: np.ndarray,
    depth_min_usd: np.ndarray,
    bars_present: np.ndarray,
    bars_expected: int,
    sources: np.ndarray,
    n_venues: int,
) -> dict[str, np.ndarray]:
    f = lambda a: np.asarray(a, dtype=float)  # noqa: E731
    tier_c = np.nan_to_num(f(tier_score), nan=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread_c = np.nan_to_num(100.0 * np.clip(1.0 - f(spread_bps) / f(spread_cap_bps), 0.0, 1.0), nan=0.0)
        depth_c = np.nan_to_num(100.0 * np.clip(f(depth_usd) / (2.0 * f(depth_min_usd)), 0.0, 1.0), nan=0.0)
    complete_c = 100.0 * np.clip(f(bars_present) / float(bars_expected), 0.0, 1.0)
    sources_c = 100.0 * np.clip(f(sources) / float(max(n_venues, 1)), 0.0, 1.0)
    comps = np.column_stack([tier_c, spread_c, depth_c, complete_c, sources_c])
    return {
        "quality": comps.mean(axis=1),
        "q_tier": tier_c,
        "q_spread": spread_c,
        "q_depth": depth_c,
        "q_completeness": complete_c,
        "q_sources": sources_c,
    }
