"""Asset checks: artifact schemas (SPEC §9 columns) and regime sanity.

The artifact checks are check specs of the scan assets (see :func:`artifact_check_specs`);
regime sanity is an asset check of its own (:func:`build_checks`). Freshness is not a check: it is
Dagster's freshness policy of each asset users read (:mod:`cryptorun_pipelines.freshness`).
"""


import math
from typing import Any, Iterable

import dagster as dg
import pandas as pd

from cryptorun_core.artifacts import BY_ASSET, COLUMNS
from cryptorun_core.asset_keys import HOT_EXPLAIN, HOT_PREMOVE, HOT_SIGNALS, REGIME_WEIGHTS, WARM_SIGNALS
from cryptorun_core.config import FACTORS, REGIMES
from cryptorun_pipelines.assets.common import REGIME_JSON_KEYS
from cryptorun_pipelines.io_managers.artifacts import PartitionedValues
from cryptorun_pipelines.partitions import Cadences

EXPLAIN_KEYS = ("as_of", "partition_key", "job", "regime", "inputs")


def _each(value: Any) -> list[tuple[str | None, Any]]:
    if isinstance(value, PartitionedValues):
        return list(value.items())
    return [(None, value)]


def artifact_columns(frame: pd.DataFrame, kind: str) -> list[str]:
    """The header ``artifacts.csv_bytes`` writes for ``frame``: the SPEC §9 columns first
    (``format_frame`` puts them there), then the frame's other columns."""
    first = list(COLUMNS[kind])
    return first + [c for c in frame.columns if c not in first]


def column_problems(frame: pd.DataFrame, kind: str) -> list[str]:
    """Problems of a table against SPEC §9: the file written from it must start with exactly
    COLUMNS[kind], i.e. the frame must have every one of them."""
    missing = [c for c in COLUMNS[kind] if c not in frame.columns]
    return [f"missing SPEC column(s) {missing} (expected {list(COLUMNS[kind])} first)"] if missing else []


def regime_problems(regime: dict) -> list[str]:
    """Sanity of one regime.json: keys, label, weights summing to 1, confidence in [0, 1]."""
    problems = [f"missing key {k}" for k in REGIME_JSON_KEYS if k not in regime]
    if problems:
        return problems
    if regime["regime"] not in REGIMES:
        problems.append(f"regime '{regime['regime']}' not one of {REGIMES}")
    weights = regime["weight_blend"]
    if sorted(weights) != sorted(FACTORS):
        problems.append(f"weight_blend factors {sorted(weights)} != {sorted(FACTORS)}")
    total = sum(float(w) for w in weights.values())
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        problems.append(f"weight_blend sums to {total:.6f}, not 1")
    if any(float(w) < 0 for w in weights.values()):
        problems.append("negative weight in weight_blend")
    conf = float(regime["confidence"])
    if not (0.0 <= conf <= 1.0):
        problems.append(f"confidence {conf} outside [0, 1]")
    for name in ("vol_vote", "ma_vote", "breadth_vote"):
        if regime["votes"].get(name) not in REGIMES:
            problems.append(f"votes.{name} = {regime['votes'].get(name)!r}")
    return problems


def build_checks(cadences: Cadences) -> list[dg.AssetChecksDefinition]:
    checks: list[dg.AssetChecksDefinition] = []

    @dg.asset_check(
        asset=REGIME_WEIGHTS,
        partitions_def=cadences.regime,
        name="regime_sanity",
        description="regime.json is sane: known label and votes, weight_blend sums to 1 with no negative weight, "
        "confidence in [0, 1].",
        blocking=True,
    )
    def regime_sanity(regime_weights) -> dg.AssetCheckResult:
        problems = [f"{k or ''} {p}".strip() for k, r in _each(regime_weights) for p in regime_problems(r)]
        last = _each(regime_weights)[-1][1]
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={
                "regime": str(last.get("regime")),
                "confidence": float(last.get("confidence", float("nan"))),
                "weight_sum": float(sum(last.get("weight_blend", {}).values())),
                "problems": dg.MetadataValue.json(problems[:10]),
            },
        )

    checks.append(regime_sanity)
    return checks


# -- SPEC §9 artifact checks -------------------------------------------------------------------
# Declared as check specs of the scan assets and evaluated in the step that writes the files: a
# check step of its own would cost a step's events and a re-read of the file it checks.

#: asset → (check name, artifacts.COLUMNS kind) of the CSV artifacts
COLUMN_CHECKS = {
    HOT_SIGNALS: ("signals_spec_columns", "signals"),
    HOT_PREMOVE: ("premove_spec_columns", "premove"),
    WARM_SIGNALS: ("warm_signals_spec_columns", "warm_signals"),
}
EXPLAIN_CHECK = "explain_spec_keys"


def artifact_check_specs(assets: Iterable[str]) -> list[dg.AssetCheckSpec]:
    """The blocking SPEC §9 checks of ``assets`` (``hot_signals``, ``hot_premove``, ``hot_explain``,
    ``warm_signals``), for the ``check_specs`` of the asset that produces them."""
    specs = []
    for asset in assets:
        if asset == HOT_EXPLAIN:
            specs.append(dg.AssetCheckSpec(
                EXPLAIN_CHECK, asset=asset, blocking=True,
                description="explain.json has as_of, partition_key, job, the regime used with its partition, and inputs.",
            ))
            continue
        name, kind = COLUMN_CHECKS[asset]
        file = BY_ASSET[asset].filename
        specs.append(dg.AssetCheckSpec(
            name, asset=asset, blocking=True,
            description=f"{file} starts with exactly the SPEC §9 columns " + ", ".join(COLUMNS[kind]) + ".",
        ))
    return specs


def columns_check(asset: str, value: Any) -> dg.AssetCheckResult:
    """``COLUMN_CHECKS[asset]`` on the table(s) about to be written (one per partition)."""
    name, kind = COLUMN_CHECKS[asset]
    problems = [f"{k or ''} {p}".strip() for k, frame in _each(value) for p in column_problems(frame, kind)]
    first = _each(value)[0][1]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=name,
        passed=not problems,
        metadata={
            "columns": dg.MetadataValue.json(artifact_columns(first, kind)),
            "problems": dg.MetadataValue.json(problems[:10]),
        },
    )


def explain_check(value: Any) -> dg.AssetCheckResult:
    """``explain_spec_keys`` on the explain.json mapping(s) about to be written."""
    problems = []
    for k, ex in _each(value):
        problems += [f"{k or ''} missing {key}".strip() for key in EXPLAIN_KEYS if key not in ex]
        if "regime" in ex and not (ex["regime"] or {}).get("partition_key"):
            problems.append("regime.partition_key missing")
    return dg.AssetCheckResult(
        asset_key=HOT_EXPLAIN, check_name=EXPLAIN_CHECK, passed=not problems,
        metadata={"problems": dg.MetadataValue.json(problems[:10])},
    )
