"""Pandera schemas of the engine's tables (docs/architecture.md, "Data contracts").

Each block below belongs to the module that produces the table and validates it on output.
Add new schemas in their own clearly separated block.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np
import pandas as pd
import pandera.pandas as pa

# ============================================================================================
# Universe ranking and regime indicators (cryptorun_core/universe.py, cryptorun_core/regime.py)
# SPEC §2 (universe) and §6 (regime).
# ============================================================================================

UNIVERSE_EXCLUSION_REASONS = ("stablecoin_or_fiat", "inactive", "insufficient_periods", "adv_below_min", "adv_not_finite")
UNIVERSE_SEGMENTS = ("hot", "warm", "none")
UNIVERSE_RANKING_COLUMNS = (
    "rank", "symbol", "adv_usd", "tier", "venues", "n_periods", "eligible", "exclusion_reason", "segment",
)


def _ranking_consistent(df: pd.DataFrame) -> pd.Series:
    """Eligible ⇔ ranked ⇔ no exclusion reason; excluded rows are in no segment."""
    # numpy rather than Series arithmetic: a backfill checks thousands of rankings
    eligible = df["eligible"].to_numpy(dtype=bool)
    ranked = ~pd.isna(df["rank"].to_numpy(dtype=object))
    no_reason = pd.isna(df["exclusion_reason"].to_numpy(dtype=object))
    segment_ok = eligible | (df["segment"].to_numpy(dtype=object) == "none")
    return pd.Series((eligible == ranked) & (eligible == no_reason) & segment_ok, index=df.index)


def _ranks_contiguous(df: pd.DataFrame) -> bool:
    """Ranks are exactly 1..n_eligible, ordered by ADV descending, and eligible rows come first."""
    rank = df["rank"].to_numpy(dtype="float64", na_value=np.nan)
    ranks = rank[~np.isnan(rank)]
    if len(ranks) == 0:
        return True
    if not np.array_equal(ranks, np.arange(1, len(ranks) + 1)):  # (not ``== range(...)``: element by element)
        return False
    eligible = df["eligible"].to_numpy(dtype=bool)
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
        pa.Check(_ranking_consistent, element_wise=False, name="ranking_consistent", error="eligible/rank/exclusion_reason/segment disagree"),
        pa.Check(_ranks_contiguous, element_wise=False, name="ranks_contiguous", error="ranks must be 1..n by ADV desc, eligible rows first"),
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
# (cryptorun_core/engine.py, cryptorun_core/scan_inputs.py, cryptorun_core/microstructure.py, cryptorun_core/premove.py)
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
    checks=[pa.Check(_score_desc, element_wise=False, name="score_descending", error="signals must be sorted by score descending")],
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
    checks=[pa.Check(_score_desc, element_wise=False, name="score_descending", error="signals must be sorted by score descending")],
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
    checks=[pa.Check(_decision_consistent, element_wise=False, name="decision_consistent", error="decision/primary_reason disagree with gate flags")],
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
    checks=[pa.Check(lambda df: df["valid"] == df["invalid_reason"].isna(), element_wise=False, name="valid_has_no_reason",
                     error="valid ⇔ no invalid_reason")],
    unique=["venue", "symbol"],
    strict=False,
    name="BookMetrics",
)

# ============================================================================================
# (end of scan outputs block)
# ============================================================================================


# ============================================================================================
# Validation (every block above): the schemas' own checks, evaluated with numpy
# ============================================================================================
#
# pandera's ``DataFrameSchema.validate`` costs ~1 ms per column on a frame of any size (dtype lookup,
# element-wise string type checks, failure-report formatting even when nothing fails), i.e. 10–15 ms
# per table — more than the scan itself. :func:`validate_frame` evaluates exactly the constraints
# the schema object declares (columns present, dtype, nullable, unique, every column and frame check,
# strict / ordered, unique column sets) directly with numpy, reading them from the schema, so the
# schema definitions above stay the single source of truth. A frame that fails any of them is handed
# to pandera's ``validate``, which raises its usual, detailed ``SchemaError``. Anything in a schema
# this reader does not know (coercion, regex columns, other check types, index checks) makes it hand
# the frame to pandera every time.

_STR_TYPES = frozenset({"string", "empty"})


def _builtin_check(check: pa.Check):
    """A numpy function (non-null values → bool array) for pandera's builtin column checks; None if unknown."""
    st = check.statistics or {}
    name = check.name
    if name == "greater_than_or_equal_to":
        return lambda v: v >= st["min_value"]
    if name == "greater_than":
        return lambda v: v > st["min_value"]
    if name == "less_than_or_equal_to":
        return lambda v: v <= st["max_value"]
    if name == "less_than":
        return lambda v: v < st["max_value"]
    if name == "in_range":
        lo_ok = (lambda v: v >= st["min_value"]) if st.get("include_min", True) else (lambda v: v > st["min_value"])
        hi_ok = (lambda v: v <= st["max_value"]) if st.get("include_max", True) else (lambda v: v < st["max_value"])
        return lambda v: lo_ok(v) & hi_ok(v)
    if name == "isin":
        allowed = set(st["allowed_values"])
        return lambda v: np.fromiter((x in allowed for x in pd.unique(v)), dtype=bool, count=-1)
    if name == "str_matches":
        import re

        pattern = re.compile(st["pattern"])
        return lambda v: np.fromiter((isinstance(x, str) and pattern.match(x) is not None for x in pd.unique(v)), dtype=bool, count=-1)
    if name == "isfinite":
        return np.isfinite
    return None


