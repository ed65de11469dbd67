"""Section 5 — the live path: real ccxt async exchanges with a fake HTTP layer paced like the venues.

``CcxtMarket`` gets real ``ccxt.async_support`` kraken/okx/coinbase objects whose ``fetch`` is
:class:`benchmarks.live_fake.FakeVenue` (wire-format payloads, listing templates from
``tests/core/market/payloads/``), replying after each endpoint's ccxt rate-limit cost. Time is
scaled down by ``scale`` (default ÷20): the fake's delays are divided by it, and the market's
rate limiters get a clock running ``scale``× faster and a sleep ``scale``× shorter, so pacing is
exactly the venue's — just compressed. Reported seconds are converted back to venue time (× scale).

The hot cycle is what the ``hot_snapshot`` asset does: ``read_segment(…, 'hot')`` — bars of
the ranked universe (hot 30 + warm 100, for the VADR p80) on every venue, books of the hot 30.
The ranking comes from the same deterministic data without the network. Cycles:

* cold: a fresh ``CcxtMarket`` at T (empty bar store and caches);
* next (T + 15 min): the next hot cycle — no new closed hourly bar exists, nothing about bars is
  unavoidable;
* next hour (T + 1 h): one new closed bar per (venue, symbol).

Floor of a cycle = the slowest venue's Σ over its unavoidable requests × its per-request cost:
listings once (cold), OHLCV ⌈720 / bars-per-request⌉ per pair cold and one per pair when a new
bar closed, and books only for hot symbols whose score could still reach the entry threshold —
the best score attainable whatever the book says: Σ weight·factor over momentum / technical /
volume (computed from bars only; their residualization does not involve quality) + the quality
weight × 100 — on every venue listing them (venue choice compares their depths).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from datetime import datetime, timedelta, timezone

from benchmarks.common import Row, Stat, fmt_seconds, short_reason

SECTION = "5 live"
UTC = timezone.utc
AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
VENUES = ("kraken", "okx", "coinbase")
BARS_PER_REQUEST = {"kraken": 720, "okx": 300, "coinbase": 300}
TARGET_RATIO = 1.2


class ScaledTime:
    """A monotonic clock running ``scale``× fast and a matching sleep (venue time, compressed)."""

    def __init__(self, scale: float):
        self.scale = scale
        self.t0 = time.monotonic()

    def __call__(self) -> float:
        return self.t0 + (time.monotonic() - self.t0) * self.scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.scale)


def _world(n_symbols: int, scale: float):
    import ccxt.async_support as ccxt_async

    from cryptorun_core.config import load_config
    from cryptorun_core.market.ccxt_live import CcxtMarket

    from benchmarks.live_fake import FakeVenue, Universe, bases

    config = load_config(check_artifacts_dir=False)
    universe = Universe(bases(n_symbols), VENUES)
    now = [AS_OF + timedelta(seconds=30)]
    fakes = {v: FakeVenue(v, universe, now[0], scale) for v in VENUES}
    exchanges = {}
    for v in VENUES:
        ex = getattr(ccxt_async, v)({"enableRateLimit": True})
        ex.fetch = fakes[v].fetch
        ex.timeout_on_exit = 0
        exchanges[v] = ex
    clock = ScaledTime(scale)
    market = CcxtMarket(VENUES, config, exchanges, clock=clock, sleep=clock.sleep, now=lambda: now[0],
                        cache_ttl_s=config.job("scan.hot").config.cache_ttl_s)
    market._bench_scale = scale
    return config, universe, fakes, market, now


def _ranking(config, universe):
    import pandas as pd

    from cryptorun_core.market.snapshot import MarketSnapshot
    from cryptorun_core.universe import rank_universe

    bars = universe.snapshot_bars(AS_OF)
    markets = pd.DataFrame([{"venue": v, "symbol": f"{b}/USD", "native_symbol": f"{b}-USD", "base": b, "quote": "USD",
                             "active": True} for v in VENUES for b in universe.bases])
    snap = MarketSnapshot(AS_OF, "1h", "direct", bars, pd.DataFrame(), pd.DataFrame(), markets)
    return snap, rank_universe(snap, config, hot_size=30, warm_size=100)


def _regime(config, direct_snap, ranking) -> dict:
    """The cycle's regime.json, as the hot snapshot asset receives it."""
    from cryptorun_core.regime import compute_regime

    # the synthetic universe has no BTC: its largest market stands in as the regime benchmark
    bench = str(ranking.loc[ranking["rank"] == 1, "symbol"].iloc[0])
    rcfg = config.model_copy(update={"regime": config.regime.model_copy(update={"benchmark": bench})})
    return {**compute_regime(direct_snap, ranking, rcfg).to_dict(), "partition_key": "x"}


