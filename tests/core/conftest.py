"""Shared helpers for the core tests: hand-built bars and snapshots.

Test modules cannot import a conftest under ``--import-mode=importlib``, so each plain helper is
also exposed as a session-scoped fixture returning the function (session scope keeps them usable
inside hypothesis tests).
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

import numpy as np
import pandas as pd
import pytest

from cryptorun_core.config import DEFAULT_CONFIG_PATH, AppConfig, load_config
from cryptorun_core.market.base import TIMEFRAME_DELTA, to_utc
from cryptorun_core.market.snapshot import MARKET_COLUMNS, SNAPSHOT_BAR_COLUMNS, SNAPSHOT_BOOK_COLUMNS, MarketSnapshot


def make_bars(
    symbol: str,
    venue: str,
    closes: Sequence[float],
    volumes: Sequence[float] | float = 1.0,
    end: datetime | str = "2021-05-01T00:00:00Z",
    timeframe: str = "1h",
) -> pd.DataFrame:
    """Consecutive bars of one (venue, symbol) whose last bar *closes* at ``end``.

    ``open`` = previous close (first bar: its own close), ``high``/``low`` = max/min of open and close.
    """
    closes = np.asarray(closes, dtype=float)
    n = len(closes)
    vols = np.broadcast_to(np.asarray(volumes, dtype=float), (n,)).copy()
    step = pd.Timedelta(TIMEFRAME_DELTA[timeframe])
    last_open = pd.Timestamp(to_utc(end)) - step
    ts = pd.date_range(end=last_open, periods=n, freq=step, tz="UTC")
    opens = np.concatenate([closes[:1], closes[:-1]]) if n else closes
    return pd.DataFrame(
        {
            "venue": venue,
            "symbol": symbol,
            "timestamp": ts,
            "open": opens,
            "high": np.maximum(opens, closes),
            "low": np.minimum(opens, closes),
            "close": closes,
            "volume": vols,
        }
    )[list(SNAPSHOT_BAR_COLUMNS)]


def hourly_bars(symbol, venue, closes, volumes=1.0, end="2021-05-01T00:00:00Z") -> pd.DataFrame:
    """Hourly bars ending (last close) at ``end``."""
    return make_bars(symbol, venue, closes, volumes, end, "1h")


def daily_bars(symbol, venue, closes, volumes=1.0, end="2021-05-01T00:00:00Z") -> pd.DataFrame:
    """Daily bars ending (last close) at ``end`` (00:00 UTC)."""
    return make_bars(symbol, venue, closes, volumes, end, "1d")


def markets_from_bars(bars: pd.DataFrame, inactive: Sequence[tuple[str, str]] = ()) -> pd.DataFrame:
    """A markets table listing every (venue, symbol) of ``bars``; pairs in ``inactive`` are inactive."""
    pairs = bars[["venue", "symbol"]].drop_duplicates().sort_values(["venue", "symbol"]).reset_index(drop=True)
    off = set(inactive)
    return pd.DataFrame(
        {
            "venue": pairs["venue"],
            "symbol": pairs["symbol"],
            "native_symbol": pairs["symbol"],
            "base": pairs["symbol"].str.split("/").str[0],
            "quote": pairs["symbol"].str.split("/").str[1],
            "active": [(v, s) not in off for v, s in zip(pairs["venue"], pairs["symbol"])],
        }
    )[list(MARKET_COLUMNS)]


def make_snapshot(
    bars: pd.DataFrame | Sequence[pd.DataFrame],
    as_of: datetime | str,
    timeframe: str = "1h",
    markets: pd.DataFrame | None = None,
    source: str = "test",
) -> MarketSnapshot:
    """A MarketSnapshot of ``bars`` (one frame or a list) without books; ``markets`` defaults to
    every (venue, symbol) of the bars, all active."""
    if not isinstance(bars, pd.DataFrame):
        bars = pd.concat(list(bars), ignore_index=True) if len(bars) else pd.DataFrame(columns=list(SNAPSHOT_BAR_COLUMNS))
    bars = bars.reset_index(drop=True)
    if markets is None:
        markets = markets_from_bars(bars) if not bars.empty else pd.DataFrame(columns=list(MARKET_COLUMNS))
    return MarketSnapshot(
        as_of=to_utc(as_of),
        timeframe=timeframe,
        source=source,
        bars=bars,
        books=pd.DataFrame(columns=list(SNAPSHOT_BOOK_COLUMNS)),
        fetches=pd.DataFrame(),
        markets=markets,
    )


@pytest.fixture(scope="session")
def app_config() -> AppConfig:
    """The packaged config/scheduler.yaml (artifacts dir not touched)."""
    return load_config(DEFAULT_CONFIG_PATH, check_artifacts_dir=False)


@pytest.fixture(scope="session", name="make_snapshot")
def _make_snapshot_fixture():
    return make_snapshot


@pytest.fixture(scope="session", name="hourly_bars")
def _hourly_bars_fixture():
    return hourly_bars


@pytest.fixture(scope="session", name="daily_bars")
def _daily_bars_fixture():
    return daily_bars


@pytest.fixture(scope="session", name="markets_from_bars")
def _markets_from_bars_fixture():
    return markets_from_bars
