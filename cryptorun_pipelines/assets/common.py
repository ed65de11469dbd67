"""Dagster types and materialisation metadata shared by the CryptoRun assets."""


import time
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import dagster as dg
import pandas as pd
import pandera.errors as pa_errors
from dagster_pandera import pandera_schema_to_dagster_type

from cryptorun_core.market.snapshot import MarketSnapshot
from cryptorun_core.schemas import frames_pass, validate_frame
from cryptorun_pipelines.io_managers.artifacts import PartitionedValues

PREVIEW_ROWS = 10


def _each(value: Any) -> list[Any]:
    return list(value.values()) if isinstance(value, PartitionedValues) else [value]


def _valid(schema, frame: Any) -> bool:
    """``frame`` is a DataFrame that :func:`validate_frame` accepts against ``schema``."""
    if not isinstance(frame, pd.DataFrame):
        return False
    try:
        validate_frame(schema, frame)
    except (pa_errors.SchemaError, pa_errors.SchemaErrors):
        return False
    return True


def table_type(schema, description: str) -> dg.DagsterType:
    """The dagster-pandera type of ``schema`` (its column table shows in the UI), also accepting the
    ``PartitionedValues`` of a multi-partition (single-run backfill) step: every frame is validated.

    Frames are checked with :func:`cryptorun_core.schemas.frames_pass` (the schema's own checks
    evaluated with numpy: ~1 ms per table instead of pandera's ~10 ms, and the row-by-row ones once
    over the concatenated tables of a backfill). A frame it rejects fails the type check with dagster-pandera's report (pandera's
    lazy validation: message, number of failures, failure sample); so does anything not a DataFrame.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        base = pandera_schema_to_dagster_type(schema)
    metadata = dict(base.metadata)
    if isinstance(metadata.get("schema"), dg.TableSchemaMetadataValue):
        metadata["schema"] = dg.MetadataValue.table_schema(readable_schema(schema, metadata["schema"].schema))

    def check(context, value: Any) -> dg.TypeCheck:
        frames = _each(value)
        if all(isinstance(frame, pd.DataFrame) for frame in frames) and frames_pass(schema, frames):
            return dg.TypeCheck(success=True)
        for frame in frames:
            if _valid(schema, frame):
                continue
            result = base.type_check(context, frame)  # the report, with every failure of the frame
            if not result.success:
                return result
        return dg.TypeCheck(success=True)

    return dg.DagsterType(
        type_check_fn=check,
        name=base.unique_name,
        description=description or base.description,
        metadata=metadata,
        typing_type=pd.DataFrame,
    )


#: the UI cuts a constraint label at this many characters (Dagster's MAX_CONSTRAINT_TAG_CHARS)
CONSTRAINT_LABEL_MAX = 30
_PATTERN_LABELS = {r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$": "YYYY-MM-DDTHH:MM:SSZ", r"^[^/\s]+/USD$": "BASE/USD"}


def _column_constraint(check) -> str | None:
    """A column check as a label that fits the UI's constraint tag: ``∈ {calm, normal, volatile}``,
    ``BASE/USD``; a set of values too long to show whole reads ``one of N codes`` (its description
    names them)."""
    stats = check.statistics or {}
    if check.name == "isin":
        values = ", ".join(str(v) for v in stats.get("allowed_values", ()))
        label = f"∈ {{{values}}}"
        return label if len(label) <= CONSTRAINT_LABEL_MAX else f"one of {len(stats.get('allowed_values', ()))} codes"
    if check.name == "str_matches":
        pattern = stats.get("pattern")
        return _PATTERN_LABELS.get(getattr(pattern, "pattern", pattern), "matches a pattern")
    return None


def readable_schema(schema, table: dg.TableSchema) -> dg.TableSchema:
    """``table`` (dagster-pandera's TableSchema of ``schema``) as the UI should show it: every column
    described from SPEC (:data:`~cryptorun_core.column_docs.COLUMN_DESCRIPTIONS`), constraint labels
    that fit their tag, and each table-wide check by its short name (its sentence is the asset's
    ``table_checks`` metadata)."""
    from cryptorun_core.column_docs import COLUMN_DESCRIPTIONS

    columns = []
    for col in table.columns:
        checks = schema.columns[col.name].checks if col.name in schema.columns else []
        labels = [_column_constraint(c) or label for c, label in zip(checks, col.constraints.other)] if len(checks) == len(col.constraints.other) else list(col.constraints.other)
        columns.append(dg.TableColumn(
            name=col.name, type=col.type, description=COLUMN_DESCRIPTIONS.get(col.name, col.description),
            constraints=dg.TableColumnConstraints(nullable=col.constraints.nullable, unique=col.constraints.unique, other=labels),
            tags=col.tags,
        ))
    return dg.TableSchema(columns=columns, constraints=dg.TableConstraints(other=[c.name for c in schema.checks]))


def object_type(name: str, description: str, predicate, what: str) -> dg.DagsterType:
    def check(_context, value: Any) -> dg.TypeCheck:
        bad = [type(v).__name__ for v in _each(value) if not predicate(v)]
        if bad:
            return dg.TypeCheck(success=False, description=f"expected {what}, got {bad[0]}")
        return dg.TypeCheck(success=True)

    return dg.DagsterType(type_check_fn=check, name=name, description=description)


MarketSnapshotType = object_type(
    "MarketSnapshot",
    "Bars, order books, fetch log and market listings read at the cycle's as-of time (parquet tables + meta.json).",
    lambda v: isinstance(v, MarketSnapshot),
    "a MarketSnapshot",
)

REGIME_JSON_KEYS = (
    "timestamp", "regime", "indicators", "confidence", "votes", "weight_blend", "next_refresh",
    "as_of", "partition_key", "universe_size", "benchmark", "thresholds",
)
RegimeJsonType = object_type(
    "RegimeJson",
    "regime.json (SPEC §9): label, indicators, votes, confidence, weight blend, next refresh, as_of, partition_key.",
    lambda v: isinstance(v, Mapping) and all(k in v for k in REGIME_JSON_KEYS),
    "a regime.json mapping with " + ", ".join(REGIME_JSON_KEYS),
)
ExplainJsonType = object_type(
    "ExplainJson",
    "explain.json (SPEC §9): inputs and their partitions, regime used, thresholds, hashes, counts, every evaluated symbol.",
    lambda v: isinstance(v, Mapping) and "partition_key" in v and "inputs" in v,
    "an explain mapping with partition_key and inputs",
)


def frame_metadata(frame: pd.DataFrame | None, columns: Sequence[str] | None = None) -> dict[str, Any]:
    """Row count and the top rows as a markdown table with badges (charts.tables.badge_table)."""
    if frame is None:
        return {}
    from cryptorun_pipelines.charts.tables import badge_table

    shown = list(frame.columns) if columns is None else [c for c in columns if c in frame.columns]
    return {
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        # top rows with badges (fresh ●/○, depth ✓/✗, decision ✓/✗; regime, state and risk as words)
        "preview": dg.MetadataValue.md(badge_table(frame, shown, n=PREVIEW_ROWS)),
    }


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """``with timed() as t: ...`` → ``t['seconds']``."""
    out: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - start


def duration_metadata(seconds: float) -> dict[str, Any]:
    return {"duration_s": dg.MetadataValue.float(round(seconds, 3))}


def regime_metadata(regime: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "regime": dg.MetadataValue.text(str(regime.get("regime"))),
        "regime_confidence": dg.MetadataValue.float(float(regime.get("confidence", float("nan")))),
        "regime_partition": dg.MetadataValue.text(str(regime.get("partition_key"))),
    }


def partition_keys(context: dg.AssetExecutionContext) -> list[str]:
    """The partition keys of this step (several in a single-run backfill)."""
    return list(context.partition_keys)


def per_partition(value: Any, keys: Sequence[str]) -> dict[str, Any]:
    """Normalise an input to ``{partition_key: value}`` for the step's keys."""
    if isinstance(value, PartitionedValues):
        return dict(value)
    if len(keys) != 1:
        raise dg.DagsterInvariantViolationError(f"expected one value per partition for {len(keys)} partitions")
    return {keys[0]: value}


def pack(values: dict[str, Any], keys: Sequence[str]) -> Any:
    """The output value for a step over ``keys``: the bare value for one key, PartitionedValues otherwise."""
    if len(keys) == 1:
        return values[keys[0]]
    return PartitionedValues(values)