def _necessary_books(config, direct_snap, ranking, cold_snap) -> tuple[set[str], dict]:
    """Hot symbols whose best attainable score (quality = 100) reaches the hot score minimum."""
    from cryptorun_core.engine import run_scan
    from cryptorun_core.regime import compute_regime

    job = config.job("scan.hot")
    # the synthetic universe has no BTC: its largest market stands in as the regime benchmark
    bench = str(ranking.loc[ranking["rank"] == 1, "symbol"].iloc[0])
    rcfg = config.model_copy(update={"regime": config.regime.model_copy(update={"benchmark": bench})})
    regime = compute_regime(direct_snap, ranking, rcfg)
    res = run_scan(cold_snap, ranking, {**regime.to_dict(), "partition_key": "x"}, config, job)
    ev = res.evaluated
    w = regime.weight_blend
    best = w["momentum"] * ev["momentum_core"] + w["technical"] * ev["technical"] + w["volume"] * ev["volume"] + w["quality"] * 100
    keep = set(ev.loc[best >= job.config.score_min, "symbol"])
    return keep, {"score_max_median": float(best.median()), "score_max_max": float(best.max()),
                  "score_min": job.config.score_min, "entries": int((ev["decision"] == "entry").sum())}


def market_scale(market) -> float:
    return getattr(market, "_bench_scale", 1.0)


def _cycle(market, fakes, now, config, ranking, as_of, label, regime=None) -> dict:
    from cryptorun_core.book_pruning import read_segment

    for f in fakes.values():
        f.reset()
        f.now = as_of + timedelta(seconds=30)
    now[0] = as_of + timedelta(seconds=30)
    job = config.job("scan.hot")
    t = time.perf_counter()
    c = time.process_time()
    snap = read_segment(market, config, job, ranking, as_of, "hot", regime=regime)
    wall = time.perf_counter() - t
    cpu = time.process_time() - c
    fx = snap.fetches
    return {
        "label": label,
        "wall_s": wall,
        "cpu_s": cpu,
        # venue-time estimate: the waiting part is scaled back up, the CPU part stays real seconds;
        # never below the slowest venue's own request time (CPU can overlap other venues' waits)
        "venue_wall_s": max(max(wall - cpu, 0.0) * market_scale(market) + cpu,
                            max(f.busy_s for f in fakes.values()) * market_scale(market)),
        "span_s": {v: (f.last - f.first) if f.first is not None and f.last is not None else 0.0 for v, f in fakes.items()},
        "calls": {v: dict(f.calls) for v, f in fakes.items()},
        "busy_s": {v: f.busy_s for v, f in fakes.items()},
        "ohlcv_rows": {v: f.ohlcv_rows for v, f in fakes.items()},
        "book_symbols": sorted(set(snap.books["symbol"])) if len(snap.books) else [],
        "fetch_errors": fx.loc[~fx["ok"].astype(bool), "error"].value_counts().to_dict() if len(fx) else {},
        "snap": snap,
    }


