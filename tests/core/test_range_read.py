"""Single-run backfill reads: rankings and indicators from one bar_windows read equal those of collect_snapshot at each T."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from cryptorun_core.config import load_config
from cryptorun_core.market.replay import ReplayMarket
from cryptorun_core.market.simulated import SimulatedMarket, _venue_params
from cryptorun_core.market.snapshot import collect_snapshot
from cryptorun_core.regime import compute_indicators, regime_universe
from cryptorun_core.universe import rank_universe
from cryptorun_core import range_read as history

from cryptorun_core.config import DEFAULT_CONFIG_PATH

REPO = DEFAULT_CONFIG_PATH.parent.parent

UTC = timezone.utc
CFG = load_config(check_artifacts_dir=False)
REAL_DAILY = REPO.parent / "shared" / "data" / "real" / "daily"


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


def test_simulated_windows_follow_each_new_listing_of_a_rotating_slot():
    """Hour by hour across the hour a slot lists its next coin: the old coin's window and the new
    one's are fetch_ohlcv's at every T (the listing a T sees decides which coin it is)."""
    from cryptorun_core.market.simulated import EPOCH
    from cryptorun_core.market.simulated.universe import NEW_LISTING_PERIOD_H, _slot_phase

    sim = SimulatedMarket(seed=7, n_symbols=60)
    after = int((datetime(2026, 9, 1, tzinfo=UTC) - EPOCH).total_seconds() // 3600)
    phase = _slot_phase(7, 1)
    boundary = phase + (-(-(after - phase) // NEW_LISTING_PERIOD_H)) * NEW_LISTING_PERIOD_H
    times = [EPOCH + timedelta(hours=boundary + h) for h in range(-30, 31)]
    pairs = sorted({(m.venue, m.symbol) for t in times for v in sim.venues for m in sim.list_markets(v, t)
                    if m.symbol not in sim._by_symbol})
    coins = {sim._slot_at(1, boundary - 1).symbol, sim._slot_at(1, boundary).symbol}
    assert coins <= {s for _, s in pairs} and len(coins) == 2
    w = sim.bar_windows(pairs, times, "1h", 720)
    idx = w.index()
    served = 0
    for i, t in enumerate(times):
        for r in sim.fetch_ohlcv(pairs, t, "1h", 720):
            a, b = w.start[i, idx[(r.venue, r.symbol)]], w.stop[i, idx[(r.venue, r.symbol)]]
            if not r.ok:
                assert b <= a, (t, r.venue, r.symbol)
                continue
            served += r.symbol in coins
            assert len(r.data) == b - a, (t, r.venue, r.symbol)
            assert (r.data["timestamp"].array.asi8 == w.ts[a:b]).all()
    assert served


def single_reads(source, times, venues, config=CFG):
    """What single-partition runs compute at each T: a snapshot, its ranking, the indicators."""
    out = []
    for t in times:
        snap = collect_snapshot(source, None, t, venues=venues, limit=720, with_books=False)
        ranking = rank_universe(snap, config, 10, 20)
        wanted = sorted(set(regime_universe(ranking, config)) | {config.regime.benchmark})
        sub = collect_snapshot(source, wanted, t, venues=venues, limit=720, with_books=False)
        out.append((ranking, compute_indicators(sub, ranking, config)))
    return out


def assert_equal_to_single_reads(source, times, venues, windows, config=CFG):
    refs = single_reads(source, times, venues, config=config)
    assert len(windows) == len(refs)
    for (ranked, universe, values), (ranking, ind) in zip(windows, refs):
        pd.testing.assert_frame_equal(ranked, ranking, check_exact=True)
        assert list(ranked.dtypes) == list(ranking.dtypes)
        assert universe == regime_universe(ranking, config)
        assert values == ind


def test_simulated_rankings_and_indicators_equal_single_partition_reads():
    """30 windows across listing changes and feed outages: every ranking and indicator identical."""
    sim = SimulatedMarket(seed=7, n_symbols=40)
    t0 = datetime(2026, 11, 10, tzinfo=UTC)
    times = [t0 + timedelta(hours=4 * i) for i in range(30)]
    venues = tuple(CFG.market.venues)
    read = history.read_range(sim, times, venues, 720)
    assert read.history is not None
    assert_equal_to_single_reads(sim, times, venues, list(history.windows(sim, read, CFG, 10, 20)))


class _FailingListing(SimulatedMarket):
    """A venue that cannot list its markets at one T: that T is read the ordinary way."""

    def __init__(self, *args, fail_at=None, **kw):
        super().__init__(*args, **kw)
        self.fail_at = fail_at

    def list_markets(self, venue, as_of):
        if venue == "okx" and as_of == self.fail_at:
            raise RuntimeError("okx is down")
        return super().list_markets(venue, as_of)


def test_a_time_the_range_read_cannot_serve_is_read_the_ordinary_way():
    t0 = datetime(2026, 11, 10, tzinfo=UTC)
    times = [t0 + timedelta(hours=4 * i) for i in range(3)]
    sim = _FailingListing(seed=7, n_symbols=40, fail_at=times[1])
    venues = tuple(CFG.market.venues)
    read = history.read_range(sim, times, venues, 720)
    assert read.markets[1] is None and read.markets[0] is not None
    together = list(history.windows(sim, read, CFG, 10, 20))
    assert_equal_to_single_reads(sim, times, venues, together)
    assert "okx" not in ",".join(together[1][0]["venues"])  # okx missing at that T only


@pytest.mark.skipif(not REAL_DAILY.is_dir(), reason="../shared/data/real/daily not available")
def test_daily_replay_rankings_and_indicators_equal_single_partition_reads():
    replay = ReplayMarket(REAL_DAILY, resolution="1d", venue="kraken")
    t0 = datetime(2021, 2, 27, 8, tzinfo=UTC)  # 4h windows across midnights: daily bars change only at 00:00
    times = [t0 + timedelta(hours=4 * i) for i in range(14)]
    cfg = CFG.model_copy(update={"market": CFG.market.model_copy(update={"venues": ["kraken"]})})
    read = history.read_range(replay, times, ("kraken",), 720)
    assert read.history is not None
    assert_equal_to_single_reads(replay, times, ("kraken",), list(history.windows(replay, read, cfg, 10, 20)), config=cfg)


class _NoRangeReads(SimulatedMarket):
    """A source whose range read gives up (e.g. a ticker naming different coins over the range)."""

    def bar_windows(self, *args, **kw):
        raise NotImplementedError("not over this range")


def test_without_a_range_read_every_time_is_read_the_ordinary_way():
    sim = _NoRangeReads(seed=7, n_symbols=40)
    t0 = datetime(2026, 11, 10, tzinfo=UTC)
    times = [t0 + timedelta(hours=4 * i) for i in range(2)]
    venues = tuple(CFG.market.venues)
    read = history.read_range(sim, times, venues, 720)
    assert read.history is None
    assert_equal_to_single_reads(sim, times, venues, list(history.windows(sim, read, CFG, 10, 20)))
