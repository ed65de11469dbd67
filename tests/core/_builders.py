"""Hand-made inputs for the scan-engine tests (microstructure, factors, VADR, gates, premove, engine).

Import with ``sys.path`` pointing at ``tests/core`` (see :func:`ensure_importable` users), e.g.::

    sys.path.insert(0, str(Path(__file__).resolve().parents[n]))
    import _builders as B
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from cryptorun_core.config import DEFAULT_CONFIG_PATH, AppConfig, load_config
from cryptorun_core.market.snapshot import MARKET_COLUMNS, SNAPSHOT_BAR_COLUMNS, SNAPSHOT_BOOK_COLUMNS, SNAPSHOT_FETCH_COLUMNS, MarketSnapshot

T0 = pd.Timestamp("2026-11-10T12:00:00Z")
VENUES = ("kraken", "okx", "coinbase")
_CONFIG: AppConfig | None = None


def config() -> AppConfig:
    global _CONFIG
    if _CONFIG is None:
        _CONFIG = load_config(DEFAULT_CONFIG_PATH, check_artifacts_dir=False)
    return _CONFIG


def with_changes(cfg: AppConfig, **sections) -> AppConfig:
    """``with_changes(cfg, factors={'orthogonalize': False})`` → a copy with section fields replaced."""
    update = {}
    for name, fields in sections.items():
        update[name] = getattr(cfg, name).model_copy(update=fields)
    return cfg.model_copy(update=update)


def bars(
    symbol: str,
    venue: str,
    closes: Sequence[float],
    volumes: Sequence[float] | float = 1.0,
    end: pd.Timestamp | str = T0,
    highs: Sequence[float] | None = None,
    lows: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Consecutive hourly bars whose last bar *closes* at ``end``; open = previous close,
    high/low = max/min(open, close) unless given."""
    c = np.asarray(closes, dtype=float)
    n = len(c)
    v = np.broadcast_to(np.asarray(volumes, dtype=float), (n,)).copy()
    o = np.concatenate([c[:1], c[:-1]]) if n else c
    ts = pd.date_range(end=pd.Timestamp(end) - pd.Timedelta(hours=1), periods=n, freq="1h")
    return pd.DataFrame(
        {
            "venue": venue,
            "symbol": symbol,
            "timestamp": ts,
            "open": o,
            "high": np.asarray(highs, float) if highs is not None else np.maximum(o, c),
            "low": np.asarray(lows, float) if lows is not None else np.minimum(o, c),
            "close": c,
            "volume": v,
        }
    )[list(SNAPSHOT_BAR_COLUMNS)]


def random_closes(rng: np.random.Generator, n: int, start: float = 100.0, vol: float = 0.01, drift: float = 0.0) -> np.ndarray:
    return start * np.exp(np.cumsum(rng.normal(drift, vol, n)))


def book(
    venue: str,
    symbol: str,
    mid: float,
    spread_bps: float = 10.0,
    levels: int = 5,
    step_bps: float = 10.0,
    bid_amount: float | Sequence[float] = 1.0,
    ask_amount: float | Sequence[float] = 1.0,
    book_time: pd.Timestamp | str = T0,
) -> pd.DataFrame:
    """Symmetric long book: best bid/ask at mid ∓ spread/2, then ``levels`` levels ``step_bps`` apart."""
    half = mid * spread_bps / 2e4
    k = np.arange(levels)
    bids = mid - half - mid * step_bps / 1e4 * k
    asks = mid + half + mid * step_bps / 1e4 * k
    ba = np.broadcast_to(np.asarray(bid_amount, float), (levels,))
    aa = np.broadcast_to(np.asarray(ask_amount, float), (levels,))
    frame = pd.DataFrame(
        {
            "venue": venue,
            "symbol": symbol,
            "side": ["bid"] * levels + ["ask"] * levels,
            "price": np.concatenate([bids, asks]),
            "amount": np.concatenate([ba, aa]),
            "book_time": pd.Timestamp(book_time),
        }
    )
    return frame[list(SNAPSHOT_BOOK_COLUMNS)]


def levels(venue: str, symbol: str, rows: Sequence[tuple[str, float, float]], book_time=T0) -> pd.DataFrame:
    """Explicit levels ``[(side, price, amount), ...]``."""
    return pd.DataFrame(
        [{"venue": venue, "symbol": symbol, "side": s, "price": p, "amount": a, "book_time": pd.Timestamp(book_time)} for s, p, a in rows],
        columns=list(SNAPSHOT_BOOK_COLUMNS),
    )


def ranking(symbols: Sequence[str], segment: str | Sequence[str] = "hot", tier: str | Sequence[str] = "tier1") -> pd.DataFrame:
    """A ranking table of the universe.rank_universe shape (all rows eligible, ranked in the order given)."""
    n = len(symbols)
    segs = [segment] * n if isinstance(segment, str) else list(segment)
    tiers = [tier] * n if isinstance(tier, str) else list(tier)
    return pd.DataFrame(
        {
            "rank": pd.array(np.arange(1, n + 1), dtype="Int64"),
            "symbol": list(symbols),
            "adv_usd": np.linspace(5e7, 2e5, n) if n else np.zeros(0),
            "tier": tiers,
            "venues": "kraken,okx,coinbase",
            "n_periods": np.full(n, 30, dtype="int64"),
            "eligible": True,
            "exclusion_reason": None,
            "segment": segs,
        }
    )


