"""A fake public REST API for kraken, okx and coinbase with many synthetic markets.

Listings are built from the wire-format fixtures the ccxt engineer recorded under
``tests/core/market/payloads/`` (one real entry per venue is the template; the base currency is
substituted), candles and books are generated deterministically per (venue, base) with numpy and
served in each venue's own wire format (the same shapes as ``tests/core/market/test_ccxt_live.py``),
so real ccxt async exchange objects parse everything. The fake replaces ccxt's low-level
``fetch`` and answers after a delay equal to the venue's ccxt rate-limit cost of that endpoint
(``exchange.rateLimit`` × the endpoint's ccxt cost weight: kraken OHLC/Depth 1.2 s, okx candles/
books 55 ms, coinbase candles/product_book 102 ms), divided by ``scale``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import zlib
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

UTC = timezone.utc
HOUR = timedelta(hours=1)
PAYLOADS = Path(__file__).resolve().parent.parent / "tests" / "core" / "market" / "payloads"
ORIGIN = datetime(2026, 9, 1, tzinfo=UTC)  # first bar of every synthetic series
SPAN_H = 24 * 120

#: seconds per request at the venue's ccxt rate limit (rateLimit ms × endpoint cost), by URL fragment
COST_S = {
    "kraken": [("OHLC", 1.2), ("Depth", 1.2), ("", 1.0)],
    "okx": [("history-candles", 0.110), ("market/candles", 0.055), ("market/books", 0.055), ("", 0.110)],
    "coinbase": [("/candles", 0.102), ("product_book", 0.102), ("", 0.034)],
}


def _payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def bases(n: int) -> list[str]:
    """Synthetic base currencies (letters only, so every venue's symbol rules accept them)."""
    out = []
    for i in range(n):
        a, b, c = i // 676, (i // 26) % 26, i % 26
        out.append("Q" + chr(65 + a) + chr(65 + b) + chr(65 + c))
    return out


class Universe:
    """Deterministic hourly OHLCV + books for ``bases`` on each venue (numpy, cached per series)."""

    def __init__(self, base_list: list[str], venues: tuple[str, ...]):
        self.bases = list(base_list)
        self.venues = venues
        self._series: dict[tuple[str, str], tuple[np.ndarray, ...]] = {}
        self.opens = pd.date_range(ORIGIN, periods=SPAN_H, freq="h", tz="UTC")

    def series(self, venue: str, base: str) -> tuple[np.ndarray, ...]:
        key = (venue, base)
        if key not in self._series:
            i = self.bases.index(base)
            rng = np.random.default_rng(zlib.crc32(f"{venue}/{base}".encode()))
            common = np.random.default_rng(zlib.crc32(base.encode()))
            sigma = common.uniform(0.004, 0.015)
            lp = np.log(common.uniform(0.5, 500.0)) + np.cumsum(common.normal(0, sigma, SPAN_H)) + rng.normal(0, 3e-4, SPAN_H)
            close = np.exp(lp)
            open_ = np.concatenate([[close[0]], close[:-1]])
            high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, sigma / 2, SPAN_H)))
            low = np.minimum(open_, close) / (1 + np.abs(rng.normal(0, sigma / 2, SPAN_H)))
            adv = 5e8 / (1 + i) ** 1.1  # rank-like ADV: a few tier1, long tail
            vol = adv / 24 / close * rng.lognormal(0, 0.3, SPAN_H) / len(self.venues)
            self._series[key] = (open_, high, low, close, vol)
        return self._series[key]

    def bars_between(self, venue: str, base: str, first_open: datetime, last_open: datetime) -> list[tuple]:
        o, h, lo, c, v = self.series(venue, base)
        i0 = max(int((first_open - ORIGIN) / HOUR), 0)
        i1 = min(int((last_open - ORIGIN) / HOUR), SPAN_H - 1)
        return [(ORIGIN + k * HOUR, o[k], h[k], lo[k], c[k], v[k]) for k in range(i0, i1 + 1)]

    def book(self, venue: str, base: str, now: datetime, n: int) -> tuple[list, list]:
        k = min(max(int((now - ORIGIN) / HOUR) - 1, 0), SPAN_H - 1)
        mid = self.series(venue, base)[3][k]
        adv_amt = self.series(venue, base)[4][k] * 24 * 0.002
        bids = [(mid * (1 - 0.0003 * (j + 0.5)), adv_amt * (1 + 0.05 * j)) for j in range(n)]
        asks = [(mid * (1 + 0.0003 * (j + 0.5)), adv_amt * (1 + 0.04 * j)) for j in range(n)]
        return bids, asks

    def snapshot_bars(self, as_of: datetime, n_bars: int = 720) -> pd.DataFrame:
        """The closed bars of every (venue, base) at ``as_of`` as a snapshot bars table (no network)."""
        frames = []
        k1 = int((as_of - ORIGIN) / HOUR) - 1
        k0 = max(k1 - n_bars + 1, 0)
        for venue in self.venues:
            for base in self.bases:
                o, h, lo, c, v = self.series(venue, base)
                frames.append(pd.DataFrame({"venue": venue, "symbol": f"{base}/USD", "timestamp": self.opens[k0:k1 + 1],
                                            "open": o[k0:k1 + 1], "high": h[k0:k1 + 1], "low": lo[k0:k1 + 1],
                                            "close": c[k0:k1 + 1], "volume": v[k0:k1 + 1]}))
        return pd.concat(frames, ignore_index=True)


