"""24h periods aligned to the cycle time T (SPEC §1).

Period d (d = 0 newest) covers the 24 closed hourly bars whose open times lie in
[T − 24h·(d+1), T − 24h·d). A daily-only source is read with T at 00:00 UTC, so each daily bar
is exactly one period. Everything "daily" in the engine (ADV, VADR, volume surge, regime MA and
breadth, premove) is built on the table returned here.

The ranking and the regime read the same numbers as dense per-pair arrays (:class:`PairPeriods`):
from a snapshot's period table (:meth:`PairPeriods.from_table`) in a single cycle, or from a
:class:`PeriodHistory` — every pair's periods aggregated once over a whole range of cycle times —
in a single-run backfill.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from cryptorun_core.market.base import TIMEFRAME_DELTA, Timeframe, to_utc
from cryptorun_core.rows import run_changes

PERIOD_COLUMNS = ("venue", "symbol", "period", "open", "high", "low", "close", "volume", "usd_volume", "n_bars")
HOURS_PER_PERIOD = 24


def period_table(bars: pd.DataFrame, as_of: datetime, timeframe: Timeframe = "1h", max_periods: int | None = None) -> pd.DataFrame:
    """Aggregate long bars (``venue, symbol, timestamp, open, high, low, close, volume``) into periods.

    Returns one row per (venue, symbol, period) with ``open`` (first bar's open), ``high``/``low``
    (extremes), ``close`` (last bar's close), ``volume`` (base units), ``usd_volume`` (Σ close·volume)
    and ``n_bars``. Only bars closed at or before T count. A period is *complete* when
    ``n_bars == 24`` (hourly) or 1 (daily); incomplete periods are kept so callers can decide.

    Fast path (string keys, finite numbers — e.g. sanitized bars): rows in (venue, symbol, time) order
    (no copy when already so, as sanitized bars are), whole pairs aggregated a chunk of rows at a time
    with numpy — reductions over group boundaries (``np.maximum.reduceat`` …; sums with the same
    compensated summation in time order as pandas' groupby ``sum``, so the numbers are bit-identical
    to the pandas ``groupby().agg`` of the general path) — in a few MB of working memory.
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
_CHUNK_ROWS = 1 << 18  # rows aggregated at a time: per-row temporaries stay ~2 MB on a 4 M-row table
_NAT = np.iinfo(np.int64).min


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


def _bar_columns(bars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]] | None:
    """``(venue, symbol, ts, numbers)`` of the bar table as arrays — views of its columns when they
    already have the canonical dtypes (object keys, ``datetime64[ns, UTC]`` → int64 ns, float64
    numbers) —, or None when the table is not of those kinds (general path)."""
    ts_s = bars["timestamp"]
    if not isinstance(ts_s.dtype, pd.DatetimeTZDtype):
        return None
    venue = bars["venue"].to_numpy()
    symbol = bars["symbol"].to_numpy()
    if venue.dtype != object or symbol.dtype != object:
        return None
    if str(ts_s.dtype) != "datetime64[ns, UTC]":
        ts_s = ts_s.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    num = {c: bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")}
    if any(a.dtype != np.float64 for a in num.values()):
        return None
    return venue, symbol, ts_s.array.asi8, num


def _row_periods(ts: np.ndarray, t: pd.Timestamp, step: pd.Timedelta) -> np.ndarray:
    """Period of each bar (open times ``ts``, int64 ns): whole periods between its close and T."""
    age_h = (t.value - ts) / 3.6e12
    step_h = step.value / 3.6e12
    return np.floor((age_h - step_h) / HOURS_PER_PERIOD).astype(np.int64)


def _kept_rows(ts: np.ndarray, t: pd.Timestamp, step: pd.Timedelta, max_periods: int | None) -> np.ndarray:
    """Bars closed at or before T (and in a period below ``max_periods``), as a mask; computed a chunk
    of rows at a time so no int64/float64 temporary spans the whole table."""
    keep = np.empty(len(ts), dtype=bool)
    for a in range(0, len(ts), _CHUNK_ROWS):
        part = ts[a:a + _CHUNK_ROWS]
        k = part + step.value <= t.value
        if max_periods is not None:
            k &= _row_periods(part, t, step) < max_periods
        keep[a:a + _CHUNK_ROWS] = k
    return keep


def _pair_layout(venue: np.ndarray, symbol: np.ndarray,
                 ts: np.ndarray) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray] | None:
    """Rows in (venue, symbol, timestamp) order, stable, as the general path sorts them.

    Returns ``(order, first, pair_venue, pair_symbol)``: ``order`` the row permutation (None when the
    rows already are in that order — sanitized bars are —, so nothing is copied), ``first`` the first
    position (in that order) of each (venue, symbol) pair, and the pairs' keys. None when a key is
    missing or not a str (pandas groupby drops missing keys: the general path decides)."""
    n = len(ts)
    change = run_changes(venue, symbol)
    first = np.flatnonzero(change)
    keys = list(zip(venue[first].tolist(), symbol[first].tolist()))
    if not all(isinstance(v, str) and isinstance(s, str) for v, s in keys):
        return None
    # sorted: each pair in one run, runs in increasing key order, open times ascending within a run
    in_order = all(a < b for a, b in zip(keys, keys[1:]))
    if in_order and n > 1:
        time_ok = ts[1:] >= ts[:-1]
        time_ok |= change[1:]
        in_order = bool(time_ok.all())
    if in_order:
        return None, first, venue[first], symbol[first]
    del change
    vcode, vuniq = pd.factorize(venue, sort=True)
    scode, suniq = pd.factorize(symbol, sort=True)
    order = np.lexsort((ts, scode, vcode))
    pair = vcode * len(suniq) + scode  # (venue, symbol) rank
    del vcode, scode
    pair = pair[order]
    change = np.empty(n, dtype=bool)
    change[0] = True
    np.not_equal(pair[1:], pair[:-1], out=change[1:])
    first = np.flatnonzero(change)
    rows = order[first]
    return order, first, venue[rows], symbol[rows]


def _pair_chunks(first: np.ndarray, n: int) -> list[tuple[int, int]]:
    """Ranges ``[p0, p1)`` of whole pairs (``first``: each pair's first row) of about
    :data:`_CHUNK_ROWS` rows each."""
    cuts = np.searchsorted(first, np.arange(_CHUNK_ROWS, n, _CHUNK_ROWS), side="left")
    bounds = [0, *sorted({int(c) for c in cuts if 0 < c < len(first)}), len(first)]
    return list(zip(bounds[:-1], bounds[1:]))


def _chunk_groups(ts: np.ndarray, vals: dict[str, np.ndarray], pair_first: np.ndarray, t: pd.Timestamp,
                  step: pd.Timedelta) -> dict[str, np.ndarray] | None:
    """Period aggregates of some whole pairs' rows (sorted by pair then open time; ``pair_first``: the
    first row of each pair, from 0), one row per (pair, period) sorted by pair (index into
    ``pair_first``) then period. None when the general path must decide (non-finite numbers, a
    group split in runs, or groups too long for the vectorised sums)."""
    if not all(np.isfinite(a).all() for a in vals.values()):
        return None  # first/last/max/min skip NaN in pandas: general path
    m = len(ts)
    period = _row_periods(ts, t, step)
    # groups: runs of equal (pair, period) in time order; a period's bars are consecutive in time
    # within a pair, so runs are exactly the groups unless a pair's periods interleave
    change = np.zeros(m, dtype=bool)
    change[pair_first] = True
    change[1:] |= period[1:] != period[:-1]
    starts = np.flatnonzero(change)
    lengths = np.diff(np.append(starts, m))
    gpair = np.searchsorted(pair_first, starts, side="right") - 1
    gperiod = period[starts]
    gorder = np.lexsort((gperiod, gpair))
    sp, ss = gperiod[gorder], gpair[gorder]
    if len(starts) > 1 and bool(np.any((ss[1:] == ss[:-1]) & (sp[1:] == sp[:-1]))):
        return None  # a group split in runs (not possible for time-ordered bars); general path
    if int(lengths.max()) > _MAX_GROUP_FAST:
        return None
    close = vals["close"]
    return {
        "pair": ss,
        "period": sp,
        "open": vals["open"][starts][gorder],
        "high": np.maximum.reduceat(vals["high"], starts)[gorder],
        "low": np.minimum.reduceat(vals["low"], starts)[gorder],
        "close": close[starts + lengths - 1][gorder],
        "volume": _kahan_group_sum(vals["volume"], starts, lengths)[gorder],
        "usd_volume": _kahan_group_sum(close * vals["volume"], starts, lengths)[gorder],
        "n_bars": lengths[gorder].astype(np.int64),
    }


def _period_table_numpy(bars: pd.DataFrame, t: pd.Timestamp, step: pd.Timedelta, max_periods: int | None) -> pd.DataFrame | None:
    """:func:`period_table` of canonical bars, or None when the general path must decide.

    Whole (venue, symbol) pairs are aggregated a chunk of rows at a time (the groups never straddle
    pairs), so the working memory is a few MB above the bar table however long it is."""
    cols = _bar_columns(bars)
    if cols is None:
        return None
    venue, symbol, ts, num = cols
    if (ts == _NAT).any():
        return None
    keep = _kept_rows(ts, t, step, max_periods)
    if not keep.any():
        return _empty()
    if not keep.all():
        idx = np.flatnonzero(keep)
        venue, symbol, ts = venue[idx], symbol[idx], ts[idx]
        num = {c: a[idx] for c, a in num.items()}
    del keep
    layout = _pair_layout(venue, symbol, ts)
    if layout is None:
        return None
    order, first, pair_venue, pair_symbol = layout
    n = len(ts)
    parts = []
    for p0, p1 in _pair_chunks(first, n):
        a, b = int(first[p0]), (int(first[p1]) if p1 < len(first) else n)
        rows = slice(a, b) if order is None else order[a:b]
        part = _chunk_groups(ts[rows], {c: arr[rows] for c, arr in num.items()}, first[p0:p1] - a, t, step)
        if part is None:
            return None
        part["pair"] += p0
        parts.append(part)
    out = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
    pair = out.pop("pair")
    return pd.DataFrame({"venue": pair_venue[pair], "symbol": pair_symbol[pair], **out})[list(PERIOD_COLUMNS)]


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


# ------------------------------------------------------------------------------------------
# dense per-pair period arrays (the input of the ranking and regime cores)
# ------------------------------------------------------------------------------------------

DAY_NS = HOURS_PER_PERIOD * 3_600 * 10**9


@dataclass(frozen=True)
class PairPeriods:
    """The :func:`period_table` numbers of some (venue, symbol) pairs at one T, dense.

    Row p is pair ``(venue[p], symbol[p])``, column d is period d (0 newest). ``n_bars`` is 0
    where the pair has no bar in the period (``usd_volume`` 0 and ``close`` NaN there).
    """

    venue: np.ndarray  # object (P,)
    symbol: np.ndarray  # object (P,)
    n_bars: np.ndarray  # int64 (P, D)
    usd_volume: np.ndarray  # float64 (P, D)
    close: np.ndarray  # float64 (P, D)

    @classmethod
    def empty(cls, venue: np.ndarray, symbol: np.ndarray, n_periods: int = 0) -> "PairPeriods":
        p = len(venue)
        return cls(venue, symbol, np.zeros((p, n_periods), np.int64), np.zeros((p, n_periods)), np.full((p, n_periods), np.nan))

    def take(self, venue: np.ndarray, symbol: np.ndarray, n_periods: int) -> "PairPeriods | None":
        """The pairs ``(venue[p], symbol[p])`` (each one of this object's), periods 0..n_periods−1
        (columns this object lacks have no bars); None when a pair is not one of them."""
        position = {(v, s): p for p, (v, s) in enumerate(zip(self.venue.tolist(), self.symbol.tolist()))}
        rows = [position.get(k) for k in zip(venue.tolist(), symbol.tolist())]
        if None in rows:
            return None
        out = PairPeriods.empty(venue, symbol, n_periods)
        width = min(n_periods, self.n_bars.shape[1])
        out.n_bars[:, :width] = self.n_bars[rows, :width]
        out.usd_volume[:, :width] = self.usd_volume[rows, :width]
        out.close[:, :width] = self.close[rows, :width]
        return out

    @classmethod
    def from_table(cls, table: pd.DataFrame, venue: np.ndarray, symbol: np.ndarray, max_periods: int | None = None) -> "PairPeriods":
        """Rows of ``table`` (a :func:`period_table`, sorted by venue, symbol, period) scattered onto
        the pairs ``(venue[p], symbol[p])``; pairs absent from the table get no bars, table rows of
        other pairs (or of periods ≥ ``max_periods``) are ignored."""
        index = {(v, s): p for p, (v, s) in enumerate(zip(venue.tolist(), symbol.tolist()))}
        n = len(table)
        if n == 0 or not index:
            return cls.empty(venue, symbol, max_periods or 0)
        tv, ts = table["venue"].to_numpy(object), table["symbol"].to_numpy(object)
        change = np.ones(n, dtype=bool)
        change[1:] = (tv[1:] != tv[:-1]) | (ts[1:] != ts[:-1])
        starts = np.flatnonzero(change)
        run_pair = np.array([index.get(k, -1) for k in zip(tv[starts].tolist(), ts[starts].tolist())], dtype=np.int64)
        row_pair = np.repeat(run_pair, np.diff(np.append(starts, n)))
        period = table["period"].to_numpy(np.int64)
        keep = row_pair >= 0
        if max_periods is not None:
            keep &= period < max_periods
        rows = np.flatnonzero(keep)
        width = max_periods if max_periods is not None else (int(period[rows].max()) + 1 if len(rows) else 0)
        out = cls.empty(venue, symbol, width)
        p, d = row_pair[rows], period[rows]
        out.n_bars[p, d] = table["n_bars"].to_numpy(np.int64)[rows]
        out.usd_volume[p, d] = table["usd_volume"].to_numpy(np.float64)[rows]
        out.close[p, d] = table["close"].to_numpy(np.float64)[rows]
        return out


def kahan_sum(values) -> float:
    """Σ in order with the compensated summation of pandas' groupby ``sum``/``mean`` (one group)."""
    total = comp = 0.0
    for val in values:
        if val != val:  # NaN: skipped, as pandas does
            continue
        y = val - comp
        t = total + y
        comp = (t - total) - y
        if comp != comp:
            comp = 0.0
        total = t
    return total


def kahan_rows(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per row, Σ of ``values`` where ``mask``, column by column in order, with the compensated
    summation of pandas' groupby ``sum``/``mean`` (each row one group); vectorised across rows."""
    rows = values.shape[0]
    total = np.zeros(rows)
    comp = np.zeros(rows)
    for k in range(values.shape[1]):
        ok = mask[:, k]
        y = values[:, k] - comp
        t = total + y
        c = (t - total) - y
        c[np.isnan(c)] = 0.0
        comp = np.where(ok, c, comp)
        total = np.where(ok, t, total)
    return total


class PeriodHistory:
    """Period aggregates of many (venue, symbol) pairs for many cycle times T, computed once.

    Input: :class:`cryptorun_core.market.windows.BarWindows` — each pair's bars once (ascending,
    unique open times) and, per T, the rows a ``fetch_ohlcv`` at T serves. The numbers at T are
    those :func:`period_table` computes from that T's sanitized bars (garbage bars — non-finite
    or non-positive prices, bad volume, high < low — dropped, as ``sanitize_bars`` does).

    A period of T is the bars closing in (E − 24h, E] with E = T − 24h·d, so for all T of one phase
    (T mod 24h) the periods tile each pair's history: each phase's periods are aggregated once over
    the whole history. A period only partly inside T's window (cut by the fetch limit or a feed
    outage) is summed again from its rows inside the window.
    """

    def __init__(self, windows, timeframe: str = "1h"):
        self.pairs = windows.pairs
        self.index = windows.index()
        self.as_of_ns = np.asarray(windows.as_of_ns, dtype=np.int64)
        self.raw_count = windows.stop - windows.start  # bars served at each T (before sanitation)
        self._step = pd.Timedelta(TIMEFRAME_DELTA[timeframe]).value
        vals = windows.values
        px, vol = vals[:, :4], vals[:, 4]
        # sanitize_bars' per-bar rules (a window holds one bar per open time, all closed by T)
        good = np.isfinite(px).all(axis=1) & (px > 0).all(axis=1) & np.isfinite(vol) & (vol >= 0) & ~(vals[:, 1] < vals[:, 2])
        before = np.concatenate([[0], np.cumsum(good)])  # clean rows before each raw row
        self.ts = windows.ts[good]
        self.close = np.ascontiguousarray(vals[good, 3])
        self.volume = np.ascontiguousarray(vals[good, 4])
        self.usd = self.close * self.volume
        self.offsets = before[windows.offsets]
        self.start = before[windows.start]
        self.stop = np.maximum(before[windows.stop], self.start)
        self._phases: dict[int, dict[str, np.ndarray]] = {}

    def _phase(self, phase: int) -> dict[str, np.ndarray]:
        """Every pair's periods ending at phase + k·24h: rows ``[start, end)``, k, n_bars, usd_volume, close."""
        table = self._phases.get(phase)
        if table is not None:
            return table
        n = len(self.ts)
        k = -((phase - (self.ts + self._step)) // DAY_NS)  # ceil((close time − phase) / 24h)
        change = np.zeros(n, dtype=bool)
        change[1:] = k[1:] != k[:-1]
        change[self.offsets[:-1][self.offsets[:-1] < n]] = True  # every pair starts a period
        starts = np.flatnonzero(change)
        ends = np.append(starts[1:], n)
        lengths = ends - starts
        table = {
            "start": starts, "end": ends, "k": k[starts],
            "n_bars": lengths.astype(np.int64),
            "usd_volume": _kahan_group_sum(self.usd, starts, lengths),
            "close": self.close[ends - 1] if n else np.zeros(0),
        }
        self._phases[phase] = table
        return table

    def bars(self, i: int, venue: str, symbol: str) -> tuple[np.ndarray, np.ndarray]:
        """(close, volume) of the pair's sanitized bars at the i-th T, oldest → newest (views)."""
        j = self.index[(venue, symbol)]
        a, b = self.start[i, j], self.stop[i, j]
        return self.close[a:b], self.volume[a:b]

    def rows(self, venue: np.ndarray, symbol: np.ndarray) -> np.ndarray:
        """Index (into :attr:`pairs`) of each pair ``(venue[p], symbol[p])``; −1 for a pair not read."""
        return np.array([self.index.get(k, -1) for k in zip(venue.tolist(), symbol.tolist())], dtype=np.int64)

    def at(self, i: int, venue: np.ndarray, symbol: np.ndarray, rows: np.ndarray | None = None,
           max_periods: int | None = None) -> PairPeriods:
        """:class:`PairPeriods` of the pairs ``(venue[p], symbol[p])`` at the i-th T (only periods
        below ``max_periods`` when given). ``rows``: their :meth:`rows` (default: looked up); a pair
        whose row is −1 (not read, or not served at T) has no bars."""
        j = self.rows(venue, symbol) if rows is None else np.asarray(rows, dtype=np.int64)
        a = np.where(j >= 0, self.start[i, j], 0)
        b = np.where(j >= 0, self.stop[i, j], 0)
        t = int(self.as_of_ns[i])
        g = self._phase(t % DAY_NS)
        k_t = (t - t % DAY_NS) // DAY_NS
        first = np.searchsorted(g["end"], a, side="right")  # first period ending after the window's first row
        last = np.searchsorted(g["start"], b, side="left")  # periods starting before the window's end
        count = np.where(b > a, last - first, 0)
        row = np.repeat(np.arange(len(j)), count)
        grp = np.repeat(first, count) + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
        d = k_t - g["k"][grp]
        if max_periods is not None:
            sel = d < max_periods
            row, grp, d = row[sel], grp[sel], d[sel]
        width = max_periods if max_periods is not None else (int(d.max()) + 1 if len(d) else 0)
        out = PairPeriods.empty(venue, symbol, width)
        n_bars, usd, close = g["n_bars"][grp], g["usd_volume"][grp], g["close"][grp]
        # periods cut by the window: only their rows inside it count
        lo = np.maximum(g["start"][grp], a[row])
        hi = np.minimum(g["end"][grp], b[row])
        cut = np.flatnonzero((lo != g["start"][grp]) | (hi != g["end"][grp]))
        if len(cut):
            n_bars = n_bars.copy()
            usd = usd.copy()
            close = close.copy()
            n_bars[cut] = hi[cut] - lo[cut]
            usd[cut] = _kahan_group_sum(self.usd, lo[cut], hi[cut] - lo[cut])
            close[cut] = self.close[hi[cut] - 1]
        out.n_bars[row, d] = n_bars
        out.usd_volume[row, d] = usd
        out.close[row, d] = close
        return out