_DTYPE_OK: dict[tuple[int, object], bool] = {}


def _dtype_ok(expected, actual) -> bool:
    """pandera's own dtype equivalence (e.g. an ``Int64`` column accepts int64 values), memoised per pair."""
    key = (id(expected), actual)  # the schema (and so ``expected``) is kept alive by _VALIDATORS
    hit = _DTYPE_OK.get(key)
    if hit is None:
        from pandera.engines import pandas_engine

        res = expected.check(pandas_engine.Engine.dtype(actual))
        hit = _DTYPE_OK[key] = res is True or (isinstance(res, (bool, np.bool_)) and bool(res))
    return hit


def _column_validator(name: str, col) -> "callable | None":
    dtype = str(col.dtype) if col.dtype is not None else None
    if col.coerce or col.regex or not col.required or dtype is None:
        return None
    checks = []
    for check in col.checks:
        if check.element_wise or not check.ignore_na or check.groupby is not None:
            return None
        fn = _builtin_check(check)
        if fn is None:
            return None
        checks.append(fn)

    def ok(frame: pd.DataFrame, tables: np.ndarray | None = None) -> bool:
        series = frame[name]
        if isinstance(series, pd.DataFrame):  # duplicated column name
            return False
        if dtype == "str":
            if series.dtype != object or pd.api.types.infer_dtype(series.to_numpy(), skipna=True) not in _STR_TYPES:
                return False
        elif not _dtype_ok(col.dtype, series.dtype):
            return False
        values = series.to_numpy()
        kind = values.dtype.kind
        if kind == "f":
            null = np.isnan(values)
        elif kind in "biu":
            null = None  # numpy ints and bools have no missing value
        elif kind == "O":
            null = pd.isna(values)
        else:
            null = series.isna().to_numpy()
        if null is not None and null.any():
            if not col.nullable:
                return False
            values = values[~null]
            tables = tables[~null] if tables is not None else None
        if col.unique and _duplicated(values, tables):
            return False
        with np.errstate(invalid="ignore"):
            return all(bool(np.all(fn(values))) for fn in checks) if len(values) else True

    return ok


