"""Soak: consecutive hot cycles in-process with the caches on — RSS flat, caches bounded, no fd growth.

Engine path: the simulated market (its block caches are bounded ``lru_cache``\\ s) → collect_snapshot
→ run_scan, one cycle per 15 minutes of market time. Plus the live path: CcxtMarket on the
wire-format fake with a TTL cache and the incremental bar store, one cycle per 15 minutes.

The default suite runs 100 engine cycles and 100 live cycles; the 500-cycle engine soak is
marked ``soak`` (``pytest tests/reliability -m soak -s``). Figures are printed (``-s``) and
written to ``$CRYPTORUN_SOAK_REPORT`` when set.
"""

from __future__ import annotations

import gc
import json
import os
import time
from datetime import datetime, timedelta, timezone

import pytest

from cryptorun_core.config import changed, load_config, packaged_config
from cryptorun_core.engine import run_scan
from cryptorun_core.market import simulated
from cryptorun_core.market.simulated import SimulatedMarket
from cryptorun_core.market.snapshot import collect_snapshot
from cryptorun_core.regime import compute_regime
from cryptorun_core.universe import rank_universe, segment_symbols

CFG = load_config(check_artifacts_dir=False)
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
STEP = timedelta(minutes=15)
MB = 1024 * 1024


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def n_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def lru_caches() -> dict[str, object]:
    return {name: fn for name, fn in vars(simulated).items() if callable(fn) and hasattr(fn, "cache_info")}


def report(name: str, figures: dict) -> None:
    print(f"\nsoak {name}: " + json.dumps(figures, sort_keys=True))
    path = os.environ.get("CRYPTORUN_SOAK_REPORT")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"name": name, **figures}, sort_keys=True) + "\n")


def engine_soak(cycles: int, warmup: int = 10) -> dict:
    market = SimulatedMarket(seed=7, n_symbols=20)
    uni = collect_snapshot(market, None, T0, limit=720, with_books=False)
    ranking = rank_universe(uni, CFG, hot_size=10, warm_size=10)
    regime = {**compute_regime(uni, ranking, CFG).to_dict(), "partition_key": "2026-11-20-08:00"}
    hot, warm = segment_symbols(ranking, "hot"), segment_symbols(ranking, "warm")
    job = CFG.job("scan.hot")
    want = set(hot)

    def one(i: int):
        snap = collect_snapshot(market, hot + warm, T0 + i * STEP, limit=720, book_depth=100,
                                book_filter=lambda b: [(v, s) for v, s in b[["venue", "symbol"]].drop_duplicates().itertuples(index=False) if s in want])
        return run_scan(snap, ranking, regime, CFG, job)

    for i in range(warmup):
        one(i)
    gc.collect()
    rss0, fd0, t0 = rss_bytes(), n_fds(), time.perf_counter()
    samples = []
    for i in range(warmup, warmup + cycles):
        res = one(i)
        assert res.explain["counts"]["evaluated"] == len(hot)
        if (i - warmup) % max(1, cycles // 10) == 0:
            samples.append(rss_bytes())
    elapsed = time.perf_counter() - t0
    gc.collect()
    rss1, fd1 = rss_bytes(), n_fds()
    caches = {n: fn.cache_info() for n, fn in lru_caches().items()}
    for name, info in caches.items():
        assert info.maxsize is not None and info.currsize <= info.maxsize, (name, info)
    return {
        "cycles": cycles, "seconds": round(elapsed, 1), "ms_per_cycle": round(1000 * elapsed / cycles, 1),
        "rss_start_mb": round(rss0 / MB, 1), "rss_end_mb": round(rss1 / MB, 1), "rss_max_sample_mb": round(max(samples) / MB, 1),
        "fds_start": fd0, "fds_end": fd1,
        "lru_cache_entries": {n: f"{i.currsize}/{i.maxsize}" for n, i in caches.items() if i.currsize},
    }


def check_flat(fig: dict, allowance_mb: float) -> None:
    assert fig["rss_end_mb"] - fig["rss_start_mb"] <= allowance_mb, fig
    assert fig["fds_end"] <= fig["fds_start"] + 2, fig


def test_soak_engine_100_cycles():
    fig = engine_soak(100)
    report("engine-100", fig)
    check_flat(fig, allowance_mb=40)


@pytest.mark.soak
def test_soak_engine_500_cycles():
    fig = engine_soak(500)
    report("engine-500", fig)
    check_flat(fig, allowance_mb=40)


def test_soak_live_path_with_ttl_cache_100_cycles(ccxt_fakes, tmp_path):
    """CcxtMarket on the wire-format fake: TTL cache bounded by max_entries, bar store bounded,
    no socket/fd growth, request counts per cycle stay small (incremental bars)."""
    cfg = changed(packaged_config().market, cache={"ttl_s": 1800, "max_entries": 64})
    world = ccxt_fakes.make_world(cfg, cache_ttl_s=1800, ohlcv_cache_dir=tmp_path / "bars")
    symbols = ["BTC/USD", "ETH/USD", "SOL/USD"]
    market = world.market
    try:
        def one(i: int):
            when = ccxt_fakes.AS_OF + i * STEP
            world.set_now(when + timedelta(seconds=30))
            world.clock.t += STEP.total_seconds()  # the monotonic clock (TTL cache, limiter) moves with the cycles
            return collect_snapshot(market, symbols, when, limit=720, book_depth=20)

        for i in range(5):
            one(i)
        gc.collect()
        rss0, fd0, t0 = rss_bytes(), n_fds(), time.perf_counter()
        before = world.counts()
        for i in range(5, 105):
            snap = one(i)
            assert len(snap.bars) and snap.health["kraken"]["status"] == "ok"
        elapsed = time.perf_counter() - t0
        requests = {v: n - before[v] for v, n in world.counts().items()}
        gc.collect()
        rss1, fd1 = rss_bytes(), n_fds()
        cache_len = len(market._ttl_cache)
        stored = max(len(s.bars) for s in market._bars.values())
    finally:
        market.close()
    fig = {"cycles": 100, "seconds": round(elapsed, 1), "rss_start_mb": round(rss0 / MB, 1), "rss_end_mb": round(rss1 / MB, 1),
           "fds_start": fd0, "fds_end": fd1, "ttl_cache_entries": cache_len, "ttl_cache_max": 64,
           "max_stored_bars": stored, "requests_per_cycle": {v: round(n / 100, 2) for v, n in requests.items()},
           "cache": market.cache_stats}
    report("live-100", fig)
    assert cache_len <= 64
    assert stored <= 720 + 100  # the store grows by the new bars only (bounded by MAX_STORED_BARS)
    # the TTL (30 min) expires every other cycle; then only the newest bar and the book are asked for
    assert all(0 < n / 100 <= 2 * len(symbols) for n in requests.values()), requests
    assert fig["cache"]["hits"] > 0 and fig["cache"]["expirations"] > 0
    check_flat(fig, allowance_mb=30)