def _floor(venue_pairs: dict[str, int], necessary_pairs: dict[str, int], cold: bool, new_bar: bool, scale: float,
           markets_calls: dict[str, int]) -> dict[str, float]:
    from benchmarks.live_fake import COST_S

    def cost(venue: str, kind: str) -> float:
        frag = {"kraken": {"ohlcv": "OHLC", "book": "Depth"}, "okx": {"ohlcv": "market/candles", "book": "market/books"},
                "coinbase": {"ohlcv": "/candles", "book": "product_book"}}[venue][kind]
        return next(c for f, c in COST_S[venue] if f == frag)

    out = {}
    for v in VENUES:
        n_ohlcv = venue_pairs[v] * (math.ceil(720 / BARS_PER_REQUEST[v]) if cold else (1 if new_bar else 0))
        listing = markets_calls.get(v, 0) * next(c for f, c in COST_S[v] if f == "") if cold else 0.0
        out[v] = n_ohlcv * cost(v, "ohlcv") + necessary_pairs[v] * cost(v, "book") + listing
    return out


def run(quick: bool, scale: float = 20.0, n_symbols: int = 140) -> list[Row]:
    metric = "live hot cycle"
    try:
        return _run(quick, scale, n_symbols)
    except Exception as exc:  # noqa: BLE001
        import os
        import traceback

        if os.environ.get("BENCH_DEBUG"):
            traceback.print_exc()
        return [Row.unavailable(SECTION, metric, short_reason(exc), f"warm ≤ {TARGET_RATIO}× slowest venue floor")]