def regime(label: str = "normal", confidence: float = 0.6, as_of=T0, partition_key: str | None = "2026-11-10-08:00") -> dict:
    cfg = config()
    w = cfg.regime.weights
    blend = {f: confidence * w[label][f] + (1 - confidence) * w["normal"][f] for f in w["normal"]}
    ts = pd.Timestamp(as_of).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "timestamp": ts,
        "regime": label,
        "indicators": {"realized_vol_7d": 0.5, "pct_above_20ma": 60.0, "breadth_thrust": 0.5},
        "confidence": confidence,
        "votes": {"vol_vote": label, "ma_vote": label, "breadth_vote": "normal"},
        "weight_blend": blend,
        "next_refresh": ts,
        "as_of": ts,
        "universe_size": 100,
        "benchmark": "BTC/USD",
        "thresholds": {},
        "partition_key": partition_key,
    }


def fetches_for(bars_frame: pd.DataFrame, from_cache: bool = False, ttl: float | None = None) -> pd.DataFrame:
    pairs = bars_frame[["venue", "symbol"]].drop_duplicates()
    rows = [
        {"venue": v, "symbol": s, "kind": "ohlcv", "ok": True, "error": None, "detail": "", "from_cache": from_cache,
         "ttl_remaining_s": ttl, "stamped_at": T0, "latency_ms": 0.0, "requests": 0}
        for v, s in pairs.itertuples(index=False)
    ]
    return pd.DataFrame(rows, columns=list(SNAPSHOT_FETCH_COLUMNS))


def snapshot(bars_frame: pd.DataFrame, books: pd.DataFrame | None = None, as_of=T0, fetches: pd.DataFrame | None = None,
             timeframe: str = "1h", health: dict | None = None) -> MarketSnapshot:
    pairs = bars_frame[["venue", "symbol"]].drop_duplicates()
    markets = pd.DataFrame(
        {"venue": pairs["venue"], "symbol": pairs["symbol"], "native_symbol": pairs["symbol"],
         "base": pairs["symbol"].str.split("/").str[0], "quote": "USD", "active": True}
    )[list(MARKET_COLUMNS)]
    return MarketSnapshot(
        as_of=pd.Timestamp(as_of).to_pydatetime(),
        timeframe=timeframe,
        source="test",
        bars=bars_frame.reset_index(drop=True),
        books=(books if books is not None else pd.DataFrame(columns=list(SNAPSHOT_BOOK_COLUMNS))).reset_index(drop=True),
        fetches=fetches if fetches is not None else fetches_for(bars_frame),
        markets=markets.reset_index(drop=True),
        health=health or {v: {"venue": v, "status": "ok", "requests": 0, "errors": 0} for v in VENUES},
    )


def universe(
    n_symbols: int = 30,
    venues: Sequence[str] = VENUES,
    n_bars: int = 720,
    book_levels: int = 100,
    seed: int = 1,
    as_of=T0,
    n_warm: int = 0,
    strong: Sequence[int] = (),
) -> tuple[MarketSnapshot, pd.DataFrame]:
    """A synthetic hot (and optionally warm) universe: random-walk bars on every venue, deep books
    for the hot symbols; rows in ``strong`` get a steady uptrend with a last-day volume and range spike."""
    rng = np.random.default_rng(seed)
    frames, books = [], []
    total = n_symbols + n_warm
    syms = [f"S{i:03d}/USD" for i in range(total)]
    for i, sym in enumerate(syms):
        base = random_closes(rng, n_bars, start=float(rng.uniform(1, 1000)), vol=0.008)
        vol = rng.uniform(5e3, 5e4) * np.exp(rng.normal(0, 0.2, n_bars)) / base * 100
        if i in strong:
            k = 48
            base[-k:] = base[-k - 1] * np.exp(np.cumsum(np.full(k, 0.004) + rng.normal(0, 0.002, k)))
            vol[-24:] *= 4.0
        for j, venue in enumerate(venues):
            c = base * (1 + 0.0005 * j)
            hi = c * (1 + np.abs(rng.normal(0, 0.003, n_bars)))
            lo = c * (1 - np.abs(rng.normal(0, 0.003, n_bars)))
            if i in strong:
                hi[-24:] = c[-24:] * 1.02
                lo[-24:] = c[-24:] * 0.98
            frames.append(bars(sym, venue, c, vol, end=as_of, highs=np.maximum(hi, c), lows=np.minimum(lo, c)))
            if i < n_symbols:
                books.append(book(venue, sym, float(c[-1]), spread_bps=5.0 + j, levels=book_levels, step_bps=1.5,
                                  bid_amount=rng.uniform(0.5, 1.5, book_levels) * 5e4 / c[-1],
                                  ask_amount=rng.uniform(0.5, 1.5, book_levels) * 4e4 / c[-1], book_time=as_of))
    bars_frame = pd.concat(frames, ignore_index=True)
    books_frame = pd.concat(books, ignore_index=True) if books else None
    seg = ["hot"] * n_symbols + ["warm"] * n_warm
    return snapshot(bars_frame, books_frame, as_of=as_of), ranking(syms, seg, "tier1")