class FakeVenue:
    """One venue's public REST API over a :class:`Universe`; counts requests by kind."""

    def __init__(self, venue: str, universe: Universe, now: datetime, scale: float):
        self.venue = venue
        self.u = universe
        self.now = now
        self.scale = scale
        self.calls: Counter[str] = Counter()
        self.busy_s = 0.0  # summed (scaled) reply delays
        self.ohlcv_rows = 0  # candles served (incremental fetching keeps this near the new bars)
        self.first: float | None = None  # perf_counter of the first request / end of the last answer
        self.last: float | None = None
        self._listings = self._build_listings()

    def reset(self) -> None:
        self.first = None
        self.last = None
        self.calls.clear()
        self.busy_s = 0.0
        self.ohlcv_rows = 0

    def kind(self, path: str) -> str:
        if any(s in path for s in ("OHLC", "candles")):
            return "ohlcv"
        if any(s in path for s in ("Depth", "books", "product_book")):
            return "book"
        return "markets"

    def cost_s(self, url: str) -> float:
        for fragment, cost in COST_S[self.venue]:
            if fragment in url:
                return cost
        return 0.1

    async def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        parts = urlsplit(url)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.calls[self.kind(parts.path)] += 1
        delay = self.cost_s(url) / self.scale
        self.busy_s += delay
        import time

        if self.first is None:
            self.first = time.perf_counter()
        await asyncio.sleep(delay)
        out = getattr(self, f"_route_{self.venue}")(parts.path, q)
        self.last = time.perf_counter()
        return out

    # ---- listings from the recorded templates ----------------------------------------------
    def _build_listings(self) -> dict[str, Any]:
        bs = self.u.bases
        if self.venue == "kraken":
            pairs = _payload("kraken_AssetPairs.json")
            assets = _payload("kraken_Assets.json")
            tpl = pairs["result"]["SOLUSD"]
            atpl = assets["result"]["SOL"]
            for b in bs:
                e = copy.deepcopy(tpl)
                e.update(altname=f"{b}USD", wsname=f"{b}/USD", base=b, quote="ZUSD")
                pairs["result"][f"{b}USD"] = e
                a = copy.deepcopy(atpl)
                a["altname"] = b
                assets["result"][b] = a
            return {"AssetPairs": pairs, "Assets": assets}
        if self.venue == "okx":
            inst = _payload("okx_instruments.json")
            tpl = next(x for x in inst["data"] if x["instId"] == "SOL-USD")
            for b in bs:
                e = copy.deepcopy(tpl)
                e.update(baseCcy=b, instId=f"{b}-USD")
                inst["data"].append(e)
            return {"instruments": inst}
        prods = _payload("coinbase_products.json")
        tpl = next(p for p in prods["products"] if p["product_id"] == "SOL-USD")
        crypto = _payload("coinbase_currencies_crypto.json")
        ctpl = next(c for c in crypto["data"] if c["code"] == "SOL")
        rates = _payload("coinbase_exchange_rates.json")
        for b in bs:
            e = copy.deepcopy(tpl)
            for k, v in list(e.items()):
                if isinstance(v, str) and "SOL" in v:
                    e[k] = v.replace("SOL", b)
            prods["products"].append(e)
            c = copy.deepcopy(ctpl)
            c.update(code=b, name=b, asset_id=f"00000000-0000-0000-0000-{zlib.crc32(b.encode()):012d}")
            crypto["data"].append(c)
            rates["data"]["rates"][b] = "0.01"
        prods["num_products"] = len(prods["products"])
        return {"products": prods, "crypto": crypto, "rates": rates}

    def _base_of(self, token: str) -> str:
        for suffix in ("USD", "-USD"):
            if token.endswith(suffix):
                return token[: -len(suffix)].rstrip("-")
        return token

    # ---- kraken ----------------------------------------------------------------------------
    def _route_kraken(self, path: str, q: dict[str, str]) -> Any:
        endpoint = path.rsplit("/", 1)[-1]
        if endpoint in ("Assets", "AssetPairs"):
            return self._listings[endpoint]
        pair = q["pair"]
        base = self._base_of(pair)
        if endpoint == "OHLC":
            current = self.now.replace(minute=0, second=0, microsecond=0)
            since = datetime.fromtimestamp(int(q["since"]), UTC) if "since" in q else None
            first = current - 719 * HOUR
            if since is not None:
                first = max(first, since + HOUR)
            rows = [[int(t.timestamp()), f"{o:.8f}", f"{h:.8f}", f"{lo:.8f}", f"{c:.8f}", f"{(o + c) / 2:.8f}", f"{v:.8f}", 120]
                    for t, o, h, lo, c, v in self.u.bars_between("kraken", base, first, current)]
            self.ohlcv_rows += len(rows)
            return {"error": [], "result": {pair: rows, "last": rows[-2][0] if len(rows) > 1 else 0}}
        if endpoint == "Depth":
            bids, asks = self.u.book("kraken", base, self.now, int(q.get("count", 100)))
            stamp = int(self.now.timestamp()) - 2
            fmt = lambda lv: [[f"{p:.8f}", f"{a:.8f}", stamp] for p, a in lv]  # noqa: E731
            return {"error": [], "result": {pair: {"asks": fmt(asks), "bids": fmt(bids)}}}
        raise AssertionError(f"kraken fake: unexpected path {path}")

    # ---- okx -------------------------------------------------------------------------------
    def _route_okx(self, path: str, q: dict[str, str]) -> Any:
        if path.endswith("/public/instruments"):
            return self._listings["instruments"]
        base = q["instId"].split("-")[0]
        if path.endswith("candles"):
            before = int(q["before"]) if "before" in q else None
            after = int(q["after"]) if "after" in q else None
            limit = int(q.get("limit", 100))
            current = self.now.replace(minute=0, second=0, microsecond=0)
            rows = []
            for t, o, h, lo, c, v in self.u.bars_between("okx", base, current - 2000 * HOUR, current):
                ms = int(t.timestamp() * 1000)
                if (before is not None and ms <= before) or (after is not None and ms >= after):
                    continue
                confirm = "1" if t + HOUR <= self.now else "0"
                rows.append([str(ms), f"{o:.8f}", f"{h:.8f}", f"{lo:.8f}", f"{c:.8f}", f"{v:.6f}", f"{v * c:.2f}",
                             f"{v * c:.2f}", confirm])
            rows = rows[-limit:]
            self.ohlcv_rows += len(rows)
            return {"code": "0", "msg": "", "data": rows[::-1]}
        if path.endswith("/market/books"):
            bids, asks = self.u.book("okx", base, self.now, int(q.get("sz", 1)))
            ts = str(int(self.now.timestamp() * 1000) - 150)
            fmt = lambda lv: [[f"{p:.8f}", f"{a:.6f}", "0", "2"] for p, a in lv]  # noqa: E731
            return {"code": "0", "msg": "", "data": [{"asks": fmt(asks), "bids": fmt(bids), "ts": ts}]}
        raise AssertionError(f"okx fake: unexpected path {path}")

    # ---- coinbase --------------------------------------------------------------------------
    def _route_coinbase(self, path: str, q: dict[str, str]) -> Any:
        if path == "/v2/currencies":
            return _payload("coinbase_currencies.json")
        if path == "/v2/currencies/crypto":
            return self._listings["crypto"]
        if path == "/v2/exchange-rates":
            return self._listings["rates"]
        if path == "/api/v3/brokerage/market/products":
            return _payload("coinbase_products_future.json") if q.get("product_type") == "FUTURE" else self._listings["products"]
        if path.endswith("/candles"):
            base = path.split("/")[-2].split("-")[0]
            start = datetime.fromtimestamp(int(q["start"]), UTC)
            end = datetime.fromtimestamp(int(q["end"]), UTC)
            current = self.now.replace(minute=0, second=0, microsecond=0)
            rows = [{"start": str(int(t.timestamp())), "low": f"{lo:.8f}", "high": f"{h:.8f}", "open": f"{o:.8f}",
                     "close": f"{c:.8f}", "volume": f"{v:.8f}"}
                    for t, o, h, lo, c, v in self.u.bars_between("coinbase", base, start, min(end, current))]
            assert len(rows) <= 350, "coinbase rejects requests for more than 350 candles"
            self.ohlcv_rows += len(rows)
            return {"candles": rows[::-1]}
        if path.endswith("/product_book"):
            base = q["product_id"].split("-")[0]
            bids, asks = self.u.book("coinbase", base, self.now, int(q.get("limit", 50)))
            fmt = lambda lv: [{"price": f"{p:.8f}", "size": f"{a:.8f}"} for p, a in lv]  # noqa: E731
            when = (self.now - timedelta(milliseconds=200)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            return {"pricebook": {"product_id": q["product_id"], "bids": fmt(bids), "asks": fmt(asks), "time": when},
                    "last": f"{bids[0][0]:.8f}", "mid_market": f"{(bids[0][0] + asks[0][0]) / 2:.8f}", "spread_bps": "4.0"}
        raise AssertionError(f"coinbase fake: unexpected path {path}")
