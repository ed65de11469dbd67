"""Venue faults: one venue raising each ccxt error class, on every call or intermittently.

Two injection points:

- ccxt's HTTP layer (real ccxt exchange objects, ``fetch`` replaced by the wire-format fake of
  ``tests/core/market/test_ccxt_live.py``): the full live path — ccxt parsing, error
  classification, bounded retries with exponential backoff, the per-venue breaker, health
  accounting — then collect_snapshot → rank_universe → compute_regime → run_scan → explain.json
  → the CLI header;
- the MarketSource interface (:class:`FaultyMarket` around the simulated market), through the
  Dagster job in-process: the run completes from the other venues, or — every venue down —
  fails with one message, writes no artifact for that partition and leaves earlier ones alone.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import ccxt
import pytest

from cryptorun_core.artifacts import as_of_folder, atomic_write, json_bytes
from cryptorun_core.config import load_config, packaged_config
from cryptorun_core.engine import run_scan
from cryptorun_core.market.base import MarketDataError
from cryptorun_core.market.simulated import SimulatedMarket
from cryptorun_core.market.snapshot import collect_snapshot
from cryptorun_core.regime import compute_regime
from cryptorun_core.universe import rank_universe, segment_symbols
from cryptorun_pipelines.cli.header import build_header, render_header

from .conftest import HOT_FOLDER, HOT_KEY, HOT_KEY_2, HOT_FOLDER_2, REGIME_KEY, SPEC_HOT, failure_text, folder_bytes
from .faults import CCXT_ERRORS, FaultyMarket, VenueFault

CFG = load_config(check_artifacts_dir=False)
VENUES = ("kraken", "okx", "coinbase")
ERRORS = list(CCXT_ERRORS)


def flaky_fetch(api, make, every: int = 2):
    """``api.fetch`` failing on the 1st, (every+1)th, … request: each failure's retry succeeds."""
    original = api.fetch
    count = [0]

    async def fetch(url, method="GET", headers=None, body=None):
        count[0] += 1
        if (count[0] - 1) % every == 0:
            raise make()
        return await original(url, method, headers, body)

    return fetch


def ccxt_cycle(market, as_of):
    """One full cycle on a live-style source: universe → regime → hot snapshot → scan."""
    uni = collect_snapshot(market, None, as_of, limit=720, with_books=False)
    ranking = rank_universe(uni, CFG, hot_size=30, warm_size=100)
    regime = {**compute_regime(uni, ranking, CFG).to_dict(), "partition_key": REGIME_KEY}
    hot = segment_symbols(ranking, "hot")
    snap = collect_snapshot(market, hot, as_of, limit=720, book_depth=20)
    return snap, run_scan(snap, ranking, regime, CFG, CFG.job("scan.hot"))


def header_for(tmp_path, explain: dict, as_of):
    folder = tmp_path / "artifacts" / as_of_folder(as_of)
    atomic_write(folder / "explain.json", json_bytes({**explain, "partition_key": "k"}))
    return build_header(tmp_path / "artifacts", VENUES)


@pytest.fixture(scope="module")
def healthy(ccxt_fakes):
    world = ccxt_fakes.make_world(packaged_config().market)
    try:
        snap, res = ccxt_cycle(world.market, ccxt_fakes.AS_OF)
    finally:
        world.market.close()
    return snap, res


def test_healthy_baseline_reads_every_venue(healthy):
    _, res = healthy
    assert {v: h["status"] for v, h in res.explain["venue_health"].items()} == dict.fromkeys(VENUES, "ok")
    assert {s["symbol"]: s["sources"] for s in res.explain["symbols"]} == {"BTC/USD": 3, "ETH/USD": 3, "SOL/USD": 3}


