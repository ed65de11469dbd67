"""engine.score_upper_bound: the best score a symbol could reach with a perfect book bounds run_scan's score."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from cryptorun_core.config import load_config
from cryptorun_core.engine import run_scan, score_upper_bound
from cryptorun_core.market.simulated import SimulatedMarket
from cryptorun_core.market.snapshot import collect_snapshot
from cryptorun_core.regime import compute_regime
from cryptorun_core.universe import rank_universe, segment_symbols

CFG = load_config(check_artifacts_dir=False)
T = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def cycle():
    sim = SimulatedMarket(seed=7, n_symbols=40)
    uni = collect_snapshot(sim, None, T, limit=720, with_books=False)
    ranking = rank_universe(uni, CFG, hot_size=12, warm_size=20)
    regime = {**compute_regime(uni, ranking, CFG).to_dict(), "partition_key": "2026-11-20-08:00"}
    snap = collect_snapshot(sim, segment_symbols(ranking, "hot") + segment_symbols(ranking, "warm"), T, limit=720)
    return snap, ranking, regime


@pytest.mark.parametrize("job_name", ["scan.hot", "scan.warm"])
def test_upper_bound_is_at_least_the_score(cycle, job_name):
    snap, ranking, regime = cycle
    job = CFG.job(job_name)
    res = run_scan(snap, ranking, regime, CFG, job)
    bound = score_upper_bound(snap, ranking, regime, CFG, job)
    assert list(bound.index) == res.evaluated["symbol"].tolist()
    score = res.evaluated.set_index("symbol")["score"].astype(float)
    finite = np.isfinite(score.to_numpy())
    assert finite.any()
    assert (bound[finite].to_numpy() >= score[finite].to_numpy()).all()
    assert (bound[finite] <= 100.0).all()


def test_upper_bound_without_books_is_a_bound_too(cycle):
    """The live path calls it before any book is read: the snapshot then has bars only."""
    snap, ranking, regime = cycle
    job = CFG.job("scan.hot")
    bars_only = collect_snapshot(SimulatedMarket(seed=7, n_symbols=40), segment_symbols(ranking, "hot"), T, limit=720, with_books=False)
    bound = score_upper_bound(bars_only, ranking, regime, CFG, job)
    assert isinstance(bound, pd.Series) and len(bound) == len(segment_symbols(ranking, "hot"))
    assert np.isfinite(bound.to_numpy()).all()


def test_upper_bound_depends_on_the_evaluated_symbols_bars_only(cycle):
    """The rest of the ranked universe feeds only the VADR p80 (a gate): the bound ignores its bars."""
    import dataclasses

    from cryptorun_core.engine import upper_bound_of

    snap, ranking, regime = cycle
    job = CFG.job("scan.hot")
    bound = score_upper_bound(snap, ranking, regime, CFG, job)
    whole = upper_bound_of(snap, ranking, regime, CFG, job)  # every bar sanitized
    pd.testing.assert_series_equal(bound, whole)
    warm = set(segment_symbols(ranking, "warm"))
    bars = snap.bars.copy()
    others = bars["symbol"].isin(warm).to_numpy()
    assert others.any()
    bars.loc[others, "volume"] *= 50.0  # the warm symbols' VADR (and p80) change, the hot bound does not
    pd.testing.assert_series_equal(score_upper_bound(dataclasses.replace(snap, bars=bars), ranking, regime, CFG, job), bound)
