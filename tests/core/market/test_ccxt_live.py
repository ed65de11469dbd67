"""CcxtMarket against real ccxt exchange objects whose HTTP layer is faked.

Each venue's ``fetch`` (ccxt's low-level HTTP method) is replaced by a router that answers in
that venue's own wire format: recorded-style market/ticker payloads from ``payloads/`` and
candles/books generated deterministically (so 720+ hourly bars need no giant fixture). ccxt
itself parses everything, so these tests pin the whole path: URL building, ccxt parsing,
canonical symbols, closed-bar filtering, incremental ``since=`` requests, retries, caching.
The network is never touched and nothing really sleeps (clock and sleep are injected).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import ccxt
import ccxt.async_support as ccxt_async
import numpy as np
import pandas as pd
import pytest

from cryptorun_core.config import MarketConfig, changed, load_config, packaged_config
from cryptorun_core.market.base import FetchResult
from cryptorun_core.market.ccxt_live import CcxtMarket, VenueUnavailable, classify_error
from cryptorun_core.market.snapshot import collect_snapshot

UTC = timezone.utc
PAYLOADS = Path(__file__).parent / "payloads"
AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
VENUES = ("kraken", "okx", "coinbase")
BASES = ("BTC/USD", "ETH/USD", "SOL/USD")

# ------------------------------------------------------------------------------------------
# deterministic market data behind the fakes

BASE_PRICE = {"BTC": 91000.0, "ETH": 3020.0, "SOL": 141.0, "USDT": 1.0001, "USDC": 1.0, "MATIC": 0.41, "LUNA": 0.5,
              "NEWT": 0.2, "OLD": 0.08}
VENUE_TILT = {"kraken": 1.0, "okx": 1.0003, "coinbase": 0.9998}


def price_at(venue: str, base: str, hours: float) -> float:
    """A smooth, venue-specific price path (hours since the epoch)."""
    wave = 0.02 * math.sin(2 * math.pi * hours / 37.0) + 0.01 * math.sin(2 * math.pi * hours / 11.0)
    return BASE_PRICE[base] * VENUE_TILT[venue] * (1.0 + wave)


def bar_at(venue: str, base: str, open_time: datetime) -> tuple[float, float, float, float, float]:
    """(open, high, low, close, volume) of the hourly bar opening at ``open_time``."""
    h = open_time.timestamp() / 3600.0
    o, c = price_at(venue, base, h), price_at(venue, base, h + 1)
    return o, max(o, c) * 1.002, min(o, c) * 0.998, c, 100.0 + 50.0 * math.sin(h / 5.0) ** 2


def bar_opens(now: datetime, since: datetime | None = None, span_h: int = 2000) -> list[datetime]:
    """Opens of every bar up to and including the still-open one at ``now``."""
    current = now.replace(minute=0, second=0, microsecond=0)
    start = current - span_h * HOUR
    if since is not None:
        start = max(start, since)
    n = int((current - start) / HOUR)
    return [start + i * HOUR for i in range(n + 1)] if n >= 0 else []


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def book_levels(venue: str, base: str, now: datetime, n: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    mid = price_at(venue, base, now.timestamp() / 3600.0)
    bids = [(mid * (1 - 0.0002 * (i + 0.5)), round(0.5 + 0.1 * i, 4)) for i in range(n)]
    asks = [(mid * (1 + 0.0002 * (i + 0.5)), round(0.4 + 0.1 * i, 4)) for i in range(n)]
    return bids, asks


# ------------------------------------------------------------------------------------------
# the fake HTTP layer


@dataclass
class Fault:
    fragment: str  # substring of the URL that triggers it
    make: Callable[[], Exception]
    times: int | None  # None = every time


class FakeVenueAPI:
    """One venue's public REST API: routes URL paths to wire-format payloads, counts requests."""

    KRAKEN_IDS = {"XXBTZUSD": "BTC", "XBTUSDT": "BTC", "XXBTZEUR": "BTC", "XETHZUSD": "ETH", "SOLUSD": "SOL",
                  "USDTZUSD": "USDT", "MATICUSD": "MATIC"}

    def __init__(self, venue: str, now: datetime):
        self.venue = venue
        self.now = now
        self.calls: Counter[str] = Counter()
        self.urls: list[str] = []
        self.faults: list[Fault] = []
        self.mutators: list[tuple[str, Callable[[Any], Any]]] = []
        self.before_answer: Callable[[str], Any] | None = None  # async hook (concurrency test)

    # -- test controls -----------------------------------------------------------------------
    def fail(self, fragment: str, make: Callable[[], Exception], times: int | None = None) -> None:
        self.faults.append(Fault(fragment, make, times))

    def mutate(self, fragment: str, fn: Callable[[Any], Any]) -> None:
        self.mutators.append((fragment, fn))

    def count(self, fragment: str = "") -> int:
        return sum(n for path, n in self.calls.items() if fragment in path)

    def reset_counts(self) -> None:
        self.calls.clear()
        self.urls.clear()

    # -- the replaced ccxt method --------------------------------------------------------------
    async def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.calls[parts.path] += 1
        self.urls.append(url)
        for fault in self.faults:
            if fault.fragment in url and (fault.times is None or fault.times > 0):
                if fault.times is not None:
                    fault.times -= 1
                raise fault.make()
        if self.before_answer is not None:
            await self.before_answer(parts.path)
        payload = getattr(self, f"_route_{self.venue}")(parts.path, query)
        for fragment, fn in self.mutators:
            if fragment in url:
                payload = fn(payload)
        return payload

    # -- kraken: /0/public/{Assets,AssetPairs,Ticker,OHLC,Depth} ---------------------------------
    def _route_kraken(self, path: str, q: dict[str, str]) -> Any:
        endpoint = path.rsplit("/", 1)[-1]
        if endpoint in ("Assets", "AssetPairs"):
            return load(f"kraken_{endpoint}.json")
        if endpoint == "Ticker":
            data = load("kraken_Ticker.json")
            wanted = set(q["pair"].split(",")) if "pair" in q else None
            data["result"] = {k: v for k, v in data["result"].items() if wanted is None or k in wanted}
            return data
        pair = q["pair"]
        base = self.KRAKEN_IDS[pair]
        if endpoint == "OHLC":
            since = datetime.fromtimestamp(int(q["since"]), UTC) if "since" in q else None
            rows = []
            for t in bar_opens(self.now):
                if since is not None and t <= since:
                    continue  # kraken: strictly newer than `since`
                o, h, lo, c, v = bar_at("kraken", base, t)
                rows.append([int(t.timestamp()), f"{o:.5f}", f"{h:.5f}", f"{lo:.5f}", f"{c:.5f}", f"{(o + c) / 2:.5f}", f"{v:.8f}", 120])
            rows = rows[-720:]  # kraken never serves more than its newest 720 entries
            return {"error": [], "result": {pair: rows, "last": rows[-2][0] if len(rows) > 1 else 0}}
        if endpoint == "Depth":
            bids, asks = book_levels("kraken", base, self.now, int(q.get("count", 100)))
            stamp = int(self.now.timestamp()) - 2
            fmt = lambda lv: [[f"{p:.5f}", f"{a:.8f}", stamp] for p, a in lv]  # noqa: E731
            # deliberately not in book order: the source must sort sides itself or via ccxt
            return {"error": [], "result": {pair: {"asks": fmt(asks)[::-1], "bids": fmt(bids)[::-1]}}}
        raise AssertionError(f"kraken fake: unexpected path {path}")

    # -- okx: /api/v5/public/instruments, /api/v5/market/{tickers,candles,history-candles,books} -
    def _route_okx(self, path: str, q: dict[str, str]) -> Any:
        if path.endswith("/public/instruments"):
            assert q.get("instType") == "SPOT", "only spot instruments should be listed"
            return load("okx_instruments.json")
        if path.endswith("/market/tickers"):
            return load("okx_tickers.json")
        base = q["instId"].split("-")[0]
        if path.endswith("/market/candles") or path.endswith("/market/history-candles"):
            before = int(q["before"]) if "before" in q else None
            after = int(q["after"]) if "after" in q else None
            limit = int(q.get("limit", 100))
            rows = []
            for t in bar_opens(self.now):
                ms = int(t.timestamp() * 1000)
                if (before is not None and ms <= before) or (after is not None and ms >= after):
                    continue
                o, h, lo, c, v = bar_at("okx", base, t)
                confirm = "1" if t + HOUR <= self.now else "0"
                rows.append([str(ms), f"{o:.2f}", f"{h:.2f}", f"{lo:.2f}", f"{c:.2f}", f"{v:.6f}", f"{v * c:.2f}", f"{v * c:.2f}", confirm])
            rows = rows[-limit:][::-1]  # newest first, at most `limit`
            return {"code": "0", "msg": "", "data": rows}
        if path.endswith("/market/books"):
            bids, asks = book_levels("okx", base, self.now, int(q.get("sz", 1)))
            ts = str(int(self.now.timestamp() * 1000) - 150)
            fmt = lambda lv: [[f"{p:.2f}", f"{a:.6f}", "0", "2"] for p, a in lv]  # noqa: E731
            return {"code": "0", "msg": "", "data": [{"asks": fmt(asks), "bids": fmt(bids), "ts": ts}]}
        raise AssertionError(f"okx fake: unexpected path {path}")

    # -- coinbase: /v2/{currencies,currencies/crypto,exchange-rates},
    #    /api/v3/brokerage/market/{products,products/{id}/candles,product_book} -------------------
    def _route_coinbase(self, path: str, q: dict[str, str]) -> Any:
        if path == "/v2/currencies":
            return load("coinbase_currencies.json")
        if path == "/v2/currencies/crypto":
            return load("coinbase_currencies_crypto.json")
        if path == "/v2/exchange-rates":
            return load("coinbase_exchange_rates.json")
        if path == "/api/v3/brokerage/market/products":
            return load("coinbase_products_future.json" if q.get("product_type") == "FUTURE" else "coinbase_products.json")
        if path.endswith("/candles"):
            base = path.split("/")[-2].split("-")[0]
            start, end = int(q["start"]), int(q["end"])
            rows = []
            for t in bar_opens(self.now):
                s = int(t.timestamp())
                if start <= s <= end:
                    o, h, lo, c, v = bar_at("coinbase", base, t)
                    rows.append({"start": str(s), "low": f"{lo:.2f}", "high": f"{h:.2f}", "open": f"{o:.2f}",
                                 "close": f"{c:.2f}", "volume": f"{v:.8f}"})
            assert len(rows) <= 350, "coinbase rejects requests for more than 350 candles"
            return {"candles": rows[::-1]}
        if path.endswith("/product_book"):
            base = q["product_id"].split("-")[0]
            bids, asks = book_levels("coinbase", base, self.now, int(q.get("limit", 50)))
            fmt = lambda lv: [{"price": f"{p:.2f}", "size": f"{a:.8f}"} for p, a in lv]  # noqa: E731
            when = (self.now - timedelta(milliseconds=200)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            return {"pricebook": {"product_id": q["product_id"], "bids": fmt(bids), "asks": fmt(asks), "time": when},
                    "last": f"{bids[0][0]:.2f}", "mid_market": f"{(bids[0][0] + asks[0][0]) / 2:.3f}", "spread_bps": "4.0"}
        raise AssertionError(f"coinbase fake: unexpected path {path}")


def build_exchange(venue: str, api: FakeVenueAPI, **config: Any) -> Any:
    """A real ccxt async exchange whose HTTP layer is ``api``."""
    exchange = getattr(ccxt_async, venue)(config)
    exchange.fetch = api.fetch
    exchange.timeout_on_exit = 0  # ccxt's close() otherwise waits 250 ms of real time
    return exchange


class FakeClock:
    """Monotonic clock + sleep that only moves the clock (records every sleep)."""

    def __init__(self) -> None:
        self.t = 10_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


@dataclass
class World:
    market: CcxtMarket
    apis: dict[str, FakeVenueAPI]
    clock: FakeClock
    now: list[datetime] = field(default_factory=lambda: [AS_OF])

    def set_now(self, when: datetime) -> None:
        self.now[0] = when
        for api in self.apis.values():
            api.now = when

    def counts(self) -> dict[str, int]:
        return {v: a.count() for v, a in self.apis.items()}


def make_world(config: MarketConfig | None = None, venues=VENUES, **kwargs: Any) -> World:
    venue_now = AS_OF + timedelta(seconds=30)  # the cycle runs just after its tick
    apis = {v: FakeVenueAPI(v, venue_now) for v in venues}
    exchanges = {v: build_exchange(v, apis[v]) for v in venues}
    clock = FakeClock()
    holder = [venue_now]
    market = CcxtMarket(venues, config or packaged_config().market, exchanges, clock=clock, sleep=clock.sleep,
                        now=lambda: holder[0], **kwargs)
    return World(market, apis, clock, holder)


@pytest.fixture
def world():
    w = make_world()
    yield w
    w.market.close()


def reqs(venue: str, symbols=BASES) -> list[tuple[str, str]]:
    return [(venue, s) for s in symbols]


def all_reqs(symbols=BASES) -> list[tuple[str, str]]:
    return [(v, s) for v in VENUES for s in symbols]


def by_key(results: list[FetchResult]) -> dict[tuple[str, str], FetchResult]:
    return {(r.venue, r.symbol): r for r in results}


# ------------------------------------------------------------------------------------------
# ccxt itself


def test_installed_ccxt_error_hierarchy_is_what_the_classifier_assumes():
    """RateLimitExceeded and DDoSProtection are siblings (not parent/child) in ccxt 4.5."""
    assert not issubclass(ccxt.RateLimitExceeded, ccxt.DDoSProtection)
    assert not issubclass(ccxt.DDoSProtection, ccxt.RateLimitExceeded)
    for cls in (ccxt.RequestTimeout, ccxt.ExchangeNotAvailable, ccxt.DDoSProtection, ccxt.RateLimitExceeded):
        assert issubclass(cls, ccxt.NetworkError)
    assert not issubclass(ccxt.BadResponse, ccxt.NetworkError)
    assert issubclass(ccxt.BadSymbol, ccxt.ExchangeError)
    assert classify_error(ccxt.OnMaintenance("x"))[0] == "venue_down"
    assert classify_error(ccxt.NullResponse("x"))[0] == "bad_response"
    assert classify_error(RuntimeError("bug")) is None  # programming errors are not swallowed


# ------------------------------------------------------------------------------------------
# markets


def test_markets_are_canonical_per_venue_and_keep_the_native_spelling(world):
    kraken = {m.symbol: m for m in world.market.list_markets("kraken", AS_OF)}
    assert set(kraken) == {"BTC/USD", "ETH/USD", "SOL/USD", "USDT/USD", "MATIC/USD"}  # no EUR, no USDT quote
    assert kraken["BTC/USD"].native_symbol == "XBT/USD" and kraken["BTC/USD"].base == "BTC"
    assert kraken["BTC/USD"].quote == "USD" and kraken["BTC/USD"].active
    assert not kraken["MATIC/USD"].active  # status cancel_only

    okx = {m.symbol: m for m in world.market.list_markets("okx", AS_OF)}
    assert set(okx) == {"BTC/USD", "ETH/USD", "SOL/USD", "LUNA/USD"}  # NEWT lists after AS_OF
    assert okx["BTC/USD"].native_symbol == "BTC-USD"
    assert okx["BTC/USD"].listed_at == datetime(2023, 11, 1, tzinfo=UTC)
    assert not okx["LUNA/USD"].active
    later = {m.symbol for m in world.market.list_markets("okx", datetime(2026, 12, 2, tzinfo=UTC))}
    assert "NEWT/USD" in later

    coinbase = {m.symbol: m for m in world.market.list_markets("coinbase", AS_OF)}
    assert set(coinbase) == {"BTC/USD", "ETH/USD", "SOL/USD", "USDT/USD", "OLD/USD"}
    assert coinbase["ETH/USD"].native_symbol == "ETH-USD"
    assert not coinbase["OLD/USD"].active  # trading_disabled

    # markets load once per venue: listing again costs nothing
    before = world.counts()
    world.market.list_markets("kraken", AS_OF)
    assert world.counts() == before
    assert world.apis["kraken"].calls == Counter({"/0/public/Assets": 1, "/0/public/AssetPairs": 1})
    assert world.apis["okx"].calls == Counter({"/api/v5/public/instruments": 1})
    assert world.apis["coinbase"].calls == Counter({
        "/v2/currencies": 1, "/v2/currencies/crypto": 1, "/v2/exchange-rates": 1, "/api/v3/brokerage/market/products": 2,
    })


def test_usd_like_quotes_prefer_usd_then_config_order():
    w = make_world(changed(packaged_config().market, usd_quotes=("USD", "USDT")))
    try:
        kraken = {m.symbol: m for m in w.market.list_markets("kraken", AS_OF)}
        assert kraken["BTC/USD"].native_symbol == "XBT/USD" and kraken["BTC/USD"].quote == "USD"
        okx = {m.symbol: m for m in w.market.list_markets("okx", AS_OF)}
        assert okx["BTC/USD"].native_symbol == "BTC-USD"
        assert okx["USDC/USD"].native_symbol == "USDC-USDT" and okx["USDC/USD"].quote == "USDT"
        bars = w.market.fetch_ohlcv([("okx", "USDC/USD")], AS_OF, limit=24)[0]
        assert bars.ok and len(bars.data) == 24
        assert "instId=USDC-USDT" in w.apis["okx"].urls[-1]
    finally:
        w.market.close()


# ------------------------------------------------------------------------------------------
# OHLCV: parsing, closed bars, cold vs warm request counts


def test_cold_cycle_parses_every_venue_and_serves_closed_bars_only(world):
    results = by_key(world.market.fetch_ohlcv(all_reqs(), AS_OF))
    last_closed = pd.Timestamp(AS_OF - HOUR)
    for (venue, symbol), r in results.items():
        assert r.ok, r.detail
        bars = r.data
        assert list(bars.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
        assert str(bars["timestamp"].dtype) == "datetime64[ns, UTC]"
        assert bars["timestamp"].is_monotonic_increasing and bars["timestamp"].is_unique
        assert bars["timestamp"].iloc[-1] == last_closed  # the open 12:00 bar is never served
        assert (bars["timestamp"].diff().dropna() == pd.Timedelta(hours=1)).all()
        assert r.stamped_at == AS_OF and not r.from_cache
        # values are the wire values parsed by ccxt
        o, h, lo, c, v = bar_at(venue, symbol.split("/")[0], (AS_OF - HOUR))
        row = bars.iloc[-1]
        assert row["open"] == pytest.approx(o, rel=1e-4) and row["close"] == pytest.approx(c, rel=1e-4)
        assert row["high"] == pytest.approx(h, rel=1e-4) and row["low"] == pytest.approx(lo, rel=1e-4)
        assert row["volume"] == pytest.approx(v, rel=1e-4)
    # kraken serves its newest 720 entries, one of which is the open bar: 719 closed
    assert {k: len(r.data) for k, r in results.items()} == {
        **{("kraken", s): 719 for s in BASES}, **{("okx", s): 720 for s in BASES}, **{("coinbase", s): 720 for s in BASES}
    }
    # requests per result: kraken one call of up to 720, okx and coinbase pages of 300
    assert {k: r.requests for k, r in results.items()} == {
        **{("kraken", s): 1 for s in BASES}, **{("okx", s): 3 for s in BASES}, **{("coinbase", s): 3 for s in BASES}
    }
    assert world.apis["kraken"].calls["/0/public/OHLC"] == 3
    assert world.apis["okx"].count("candles") == 9
    assert world.apis["coinbase"].count("/candles") == 9
    # markets cost: kraken 2, okx 1, coinbase 5 → totals match the health accounting
    assert world.counts() == {"kraken": 5, "okx": 10, "coinbase": 14}
    assert {v: h.requests for v, h in world.market.health().items()} == world.counts()
    assert all(h.status == "ok" for h in world.market.health().values())


def test_warm_cycle_requests_only_newer_bars_and_never_reloads_markets(world):
    world.market.fetch_ohlcv(all_reqs(), AS_OF)
    for api in world.apis.values():
        api.reset_counts()
    later = AS_OF + HOUR
    world.set_now(later + timedelta(seconds=30))
    results = by_key(world.market.fetch_ohlcv(all_reqs(), later))
    assert all(r.ok and r.requests == 1 and not r.from_cache for r in results.values())
    assert world.counts() == {"kraken": 3, "okx": 3, "coinbase": 3}  # one candles call per symbol, nothing else
    assert world.apis["kraken"].calls == Counter({"/0/public/OHLC": 3})
    # the `since` each venue was asked for is the bar after the newest stored one (11:00 → 12:00)
    newest_stored = AS_OF - HOUR
    kraken_url = next(u for u in world.apis["kraken"].urls if "pair=XXBTZUSD" in u)
    assert f"since={int(newest_stored.timestamp())}" in kraken_url  # ccxt asks kraken for > since-1 bar
    okx_url = next(u for u in world.apis["okx"].urls if "instId=BTC-USD" in u)
    assert f"before={int(AS_OF.timestamp() * 1000) - 1}" in okx_url
    cb_url = next(u for u in world.apis["coinbase"].urls if "BTC-USD/candles" in u)
    assert f"start={int(AS_OF.timestamp())}" in cb_url
    for (venue, symbol), r in results.items():
        assert r.data["timestamp"].iloc[-1] == pd.Timestamp(AS_OF)  # the 12:00 bar closed at 13:00
        assert len(r.data) == 720  # kraken's 719 cold bars + the new one fill the window too
        o, h, lo, c, v = bar_at(venue, symbol.split("/")[0], AS_OF)
        assert r.data["close"].iloc[-1] == pytest.approx(c, rel=1e-4)


def test_same_cycle_again_is_served_from_the_bar_store_without_requests(world):
    world.market.fetch_ohlcv(all_reqs(), AS_OF)
    before = world.counts()
    again = world.market.fetch_ohlcv(all_reqs(), AS_OF + timedelta(minutes=20))
    assert world.counts() == before
    for r in again:
        assert r.ok and r.requests == 0 and r.from_cache
        assert r.ttl_remaining_s == pytest.approx(40 * 60)  # until the next bar (12:00–13:00) closes


def test_bars_persist_on_disk_and_a_new_instance_asks_only_for_newer_bars(tmp_path):
    first = make_world(ohlcv_cache_dir=tmp_path)
    try:
        cold = first.market.fetch_ohlcv(all_reqs(), AS_OF)
    finally:
        first.market.close()
    assert len(list(tmp_path.rglob("*.parquet"))) == 9
    second = make_world(ohlcv_cache_dir=tmp_path)
    try:
        later = AS_OF + 2 * HOUR
        second.set_now(later + timedelta(seconds=5))
        warm = by_key(second.market.fetch_ohlcv(all_reqs(), later))
        assert all(r.ok and r.requests == 1 for r in warm.values())
        for r in warm.values():
            assert r.data["timestamp"].iloc[-1] == pd.Timestamp(later - HOUR)
        # the stored history is reused exactly (first bars identical to the cold cycle's)
        cold_btc = by_key(cold)[("okx", "BTC/USD")].data
        pd.testing.assert_frame_equal(warm[("okx", "BTC/USD")].data.iloc[:-2].reset_index(drop=True),
                                      cold_btc.iloc[2:].reset_index(drop=True))
    finally:
        second.market.close()


def test_unlisted_symbol_is_bad_symbol_without_a_request(world):
    world.market.list_markets("okx", AS_OF)
    before = world.counts()
    r = world.market.fetch_ohlcv([("okx", "DOGE/USD")], AS_OF)[0]
    assert r.error == "bad_symbol" and r.requests == 0 and "DOGE/USD" in r.detail
    assert world.counts() == before


# ------------------------------------------------------------------------------------------
# order books and tickers


def test_order_books_are_sorted_trimmed_and_stamped(world):
    results = by_key(world.market.fetch_order_books(all_reqs(), AS_OF, depth=20))
    for (venue, symbol), r in results.items():
        assert r.ok, r.detail
        book = r.data
        assert book.bids.shape == (20, 2) and book.asks.shape == (20, 2)
        assert (np.diff(book.bids[:, 0]) < 0).all(), "bids must be descending"
        assert (np.diff(book.asks[:, 0]) > 0).all(), "asks must be ascending"
        assert book.bids[0, 0] < book.asks[0, 0]
        assert r.requests == 1
    venue_now = AS_OF + timedelta(seconds=30)
    assert results[("okx", "BTC/USD")].data.timestamp == venue_now - timedelta(milliseconds=150)  # okx `ts`
    assert results[("coinbase", "BTC/USD")].data.timestamp == venue_now - timedelta(milliseconds=200)  # coinbase `time`
    assert results[("kraken", "BTC/USD")].data.timestamp == venue_now  # kraken has no book time: receipt time
    assert "count=20" in world.apis["kraken"].urls[-1]
    assert world.apis["okx"].calls["/api/v5/market/books"] == 3


def test_tickers_use_one_bulk_request_per_venue(world):
    world.market.list_markets("kraken", AS_OF)
    world.market.list_markets("okx", AS_OF)
    world.market.list_markets("coinbase", AS_OF)
    for api in world.apis.values():
        api.reset_counts()
    results = world.market.fetch_tickers(all_reqs(), AS_OF)
    assert world.counts() == {"kraken": 1, "okx": 1, "coinbase": 1}
    by = by_key(results)
    assert [by[("kraken", s)].requests for s in BASES] == [1, 0, 0]  # the bulk cost sits on the first
    k = by[("kraken", "BTC/USD")].data
    assert (k.bid, k.ask, k.last) == (91250.0, 91250.1, 91250.1)
    assert k.base_volume_24h == pytest.approx(2110.37052915)
    o = by[("okx", "ETH/USD")].data
    assert (o.bid, o.ask, o.last) == (3019.9, 3019.92, 3019.92)
    assert by[("okx", "ETH/USD")].stamped_at == datetime(2026, 11, 20, 11, 59, 50, 123000, tzinfo=UTC)
    c = by[("coinbase", "SOL/USD")].data
    assert c.bid == c.ask == c.last == 141.231  # coinbase's public product list carries no quote
    assert c.quote_volume_24h == pytest.approx(158227114.33)


def test_tickers_fall_back_to_per_symbol_requests_without_a_bulk_endpoint(world):
    world.market.exchange("kraken").has["fetchTickers"] = False
    world.market.list_markets("kraken", AS_OF)
    world.apis["kraken"].reset_counts()
    results = world.market.fetch_tickers(reqs("kraken"), AS_OF)
    assert all(r.ok and r.requests == 1 for r in results)
    assert world.apis["kraken"].calls == Counter({"/0/public/Ticker": 3})


# ------------------------------------------------------------------------------------------
# TTL cache (warm scan)


def test_ttl_cache_hits_report_remaining_ttl_and_cost_nothing():
    w = make_world(cache_ttl_s=1800)
    try:
        first = w.market.fetch_order_books(reqs("okx"), AS_OF)
        assert all(r.ok and not r.from_cache and r.requests == 1 for r in first)
        w.clock.t += 600
        before = w.counts()
        again = w.market.fetch_order_books(reqs("okx"), AS_OF + timedelta(minutes=10))
        assert w.counts() == before
        for a, b in zip(first, again):
            # (pacing moved the fake clock by a few ms between the three puts)
            assert b.from_cache and b.requests == 0 and b.ttl_remaining_s == pytest.approx(1200, abs=0.5)
            assert b.stamped_at == a.stamped_at and np.array_equal(a.data.bids, b.data.bids)
        bars = w.market.fetch_ohlcv(reqs("okx"), AS_OF)
        w.clock.t += 100
        cached_bars = w.market.fetch_ohlcv(reqs("okx"), AS_OF)
        assert all(r.from_cache and r.ttl_remaining_s == pytest.approx(1700, abs=0.5) and r.requests == 0 for r in cached_bars)
        pd.testing.assert_frame_equal(bars[0].data, cached_bars[0].data)
        tick = w.market.fetch_tickers(reqs("okx"), AS_OF)
        tick_again = w.market.fetch_tickers(reqs("okx"), AS_OF)
        assert all(r.from_cache and r.requests == 0 for r in tick_again) and tick[0].data == tick_again[0].data
        # expired → asked again
        w.clock.t += 1800
        fresh = w.market.fetch_order_books(reqs("okx"), AS_OF + timedelta(minutes=45))
        assert all(not r.from_cache and r.requests == 1 for r in fresh)
        # an entry taken for a later cycle is never served to an earlier one
        earlier = w.market.fetch_order_books(reqs("okx", ["BTC/USD"]), AS_OF - timedelta(hours=1))
        assert not earlier[0].from_cache
        assert w.market.cache_stats["hits"] >= 9
    finally:
        w.market.close()


def test_no_ttl_means_no_cache(world):
    world.market.fetch_order_books(reqs("okx"), AS_OF)
    again = world.market.fetch_order_books(reqs("okx"), AS_OF)
    assert all(not r.from_cache and r.requests == 1 for r in again)


# ------------------------------------------------------------------------------------------
# retries, failures, health


@pytest.mark.parametrize(
    "exc, reason",
    [
        (ccxt.RequestTimeout, "timeout"),
        (ccxt.ExchangeNotAvailable, "venue_down"),
        (ccxt.OnMaintenance, "venue_down"),
        (ccxt.DDoSProtection, "rate_limited"),
        (ccxt.RateLimitExceeded, "rate_limited"),
        (ccxt.NetworkError, "venue_down"),
    ],
)
def test_venue_level_errors_retry_with_backoff_then_skip_the_venue(world, exc, reason):
    world.market.list_markets("kraken", AS_OF)
    world.apis["kraken"].reset_counts()
    world.market.reset_health()  # as collect_snapshot does at the start of a cycle
    world.apis["kraken"].fail("/0/public/OHLC", lambda: exc("kraken GET https://api.kraken.com/0/public/OHLC boom"))
    results = world.market.fetch_ohlcv(reqs("kraken") + reqs("okx"), AS_OF)
    btc, eth, sol = results[:3]
    assert btc.error == reason and btc.data is None
    assert btc.requests == 4  # 1 + max_retries(3)
    assert "after 4 attempts" in btc.detail and reason in btc.detail and btc.detail.startswith("kraken OHLCV BTC/USD")
    # the venue is in trouble: the rest of its batch is not hammered
    assert eth.error == sol.error == reason and eth.requests == sol.requests == 0 and "skipped" in eth.detail
    assert world.apis["kraken"].calls["/0/public/OHLC"] == 4
    assert world.market.backoff_log == [("kraken", 0.5), ("kraken", 1.0), ("kraken", 2.0)]
    backoffs = iter(world.clock.sleeps)  # the injected sleep saw them, in order (between pacing waits)
    assert all(any(s == d for s in backoffs) for d in (0.5, 1.0, 2.0))
    h = world.market.health()["kraken"]
    assert (h.requests, h.errors, h.retries) == (4, 4, 3) and h.status == "down" and reason in h.last_error
    assert all(r.ok for r in results[3:])  # okx answered
    assert world.market.health()["okx"].status == "ok"


def test_backoff_is_capped_and_retry_count_configurable():
    cfg = changed(packaged_config().market, ccxt={"max_retries": 5, "backoff_base_s": 1.0, "backoff_max_s": 3.0})
    w = make_world(cfg, venues=("okx",))
    try:
        w.apis["okx"].fail("/market/books", lambda: ccxt.RequestTimeout("okx timeout"))
        r = w.market.fetch_order_books([("okx", "BTC/USD")], AS_OF)[0]
        assert r.error == "timeout" and r.requests == 6
        assert [d for _, d in w.market.backoff_log] == [1.0, 2.0, 3.0, 3.0, 3.0]
    finally:
        w.market.close()


def test_transient_failures_recover_and_count_every_request(world):
    world.market.list_markets("okx", AS_OF)
    world.apis["okx"].fail("/market/books", lambda: ccxt.RateLimitExceeded("okx 50011 Too Many Requests"), times=2)
    r = world.market.fetch_order_books([("okx", "BTC/USD")], AS_OF)[0]
    assert r.ok and r.requests == 3
    assert world.market.backoff_log == [("okx", 0.5), ("okx", 1.0)]
    h = world.market.health()["okx"]
    assert (h.retries, h.errors) == (2, 2) and h.status == "degraded" and len(h.latencies_ms) == 4


def test_bad_response_is_retried_but_stays_per_symbol(world):
    world.market.list_markets("coinbase", AS_OF)
    world.apis["coinbase"].fail("BTC-USD/candles", lambda: ccxt.BadResponse("coinbase returned HTML"))
    results = world.market.fetch_ohlcv(reqs("coinbase"), AS_OF)
    assert results[0].error == "bad_response" and results[0].requests == 4
    assert results[1].ok and results[2].ok  # not a venue-level failure: the batch goes on


def test_bad_symbol_from_the_venue_is_not_retried(world):
    world.market.list_markets("okx", AS_OF)
    world.apis["okx"].fail("instId=ETH-USD", lambda: ccxt.BadSymbol("okx 51001 Instrument ID does not exist"))
    results = by_key(world.market.fetch_ohlcv(reqs("okx"), AS_OF))
    eth = results[("okx", "ETH/USD")]
    assert eth.error == "bad_symbol" and eth.requests == 1 and world.market.backoff_log == []
    assert results[("okx", "BTC/USD")].ok and results[("okx", "SOL/USD")].ok
    assert world.market.health()["okx"].errors == 0  # the venue is fine; the symbol is not


def test_one_venue_down_while_the_others_answer(world):
    world.apis["okx"].fail("/public/instruments", lambda: ccxt.ExchangeNotAvailable("okx 503 Service Unavailable"))
    with pytest.raises(VenueUnavailable) as info:
        world.market.list_markets("okx", AS_OF)
    assert info.value.reason == "venue_down" and "after 4 attempts" in str(info.value)
    results = by_key(world.market.fetch_ohlcv(all_reqs(), AS_OF))
    for (venue, _), r in results.items():
        if venue == "okx":
            assert r.error == "venue_down" and "markets unavailable" in r.detail
        else:
            assert r.ok
    snap = collect_snapshot(world.market, None, AS_OF, limit=48, book_depth=10)
    assert set(snap.markets["venue"]) == {"kraken", "coinbase"}
    down = snap.fetches[(snap.fetches["venue"] == "okx") & (snap.fetches["kind"] == "markets")]
    assert list(down["error"]) == ["venue_down"]
    assert snap.health["okx"]["status"] == "down"
    assert set(snap.bars["venue"]) == {"kraken", "coinbase"}
    assert set(snap.books["venue"]) == {"kraken", "coinbase"}


def test_venues_are_queried_concurrently(world):
    """kraken's first candle answer waits until okx has asked for candles: sequential venues deadlock."""
    for v in ("kraken", "okx"):
        world.market.list_markets(v, AS_OF)
    okx_asked = asyncio.Event()

    async def kraken_waits(path: str) -> None:
        if path.endswith("/OHLC"):
            await asyncio.wait_for(okx_asked.wait(), timeout=2.0)

    async def okx_signals(path: str) -> None:
        okx_asked.set()

    world.apis["kraken"].before_answer = kraken_waits
    world.apis["okx"].before_answer = okx_signals
    results = world.market.fetch_ohlcv(reqs("kraken", ["BTC/USD"]) + reqs("okx", ["BTC/USD"]), AS_OF, limit=24)
    assert all(r.ok for r in results)


# ------------------------------------------------------------------------------------------
# garbage payloads


def _bad_kraken_bar(payload):
    rows = payload["result"]["SOLUSD"]
    rows[-5][2], rows[-5][3] = rows[-5][3], rows[-5][2]  # high and low swapped: high < low
    return payload


def _negative_okx_price(payload):
    payload["data"][3][4] = "-12.5"
    return payload


def test_garbage_books_and_tickers_are_reported_per_symbol(world):
    world.apis["coinbase"].mutate("product_id=BTC-USD", lambda p: {**p, "pricebook": {**p["pricebook"], "bids": [{"price": "NaN", "size": "1"}]}})
    world.apis["okx"].mutate("/market/tickers", lambda p: {**p, "data": [{**d, "last": "-1", "bidPx": "-1", "askPx": "-1"} if d["instId"] == "SOL-USD" else d for d in p["data"]]})
    books = by_key(world.market.fetch_order_books(all_reqs(), AS_OF))
    assert books[("coinbase", "BTC/USD")].error == "bad_response"
    assert sum(r.ok for r in books.values()) == 8
    assert world.market.backoff_log == []  # the venue would send the same garbage again
    tickers = by_key(world.market.fetch_tickers(reqs("okx"), AS_OF))
    assert tickers[("okx", "SOL/USD")].error == "bad_response" and tickers[("okx", "BTC/USD")].ok


def _bar_flags(snapshot) -> dict[tuple[str, str, str], int]:
    _, flags = snapshot.clean_bars()
    return {k: int(n) for k, n in flags.groupby(["venue", "symbol", "reason"]).size().items()}


def test_one_bad_bar_is_dropped_with_its_reason_not_the_whole_answer(world):
    """A venue payload with one bad candle: the answer keeps every other bar, and
    quality.sanitize_bars drops exactly that bar with its reason code (explain.json data_quality)."""
    world.apis["kraken"].mutate("OHLC?pair=SOLUSD", _bad_kraken_bar)
    world.apis["okx"].mutate("candles?instId=ETH-USD", _negative_okx_price)
    bars = by_key(world.market.fetch_ohlcv(all_reqs(), AS_OF))
    assert all(r.ok for r in bars.values())
    sol, eth = bars[("kraken", "SOL/USD")], bars[("okx", "ETH/USD")]
    assert sol.requests == 1 and len(sol.data) == 719  # kraken's 720 minus the open bar: the bad one included
    assert int((sol.data["high"] < sol.data["low"]).sum()) == 1
    n_negative = int((eth.data["close"] <= 0).sum())  # one per okx page of 300
    assert n_negative == 3 and len(eth.data) == len(bars[("okx", "BTC/USD")].data)
    assert world.market.backoff_log == []
    snap = collect_snapshot(world.market, ["BTC/USD", "ETH/USD", "SOL/USD"], AS_OF, venues=("kraken", "okx"), limit=720,
                            with_books=False)
    flags = {k: n for k, n in _bar_flags(snap).items() if k[2] != "zero_volume"}
    assert flags == {("kraken", "SOL/USD", "high_below_low"): 1, ("okx", "ETH/USD", "non_positive_price"): n_negative}
    clean, _ = snap.clean_bars()
    n_clean = clean.groupby(["venue", "symbol"]).size()
    assert n_clean[("kraken", "SOL/USD")] == n_clean[("kraken", "BTC/USD")] - 1


def test_ccxt_parse_exceptions_become_bad_response(world):
    world.apis["okx"].mutate("/market/books", lambda p: {"code": "0", "msg": "", "data": [{"asks": [["x"]], "bids": None, "ts": "1"}]})
    r = world.market.fetch_order_books([("okx", "BTC/USD")], AS_OF)[0]
    assert r.error == "bad_response" and r.data is None


def test_empty_book_is_no_book(world):
    world.apis["okx"].mutate("/market/books", lambda p: {"code": "0", "msg": "", "data": [{"asks": [], "bids": [], "ts": "1795175999000"}]})
    r = world.market.fetch_order_books([("okx", "BTC/USD")], AS_OF)[0]
    assert r.error == "no_book" and r.requests == 1


# ------------------------------------------------------------------------------------------
# rate limiting


def test_requests_are_paced_by_the_venue_rate_limit(world):
    world.market.fetch_ohlcv(reqs("kraken"), AS_OF, limit=24)
    waits = world.market.rate_limit_waits()["kraken"]
    # Assets(1) → AssetPairs(1 s) → OHLC ×3 (cost 1.2 each at kraken's 1000 ms)
    assert waits == pytest.approx([1.0, 1.0, 1.2, 1.2])


def test_job_request_rate_slows_the_venue_down():
    w = make_world(venues=("kraken",), request_rate_per_s=0.5)
    try:
        w.market.fetch_ohlcv(reqs("kraken"), AS_OF, limit=24)
        assert w.market.rate_limit_waits()["kraken"] == pytest.approx([2.0] * 4)
    finally:
        w.market.close()


def test_job_request_rate_cannot_outpace_the_venue():
    w = make_world(venues=("kraken",), request_rate_per_s=4)
    try:
        w.market.fetch_ohlcv(reqs("kraken"), AS_OF, limit=24)
        assert all(wait >= 1.0 for wait in w.market.rate_limit_waits()["kraken"])
    finally:
        w.market.close()


def test_from_config_uses_the_job_settings(tmp_path, monkeypatch):
    config = load_config(check_artifacts_dir=False)
    warm = config.job("scan.warm")
    market = CcxtMarket.from_config(config, warm, ohlcv_cache_dir=tmp_path)
    for v in market.venues:
        market.exchange(v).timeout_on_exit = 0  # ccxt's close() would wait 250 ms of real time
    try:
        assert market.venues == ("kraken", "okx", "coinbase") and market.name == "ccxt"
        assert market.cache_ttl_s == warm.config.cache_ttl_s == 1800
        assert market.request_rate_per_s == 2
        for v in market.venues:
            ex = market.exchange(v)
            assert ex.id == v and ex.enableRateLimit and ex.timeout == config.market.ccxt.timeout_ms
            assert not ex.apiKey
    finally:
        market.close()
        market.close()  # idempotent


# ------------------------------------------------------------------------------------------
# credentials never leak


CANARY_KEY = "CANARY-KEY-8f3a91c2d7"
CANARY_SECRET = "CANARY-SECRET-1b2c3d4e5f"


def test_credentials_canary_never_appears_in_results_health_or_repr(monkeypatch, caplog):
    monkeypatch.setenv("CR_TEST_KRAKEN_KEY", CANARY_KEY)
    monkeypatch.setenv("CR_TEST_KRAKEN_SECRET", CANARY_SECRET)
    monkeypatch.setenv("CR_TEST_OKX_KEY", CANARY_KEY)
    monkeypatch.setenv("CR_TEST_OKX_SECRET", CANARY_SECRET)
    monkeypatch.setenv("CR_TEST_OKX_PASS", CANARY_SECRET)
    cfg = changed(packaged_config().market, ccxt={"api_key_env": {
        "kraken": "CR_TEST_KRAKEN_KEY", "kraken.secret": "CR_TEST_KRAKEN_SECRET",
        "okx": "CR_TEST_OKX_KEY", "okx.secret": "CR_TEST_OKX_SECRET", "okx.password": "CR_TEST_OKX_PASS",
    }})
    clock = FakeClock()
    market = CcxtMarket(("kraken", "okx"), cfg, clock=clock, sleep=clock.sleep)
    apis = {v: FakeVenueAPI(v, AS_OF + timedelta(seconds=30)) for v in ("kraken", "okx")}
    for v, api in apis.items():
        market.exchange(v).fetch = api.fetch
        market.exchange(v).timeout_on_exit = 0
    assert market.exchange("kraken").apiKey == CANARY_KEY  # the keys did reach ccxt
    # a venue error that echoes the key must not carry it any further
    apis["kraken"].fail("/0/public/OHLC", lambda: ccxt.ExchangeNotAvailable(f"EAPI:Invalid key {CANARY_KEY} / {CANARY_SECRET}"))
    apis["okx"].fail("/market/books", lambda: ccxt.ExchangeError(f"okx 50113 Invalid Sign for {CANARY_KEY}"))
    caplog.set_level(logging.DEBUG)
    try:
        texts = [repr(market)]
        for batch in (market.fetch_ohlcv(reqs("kraken") + reqs("okx"), AS_OF, limit=24),
                      market.fetch_order_books(reqs("okx"), AS_OF),
                      market.fetch_tickers(reqs("kraken") + reqs("okx"), AS_OF)):
            texts += [repr(r) for r in batch] + [r.detail for r in batch]
        texts += [json.dumps(h.to_dict()) for h in market.health().values()] + [repr(market.health())]
        texts.append(caplog.text)
        blob = "\n".join(texts)
        assert "EAPI:Invalid key ***" in blob  # the error itself is reported...
        assert CANARY_KEY not in blob and CANARY_SECRET not in blob  # ...without the secret
        # public endpoints only, keys or not
        for api in apis.values():
            assert all("/private/" not in u and "/asset/" not in u and "/account/" not in u for u in api.urls)
    finally:
        market.close()


def _echoes(secret: str) -> dict[str, str]:
    """Forms a venue's error text may echo a credential in."""
    import base64
    from urllib.parse import quote

    return {"verbatim": secret, "url": quote(secret, safe=""), "upper": secret.upper(), "lower": secret.lower(),
            "base64": base64.b64encode(secret.encode()).decode(), "base64_nopad": base64.b64encode(secret.encode()).decode().rstrip("="),
            "prefix": secret[:10]}


ODD_SECRET = "s3cr3t/Key+With=Odd&Chars"


def test_a_secret_read_with_a_trailing_newline_is_stripped_and_no_echo_of_it_escapes(monkeypatch, caplog):
    monkeypatch.setenv("CR_TEST_KRAKEN_KEY", CANARY_KEY + "\n")
    monkeypatch.setenv("CR_TEST_KRAKEN_SECRET", ODD_SECRET + "\r\n")
    cfg = changed(packaged_config().market, ccxt={"api_key_env": {"kraken": "CR_TEST_KRAKEN_KEY", "kraken.secret": "CR_TEST_KRAKEN_SECRET"}})
    clock = FakeClock()
    market = CcxtMarket(("kraken",), cfg, clock=clock, sleep=clock.sleep)
    api = FakeVenueAPI("kraken", AS_OF + timedelta(seconds=30))
    market.exchange("kraken").fetch = api.fetch
    market.exchange("kraken").timeout_on_exit = 0
    assert market.exchange("kraken").apiKey == CANARY_KEY and market.exchange("kraken").secret == ODD_SECRET  # stripped on read
    forms = {f"key {k}": v for k, v in _echoes(CANARY_KEY).items()} | {f"secret {k}": v for k, v in _echoes(ODD_SECRET).items()}
    echo = " | ".join(f"{name}={value}" for name, value in forms.items())
    api.fail("/0/public/OHLC", lambda: ccxt.ExchangeError(f"EAPI:Invalid key: {echo}"))
    api.fail("/0/public/Depth", lambda: ccxt.ExchangeNotAvailable(f"EGeneral: {echo}"))
    caplog.set_level(logging.DEBUG)
    try:
        results = market.fetch_ohlcv(reqs("kraken"), AS_OF, limit=24) + market.fetch_order_books(reqs("kraken"), AS_OF)
        texts = [repr(r) for r in results] + [r.detail or "" for r in results]
        texts += [json.dumps(h.to_dict()) for h in market.health().values()] + [caplog.text]
        blob = "\n".join(texts)
        assert "EAPI:Invalid key: key verbatim=***" in blob  # the venue's error is still reported
        leaked = {name for name, value in forms.items() if value in blob}
        assert leaked == set()
    finally:
        market.close()


def test_coinbase_never_gets_credentials_because_ccxt_would_go_private(monkeypatch):
    monkeypatch.setenv("CR_TEST_CB_KEY", CANARY_KEY)
    monkeypatch.setenv("CR_TEST_CB_SECRET", CANARY_SECRET)
    cfg = changed(packaged_config().market, ccxt={"api_key_env": {"coinbase": "CR_TEST_CB_KEY", "coinbase.secret": "CR_TEST_CB_SECRET"}})
    market = CcxtMarket(("coinbase",), cfg)
    try:
        market.exchange("coinbase").timeout_on_exit = 0
        assert not market.exchange("coinbase").apiKey and not market.exchange("coinbase").secret
        assert CANARY_KEY not in repr(market)
    finally:
        market.close()


def test_bar_window_and_time_to_next_close():
    from cryptorun_core.market.ccxt_live import bar_window, seconds_to_next_close

    t = datetime(2026, 11, 20, 12, 15, tzinfo=timezone.utc)
    first, last = bar_window(t, "1h", 720)
    assert last == pd.Timestamp("2026-11-20T11:00Z") and first == last - pd.Timedelta(hours=719)
    assert bar_window(datetime(2026, 11, 20, 12, tzinfo=timezone.utc), "1h", 3)[1] == last  # the bar closing at T is closed
    assert seconds_to_next_close(t, "1h") == 45 * 60.0
    assert bar_window(t, "1d", 2) == (pd.Timestamp("2026-11-18T00:00Z"), pd.Timestamp("2026-11-19T00:00Z"))