@pytest.mark.parametrize("error", ERRORS)
def test_one_venue_down_every_call(ccxt_fakes, healthy, tmp_path, error):
    exc, reason = CCXT_ERRORS[error]
    world = ccxt_fakes.make_world(packaged_config().market)
    world.apis["okx"].fail("", lambda: exc(f"okx: injected {error}"))  # every request, markets included
    try:
        snap, res = ccxt_cycle(world.market, ccxt_fakes.AS_OF)
    finally:
        world.market.close()
    okx = res.explain["venue_health"]["okx"]
    # bounded and counted: one load_markets attempt + max_retries per cycle read, backoff capped
    assert okx["status"] == "down" and okx["requests"] == 4 and okx["errors"] == 4 and okx["retries"] == 3
    assert reason in okx["last_error"]
    assert [d for v, d in world.market.backoff_log if v == "okx"] == [0.5, 1.0, 2.0] * 2  # two snapshots
    assert all(d <= packaged_config().market.ccxt.backoff_max_s for _, d in world.market.backoff_log)
    assert {v: h["status"] for v, h in res.explain["venue_health"].items() if v != "okx"} == {"kraken": "ok", "coinbase": "ok"}
    # the cycle completed from the other venues; sources dropped by one, okx is never anyone's venue
    base = {s["symbol"]: s for s in healthy[1].explain["symbols"]}
    for s in res.explain["symbols"]:
        assert s["sources"] == base[s["symbol"]]["sources"] - 1 and s["venue"] in ("kraken", "coinbase")
    assert res.explain["data_quality"]["fetch_errors"]["okx"]["markets"] == {reason: 1}
    assert not set(snap.bars["venue"]) & {"okx"}
    header = header_for(tmp_path, res.explain, ccxt_fakes.AS_OF)
    assert {v.venue: v.status for v in header.venues} == {"kraken": "ok", "okx": "down", "coinbase": "ok"}
    assert header.sources == 2
    assert "okx down" in "\n".join(render_header(header))


@pytest.mark.parametrize("error", ERRORS)
def test_one_venue_intermittent(ccxt_fakes, healthy, error):
    exc, reason = CCXT_ERRORS[error]
    world = ccxt_fakes.make_world(packaged_config().market)
    api = world.apis["okx"]
    world.market.exchange("okx").fetch = flaky_fetch(api, lambda: exc(f"okx: injected {error}"), every=2)
    try:
        snap, res = ccxt_cycle(world.market, ccxt_fakes.AS_OF)
    finally:
        world.market.close()
    okx = res.explain["venue_health"]["okx"]
    # every failure was retried once and then answered: nothing lost, the venue only degraded
    assert okx["status"] == "degraded" and okx["retries"] == okx["errors"] > 0
    assert okx["requests"] == 2 * okx["errors"]
    assert set(d for v, d in world.market.backoff_log if v == "okx") == {0.5}
    assert snap.fetches[snap.fetches["venue"] == "okx"]["ok"].all()
    assert [(s["symbol"], s["sources"], s["score"]) for s in res.explain["symbols"]] == [
        (s["symbol"], s["sources"], s["score"]) for s in healthy[1].explain["symbols"]
    ]
    assert res.signals.equals(healthy[1].signals)


def test_all_venues_down_raises_one_clear_error(ccxt_fakes):
    world = ccxt_fakes.make_world(packaged_config().market)
    for api in world.apis.values():
        api.fail("", lambda: ccxt.ExchangeNotAvailable("503 Service Unavailable"))
    try:
        with pytest.raises(MarketDataError) as info:
            collect_snapshot(world.market, None, ccxt_fakes.AS_OF)
    finally:
        world.market.close()
    msg = str(info.value)
    assert msg.startswith("no venue answered at 2026-11-20T12:00:00+00:00")
    assert all(v in msg for v in VENUES) and "\n" not in msg


def test_markets_load_but_every_data_request_fails_is_also_all_down(ccxt_fakes):
    """Markets loaded earlier (cached per venue), then every venue dies: still a failure, not an empty scan."""
    world = ccxt_fakes.make_world(packaged_config().market)
    try:
        for v in VENUES:
            world.market.list_markets(v, ccxt_fakes.AS_OF)
        for api in world.apis.values():
            api.fail("", lambda: ccxt.RequestTimeout("timed out"))
        with pytest.raises(MarketDataError, match="no bars from any venue"):
            collect_snapshot(world.market, ["BTC/USD", "ETH/USD"], ccxt_fakes.AS_OF)
    finally:
        world.market.close()


