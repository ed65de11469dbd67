"""Asset checks: artifact schemas (SPEC §9 columns), regime sanity, and freshness per cadence."""


import math
from datetime import datetime, timezone
from typing import Any, Iterable

import dagster as dg
import pandas as pd

from cryptorun_core.artifacts import COLUMNS
from cryptorun_core.config import FACTORS, REGIMES
from cryptorun_pipelines.assets.common import REGIME_JSON_KEYS
from cryptorun_pipelines.io_managers.artifacts import PartitionedValues
from cryptorun_pipelines.partitions import Cadences, as_of_for_key, latest_closed_key

UTC = timezone.utc
EXPLAIN_KEYS = ("as_of", "partition_key", "job", "regime", "inputs")


def _each(value: Any) -> list[tuple[str | None, Any]]:
    if isinstance(value, PartitionedValues):
        return list(value.items())
    return [(None, value)]


def column_problems(frame: pd.DataFrame, kind: str) -> list[str]:
    """Problems of a written CSV table against SPEC §9: its first columns must be exactly COLUMNS[kind]."""
    want = list(COLUMNS[kind])
    got = list(frame.columns)
    if got[: len(want)] != want:
        missing = [c for c in want if c not in got]
        return [f"expected columns {want} first, got {got[: len(want)]}" + (f" (missing {missing})" if missing else "")]
    return []


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
        asset="regime_weights",
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

    if cadences.hot_job is not None:

        @dg.asset_check(asset="hot_signals", partitions_def=cadences.hot, name="signals_spec_columns", blocking=True,
                        description="signals.csv starts with exactly the SPEC §9 columns " + ", ".join(COLUMNS["signals"]) + ".")
        def signals_spec_columns(hot_signals) -> dg.AssetCheckResult:
            return _columns_result(hot_signals, "signals")

        @dg.asset_check(asset="hot_premove", partitions_def=cadences.hot, name="premove_spec_columns", blocking=True,
                        description="premove.csv starts with exactly the SPEC §9 columns " + ", ".join(COLUMNS["premove"]) + ".")
        def premove_spec_columns(hot_premove) -> dg.AssetCheckResult:
            return _columns_result(hot_premove, "premove")

        @dg.asset_check(asset="hot_explain", partitions_def=cadences.hot, name="explain_spec_keys", blocking=True,
                        description="explain.json has as_of, partition_key, job, the regime used with its partition, and inputs.")
        def explain_spec_keys(hot_explain) -> dg.AssetCheckResult:
            problems = []
            for k, ex in _each(hot_explain):
                problems += [f"{k or ''} missing {key}".strip() for key in EXPLAIN_KEYS if key not in ex]
                if "regime" in ex and not (ex["regime"] or {}).get("partition_key"):
                    problems.append("regime.partition_key missing")
            return dg.AssetCheckResult(passed=not problems, metadata={"problems": dg.MetadataValue.json(problems[:10])})

        checks += [signals_spec_columns, premove_spec_columns, explain_spec_keys]

    if cadences.warm_job is not None:

        @dg.asset_check(asset="warm_signals", partitions_def=cadences.warm, name="warm_signals_spec_columns", blocking=True,
                        description="warm_signals.csv starts with exactly the SPEC §9 columns " + ", ".join(COLUMNS["warm_signals"]) + ".")
        def warm_signals_spec_columns(warm_signals) -> dg.AssetCheckResult:
            return _columns_result(warm_signals, "warm_signals")

        checks.append(warm_signals_spec_columns)

    for asset_name, job, pdef in _terminal_assets(cadences):
        checks.append(_freshness_check(asset_name, job.name, pdef))
    return checks


def _columns_result(value: Any, kind: str) -> dg.AssetCheckResult:
    problems = [f"{k or ''} {p}".strip() for k, frame in _each(value) for p in column_problems(frame, kind)]
    first = _each(value)[0][1]
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "columns": dg.MetadataValue.json(list(first.columns)),
            "problems": dg.MetadataValue.json(problems[:10]),
        },
    )


def _terminal_assets(cadences: Cadences) -> Iterable[tuple[str, Any, dg.TimeWindowPartitionsDefinition]]:
    yield "regime_weights", cadences.regime_job, cadences.regime
    if cadences.hot_job is not None:
        yield "hot_signals", cadences.hot_job, cadences.hot
    if cadences.warm_job is not None:
        yield "warm_signals", cadences.warm_job, cadences.warm


def freshness_status(materialized: Iterable[str], pdef: dg.TimeWindowPartitionsDefinition, now: datetime) -> dict[str, Any]:
    """How far the newest materialised partition lags the newest closed window, in cycles."""
    expected = latest_closed_key(pdef, now)
    keys = [k for k in materialized if pdef.has_partition_key(k)] if expected else []
    if not keys:
        return {"expected": expected, "latest": None, "lag_cycles": None, "passed": False}
    latest = max(keys, key=lambda k: as_of_for_key(pdef, k))
    end_latest = as_of_for_key(pdef, latest)
    end_expected = as_of_for_key(pdef, expected)
    width = end_expected - pdef.time_window_for_partition_key(expected).start
    lag = int(round((end_expected - end_latest) / width))
    return {"expected": expected, "latest": latest, "lag_cycles": lag, "passed": lag <= 1}


def _freshness_check(asset_name: str, job_name: str, pdef: dg.TimeWindowPartitionsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset_name,
        partitions_def=pdef,
        name=f"{asset_name}_fresh",
        description=f"The newest materialised partition of {asset_name} is the latest closed {job_name} window, "
        "or the one before it (its run may still be going); warns otherwise.",
        blocking=False,
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        now = datetime.now(UTC)
        materialized = context.instance.get_materialized_partitions(dg.AssetKey(asset_name))
        status = freshness_status(materialized, pdef, now)
        return dg.AssetCheckResult(
            passed=bool(status["passed"]),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "latest_materialized": str(status["latest"]),
                "latest_closed_window": str(status["expected"]),
                "lag_cycles": -1 if status["lag_cycles"] is None else int(status["lag_cycles"]),
                "job": job_name,
            },
        )

    return _check
