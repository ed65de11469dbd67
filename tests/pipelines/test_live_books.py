"""Live (ccxt) hot cycle: order books are requested only where the score can still reach score_min.

Runs ``read_segment`` against real ccxt exchange objects whose HTTP layer is the fake world of
``tests/core/market/test_ccxt_live.py`` and counts the book requests per venue. Offline sources
(simulated) keep fetching every book.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from cryptorun_core.config import load_config
from cryptorun_core.engine import run_scan, score_upper_bound
from cryptorun_core.market.simulated import SimulatedMarket
from cryptorun_core.market.snapshot import collect_snapshot
from cryptorun_core.regime import compute_regime
from cryptorun_core.universe import rank_universe, segment_symbols
from cryptorun_core.book_pruning import SKIPPED_BOOK_ERROR, books_cost_requests, read_segment

from .conftest import REPO

CFG = load_config(check_artifacts_dir=False)
BOOK_PATHS = {"kraken": "Depth", "okx": "/market/books", "coinbase": "/product_book"}


@pytest.fixture(scope="module")
def fakes():
    name = "cryptorun_pipelines_ccxt_fakes"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "core" / "market" / "test_ccxt_live.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _book_requests(world) -> dict[str, int]:
    return {v: api.count(BOOK_PATHS[v]) for v, api in world.apis.items()}


def _cycle_inputs(fakes, job_name="scan.hot"):
    """A ranking and a regime of the fake world at its T (every symbol hot)."""
    world = fakes.make_world()
    uni = collect_snapshot(world.market, None, fakes.AS_OF, venues=fakes.VENUES, limit=720, with_books=False)
    ranking = rank_universe(uni, CFG, hot_size=10, warm_size=0)
    hot = segment_symbols(ranking, "hot")
    assert len(hot) >= 3, ranking
    regime = {**compute_regime(uni, ranking, CFG).to_dict(), "partition_key": "2026-11-20-08:00"}
    world.market.close()
    return ranking, regime, hot


def _job(score_min: float):
    job = CFG.job("scan.hot")
    return job.model_copy(update={"config": job.config.model_copy(update={"score_min": score_min})})


def test_ccxt_books_only_where_the_score_can_reach_the_threshold(fakes):
    ranking, regime, hot = _cycle_inputs(fakes)
    # the bound of each hot symbol, then a threshold between them: some kept, some skipped
    world = fakes.make_world()
    bars_only = collect_snapshot(world.market, hot, fakes.AS_OF, venues=fakes.VENUES, limit=720, with_books=False)
    world.market.close()
    bound = score_upper_bound(bars_only, ranking, regime, CFG, _job(75.0)).sort_values()
    assert bound.notna().all() and bound.nunique() == len(bound)
    score_min = float((bound.iloc[0] + bound.iloc[1]) / 2)  # only the lowest bound is below it
    job = _job(score_min)
    keep = set(bound.index[bound >= score_min])
    skip = set(bound.index) - keep
    assert skip and keep

    # unfiltered: every hot (venue, symbol) gets a book
    world = fakes.make_world()
    assert books_cost_requests(world.market)
    full = read_segment(world.market, CFG, job, ranking, fakes.AS_OF, "hot")
    full_books = _book_requests(world)
    world.market.close()

    world = fakes.make_world()
    pruned = read_segment(world.market, CFG, job, ranking, fakes.AS_OF, "hot", regime=regime)
    pruned_books = _book_requests(world)
    world.market.close()

    pairs_full = set(map(tuple, full.books[["venue", "symbol"]].drop_duplicates().to_numpy()))
    pairs_pruned = set(map(tuple, pruned.books[["venue", "symbol"]].drop_duplicates().to_numpy()))
    assert {s for _, s in pairs_full} == set(hot)
    assert {s for _, s in pairs_pruned} == keep
    assert sum(pruned_books.values()) == len(pairs_pruned) < sum(full_books.values()) == len(pairs_full)

    # every skipped (venue, symbol) is recorded in the fetch log with its reason
    f = pruned.fetches
    rec = f[(f["kind"] == "book") & (f["error"] == SKIPPED_BOOK_ERROR)]
    assert set(rec["symbol"]) == skip
    assert set(map(tuple, rec[["venue", "symbol"]].to_numpy())) == {p for p in pairs_full if p[1] in skip}
    assert not rec["ok"].any() and rec["detail"].str.contains("best attainable score").all()
    assert list(f.columns) == list(full.fetches.columns) and (f.dtypes == full.fetches.dtypes).all()
    pd.testing.assert_frame_equal(pruned.bars, full.bars)

    # the decisions are those of the full read: skipped symbols fail the score gate either way
    a = run_scan(full, ranking, regime, CFG, job).evaluated.set_index("symbol")
    res = run_scan(pruned, ranking, regime, CFG, job)
    b = res.evaluated.set_index("symbol")
    assert (a["decision"] == b["decision"]).all()
    for s in keep:
        assert a.loc[s, "score"] == b.loc[s, "score"]
    for s in skip:
        assert b.loc[s, "primary_reason"] in ("score_below_threshold", "insufficient_history", "stale_data")
    assert any(r["reason"] == SKIPPED_BOOK_ERROR for r in _missing_books(res.explain))


def _missing_books(explain: dict) -> list[dict]:
    found: list[dict] = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("action") == "missing" and "reason" in node:
                found.append(node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(explain)
    return found


def test_without_regime_or_with_an_offline_source_every_book_is_read(fakes):
    ranking, regime, hot = _cycle_inputs(fakes)
    job = _job(99.9)  # nothing can reach it
    world = fakes.make_world()
    snap = read_segment(world.market, CFG, job, ranking, fakes.AS_OF, "hot")  # no regime: no pruning
    assert sum(_book_requests(world).values()) == snap.books[["venue", "symbol"]].drop_duplicates().shape[0] > 0
    world.market.close()

    sim = SimulatedMarket(seed=7, n_symbols=40)
    assert not books_cost_requests(sim)
    t = fakes.AS_OF - timedelta(minutes=0)
    sim_cfg = CFG
    sim_uni = collect_snapshot(sim, None, t, limit=720, with_books=False)
    sim_rank = rank_universe(sim_uni, sim_cfg, hot_size=10, warm_size=20)
    a = read_segment(sim, sim_cfg, job, sim_rank, t, "hot", regime=regime)
    b = read_segment(sim, sim_cfg, job, sim_rank, t, "hot")
    pd.testing.assert_frame_equal(a.books, b.books)
    pd.testing.assert_frame_equal(a.fetches, b.fetches)
    assert set(a.books["symbol"]) == set(segment_symbols(sim_rank, "hot"))
    assert np.isfinite(a.books["price"].to_numpy()).all()
