"""Synthetic MarketSnapshots of any size, built with numpy (no SimulatedMarket).

N symbols × venues × ``n_bars`` hourly random-walk bars closed at or before T, plus an L2 book of
``levels`` levels a side per (venue, symbol), stamped T. Symbol 0 is the regime benchmark
``BTC/USD``; the rest are ``S00001/USD`` … . ADVs are log-uniform from $30k to $3B so every
liquidity tier and the ``adv_below_min`` exclusion occur, and ~15% of symbols get a volume surge
and a range expansion in the newest 24h period so the gates see entries as well as rejections.

The long tables have the same columns and dtypes as :func:`collect_snapshot` produces
(``venue``/``symbol`` object strings, ``timestamp`` datetime64[ns, UTC], float OHLCV).
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd

from cryptorun_core.market.snapshot import (
    MARKET_COLUMNS,
    SNAPSHOT_BAR_COLUMNS,
    SNAPSHOT_BOOK_COLUMNS,
    SNAPSHOT_FETCH_COLUMNS,
    MarketSnapshot,
)

VENUES = ("kraken", "okx", "coinbase")
AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
NATIVE = {"kraken": "{b}/USD", "okx": "{b}-USD", "coinbase": "{b}-USD"}


def symbol_names(n: int) -> list[str]:
    return ["BTC/USD"] + [f"S{i:05d}/USD" for i in range(1, n)]


def build_snapshot(
    n_symbols: int,
    venues: tuple[str, ...] = VENUES,
    n_bars: int = 720,
    levels: int = 100,
    seed: int = 11,
    as_of: datetime = AS_OF,
) -> MarketSnapshot:
    rng = np.random.default_rng(seed)
    n, v, h = int(n_symbols), len(venues), int(n_bars)
    symbols = np.array(symbol_names(n), dtype=object)
    bases = [s.split("/")[0] for s in symbols]

    # ---- prices: market factor + idiosyncratic random walk per symbol, small venue basis
    sigma = rng.uniform(0.004, 0.02, n)
    market = rng.normal(0.0, 0.004, h)
    beta = rng.uniform(0.3, 1.5, n)
    shocks = rng.standard_normal((n, h)) * sigma[:, None] + beta[:, None] * market[None, :]
    log_p = np.log(rng.uniform(0.05, 60_000.0, n))[:, None] + np.cumsum(shocks, axis=1)
    log_p[0] += np.log(60_000.0) - log_p[0, -1]  # BTC near 60k
    surge = rng.random(n) < 0.15
    # newest period: a push (range expansion) for surging symbols
    log_p[surge, -24:] += np.linspace(0.0, 0.06, 24)[None, :]

    close = np.exp(log_p[None, :, :] + rng.normal(0.0, 0.0004, (v, n, h)))  # (v, n, h)
    open_ = np.concatenate([close[:, :, :1], close[:, :, :-1]], axis=2)
    wick = np.abs(rng.standard_normal((2, v, n, h))) * sigma[None, None, :, None] * 0.5
    high = np.maximum(open_, close) * (1.0 + wick[0])
    low = np.minimum(open_, close) / (1.0 + wick[1])

    # ---- volumes: ADV log-uniform, split over venues, intraday noise, surge in period 0
    adv = np.exp(rng.uniform(np.log(3e4), np.log(3e9), n))
    adv[0] = 2e10
    share = rng.dirichlet(np.ones(v), n).T  # (v, n)
    usd = (adv[None, :, None] * share[:, :, None] / 24.0) * rng.lognormal(0.0, 0.35, (v, n, h))
    usd[:, surge, -24:] *= rng.uniform(2.0, 6.0, surge.sum())[None, :, None]
    volume = usd / close

    ts = pd.date_range(end=pd.Timestamp(as_of) - pd.Timedelta(hours=1), periods=h, freq="h", tz="UTC")
    rows = v * n * h
    bars = pd.DataFrame(
        {
            "venue": np.repeat(np.array(venues, dtype=object), n * h),
            "symbol": np.tile(np.repeat(symbols, h), v),
            "timestamp": np.tile(ts.values, v * n),
            "open": open_.reshape(rows),
            "high": high.reshape(rows),
            "low": low.reshape(rows),
            "close": close.reshape(rows),
            "volume": volume.reshape(rows),
        }
    )
    bars["timestamp"] = pd.DatetimeIndex(bars["timestamp"]).tz_localize("UTC") if bars["timestamp"].dt.tz is None else bars["timestamp"]
    bars = bars[list(SNAPSHOT_BAR_COLUMNS)]

    # ---- books: `levels` a side, stepped 4 bps, depth roughly proportional to ADV
    mid = close[:, :, -1]  # (v, n)
    spread_bps = rng.uniform(1.0, 70.0, (v, n))
    best_bid = mid * (1 - spread_bps / 2e4)
    best_ask = mid * (1 + spread_bps / 2e4)
    steps = np.arange(levels) * 4e-4
    side_depth = adv[None, :] * share * rng.uniform(0.005, 0.05, (v, n))  # USD on each side across all levels
    tilt = rng.uniform(0.6, 1.6, (v, n))  # bid/ask imbalance
    bid_px = best_bid[:, :, None] * (1 - steps)[None, None, :]
    ask_px = best_ask[:, :, None] * (1 + steps)[None, None, :]
    bid_amt = (side_depth * tilt / levels)[:, :, None] / bid_px * rng.uniform(0.5, 1.5, (v, n, levels))
    ask_amt = (side_depth / tilt / levels)[:, :, None] / ask_px * rng.uniform(0.5, 1.5, (v, n, levels))
    per_side = v * n * levels
    book_venue = np.repeat(np.array(venues, dtype=object), n * levels)
    book_symbol = np.tile(np.repeat(symbols, levels), v)
    bt = pd.Timestamp(as_of)
    books = pd.concat(
        [
            pd.DataFrame({"venue": book_venue, "symbol": book_symbol, "side": "bid", "price": bid_px.reshape(per_side),
                          "amount": bid_amt.reshape(per_side)}),
            pd.DataFrame({"venue": book_venue, "symbol": book_symbol, "side": "ask", "price": ask_px.reshape(per_side),
                          "amount": ask_amt.reshape(per_side)}),
        ],
        ignore_index=True,
    )
    books["book_time"] = bt
    books = books[list(SNAPSHOT_BOOK_COLUMNS)]

    markets = pd.DataFrame(
        {
            "venue": np.repeat(np.array(venues, dtype=object), n),
            "symbol": np.tile(symbols, v),
            "native_symbol": [NATIVE[ven].format(b=b) for ven in venues for b in bases],
            "base": np.tile(np.array(bases, dtype=object), v),
            "quote": "USD",
            "active": True,
        }
    )[list(MARKET_COLUMNS)]
    pairs_v = np.repeat(np.array(venues, dtype=object), n)
    pairs_s = np.tile(symbols, v)
    fetches = pd.DataFrame(
        {
            "venue": np.concatenate([pairs_v, pairs_v]),
            "symbol": np.concatenate([pairs_s, pairs_s]),
            "kind": np.repeat(np.array(["ohlcv", "book"], dtype=object), v * n),
            "ok": True,
            "error": None,
            "detail": "",
            "from_cache": False,
            "ttl_remaining_s": np.nan,
            "stamped_at": bt,
            "latency_ms": 0.0,
            "requests": 0,
        }
    )[list(SNAPSHOT_FETCH_COLUMNS)]
    return MarketSnapshot(as_of=as_of, timeframe="1h", source="synthetic", bars=bars, books=books, fetches=fetches,
                          markets=markets, health={})


def numpy_floor(snapshot: MarketSnapshot, n_venues: int, n_bars: int, vol_window: int = 168) -> dict:
    """The physical floor: the same returns / rolling statistics / period aggregation in bare numpy.

    Assumes the bars are laid out (venue, symbol, time) as :func:`build_snapshot` makes them, so
    the matrices are free reshapes of the long columns. Computes hourly log returns, the rolling
    168-bar sample stdev of every window (cumsum), multi-horizon returns 1h/4h/12h/24h/7d (and the
    4h one lagged 4h, for acceleration), and the 24h period table (max high, min low, last close,
    Σ close·volume) with the 7-period ADV summed over venues.
    """
    b = snapshot.bars
    rows = len(b) // n_bars
    close = b["close"].to_numpy().reshape(rows, n_bars)
    high = b["high"].to_numpy().reshape(rows, n_bars)
    low = b["low"].to_numpy().reshape(rows, n_bars)
    vol = b["volume"].to_numpy().reshape(rows, n_bars)

    lr = np.diff(np.log(close), axis=1)
    c1 = np.cumsum(np.pad(lr, ((0, 0), (1, 0))), axis=1)
    c2 = np.cumsum(np.pad(lr * lr, ((0, 0), (1, 0))), axis=1)
    w = vol_window
    s1 = c1[:, w:] - c1[:, :-w]
    s2 = c2[:, w:] - c2[:, :-w]
    rolling_sd = np.sqrt(np.maximum(s2 - s1 * s1 / w, 0.0) / (w - 1))
    horizons = {hh: close[:, -1] / close[:, -1 - hh] - 1.0 for hh in (1, 4, 12, 24, 168)}
    lag4 = close[:, -5] / close[:, -9] - 1.0
    p = n_bars // 24
    shape = (rows, p, 24)
    period_high = high[:, -p * 24:].reshape(shape).max(axis=2)
    period_low = low[:, -p * 24:].reshape(shape).min(axis=2)
    period_close = close[:, -p * 24:].reshape(shape)[:, :, -1]
    period_usd = (close * vol)[:, -p * 24:].reshape(shape).sum(axis=2)
    adv = period_usd[:, -7:].mean(axis=1).reshape(n_venues, -1).sum(axis=0)
    return {"sd": rolling_sd[:, -1], "h": horizons, "lag4": lag4, "range": (period_high - period_low) / period_close,
            "adv": adv}
