"""validate_frame and frames_pass: the schemas' own checks evaluated with numpy must reject every frame pandera rejects,
and a batch of tables exactly when one of them is rejected."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.errors as pae
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _builders as B  # noqa: E402

from cryptorun_core import schemas as S  # noqa: E402
from cryptorun_core.engine import run_scan  # noqa: E402
from cryptorun_core.microstructure import book_metrics  # noqa: E402
from cryptorun_core.universe import rank_universe  # noqa: E402
from cryptorun_core.schemas import _frame_validator, frames_pass, validate_frame  # noqa: E402

CFG = B.config()


@pytest.fixture(scope="module")
def tables():
    snap, rk = B.universe(30, strong=(0, 3, 5), seed=1)
    hot = run_scan(snap, rk, B.regime("normal"), CFG, CFG.job("scan.hot"))
    assert len(hot.signals), "the fixture needs entries"
    # warm signals with rows: the hot entries with the warm columns (cached, ttl_remaining_s) in place
    warm = hot.signals.assign(cached=False, ttl_remaining_s=np.where(np.arange(len(hot.signals)) % 2, 30.0, np.nan))
    warm = warm[list(S.WarmSignalsSchema.columns)]
    ranking = rank_universe(snap, CFG, hot_size=10, warm_size=10)
    # a few excluded rows too (eligible rows first, then excluded ones by symbol)
    excluded = ranking.tail(4).assign(rank=pd.array([pd.NA] * 4, dtype="Int64"), eligible=False, tier=None,
                                      exclusion_reason="adv_below_min", segment="none")
    ranking = pd.concat([ranking.iloc[:-4], excluded], ignore_index=True)
    # a history of regime rows (the schema allows the extra columns regime_indicators carries)
    indicators = pd.DataFrame({"realized_vol_7d": [0.41, 0.0, 1.7], "pct_above_20ma": [55.0, 0.0, 100.0],
                               "breadth_thrust": [0.2, 0.0, 1.0], "as_of": ["2026-11-20T12:00:00Z"] * 3,
                               "universe_size": [100, 80, 3]})
    return {
        "ranking": (S.UniverseRankingSchema, ranking),
        "indicators": (S.RegimeIndicatorsSchema, indicators),
        "signals": (S.SignalsSchema, hot.signals),
        "warm": (S.WarmSignalsSchema, warm),
        "evaluated": (S.EvaluatedSchema, hot.evaluated),
        "premove": (S.PremoveSchema, hot.premove),
        "books": (S.BookMetricsSchema, book_metrics(snap.books, snap.as_of, CFG)),
    }


def _mutations(schema, frame: pd.DataFrame):
    """(name, frame) pairs, each breaking one kind of constraint of ``schema`` where it has one."""
    cols = list(frame.columns)
    yield "missing column", frame.drop(columns=[cols[0]])
    yield "extra column", frame.assign(zzz_extra=1)
    yield "reordered", frame[cols[::-1]]
    yield "duplicated column", pd.concat([frame, frame[[cols[1]]]], axis=1)
    for name, col in schema.columns.items():
        if name not in frame.columns or len(frame) == 0:
            continue
        s = frame[name]
        bad = frame.copy()
        bad[name] = s.astype(str) if s.dtype != object else s.map(lambda x: 12345)
        yield f"{name}: wrong type", bad
        bad = frame.copy()
        bad[name] = s.astype(object).where(np.arange(len(s)) != 0, None)
        yield f"{name}: null (object)", bad
        if s.dtype.kind == "f":
            bad = frame.copy()
            vals = s.to_numpy(copy=True)
            vals[0] = np.nan
            bad[name] = vals
            yield f"{name}: NaN", bad
            for v in (-1.0, 1e9, -1e-9, 100.000001, np.inf):
                bad = frame.copy()
                vals = s.to_numpy(copy=True)
                vals[-1] = v
                bad[name] = vals
                yield f"{name}: value {v}", bad
        if s.dtype.kind in "iu":
            bad = frame.copy()
            bad[name] = s.to_numpy() - 10
            yield f"{name}: negative ints", bad
        if s.dtype == object:
            bad = frame.copy()
            vals = s.to_numpy(copy=True)
            vals[0] = "not-an-allowed-value"
            bad[name] = vals
            yield f"{name}: unknown string", bad
        if len(frame) > 1:
            bad = frame.copy()
            vals = s.to_numpy(copy=True)
            vals[1] = vals[0]
            bad[name] = vals
            yield f"{name}: duplicate", bad
    if len(frame) > 1:
        yield "rows reversed", frame.iloc[::-1].reset_index(drop=True)
        yield "row duplicated", pd.concat([frame, frame.iloc[[0]]], ignore_index=True)


def _pandera_rejects(schema, frame) -> bool:
    try:
        schema.validate(frame)
    except (pae.SchemaError, pae.SchemaErrors):
        return True
    return False


TABLES = ["ranking", "indicators", "signals", "warm", "evaluated", "premove", "books"]


@pytest.mark.parametrize("table", TABLES)
def test_valid_tables_pass_and_every_schema_is_read(tables, table):
    schema, frame = tables[table]
    assert _frame_validator(schema) is not None  # no construct of the schemas is left to pandera alone
    assert frames_pass(schema, [frame])
    assert validate_frame(schema, frame) is frame


@pytest.mark.parametrize("table", TABLES)
def test_every_frame_pandera_rejects_is_rejected(tables, table):
    schema, frame = tables[table]
    rejected = 0
    for name, bad in _mutations(schema, frame):
        if _pandera_rejects(schema, bad):
            rejected += 1
            assert not frames_pass(schema, [bad]), f"{table}: {name} passes the numpy checks but pandera rejects it"
            with pytest.raises((pae.SchemaError, pae.SchemaErrors)):
                validate_frame(schema, bad)
        else:  # pandera accepts it: so does validate_frame (no error)
            validate_frame(schema, bad)
    assert rejected > 10


def test_frame_checks_are_applied():
    ok = pd.DataFrame({"venue": ["okx"], "symbol": ["A/USD"], "best_bid": [1.0], "best_ask": [1.1], "mid": [1.05],
                       "spread_bps": [900.0], "depth_usd": [1.0], "bid_depth_usd": [0.5], "ask_depth_usd": [0.5],
                       "book_time": pd.to_datetime(["2026-01-01"], utc=True), "book_age_s": [0.0], "valid": [True],
                       "invalid_reason": [None]})
    validate_frame(S.BookMetricsSchema, ok)
    with pytest.raises(pae.SchemaError):
        validate_frame(S.BookMetricsSchema, ok.assign(invalid_reason=["crossed_book"]))  # valid ⇔ no reason
    with pytest.raises(pae.SchemaError):
        validate_frame(S.BookMetricsSchema, pd.concat([ok, ok], ignore_index=True))  # unique (venue, symbol)


def test_ranking_frame_checks_are_applied(tables):
    _, ranking = tables["ranking"]
    with pytest.raises(pae.SchemaError):  # ranks 1..n by ADV descending
        validate_frame(S.UniverseRankingSchema, ranking.assign(rank=ranking["rank"].where(ranking["rank"] != 2, 3)))
    with pytest.raises(pae.SchemaError):  # an eligible row with an exclusion reason
        validate_frame(S.UniverseRankingSchema, ranking.assign(exclusion_reason=["inactive"] + [None] * (len(ranking) - 1)))
    excluded = np.flatnonzero(~ranking["eligible"].to_numpy())
    assert len(excluded)
    in_a_segment = ranking.copy()
    in_a_segment.loc[excluded[0], "segment"] = "warm"
    with pytest.raises(pae.SchemaError):  # an excluded row in the warm segment
        validate_frame(S.UniverseRankingSchema, in_a_segment)
    unranked = ranking.copy()
    unranked.loc[excluded[-1], "eligible"] = True
    unranked.loc[excluded[-1], "exclusion_reason"] = None
    with pytest.raises(pae.SchemaError):  # eligible without a rank
        validate_frame(S.UniverseRankingSchema, unranked)
    assert frames_pass(S.UniverseRankingSchema, [ranking]) and not frames_pass(S.UniverseRankingSchema, [ranking, in_a_segment])


def test_a_frame_the_checks_cannot_evaluate_goes_to_pandera(tables):
    """A comparison that raises (mixed types in a numeric column) is a failure reported by pandera."""
    _, indicators = tables["indicators"]
    bad = indicators.assign(realized_vol_7d=pd.Series([0.1, "x", 0.3], dtype=object))
    with pytest.raises((pae.SchemaError, pae.SchemaErrors)):
        validate_frame(S.RegimeIndicatorsSchema, bad)


@pytest.mark.parametrize("table", TABLES)
def test_a_batch_passes_exactly_when_each_table_does(tables, table):
    """Tables of a backfill are checked row by row over their concatenation: a value unique within
    each table may repeat across tables, and one bad table (whatever its dtypes) fails the batch."""
    schema, frame = tables[table]
    assert frames_pass(schema, [frame, frame, frame])
    assert frames_pass(schema, [])
    for name, bad in _mutations(schema, frame):
        for batch in ([frame, bad, frame], [bad, frame], [frame, bad]):
            assert frames_pass(schema, batch) == frames_pass(schema, [bad]), f"{table}: {name}"


def test_uniqueness_in_a_batch_is_within_each_table(tables):
    _, ranking = tables["ranking"]
    twice = ranking.assign(symbol=ranking["symbol"].where(ranking.index != 1, ranking["symbol"].iloc[0]))
    assert not frames_pass(S.UniverseRankingSchema, [ranking, twice])
    books = tables["books"][1]
    nulls = books.assign(invalid_reason=None)
    assert frames_pass(S.BookMetricsSchema, [books, books]) == frames_pass(S.BookMetricsSchema, [books])
    assert frames_pass(S.BookMetricsSchema, [books, nulls]) == frames_pass(S.BookMetricsSchema, [nulls])
