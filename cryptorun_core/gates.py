"""Gates (SPEC §7): every gate for every symbol, in order, each recorded as
``{gate, passed, value, threshold, reason, detail}``.

| gate      | value                          | threshold                                   |
|-----------|--------------------------------|---------------------------------------------|
| history   | closed hourly bars in window   | ``gates.history_min_bars`` (192)            |
| freshness | bar lag in hours (newest close)| ``gates.fresh_max_bar_lag`` (book age ≤ 60 s in the detail) |
| score     | score                          | ``job.score_min``                           |
| vadr      | VADR                           | vadr_min = max(p80, tier_min), or tier_min when ``vadr_use_percentile`` is False |
| spread    | spread_bps                     | tier ``spread_max_bps`` × ``spread_multiplier`` |
| depth     | depth_usd                      | tier ``depth_min_usd`` × ``depth_multiplier``  |
| fatigue   | r_24h                          | ``gates.fatigue.r24h_above`` (RSI4h and a in the detail) |

``reason`` is None when the gate passes. Without a valid book the spread and depth gates fail
with ``no_book``. A symbol without a tier fails spread/depth/vadr against a missing threshold
(``no_tier``). NaN values never pass a comparison (fatigue: a NaN part means the fatigue
condition is not met, so the gate passes). ``decision`` is ``entry`` only when all pass;
``primary_reason`` is the reason of the first failing gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from cryptorun_core.config import AppConfig, JobSettings
from cryptorun_core.vadr import VadrThreshold

GATES = ("history", "freshness", "score", "vadr", "spread", "depth", "fatigue")
REASONS = {
    "history": "insufficient_history",
    "freshness": "stale_data",
    "score": "score_below_threshold",
    "vadr": "vadr_below_threshold",
    "spread": "spread_too_wide",
    "depth": "insufficient_depth",
    "fatigue": "fatigue",
}


def _num(x) -> float | None:
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


@dataclass(frozen=True)
class TierThresholds:
    tier: str
    score_min: float
    vadr_tier_min: float
    vadr_min: float
    spread_max_bps: float
    depth_min_usd: float


def tier_thresholds(config: AppConfig, settings: JobSettings, vthr: VadrThreshold) -> dict[str, TierThresholds]:
    """The job's effective thresholds per tier (hot vs warm profile comes from ``settings``)."""
    return {
        t.name: TierThresholds(
            tier=t.name,
            score_min=float(settings.score_min),
            vadr_tier_min=float(t.vadr_min),
            vadr_min=vthr.vadr_min(t.vadr_min, settings.vadr_use_percentile),
            spread_max_bps=float(t.spread_max_bps) * float(settings.spread_multiplier),
            depth_min_usd=float(t.depth_min_usd) * float(settings.depth_multiplier),
        )
        for t in config.universe.tiers
    }


def _result(gate: str, passed: bool, value, threshold, reason: str | None, detail: str) -> dict:
    return {"gate": gate, "passed": bool(passed), "value": value, "threshold": threshold,
            "reason": None if passed else reason, "detail": detail}