def _run(quick: bool, scale: float, n_symbols: int) -> list[Row]:
    reps = 1 if quick else 2
    results = []
    extra = {}
    for _ in range(reps):
        config, universe, fakes, market, now = _world(n_symbols, scale)
        try:
            direct, ranking = _ranking(config, universe)
            regime = _regime(config, direct, ranking)
            cold = _cycle(market, fakes, now, config, ranking, AS_OF, "cold", regime)
            nxt = _cycle(market, fakes, now, config, ranking, AS_OF + timedelta(minutes=15), "next 15 min", regime)
            hour = _cycle(market, fakes, now, config, ranking, AS_OF + timedelta(hours=1), "next hour", regime)
        finally:
            market.close()
        results.append((cold, nxt, hour))
    cold, nxt, hour = results[0]
    necessary, info = _necessary_books(config, direct, ranking, cold["snap"])
    hot = set(ranking.loc[ranking["segment"] == "hot", "symbol"])
    listed = set(ranking.loc[ranking["segment"].isin(["hot", "warm"]), "symbol"])
    venue_pairs = {v: len(listed) for v in VENUES}  # every synthetic base is listed on every venue
    necessary_pairs = {v: len(necessary) for v in VENUES}
    extra.update(info)

    rows: list[Row] = []
    for i, (label, new_bar) in enumerate((("cold", True), ("next 15 min", False), ("next hour", True))):
        cyc = [r[i] for r in results]
        wall = Stat([c["venue_wall_s"] for c in cyc])
        real = Stat([c["wall_s"] for c in cyc])
        cpu = Stat([c["cpu_s"] for c in cyc])
        markets_calls = {v: cyc[0]["calls"][v].get("markets", 0) for v in VENUES}
        floor = _floor(venue_pairs, necessary_pairs, label == "cold", new_bar, scale, markets_calls)
        slowest = max(floor, key=floor.get)
        floor_s = floor[slowest]
        busy = {v: statistics.median(c["busy_s"][v] for c in cyc) * scale for v in VENUES}
        calls = cyc[0]["calls"]
        req_txt = "; ".join(f"{v} {sum(calls[v].values())} ({', '.join(f'{k} {n}' for k, n in sorted(calls[v].items()))})"
                            for v in VENUES)
        ratio = wall.median / floor_s if floor_s > 0 else None
        spans = {v: statistics.median(c["span_s"][v] for c in cyc) for v in VENUES}
        # venues overlap when the cycle's request phase is no longer than the slowest venue's own span
        # (sequential venues would take the sum of the spans)
        parallel = max(spans.values()) * 1.0 >= 0.8 * min(real.median, sum(spans.values()))
        target = f"≤ {TARGET_RATIO}× slowest venue floor" if label != "cold" else ""
        row = Row.of_stat(SECTION, f"live hot cycle, {label} (venue time; run ÷{scale:g})", wall, ratio=ratio,
                          baseline=f"× floor {fmt_seconds(floor_s)} ({slowest})" if floor_s > 0 else "floor: 0 unavoidable requests",
                          target=target,
                          extra={"calls": calls, "busy_s": busy, "cpu_s": cpu.median, "real_wall_s": real.to_dict(),
                                 "spans_real_s": spans, "parallel": parallel, "floor_s": floor, "ohlcv_rows": cyc[0]["ohlcv_rows"],
                                 "books_symbols": len(cyc[0]["book_symbols"]), "errors": cyc[0]["fetch_errors"]})
        row.detail = (f"real wall {fmt_seconds(real.median)} at ÷{scale:g}, of it CPU {fmt_seconds(cpu.median)} (not scaled back); "
                      f"requests: {req_txt}; venue busy time {', '.join(f'{v} {fmt_seconds(b)}' for v, b in busy.items())} "
                      f"(sum {fmt_seconds(sum(busy.values()))}); real request spans "
                      f"{', '.join(f'{v} {fmt_seconds(x)}' for v, x in spans.items())} → venues "
                      f"{'in parallel' if parallel else 'NOT in parallel'}; "
                      f"books for {len(cyc[0]['book_symbols'])} symbols; candles served {sum(cyc[0]['ohlcv_rows'].values()):,}"
                      + (f"; errors {cyc[0]['fetch_errors']}" if cyc[0]["fetch_errors"] else ""))
        if label == "cold":
            row.judge(None)
        elif floor_s > 0:
            row.judge(wall.median <= TARGET_RATIO * floor_s)
        else:
            row.judge(sum(sum(c.values()) for c in calls.values()) == 0)
        rows.append(row)

    # the individual warm-cycle requirements
    for cyc, label, new_bars in ((nxt, "next 15 min", 0), (hour, "next hour", 1)):
        pairs = sum(venue_pairs.values())
        served = sum(cyc["ohlcv_rows"].values())
        ohlcv_req = sum(cyc["calls"][v].get("ohlcv", 0) for v in VENUES)
        ok = served <= pairs * max(new_bars, 0) + pairs * 1  # ≤ the new bars (+1 overlap bar per pair)
        rows.append(Row(SECTION, f"  {label}: only new bars requested (incremental OHLCV)", served, "count",
                        target=f"≤ {pairs * (new_bars + 1):,} candles ({new_bars} new + 1 overlap per pair)",
                        detail=f"{ohlcv_req} OHLCV requests for {pairs} (venue, symbol) pairs; {served:,} candles served "
                               f"(cold: {sum(cold['ohlcv_rows'].values()):,})").judge(ok))
        books_req = sum(cyc["calls"][v].get("book", 0) for v in VENUES)
        need = sum(necessary_pairs.values())
        rows.append(Row(SECTION, f"  {label}: books only where the score can still reach {info['score_min']:g}", books_req,
                        "count", target=f"≤ {need} ({len(necessary)} of {len(hot)} hot symbols × venues)",
                        detail=(f"best attainable score (quality = 100): median {info['score_max_median']:.1f}, "
                                f"max {info['score_max_max']:.1f}; {info['entries']} entries in the cycle")).judge(books_req <= need))
    par_ok = all(r.extra["parallel"] for r in rows[:3])
    rows.append(Row(SECTION, "  venues queried in parallel", None, "", target="wall ≈ slowest venue, not the sum",
                    detail="in every cycle the venues' request spans overlap (the slowest venue's span ≈ the cycle)"
                    if par_ok else "some cycle's venue request spans do not overlap (≈ their sum)").judge(par_ok))
    return rows
