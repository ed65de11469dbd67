"""Factors of SPEC §4, vectorised across symbols.

Bars of each symbol's chosen venue are pivoted into a (symbols × hours) matrix aligned to T
(:func:`bar_matrix`); every factor is then a few numpy operations over that matrix.

Grid: column ``j`` of an ``H``-column matrix holds the hourly bar whose open time ``ts`` has
``floor((T − ts)/1h) − 1 == H − 1 − j``: the last column is the newest bar closed at or before T
(closed exactly at T when T is on the hour). Only bars closed at or before T and opened within
the last ``H`` hours are placed, so appending bars after T never changes anything.

Missing bars inside the window: ``observed`` is False there; ``close`` is forward-filled from the
previous observed close and ``open``/``high``/``low`` are set to that close, ``volume`` to 0 (a
flat, zero-volume bar). Hourly log returns used for σ₁ₕ are taken only between two *observed*
consecutive bars. Cells before a symbol's first bar stay NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from cryptorun_core.factors.momentum import momentum_factor
from cryptorun_core.factors.quality import quality_factor
from cryptorun_core.factors.residualize import residualize
from cryptorun_core.factors.score import blend_score
from cryptorun_core.factors.technical import adx, position_in_range, rsi, technical_factor, to_4h
from cryptorun_core.factors.volume import volume_factor, volume_surge

__all__ = [
    "BarMatrix", "bar_matrix", "momentum_factor", "technical_factor", "rsi", "adx", "position_in_range", "to_4h",
    "volume_factor", "volume_surge", "quality_factor", "residualize", "blend_score",
]


@dataclass(frozen=True)
class BarMatrix:
    """Hourly OHLCV of ``symbols`` (rows) over the ``H`` hours before T (columns, oldest first)."""

    symbols: tuple[str, ...]
    venues: tuple[str | None, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    observed: np.ndarray

    @property
    def n_bars(self) -> np.ndarray:
        return self.observed.sum(axis=1)


def _ffill(a: np.ndarray) -> np.ndarray:
    """Forward-fill NaN along axis 1 (leading NaN stay NaN)."""
    idx = np.where(np.isfinite(a), np.arange(a.shape[1])[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    out = a[np.arange(a.shape[0])[:, None], idx]
    return out


def bar_matrix(
    bars: pd.DataFrame, pairs: Mapping[str, str | None] | Sequence[tuple[str, str | None]], as_of: datetime, n_hours: int
) -> BarMatrix:
    """Pivot long bars into a :class:`BarMatrix` for ``pairs`` (symbol → venue, in row order)."""
    items = list(pairs.items()) if isinstance(pairs, Mapping) else list(pairs)
    symbols = tuple(s for s, _ in items)
    venues = tuple(v for _, v in items)
    n, h = len(items), int(n_hours)
    mats = {k: np.full((n, h), np.nan) for k in ("open", "high", "low", "close", "volume")}
    t = pd.Timestamp(as_of)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    if n and bars is not None and len(bars):
        key = pd.DataFrame({"symbol": list(symbols), "venue": list(venues), "row": np.arange(n)}).dropna(subset=["venue"])
        sel = bars.merge(key, on=["symbol", "venue"], how="inner")
        if len(sel):
            ts = sel["timestamp"]
            ts = ts.dt.tz_convert("UTC") if isinstance(ts.dtype, pd.DatetimeTZDtype) else pd.to_datetime(ts, utc=True)
            age_h = (t - ts).dt.total_seconds().to_numpy() / 3600.0
            k = np.floor(age_h - 1.0)
            ok = (k >= 0) & (k < h)
            sel = sel.assign(_k=k, _ts=ts)[ok]
            # canonical order so duplicates resolve the same way whatever the input order
            sel = sel.sort_values(["row", "_ts", "open", "high", "low", "close", "volume"], kind="mergesort")
            rows = sel["row"].to_numpy(np.int64)
            cols = (h - 1 - sel["_k"].to_numpy()).astype(np.int64)
            for name in mats:
                mats[name][rows, cols] = sel[name].to_numpy(float)
    observed = np.isfinite(mats["close"])
    close = _ffill(mats["close"])
    fill = ~observed & np.isfinite(close)
    for name in ("open", "high", "low"):
        m = mats[name]
        m[fill] = close[fill]
    vol = mats["volume"]
    vol[fill] = 0.0
    return BarMatrix(symbols, venues, mats["open"], mats["high"], mats["low"], close, vol, observed)
