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

    Fast path (string keys, finite numbers — e.g. sanitized bars): (venue, symbol) factorized once,
    period ids with numpy, reductions over sorted group boundaries (``np.maximum.reduceat`` …; sums
    with the same compensated summation in time order as pandas' groupby ``sum``, so the numbers are
    bit-identical to the pandas ``groupby().agg`` of the general path).
    """
    t = pd.Timestamp(to_utc(as_of))
    step = pd.Timedelta(TIMEFRAME_DELTA[timeframe])
    if bars.empty:
        return _empty()
    fast = _period_table_numpy(bars, t, step, max_periods)
    if fast is not None:
        return fast
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


_MAX_GROUP_FAST = 64


def _kahan_group_sum(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Σ per group (rows ``starts[g] .. starts[g]+lengths[g]-1``, in that order) with the compensated
    summation of pandas' ``group_sum`` (finite inputs), vectorised across groups."""
    n = len(starts)
    total = np.zeros(n)
    comp = np.zeros(n)
    for j in range(int(lengths.max()) if n else 0):
        live = np.nonzero(lengths > j)[0] if j else np.arange(n)
        val = values[starts[live] + j]
        s = total[live]
        y = val - comp[live]
        tt = s + y
        c = (tt - s) - y
        c[np.isnan(c)] = 0.0
        comp[live] = c
        total[live] = tt
    return total


def _period_table_numpy(bars: pd.DataFrame, t: pd.Timestamp, step: pd.Timedelta, max_periods: int | None) -> pd.DataFrame | None:
    ts_s = bars["timestamp"]
    if not isinstance(ts_s.dtype, pd.DatetimeTZDtype):
        return None
    venue = bars["venue"].to_numpy()
    symbol = bars["symbol"].to_numpy()
    if venue.dtype != object or symbol.dtype != object:
        return None
    ts = ts_s.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").array.asi8
    if (ts == np.iinfo(np.int64).min).any():
        return None
    num = {c: bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")}
    if any(a.dtype != np.float64 for a in num.values()):
        return None
    keep = ts + step.value <= t.value
    age_h = (t.value - ts) / 3.6e12
    step_h = step.value / 3.6e12
    period = np.floor((age_h - step_h) / HOURS_PER_PERIOD).astype(np.int64)
    if max_periods is not None:
        keep &= period < max_periods
    idx = np.nonzero(keep)[0]
    if len(idx) == 0:
        return _empty()
    all_kept = len(idx) == len(ts)
    vcode, vuniq = pd.factorize(venue if all_kept else venue[idx], sort=True)
    scode, suniq = pd.factorize(symbol if all_kept else symbol[idx], sort=True)
    if (vcode < 0).any() or (scode < 0).any():
        return None  # missing keys: pandas groupby drops them; leave it to the general path
    if not all(isinstance(x, str) for x in vuniq) or not all(isinstance(x, str) for x in suniq):
        return None
    tk = ts if all_kept else ts[idx]
    pk = period if all_kept else period[idx]
    vals = {c: (a if all_kept else a[idx]) for c, a in num.items()}
    if not all(np.isfinite(a).all() for a in vals.values()):
        return None  # first/last/max/min skip NaN in pandas: general path
    n = len(tk)
    # rows in (venue, symbol, timestamp) order (stable), as the general path sorts them
    if n > 1:
        dv, ds, dt = np.diff(vcode), np.diff(scode), np.diff(tk)
        presorted = bool(np.all((dv > 0) | ((dv == 0) & ((ds > 0) | ((ds == 0) & (dt >= 0))))))
    else:
        presorted = True
    if not presorted:
        order = np.lexsort((tk, scode, vcode))
        vcode, scode, tk, pk = vcode[order], scode[order], tk[order], pk[order]
        vals = {c: a[order] for c, a in vals.items()}
    # groups: runs of equal (venue, symbol, period) in time order; a period's bars are consecutive
    # in time within a pair, so runs are exactly the groups unless a pair's periods interleave
    change = np.empty(n, dtype=bool)
    change[0] = True
    change[1:] = (vcode[1:] != vcode[:-1]) | (scode[1:] != scode[:-1]) | (pk[1:] != pk[:-1])
    starts = np.nonzero(change)[0]
    lengths = np.diff(np.append(starts, n))
    gv, gs, gp = vcode[starts], scode[starts], pk[starts]
    gorder = np.lexsort((gp, gs, gv))
    sv, ss, sp = gv[gorder], gs[gorder], gp[gorder]
    if len(starts) > 1 and bool(np.any((sv[1:] == sv[:-1]) & (ss[1:] == ss[:-1]) & (sp[1:] == sp[:-1]))):
        return None  # a group split in runs (not possible for time-ordered bars); general path
    if int(lengths.max()) > _MAX_GROUP_FAST:
        return None
    close = vals["close"]
    usd = close * vals["volume"]
    ends = starts + lengths - 1
    out = pd.DataFrame({
        "venue": vuniq.to_numpy(dtype=object)[sv] if hasattr(vuniq, "to_numpy") else np.asarray(vuniq, dtype=object)[sv],
        "symbol": suniq.to_numpy(dtype=object)[ss] if hasattr(suniq, "to_numpy") else np.asarray(suniq, dtype=object)[ss],
        "period": sp.astype(np.int64),
        "open": vals["open"][starts][gorder],
        "high": np.maximum.reduceat(vals["high"], starts)[gorder],
        "low": np.minimum.reduceat(vals["low"], starts)[gorder],
        "close": close[ends][gorder],
        "volume": _kahan_group_sum(vals["volume"], starts, lengths)[gorder],
        "usd_volume": _kahan_group_sum(usd, starts, lengths)[gorder],
        "n_bars": lengths.astype(np.int64)[gorder],
    })
    return out


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