def _frame_validator(schema: pa.DataFrameSchema):
    """A function frame → bool that is True when every constraint of ``schema`` holds (None: not readable)."""
    if schema.coerce or schema.index is not None or getattr(schema, "add_missing_columns", False):
        return None
    columns = {}
    for name, col in schema.columns.items():
        fn = _column_validator(name, col)
        if fn is None:
            return None
        columns[name] = fn
    frame_checks = []
    for check in schema.checks:
        if check.element_wise or check.groupby is not None or _builtin_check(check) is not None:
            return None
        frame_checks.append(check._check_fn)
    names = list(schema.columns)

    def table_ok(frame: pd.DataFrame) -> bool:
        cols = list(frame.columns)
        if len(set(cols)) != len(cols) or any(c not in cols for c in names):
            return False
        if schema.strict is True and len(cols) != len(names):
            return False
        if schema.ordered and [c for c in cols if c in columns] != names:
            return False
        if schema.unique and frame.duplicated(subset=list(schema.unique)).any():
            return False
        for fn in frame_checks:
            res = fn(frame)
            if not bool(np.all(res.to_numpy() if isinstance(res, (pd.Series, pd.DataFrame)) else res)):
                return False
        return True

    def rows_ok(frame: pd.DataFrame, tables: np.ndarray | None = None) -> bool:
        return all(fn(frame, tables) for fn in columns.values())

    return _Validator(table_ok, rows_ok)


class _Validator(NamedTuple):
    """A readable schema's constraints in two parts: ``table`` holds for one table as a whole (columns
    present, strict, ordered, unique column sets, frame checks — any of which may look at the whole
    table); ``rows`` is every column's dtype, nullability and checks, row by row (a column's
    uniqueness within each table: ``tables`` labels each row's table, None for one table). ``rows``
    of a concatenation of tables with the same dtypes is the conjunction of ``rows`` of each."""

    table: Callable[[pd.DataFrame], bool]
    rows: Callable[[pd.DataFrame, "np.ndarray | None"], bool]


def _duplicated(values: np.ndarray, tables: np.ndarray | None) -> bool:
    """Some value occurs twice (in the same table, when ``tables`` labels each value's table)."""
    if tables is None:
        return bool(pd.Series(values).duplicated().any())
    return bool(pd.DataFrame({"table": tables, "value": values}).duplicated().any())


_VALIDATORS: dict[int, tuple[pa.DataFrameSchema, object]] = {}


def _validator(schema: pa.DataFrameSchema) -> _Validator | None:
    hit = _VALIDATORS.get(id(schema))
    if hit is None or hit[0] is not schema:
        hit = (schema, _frame_validator(schema))
        _VALIDATORS[id(schema)] = hit
    return hit[1]


def validate_frame(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """Validate ``frame`` against ``schema``: the schema's checks evaluated with numpy; a frame failing
    one (or a schema with a construct they do not cover) goes through pandera's ``validate``, which raises
    :class:`pandera.errors.SchemaError` with its report. Returns ``frame``."""
    if _passes(_validator(schema), [frame]):
        return frame
    return schema.validate(frame)


def frames_pass(schema: pa.DataFrameSchema, frames: Sequence[pd.DataFrame]) -> bool:
    """Every one of ``frames`` passes :func:`validate_frame` against ``schema`` — decided without
    pandera (False also when the schema is not readable: the caller validates each frame to get the
    report). For the thousands of tables of a single-run backfill: the row-by-row constraints are
    evaluated once over the concatenation of the tables that share columns and dtypes."""
    return _passes(_validator(schema), frames)


def _passes(check: _Validator | None, frames: Sequence[pd.DataFrame]) -> bool:
    """``check`` (None when the schema is not readable) holds for each of ``frames``. A frame the checks
    cannot even evaluate (e.g. a comparison of mixed types raising) is malformed: pandera reports it."""
    if check is None:
        return False
    alike: dict[tuple, list[pd.DataFrame]] = {}
    try:
        for frame in frames:
            if not check.table(frame):
                return False
            alike.setdefault((tuple(frame.columns), tuple(frame.dtypes)), []).append(frame)
        for group in alike.values():
            if len(group) == 1:
                if not check.rows(group[0], None):
                    return False
                continue
            tables = np.repeat(np.arange(len(group)), [len(f) for f in group])
            if not check.rows(pd.concat(group, ignore_index=True), tables):
                return False
        return True
    except (TypeError, ValueError, KeyError, AttributeError):
        return False
