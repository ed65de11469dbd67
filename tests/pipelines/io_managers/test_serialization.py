"""serialize_many: a backfill's tables converted together give the bytes each table gives alone."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "core"))
import _builders as B  # noqa: E402

from cryptorun_core.artifacts import BY_ASSET  # noqa: E402
from cryptorun_core import asset_keys as keys  # noqa: E402
from cryptorun_core.universe import rank_universe  # noqa: E402
from cryptorun_pipelines.io_managers.serialization import deserialize, serialize, serialize_many  # noqa: E402

CFG = B.config()
RANKING, INDICATORS = BY_ASSET[keys.UNIVERSE_RANKING], BY_ASSET[keys.REGIME_INDICATORS]


@pytest.fixture(scope="module")
def rankings():
    frames = [rank_universe(B.universe(12, seed=seed)[0], CFG, hot_size=4, warm_size=4) for seed in (1, 2)]
    ranked = frames[0]
    # the shapes a year of rankings takes: excluded rows (missing tier and rank), no exclusion at
    # all (an all-missing object column), no rows
    excluded = ranked.tail(3).assign(rank=pd.array([pd.NA] * 3, dtype="Int64"), eligible=False, tier=None,
                                     exclusion_reason="adv_below_min", segment="none")
    with_excluded = pd.concat([ranked.iloc[:-3], excluded], ignore_index=True)
    no_reason = ranked.assign(exclusion_reason=None)
    return frames + [with_excluded, no_reason, ranked.iloc[0:0], with_excluded.iloc[2:5]]


def test_tables_converted_together_give_each_tables_bytes(rankings):
    batch = rankings + rankings[::-1]
    assert serialize_many(RANKING, batch) == [serialize(RANKING, f) for f in batch]


def test_a_column_missing_in_one_table_and_set_in_its_neighbour_keeps_each_tables_schema(rankings):
    """Whether an object column is all missing is decided table by table, up to its last row and
    from its first: a table of only excluded rows (no tier) sits between tables where every row has one."""
    with_excluded = rankings[2]
    excluded_only = with_excluded.tail(3).reset_index(drop=True)
    tiered = with_excluded.head(1)
    batch = [tiered, excluded_only, tiered, excluded_only.head(1), with_excluded.iloc[-4:-2], excluded_only]
    assert serialize_many(RANKING, batch) == [serialize(RANKING, f) for f in batch]


def test_indicator_rows_of_a_range_give_each_rows_bytes():
    rows = [pd.DataFrame([{"as_of": f"2026-11-{d:02d}T00:00:00Z", "realized_vol_7d": 0.1 * d, "pct_above_20ma": 50.0 + d,
                           "breadth_thrust": np.nan if d == 3 else 0.01 * d, "regime": "calm", "universe_size": d}])
            for d in range(1, 8)]
    data = serialize_many(INDICATORS, rows)
    assert data == [serialize(INDICATORS, r) for r in rows]
    back = deserialize(INDICATORS, data[2])
    assert back["as_of"].tolist() == ["2026-11-03T00:00:00Z"] and np.isnan(back["breadth_thrust"].iloc[0])


def test_tables_that_cannot_share_a_conversion_are_written_alone(rankings):
    """Objects that are not strings, or frame attributes, decide a table's own Arrow schema."""
    mixed = rankings[0].assign(tier=pd.Series([1] * len(rankings[0]), dtype=object))
    with_attrs = rankings[1].copy()
    with_attrs.attrs["source"] = "replay"
    batch = [rankings[0], mixed, with_attrs, rankings[1]]
    assert serialize_many(RANKING, batch) == [serialize(RANKING, f) for f in batch]
