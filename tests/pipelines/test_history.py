"""Single-run backfill reads: snapshots cut out of one bar_windows read equal collect_snapshot's, table by table."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryptorun_core.config import load_config
from cryptorun_core.market.replay import ReplayMarket
from cryptorun_core.market.simulated import SimulatedMarket, _venue_params
from cryptorun_core.market.snapshot import collect_snapshot
from cryptorun_core.regime import compute_indicators, regime_universe
from cryptorun_core.universe import rank_universe
from cryptorun_pipelines.assets import history

from .conftest import REPO

UTC = timezone.utc
CFG = load_config(check_artifacts_dir=False)
REAL_DAILY = REPO.parent / "shared" / "data" / "real" / "daily"


def assert_same_snapshot(got, ref):
    for name in ("bars", "books", "fetches", "markets"):
        a, b = getattr(got, name), getattr(ref, name)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        assert list(a.dtypes) == list(b.dtypes), name
    assert got.health == ref.health
    assert (got.as_of, got.timeframe, got.source) == (ref.as_of, ref.timeframe, ref.source)


def test_simulated_windows_equal_fetch_ohlcv_at_every_time():
    """Every pair, every T of 12 days (rotating listings, flaky feeds in outage, missing bars)."""
    sim = SimulatedMarket(seed=7, n_symbols=60)
    t0 = datetime(2026, 9, 1, tzinfo=UTC)
    times = [t0 + timedelta(hours=4 * i) for i in range(72)]
    pairs = sorted({(m.venue, m.symbol) for t in times for v in sim.venues for m in sim.list_markets(v, t)})
    w = sim.bar_windows(pairs, times, "1h", 720)
    idx = w.index()
    flaky = {p for p in pairs if (s := sim._lookup(p[1], 0)) is not None and p[0] in s.venues and _venue_params(7, s, p[0]).flaky}
    short = 0
    for i, t in enumerate(times):
        listed = {(m.venue, m.symbol) for v in sim.venues for m in sim.list_markets(v, t)}
        check = listed if i % 9 == 0 else listed & flaky
        for r in sim.fetch_ohlcv(sorted(check), t, "1h", 720):
            a, b = w.start[i, idx[(r.venue, r.symbol)]], w.stop[i, idx[(r.venue, r.symbol)]]
            if not r.ok:
                assert b <= a
                continue
            short += len(r.data) < 720
            assert len(r.data) == b - a
            assert (r.data["timestamp"].array.asi8 == w.ts[a:b]).all()
            for c, col in enumerate(("open", "high", "low", "close", "volume")):
                assert (r.data[col].to_numpy() == w.values[a:b, c]).all()
    assert short  # some windows are short (new listings, outages, missing bars)


def test_simulated_snapshots_and_rankings_equal_single_partition_reads():
    sim = SimulatedMarket(seed=7, n_symbols=40)
    t0 = datetime(2026, 11, 10, tzinfo=UTC)
    times = [t0 + timedelta(hours=4 * i) for i in range(30)]
    venues = tuple(CFG.market.venues)
    kept = []
    snaps = list(history.snapshots(sim, times, venues, 720, keep=kept.append))
    assert len(kept) == 1
    rankings = {}
    for i in (0, 7, 29):
        ref = collect_snapshot(sim, None, times[i], venues=venues, limit=720, with_books=False)
        assert_same_snapshot(snaps[i], ref)
        rankings[i] = rank_universe(ref, CFG, 10, 20)
        pd.testing.assert_frame_equal(rank_universe(snaps[i], CFG, 10, 20, validate=False), rankings[i])
    # the indicators' subset snapshots from the kept windows (no new read)
    wanted = {i: sorted(set(regime_universe(r, CFG)) | {CFG.regime.benchmark}) for i, r in rankings.items()}
    sub = [times[i] for i in wanted]
    order = list(wanted)
    got = list(history.snapshots(sim, sub, venues, 720, symbols_at=lambda j: wanted[order[j]], windows=None))
    for j, i in enumerate(order):
        ref = collect_snapshot(sim, wanted[i], times[i], venues=venues, limit=720, with_books=False)
        assert_same_snapshot(got[j], ref)
        assert compute_indicators(got[j], rankings[i], CFG, validate=False) == compute_indicators(ref, rankings[i], CFG)


def test_windows_kept_from_another_range_are_not_used():
    sim = SimulatedMarket(seed=7, n_symbols=40)
    t0 = datetime(2026, 11, 10, tzinfo=UTC)
    times = [t0 + timedelta(hours=4 * i) for i in range(4)]
    kept = []
    list(history.snapshots(sim, times, CFG.market.venues, 720, keep=kept.append))
    later = [t + timedelta(hours=4) for t in times]
    snap = list(history.snapshots(sim, later, CFG.market.venues, 720, windows=kept[0]))[-1]
    assert_same_snapshot(snap, collect_snapshot(sim, None, later[-1], venues=CFG.market.venues, limit=720, with_books=False))


@pytest.mark.skipif(not REAL_DAILY.is_dir(), reason="../shared/data/real/daily not available")
def test_daily_replay_snapshots_equal_single_partition_reads():
    replay = ReplayMarket(REAL_DAILY, resolution="1d", venue="kraken")
    t0 = datetime(2021, 2, 27, 8, tzinfo=UTC)  # 4h windows across midnights: daily bars change only at 00:00
    times = [t0 + timedelta(hours=4 * i) for i in range(14)]
    snaps = list(history.snapshots(replay, times, ("kraken",), 720))
    for i in (0, 3, 4, 13):
        assert_same_snapshot(snaps[i], collect_snapshot(replay, None, times[i], venues=("kraken",), limit=720, with_books=False))
    assert not np.array_equal(snaps[0].bars["timestamp"].max(), snaps[13].bars["timestamp"].max())