# ------------------------------------------------------------------------------------------
# through the MarketSource interface and the Dagster job


@pytest.fixture
def faulty_factory(monkeypatch):
    """Make every market source the pipeline builds a FaultyMarket around the simulated market."""
    import cryptorun_core.market.factory as factory

    holder: dict = {"faults": {}}
    original = factory.build_market_source

    def build(config, job=None):
        inner = original(config, job)
        return FaultyMarket(inner, venue_faults={v: VenueFault(**kw) for v, kw in holder["faults"].items()})

    monkeypatch.setattr(factory, "build_market_source", build)
    return holder


def test_dagster_run_completes_with_one_venue_down(pipeline, faulty_factory):
    assert pipeline.run("regime_refresh", REGIME_KEY).success
    assert pipeline.run("scan_hot", HOT_KEY).success
    healthy = json.loads((pipeline.artifacts / HOT_FOLDER / "explain.json").read_text())
    faulty_factory["faults"] = {"okx": {"error": ccxt.ExchangeNotAvailable}}
    result = pipeline.run("scan_hot", HOT_KEY_2)
    assert result.success, failure_text(result)
    explain = json.loads((pipeline.artifacts / HOT_FOLDER_2 / "explain.json").read_text())
    assert explain["venue_health"]["okx"]["status"] == "down" and explain["venue_health"]["kraken"]["status"] == "ok"
    assert max(s["sources"] for s in explain["symbols"]) <= 2 < max(s["sources"] for s in healthy["symbols"])
    assert all(s["venue"] != "okx" for s in explain["symbols"])
    header = build_header(pipeline.artifacts, VENUES)
    assert {v.venue: v.status for v in header.venues}["okx"] == "down" and header.sources == 2
    # snapshot metadata in Dagster shows it too
    mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    meta = mats["hot_snapshot"].step_materialization_data.materialization.metadata
    assert meta["venue_health"].value["okx"]["status"] == "down"


def test_dagster_run_with_every_venue_down_fails_cleanly_and_writes_nothing(pipeline, faulty_factory):
    assert pipeline.run("regime_refresh", REGIME_KEY).success
    assert pipeline.run("scan_hot", HOT_KEY).success
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in pipeline.artifacts.rglob("*") if p.is_file()}
    faulty_factory["faults"] = {v: {"error": ccxt.RequestTimeout} for v in VENUES}
    result = pipeline.run("scan_hot", HOT_KEY_2)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert len(failures) == 1  # one step fails, the rest are skipped
    err = failures[0].step_failure_data.error
    text = err.message if err.cause is None else err.cause.message
    assert "no venue answered at 2026-11-20T12:15:00+00:00" in text and all(v in text for v in VENUES)
    assert not (pipeline.artifacts / HOT_FOLDER_2).exists()  # no artifact for that partition
    assert not (pipeline.artifacts / ".pipeline" / HOT_FOLDER_2).exists()
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in pipeline.artifacts.rglob("*") if p.is_file()}
    assert after == before  # earlier artifacts untouched (bytes and mtimes)
    assert set(folder_bytes(pipeline.artifacts / HOT_FOLDER)) >= SPEC_HOT


def test_offline_source_reports_a_failed_venue_in_health():
    """A source without its own request accounting (simulated) still shows a dead venue as down."""
    sim = SimulatedMarket(seed=7, n_symbols=20)
    market = FaultyMarket(sim, venue_faults={"coinbase": VenueFault(ccxt.ExchangeNotAvailable)})
    market.health = lambda: {}  # behave like an offline source: no accounting of its own
    snap = collect_snapshot(market, None, datetime(2026, 11, 20, 12, tzinfo=timezone.utc), with_books=False)
    assert snap.health["coinbase"]["status"] == "down" and snap.health["kraken"]["status"] == "ok"
