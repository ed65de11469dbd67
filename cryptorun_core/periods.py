"""24h periods aligned to the cycle time T (SPEC §1).

Period d (d = 0 newest) covers the 24 closed hourly bars whose open times lie in
[T − 24h·(d+1), T − 24h·d). A daily-only source is read with T at 00:00 UTC, so each daily bar
is exactly one period. Everything "daily" in the engine (ADV, VADR, volume surge, regime MA and
breadth, premove) is built on the table returned here.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from cryptorun_core.market.base import TIMEFRAME_DELTA, Timeframe, to_utc

PERIOD_COLUMNS = ("venue", "symbol", "period", "open", "high", "low", "close", "volume", "usd_volume", "n_bars")
HOURS_PER_PERIOD = 24


def period_table(bars: pd.DataFrame, as_of: datetime, timeframe: Timeframe = "1h", max_periods: int | None = None) -> pd.DataFrame:
    """Aggregate long bars (``venue, symbol, timestamp, open, high, low, close, volume``) into periods.

    Returns one row per (venue, symbol, period) with ``open`` (first bar's open), ``high``/``low``
    (extremes), ``close`` (last bar's close), ``volume`` (base units), ``usd_volume`` (Σ close·volume)
    and ``n_bars``. Only bars closed at or before T count. A period is *complete* when
    ``n_bars == 24`` (hourly) or 1 (daily); incomplete periods are kept so callers can decide.
    """
    t = pd.Timestamp(to_utc(as_of))
    step = TIMEFRAME_DELTA[timeframe]
    if bars.empty:
        return _empty()
    closes_at = bars["timestamp"] + step
    frame = bars.loc[closes_at <= t, ["venue", "symbol", "timestamp", "open", "high", "low", "close", "volume"]]
    if frame.empty:
        return _empty()
    # whole periods before T: an hourly bar opening at T-1h is in period 0; a daily bar opening at T-24h too.
    age_h = (t - frame["timestamp"]).dt.total_seconds().to_numpy() / 3600.0
    step_h = step.total_seconds() / 3600.0
    period = np.floor((age_h - step_h) / HOURS_PER_PERIOD).astype(np.int64)
    frame = frame.assign(period=period, usd_volume=frame["close"].to_numpy() * frame["volume"].to_numpy())
    if max_periods is not None:
        frame = frame[frame["period"] < max_periods]
    frame = frame.sort_values(["venue", "symbol", "timestamp"], kind="mergesort")
    grouped = frame.groupby(["venue", "symbol", "period"], sort=True)
    out = grouped.agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
        usd_volume=("usd_volume", "sum"),
        n_bars=("close", "size"),
    ).reset_index()
    out["period"] = out["period"].astype("int64")
    out["n_bars"] = out["n_bars"].astype("int64")
    return out[list(PERIOD_COLUMNS)]


def bars_per_period(timeframe: Timeframe) -> int:
    """How many bars make a complete period: 24 hourly bars or one daily bar."""
    return HOURS_PER_PERIOD if timeframe == "1h" else 1


def complete_periods(periods: pd.DataFrame, timeframe: Timeframe = "1h") -> pd.DataFrame:
    """Only the periods with every bar present."""
    return periods[periods["n_bars"] >= bars_per_period(timeframe)]


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype="object" if c in ("venue", "symbol") else "float64") for c in PERIOD_COLUMNS}).astype(
        {"period": "int64", "n_bars": "int64"}
    )