def symbol_gates(row: dict, config: AppConfig, thr: TierThresholds | None, score_min: float) -> list[dict]:
    """Gate results of one symbol (``row``: n_bars, fresh_ok, bar_lag_bars, book_age_s, has_book,
    book_invalid_reason, score, vadr, vadr_frozen, spread_bps, depth_usd, r_24h, rsi_4h, accel)."""
    g = config.gates
    out: list[dict] = []

    n_bars = int(row.get("n_bars") or 0)
    out.append(_result("history", n_bars >= g.history_min_bars, n_bars, g.history_min_bars, REASONS["history"],
                       f"{n_bars} closed hourly bars in the window; {g.history_min_bars} needed."))

    lag, age = _num(row.get("bar_lag_bars")), _num(row.get("book_age_s"))
    fresh = bool(row.get("fresh_ok"))
    out.append(_result("freshness", fresh, lag, float(g.fresh_max_bar_lag), REASONS["freshness"],
                       f"newest bar closed {_fmt(lag, '.2f')} bars before T (max {g.fresh_max_bar_lag}); "
                       f"book age {_fmt(age, '.1f')} s (max {g.fresh_max_book_age_s:g} s)."))

    score = _num(row.get("score"))
    out.append(_result("score", score is not None and score >= score_min, score, float(score_min), REASONS["score"],
                       f"score {_fmt(score, '.1f')} vs minimum {score_min:g}."))

    vadr = _num(row.get("vadr"))
    vmin = thr.vadr_min if thr else None
    if bool(row.get("vadr_frozen")):
        out.append(_result("vadr", False, None, vmin, "vadr_frozen",
                           f"VADR frozen: {int(row.get('complete_prior_periods') or 0)} complete prior periods, "
                           f"{config.vadr.min_prior_periods} needed."))
    elif thr is None:
        out.append(_result("vadr", False, vadr, None, "no_tier", "symbol has no liquidity tier, no VADR minimum."))
    else:
        out.append(_result("vadr", vadr is not None and vadr >= vmin, vadr, vmin, REASONS["vadr"],
                           f"VADR {_fmt(vadr, '.2f')} vs minimum {vmin:.2f} (tier minimum {thr.vadr_tier_min:.2f})."))

    has_book = bool(row.get("has_book"))
    no_book_detail = f"no valid order book on any venue ({row.get('book_invalid_reason') or 'no_book'})."
    spread, depth = _num(row.get("spread_bps")), _num(row.get("depth_usd"))
    if not has_book:
        out.append(_result("spread", False, None, thr.spread_max_bps if thr else None, "no_book", no_book_detail))
        out.append(_result("depth", False, None, thr.depth_min_usd if thr else None, "no_book", no_book_detail))
    elif thr is None:
        out.append(_result("spread", False, spread, None, "no_tier", "symbol has no liquidity tier, no spread cap."))
        out.append(_result("depth", False, depth, None, "no_tier", "symbol has no liquidity tier, no depth minimum."))
    else:
        out.append(_result("spread", spread is not None and spread <= thr.spread_max_bps, spread, thr.spread_max_bps,
                           REASONS["spread"], f"spread {_fmt(spread, '.1f')} bps vs cap {thr.spread_max_bps:.1f} bps."))
        out.append(_result("depth", depth is not None and depth >= thr.depth_min_usd, depth, thr.depth_min_usd,
                           REASONS["depth"], f"depth ±{g.depth_band_pct:g}% ${_fmt(depth, ',.0f')} vs minimum ${thr.depth_min_usd:,.0f}."))

    r24, rsi4, acc = _num(row.get("r_24h")), _num(row.get("rsi_4h")), _num(row.get("accel"))
    fatigued = (r24 is not None and rsi4 is not None and acc is not None
                and r24 > g.fatigue.r24h_above and rsi4 > g.fatigue.rsi4h_above and acc <= 0)
    out.append(_result("fatigue", not fatigued, r24, float(g.fatigue.r24h_above), REASONS["fatigue"],
                       f"r_24h {_fmt(None if r24 is None else 100 * r24, '.2f')}% (limit {100 * g.fatigue.r24h_above:g}%), "
                       f"RSI4h {_fmt(rsi4, '.1f')} (limit {g.fatigue.rsi4h_above:g}), acceleration {_fmt(acc, '.3f')} (fatigued when ≤ 0)."))
    return out


#: the row fields :func:`symbol_gates` reads
GATE_INPUTS = ("tier", "n_bars", "bar_lag_bars", "book_age_s", "fresh_ok", "score", "vadr", "vadr_frozen",
               "complete_prior_periods", "has_book", "book_invalid_reason", "spread_bps", "depth_usd", "r_24h", "rsi_4h", "accel")


def gate_columns(
    columns: Mapping[str, Sequence], n_rows: int, config: AppConfig, settings: JobSettings, vthr: VadrThreshold
) -> tuple[dict[str, object], list[list[dict]]]:
    """Gate results of ``n_rows`` rows given as columns (name → values, :data:`GATE_INPUTS` that are
    present) and the columns :func:`evaluate_gates` adds (``vadr_min``, ``gate_<name>``, ``gates_failed``,
    ``decision``, ``primary_reason``), in that order."""
    thresholds = tier_thresholds(config, settings, vthr)
    names = [c for c in GATE_INPUTS if c in columns]
    values = [np.asarray(columns[c]).tolist() for c in names]  # Python scalars, as DataFrame.to_dict gives them
    results: list[list[dict]] = []
    for vals in zip(*values) if names else [() for _ in range(n_rows)]:
        row = dict(zip(names, vals))
        thr = thresholds.get(row.get("tier")) if isinstance(row.get("tier"), str) else None
        results.append(symbol_gates(row, config, thr, settings.score_min))
    tiers = columns["tier"]
    out: dict[str, object] = {
        "vadr_min": np.array([thresholds[t].vadr_min if isinstance(t, str) and t in thresholds else np.nan for t in tiers], dtype=float),
    }
    for i, gate in enumerate(GATES):
        out[f"gate_{gate}"] = np.array([r[i]["passed"] for r in results], dtype=bool)
    out["gates_failed"] = np.array([",".join(r["gate"] for r in res if not r["passed"]) for res in results], dtype=object)
    out["decision"] = np.array(["entry" if all(r["passed"] for r in res) else "reject" for res in results], dtype=object)
    out["primary_reason"] = np.array([next((r["reason"] for r in res if not r["passed"]), None) for res in results], dtype=object)
    return out, results


def evaluate_gates(
    frame: pd.DataFrame, config: AppConfig, settings: JobSettings, vthr: VadrThreshold
) -> tuple[pd.DataFrame, list[list[dict]]]:
    """Evaluate every gate for every row of ``frame`` (needs a ``tier`` column plus the fields of :func:`symbol_gates`).

    Returns (frame with ``vadr_min``, ``gate_<name>`` flags, ``gates_failed``, ``decision``,
    ``primary_reason`` added; per-row gate result lists).
    """
    added, results = gate_columns({c: frame[c].to_numpy() for c in GATE_INPUTS if c in frame.columns}, len(frame),
                                  config, settings, vthr)
    return frame.assign(**added), results
