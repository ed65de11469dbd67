"""Pandera schemas of the engine's tables (docs/architecture.md, "Data contracts").

Each block below belongs to the module that produces the table and validates it on output.
Add new schemas in their own clearly separated block.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

# ============================================================================================
# Universe ranking and regime indicators (cryptorun_core/universe.py, cryptorun_core/regime.py)
# SPEC §2 (universe) and §6 (regime).
# ============================================================================================

UNIVERSE_EXCLUSION_REASONS = ("stablecoin_or_fiat", "inactive", "insufficient_periods", "adv_below_min")
UNIVERSE_SEGMENTS = ("hot", "warm", "none")
UNIVERSE_RANKING_COLUMNS = (
    "rank", "symbol", "adv_usd", "tier", "venues", "n_periods", "eligible", "exclusion_reason", "segment",
)


def _ranking_consistent(df: pd.DataFrame) -> pd.Series:
    """Eligible ⇔ ranked ⇔ no exclusion reason; excluded rows are in no segment."""
    eligible = df["eligible"].astype(bool)
    ranked = df["rank"].notna()
    no_reason = df["exclusion_reason"].isna()
    segment_ok = eligible | (df["segment"] == "none")
    return (eligible == ranked) & (eligible == no_reason) & segment_ok


def _ranks_contiguous(df: pd.DataFrame) -> bool:
    """Ranks are exactly 1..n_eligible, ordered by ADV descending, and eligible rows come first."""
    ranks = df["rank"].dropna().astype("int64").to_numpy()
    if len(ranks) == 0:
        return True
    if not (ranks == range(1, len(ranks) + 1)).all():
        return False
    eligible = df["eligible"].astype(bool).to_numpy()
    if eligible[: len(ranks)].sum() != len(ranks):  # eligible rows first, in rank order
        return False
    adv = df["adv_usd"].to_numpy()[: len(ranks)]
    return bool((adv[:-1] >= adv[1:]).all())


UniverseRankingSchema = pa.DataFrameSchema(
    {
        "rank": pa.Column("Int64", pa.Check.ge(1), nullable=True),  # uniqueness: _ranks_contiguous
        "symbol": pa.Column(str, pa.Check.str_matches(r"^[^/\s]+/USD$"), unique=True),
        "adv_usd": pa.Column(float, pa.Check.ge(0), nullable=True),
        "tier": pa.Column(object, nullable=True),
        "venues": pa.Column(str),
        "n_periods": pa.Column("int64", pa.Check.ge(0)),
        "eligible": pa.Column(bool),
        "exclusion_reason": pa.Column(object, pa.Check.isin(UNIVERSE_EXCLUSION_REASONS), nullable=True),
        "segment": pa.Column(str, pa.Check.isin(UNIVERSE_SEGMENTS)),
    },
    checks=[
        pa.Check(_ranking_consistent, element_wise=False, error="eligible/rank/exclusion_reason/segment disagree"),
        pa.Check(_ranks_contiguous, element_wise=False, error="ranks must be 1..n by ADV desc, eligible rows first"),
    ],
    strict=True,
    ordered=True,
    name="UniverseRanking",
)

# One row per regime computation (SPEC §6). Extra columns (as_of, regime, ...) are allowed so a
# history of regime results can be validated with the same schema.
RegimeIndicatorsSchema = pa.DataFrameSchema(
    {
        "realized_vol_7d": pa.Column(float, [pa.Check.ge(0), pa.Check(np.isfinite, error="must be finite")]),
        "pct_above_20ma": pa.Column(float, [pa.Check.in_range(0, 100)]),
        "breadth_thrust": pa.Column(float, [pa.Check.in_range(0, 1)]),
    },
    strict=False,
    name="RegimeIndicators",
)

# ============================================================================================
# (end of universe / regime block)
# ============================================================================================

# ============================================================================================
# Scan outputs: signals, warm signals, premove, evaluated, book metrics
# (cryptorun_core/engine.py, cryptorun_core/microstructure.py, cryptorun_core/premove.py)
# SPEC §3, §7, §8, §9. Validated by run_scan on every output.
# ============================================================================================

_ISO_Z = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"
SCAN_GATES = ("history", "freshness", "score", "vadr", "spread", "depth", "fatigue")
SCAN_REASONS = (
    "insufficient_history", "stale_data", "score_below_threshold", "vadr_frozen", "vadr_below_threshold",
    "spread_too_wide", "insufficient_depth", "fatigue", "no_book", "no_tier",
)
BOOK_INVALID_REASONS = ("crossed_book", "empty_book", "one_sided_book", "bad_levels", "absurd_spread")
PREMOVE_STATES = ("QUIET", "WATCH", "PREPARE", "PRIME", "EXECUTE")
EXECUTION_RISKS = ("LOW", "MEDIUM", "HIGH")


def _score_col(nullable: bool = False) -> pa.Column:
    return pa.Column(float, pa.Check.in_range(0, 100), nullable=nullable)


def _signals_columns() -> dict:
    return {
        "timestamp": pa.Column(str, pa.Check.str_matches(_ISO_Z)),
        "symbol": pa.Column(str, unique=True),
        "score": _score_col(),
        "momentum_core": _score_col(),
        "vadr": pa.Column(float, pa.Check.ge(0)),
        "spread_bps": pa.Column(float, pa.Check.ge(0)),
        "depth_usd": pa.Column(float, pa.Check.ge(0)),
        "regime": pa.Column(str, pa.Check.isin(("calm", "normal", "volatile"))),
        "fresh": pa.Column(str, pa.Check.isin(("●", "○"))),
        "venue": pa.Column(str),
        "sources": pa.Column("int64", pa.Check.ge(0)),
    }


def _signals_extra() -> dict:
    return {
        "tier": pa.Column(object, nullable=True),
        "technical": _score_col(),
        "volume": _score_col(),
        "quality": _score_col(),
        "vadr_min": pa.Column(float, pa.Check.gt(0), nullable=True),
        "depth_badge": pa.Column(str, pa.Check.isin(("✓", "✗"))),
    }


def _score_desc(df: pd.DataFrame) -> bool:
    s = df["score"].to_numpy()
    return bool((s[:-1] >= s[1:]).all()) if len(s) > 1 else True


SignalsSchema = pa.DataFrameSchema(
    {**_signals_columns(), **_signals_extra()},
    checks=[pa.Check(_score_desc, element_wise=False, error="signals must be sorted by score descending")],
    strict=True,
    ordered=True,
    name="Signals",
)

WarmSignalsSchema = pa.DataFrameSchema(
    {
        **_signals_columns(),
        "cached": pa.Column(bool),
        "ttl_remaining_s": pa.Column(float, nullable=True),
        **_signals_extra(),
    },
    checks=[pa.Check(_score_desc, element_wise=False, error="signals must be sorted by score descending")],
    strict=True,
    ordered=True,
    name="WarmSignals",
)

PremoveSchema = pa.DataFrameSchema(
    {
        "timestamp": pa.Column(str, pa.Check.str_matches(_ISO_Z)),
        "symbol": pa.Column(str, unique=True),
        "venue": pa.Column(object, nullable=True),
        "premove_score": _score_col(),
        "state": pa.Column(str, pa.Check.isin(PREMOVE_STATES)),
        "compression": _score_col(nullable=True),
        "volume_build": pa.Column(float, pa.Check.ge(0), nullable=True),
        "book_imbalance": pa.Column(float, pa.Check.in_range(-1, 1), nullable=True),
        "gates_passed": pa.Column("int64", pa.Check.in_range(0, 3)),
        "execution_risk": pa.Column(str, pa.Check.isin(EXECUTION_RISKS)),
        "spread_bps": pa.Column(float, pa.Check.ge(0), nullable=True),
        "depth_usd": pa.Column(float, pa.Check.ge(0), nullable=True),
    },
    strict=True,
    ordered=True,
    name="Premove",
)


def _decision_consistent(df: pd.DataFrame) -> pd.Series:
    all_pass = df[[f"gate_{g}" for g in SCAN_GATES]].all(axis=1)
    return (all_pass == (df["decision"] == "entry")) & (all_pass == df["primary_reason"].isna())


EvaluatedSchema = pa.DataFrameSchema(
    {
        "timestamp": pa.Column(str, pa.Check.str_matches(_ISO_Z)),
        "rank": pa.Column("Int64", nullable=True),
        "symbol": pa.Column(str, unique=True),
        "tier": pa.Column(object, nullable=True),
        "venue": pa.Column(object, nullable=True),
        "sources": pa.Column("int64", pa.Check.ge(0)),
        "fresh": pa.Column(str, pa.Check.isin(("●", "○"))),
        "depth_badge": pa.Column(str, pa.Check.isin(("✓", "✗"))),
        "has_book": pa.Column(bool),
        "spread_bps": pa.Column(float, pa.Check.ge(0), nullable=True),
        "depth_usd": pa.Column(float, pa.Check.ge(0), nullable=True),
        "n_bars": pa.Column("int64", pa.Check.ge(0)),
        "score": _score_col(nullable=True),
        "momentum_core": _score_col(nullable=True),
        "technical": _score_col(nullable=True),
        "volume": _score_col(nullable=True),
        "quality": _score_col(nullable=True),
        "vadr": pa.Column(float, pa.Check.ge(0), nullable=True),
        "vadr_frozen": pa.Column(bool),
        "vadr_min": pa.Column(float, nullable=True),
        **{f"gate_{g}": pa.Column(bool) for g in SCAN_GATES},
        "decision": pa.Column(str, pa.Check.isin(("entry", "reject"))),
        "primary_reason": pa.Column(object, pa.Check.isin(SCAN_REASONS), nullable=True),
    },
    checks=[pa.Check(_decision_consistent, element_wise=False, error="decision/primary_reason disagree with gate flags")],
    strict=False,
    name="Evaluated",
)

BookMetricsSchema = pa.DataFrameSchema(
    {
        "venue": pa.Column(str),
        "symbol": pa.Column(str),
        "best_bid": pa.Column(float, nullable=True),
        "best_ask": pa.Column(float, nullable=True),
        "mid": pa.Column(float, pa.Check.gt(0), nullable=True),
        "spread_bps": pa.Column(float, pa.Check.ge(0), nullable=True),
        "depth_usd": pa.Column(float, pa.Check.ge(0), nullable=True),
        "bid_depth_usd": pa.Column(float, pa.Check.ge(0), nullable=True),
        "ask_depth_usd": pa.Column(float, pa.Check.ge(0), nullable=True),
        "book_time": pa.Column("datetime64[ns, UTC]"),
        "book_age_s": pa.Column(float, pa.Check.ge(0)),
        "valid": pa.Column(bool),
        "invalid_reason": pa.Column(object, pa.Check.isin(BOOK_INVALID_REASONS), nullable=True),
    },
    checks=[pa.Check(lambda df: df["valid"] == df["invalid_reason"].isna(), element_wise=False,
                     error="valid ⇔ no invalid_reason")],
    unique=["venue", "symbol"],
    strict=False,
    name="BookMetrics",
)

# ============================================================================================
# (end of scan outputs block)
# ============================================================================================
