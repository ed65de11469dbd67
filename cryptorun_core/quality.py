"""Bar sanitation: reject or repair garbage bars before anything is computed from them.

:func:`sanitize_bars` is applied by universe ranking, the regime and the scan engine, so a venue
serving garbage can neither crash a cycle nor move a number silently. Every rejected or repaired
bar is reported per (venue, symbol) with a stable reason code (the scan writes them to
``explain.json["data_quality"]``):

=====================  ==========  ===========================================================
reason                 action      what
=====================  ==========  ===========================================================
``missing_timestamp``  rejected    the bar has no (parsable) open time
``bar_after_as_of``    rejected    the bar closes after T (open + one bar > T): never used
``nan_price``          rejected    open, high, low or close is NaN or infinite
``non_positive_price`` rejected    open, high, low or close is 0 or negative
``bad_volume``         rejected    volume is NaN, infinite or negative
``high_below_low``     rejected    high < low
``price_out_of_range`` rejected    open, high, low or close outside [``sanitation.min_price_usd``,
                                   ``sanitation.max_price_usd``] (e.g. 1e300)
``volume_out_of_range`` rejected   close·volume above ``sanitation.max_bar_usd_volume``
``price_spike``        rejected    a one-bar spike: the bar's close, high or low is
                                   ``sanitation.price_spike_ratio``× above (or below) the closes
                                   of both its neighbours (the newest bar: of the one before it)
``volume_spike``       rejected    a one-bar spike of USD volume: ``sanitation.volume_spike_ratio``×
                                   that of both neighbours (the newest bar is not judged)
``duplicate_bar``      repaired    identical copies of one bar: one is kept
``duplicate_bar``      rejected    conflicting copies of one bar (same open time, different
                                   values): every copy is dropped, the bar becomes a gap
``out_of_order``       repaired    a source answered a pair's bars out of time order: sorted
                                   (detected per answer by ``collect_snapshot``, which notes it
                                   in the fetch log; the long bars table itself has no order)
``zero_volume``        kept        the bar traded nothing (legitimate, reported only)
=====================  ==========  ===========================================================

The magnitude rules (range and spike) apply when :class:`BarRules` are given (every consumer of a
snapshot passes the configured ones); spikes are judged among the pair's bars that pass every
other rule (neighbours = the previous and next such bar), after duplicates are resolved.

Open or close outside [low, high] is left alone (venues round their extremes); only an inverted
range is garbage. The result does not depend on the order of the input rows (same bytes for any permutation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from cryptorun_core.market.base import TIMEFRAME_DELTA, Timeframe, to_utc
from cryptorun_core.rows import run_changes
from cryptorun_core.timefmt import iso_z

ISSUE_COLUMNS = ("venue", "symbol", "reason", "action", "n_bars", "first_timestamp")
BAR_REASONS = (
    "missing_timestamp", "bar_after_as_of", "nan_price", "non_positive_price", "bad_volume", "high_below_low",
    "duplicate_bar", "out_of_order", "zero_volume", "price_out_of_range", "volume_out_of_range", "price_spike",
    "volume_spike",
)


@dataclass(frozen=True)
class BarRules:
    """The magnitude rules' thresholds (config ``sanitation``)."""

    min_price_usd: float
    max_price_usd: float
    max_bar_usd_volume: float
    price_spike_ratio: float
    volume_spike_ratio: float

    @classmethod
    def of(cls, config) -> "BarRules":
        """The rules of an :class:`cryptorun_core.config.AppConfig` (its ``sanitation`` section)."""
        s = config.sanitation
        return cls(float(s.min_price_usd), float(s.max_price_usd), float(s.max_bar_usd_volume),
                   float(s.price_spike_ratio), float(s.volume_spike_ratio))
_PRICES = ("open", "high", "low", "close")


def empty_issues() -> pd.DataFrame:
    return pd.DataFrame({c: np.zeros(0, dtype=np.int64 if c == "n_bars" else object) for c in ISSUE_COLUMNS})


def _issue_rows(venue: np.ndarray, symbol: np.ndarray, ts: np.ndarray, mask: np.ndarray, reason: str, action: str) -> list[dict]:
    if not mask.any():
        return []
    sel = pd.DataFrame({"venue": venue[mask], "symbol": symbol[mask], "ts": ts[mask]})
    grp = sel.groupby(["venue", "symbol"], sort=True)["ts"]
    agg = pd.DataFrame({"n_bars": grp.size(), "first": grp.min()}).reset_index()
    return [
        {"venue": r.venue, "symbol": r.symbol, "reason": reason, "action": action, "n_bars": int(r.n_bars),
         "first_timestamp": None if r.first == np.iinfo(np.int64).min else iso_z(int(r.first))}
        for r in agg.itertuples(index=False)
    ]


def sanitize_bars(bars: pd.DataFrame, as_of: datetime, timeframe: Timeframe = "1h",
                  rules: BarRules | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(clean, issues)``: sound closed bars sorted by (venue, symbol, timestamp), one per open time,
    and one row per (venue, symbol, reason, action) with ``n_bars`` affected and the first open time.

    ``bars`` is a long bars table (``venue, symbol, timestamp, open, high, low, close, volume``);
    other columns are kept. See the module docstring for the rules.
    """
    if bars is None or len(bars) == 0:
        return bars, empty_issues()
    clean, flags = sanitize_flags(bars, as_of, timeframe, rules)
    return clean, issues_from_flags(flags)


FLAG_COLUMNS = ("venue", "symbol", "ts", "reason", "action")


def empty_flags() -> pd.DataFrame:
    return pd.DataFrame({"venue": pd.Series([], dtype=object), "symbol": pd.Series([], dtype=object),
                         "ts": pd.Series([], dtype="int64"), "reason": pd.Series([], dtype=object),
                         "action": pd.Series([], dtype=object)})


def issues_from_flags(flags: pd.DataFrame) -> pd.DataFrame:
    """The issues table of :func:`sanitize_bars` from the per-row flags of :func:`sanitize_flags`
    (any row subset of them: every rule is decided per row or per (venue, symbol, open time), so the
    issues of a subset of bars selected by venue, symbol and open time are the flags of that subset)."""
    if flags is None or len(flags) == 0:
        return empty_issues()
    grp = flags.groupby(["venue", "symbol", "reason", "action"], sort=True)["ts"]
    agg = pd.DataFrame({"n_bars": grp.size(), "first": grp.min()}).reset_index()
    nat = np.iinfo(np.int64).min
    first = [None if f == nat else iso_z(int(f)) for f in agg["first"].to_numpy()]
    out = pd.DataFrame({"venue": agg["venue"].to_numpy(object), "symbol": agg["symbol"].to_numpy(object),
                        "reason": agg["reason"].to_numpy(object), "action": agg["action"].to_numpy(object),
                        "n_bars": agg["n_bars"].to_numpy(np.int64), "first_timestamp": pd.Series(first, dtype=object)})
    return out.reset_index(drop=True)


def _default_index(frame: pd.DataFrame) -> bool:
    idx = frame.index
    return isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1


def _str_values(values: pd.Series) -> np.ndarray:
    """Object array of ``str`` (the column's own array when it already holds only str)."""
    arr = values.to_numpy()
    if arr.dtype == object and pd.api.types.infer_dtype(arr, skipna=False) == "string":
        return arr
    return values.astype(str).to_numpy()


def sanitize_flags(bars: pd.DataFrame, as_of: datetime, timeframe: Timeframe = "1h",
                   rules: BarRules | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(clean, flags)``: the clean bars of :func:`sanitize_bars` and one row per flagged input bar
    (``venue, symbol, ts`` (int64 ns, NaT → int64 min), ``reason, action``); a zero-volume duplicate
    has two flags. :func:`issues_from_flags` turns (a subset of) the flags into the issues table."""
    if bars is None or len(bars) == 0:
        return bars, empty_flags()
    t = pd.Timestamp(to_utc(as_of))
    step = pd.Timedelta(TIMEFRAME_DELTA[timeframe])
    b = bars if _default_index(bars) else bars.reset_index(drop=True)  # no copy of an already-indexed table
    ts_s = b["timestamp"]
    if not isinstance(ts_s.dtype, pd.DatetimeTZDtype):
        ts_s = pd.to_datetime(ts_s, utc=True, errors="coerce")
    if str(ts_s.dtype) != "datetime64[ns, UTC]":
        ts_s = ts_s.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    ts = ts_s.array.asi8  # NaT → int64 min; a view of the column (never written)
    nat = ts_s.isna().to_numpy()
    venue = _str_values(b["venue"])
    symbol = _str_values(b["symbol"])
    # one array per column (no n × 4 stack: the bar table can be millions of rows)
    px = [pd.to_numeric(b[c], errors="coerce").to_numpy(float) for c in _PRICES]
    vol = pd.to_numeric(b["volume"], errors="coerce").to_numpy(float)
    h, lo = px[1], px[2]

    flagged: list[tuple[np.ndarray, str, str]] = []

    def flag(mask: np.ndarray, reason: str, action: str) -> None:
        if mask.any():
            flagged.append((np.nonzero(mask)[0], reason, action))

    bad = nat.copy()
    flag(nat, "missing_timestamp", "rejected")
    after = ~bad & (ts + step.value > t.value)
    flag(after, "bar_after_as_of", "rejected")
    bad |= after
    nan_price = np.zeros(len(b), dtype=bool)
    non_positive = np.zeros(len(b), dtype=bool)
    with np.errstate(invalid="ignore"):
        for p in px:
            finite = np.isfinite(p)
            nan_price |= ~finite
            non_positive |= finite & (p <= 0)
        checks = (
            ("nan_price", nan_price),
            ("non_positive_price", non_positive),
            ("bad_volume", ~np.isfinite(vol) | (np.nan_to_num(vol, nan=0.0) < 0)),
            ("high_below_low", h < lo),
        )
        if rules is not None:
            out_of_range = np.zeros(len(b), dtype=bool)
            for p in px:
                out_of_range |= (p < rules.min_price_usd) | (p > rules.max_price_usd)
            checks += (("price_out_of_range", out_of_range),
                       ("volume_out_of_range", px[3] * np.nan_to_num(vol, nan=0.0) > rules.max_bar_usd_volume))
    for reason, mask in checks:
        m = ~bad & mask
        flag(m, reason, "rejected")
        bad |= m
    flag(~bad & (vol == 0), "zero_volume", "kept")

    order, presorted, new_pair = _canonical_order(venue, symbol, ts, np.flatnonzero(~bad))

    # duplicates: identical copies collapse to one, conflicting copies are all dropped
    dropped_dups = False
    if len(order) > 1:
        to = ts[order]
        key_same = to[1:] == to[:-1]
        del to
        key_same &= ~new_pair[1:]
        if key_same.any():
            dup_any = np.zeros(len(order), dtype=bool)
            dup_any[1:] |= key_same
            dup_any[:-1] |= key_same
            # group id of each duplicated key; conflicting when any value differs within the group
            gid = np.cumsum(np.concatenate([[True], ~key_same]))
            dup_rows = order[dup_any]
            frame = pd.DataFrame(np.column_stack([a[dup_rows] for a in (*px, vol)]),  # the copies' values only
                                 columns=["o", "h", "l", "c", "v"]).assign(g=gid[dup_any])
            conflicting_g = set(frame.groupby("g").nunique(dropna=False).max(axis=1).loc[lambda s: s > 1].index)
            conflict = dup_any & np.isin(gid, list(conflicting_g))
            extra = np.zeros(len(order), dtype=bool)
            extra[1:] = key_same & ~conflict[1:]  # later identical copies
            m_conf = np.zeros(len(b), dtype=bool)
            m_conf[order[conflict]] = True
            m_extra = np.zeros(len(b), dtype=bool)
            m_extra[order[extra]] = True
            flag(m_extra, "duplicate_bar", "repaired")
            flag(m_conf, "duplicate_bar", "rejected")
            bad |= m_conf | m_extra
            dropped_dups = True
        del key_same
    # dropping rows keeps the canonical order (the rows left have distinct keys)
    kept = ~bad[order] if dropped_dups else None
    good = order[kept] if dropped_dups else order
    if rules is not None and len(good) > 1:
        pair_id = np.cumsum(new_pair)
        spikes = _spikes(good, pair_id[kept] if kept is not None else pair_id, px, vol, rules)
        for reason, mask in spikes:
            if mask.any():
                m = np.zeros(len(b), dtype=bool)
                m[good[mask]] = True
                flag(m, reason, "rejected")
                bad |= m
        drop = spikes[0][1] | spikes[1][1]
        if drop.any():
            good = good[~drop]
        del pair_id
    del new_pair, order, kept
    if len(good) == len(b) and presorted:
        clean = b  # already clean and canonical (no copy)
    else:
        clean = b.take(good)
        clean.index = pd.RangeIndex(len(clean))  # (reset_index would copy the whole table once more)
    if len(clean) and not isinstance(b["timestamp"].dtype, pd.DatetimeTZDtype):
        if clean is b:
            clean = b.copy()
        clean["timestamp"] = ts_s.iloc[good].reset_index(drop=True)
    if not flagged:
        return clean, empty_flags()
    rows = np.concatenate([r for r, _, _ in flagged])
    flags = pd.DataFrame({
        "venue": venue[rows], "symbol": symbol[rows], "ts": ts[rows],
        "reason": np.concatenate([np.full(len(r), reason, dtype=object) for r, reason, _ in flagged]),
        "action": np.concatenate([np.full(len(r), action, dtype=object) for r, _, action in flagged]),
    })
    return clean, flags


def _spikes(good: np.ndarray, pair_id: np.ndarray, px: list[np.ndarray], vol: np.ndarray,
            rules: BarRules) -> tuple[tuple[str, np.ndarray], tuple[str, np.ndarray]]:
    """One-bar spikes among the bars ``good`` (rows in canonical order, one per open time; ``pair_id``
    their pair): ``(("price_spike", mask), ("volume_spike", mask))`` over the positions of ``good``.

    A bar with a neighbour on both sides is a price spike when its high (or close) is ``k``× above
    both neighbours' closes, or its low (or close) ``k``× below both; the newest bar of a pair is
    judged against the bar before it only (the oldest, with no bar before it, is not judged).
    A volume spike is a bar with both neighbours whose close·volume is ``k``× both of theirs."""
    close = px[3][good]
    top = np.fmax(px[1][good], close)
    bottom = np.fmin(px[2][good], close)
    usd = close * vol[good]
    n = len(good)
    has_prev = np.zeros(n, dtype=bool)
    has_prev[1:] = pair_id[1:] == pair_id[:-1]
    has_next = np.zeros(n, dtype=bool)
    has_next[:-1] = has_prev[1:]
    prev_c, next_c = _neighbours(close)
    # the newest bar compares with the one before it only
    next_c = np.where(has_next, next_c, prev_c)
    ref_hi = np.fmax(prev_c, next_c)
    ref_lo = np.fmin(prev_c, next_c)
    k = rules.price_spike_ratio
    with np.errstate(invalid="ignore", over="ignore"):
        price = has_prev & ((top >= k * ref_hi) | (bottom * k <= ref_lo))
        prev_u, next_u = _neighbours(usd)
        ref_u = np.fmax(prev_u, next_u)
        volume = has_prev & has_next & ~price & (np.fmin(prev_u, next_u) > 0) & (usd >= rules.volume_spike_ratio * ref_u)
    return ("price_spike", price), ("volume_spike", volume)


def _neighbours(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each element's previous and next value (NaN past either end)."""
    prev = np.full(len(values), np.nan)
    prev[1:] = values[:-1]
    nxt = np.full(len(values), np.nan)
    nxt[:-1] = values[1:]
    return prev, nxt


def _canonical_order(venue: np.ndarray, symbol: np.ndarray, ts: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, bool, np.ndarray]:
    """The bar rows ``rows`` (ascending) in the clean table's order: by (venue, symbol, open time),
    stable (ties keep row order).

    Returns ``(order, presorted, new_pair)``: the sorted rows, whether ``rows`` already were in that
    order (``order is rows``), and per position of ``order`` whether a new (venue, symbol) starts.
    A table whose pairs each come as one block of rows in time order (how sources answer) is
    ordered by sorting its blocks; otherwise rows are sorted. Keys are str (see ``_str_values``)."""
    n = len(rows)
    if n == 0:
        return rows, True, np.zeros(0, dtype=bool)
    every = n == len(ts)  # views instead of copies when no row was rejected
    v, s, t = (venue, symbol, ts) if every else (venue[rows], symbol[rows], ts[rows])
    change = run_changes(v, s)
    first = np.flatnonzero(change)
    keys = list(zip(v[first].tolist(), s[first].tolist()))
    time_ok = t[1:] >= t[:-1]
    time_ok |= change[1:]
    if bool(time_ok.all()) and len(set(keys)) == len(keys):
        del time_ok
        rank = sorted(range(len(keys)), key=keys.__getitem__)
        if all(r == i for i, r in enumerate(rank)):
            return rows, True, change
        lengths = np.diff(np.append(first, n))[rank]
        begin = first[rank]
        # position k of the sorted table is row begin[b] + (k − start of block b in the sorted table)
        pos = np.repeat(begin - (np.cumsum(lengths) - lengths), lengths)
        pos += np.arange(n)
        new_pair = np.zeros(n, dtype=bool)
        new_pair[np.cumsum(lengths) - lengths] = True
        return (pos if every else rows[pos]), False, new_pair
    del change, time_ok
    vcode, _ = pd.factorize(v, sort=True)
    scode, suniq = pd.factorize(s, sort=True)
    pos = np.lexsort((t, scode, vcode))
    vcode *= len(suniq)
    vcode += scode  # (venue, symbol) rank
    del scode
    pair = vcode[pos]
    del vcode
    new_pair = np.empty(n, dtype=bool)
    new_pair[0] = True
    np.not_equal(pair[1:], pair[:-1], out=new_pair[1:])
    return (pos if every else rows[pos]), False, new_pair


def windows_need_sanitation(windows, rules: BarRules | None) -> bool:
    """Whether some window of a :class:`cryptorun_core.market.windows.BarWindows` holds a bar that
    :func:`sanitize_flags` would reject (garbage, out of range, a one-bar spike).

    A range read aggregates windows without a per-cycle data-quality report, so it may stand in for
    the cycles' snapshots only when there is nothing to report; otherwise every cycle is read (and
    sanitized, and reported) on its own. Conservative: a spike is looked for over each pair's whole
    series (a superset of what any window sees between two neighbours) and at every window's newest bar."""
    vals = windows.values
    if not len(vals):
        return False
    px, vol = vals[:, :4], vals[:, 4]
    with np.errstate(invalid="ignore", over="ignore"):
        bad = ~(np.isfinite(px).all(axis=1) & (px > 0).all(axis=1) & np.isfinite(vol) & (vol >= 0) & ~(vals[:, 1] < vals[:, 2]))
        if rules is not None:
            bad |= ((px < rules.min_price_usd) | (px > rules.max_price_usd)).any(axis=1)
            bad |= vals[:, 3] * vol > rules.max_bar_usd_volume
    if bad.any():
        return True
    if rules is None:
        return False
    pair_id = np.repeat(np.arange(len(windows.offsets) - 1), np.diff(windows.offsets))
    (_, price), (_, volume) = _spikes(np.arange(len(vals)), pair_id, [vals[:, c] for c in range(4)], vol, rules)
    # the whole-series rule judges each pair's newest bar against the one before it; inside the
    # series it sees two neighbours: a window's newest bar is judged against the one before it here
    last = windows.stop.ravel() - 1
    start = windows.start.ravel()
    sel = last - 1 >= start
    last = last[sel]
    if len(last):
        k = rules.price_spike_ratio
        prev_c = vals[last - 1, 3]
        top = np.fmax(vals[last, 1], vals[last, 3])
        bottom = np.fmin(vals[last, 2], vals[last, 3])
        with np.errstate(invalid="ignore", over="ignore"):
            if ((top >= k * prev_c) | (bottom * k <= prev_c)).any():
                return True
    return bool(price.any() or volume.any())


def source_file_problems(fetches: pd.DataFrame | None, venues) -> list[dict]:
    """The fetch log's unreadable inputs (``kind`` = ``file``) of ``venues``, sorted by venue, symbol."""
    if fetches is None or not len(fetches) or "kind" not in fetches.columns:
        return []
    f = fetches[(fetches["kind"] == "file").to_numpy() & fetches["venue"].astype(str).isin(list(venues)).to_numpy()]
    rows = [{"venue": str(v), "symbol": str(s), "reason": str(e), "detail": str(d)}
            for v, s, e, d in zip(f["venue"], f["symbol"], f["error"], f["detail"])]
    return sorted(rows, key=lambda r: (r["venue"], r["symbol"], r["reason"]))


def regime_data_quality(snapshot, venues) -> dict:
    """The data-quality report of a regime window: what the sanitation rejected or repaired in the
    bars of the ranked snapshot (every symbol the ranking and the regime universe come from; bars
    after T are never reported, SPEC §1, and bars kept as they are — zero volume — are not
    repairs) and the inputs the source could not read. ``counts``: entries per reason code."""
    flags = snapshot.clean_bars()[1]
    issues = issues_from_flags(flags[(flags["action"] != "kept").to_numpy() & (flags["reason"] != "bar_after_as_of").to_numpy()
                                     & flags["venue"].isin(list(venues)).to_numpy()]) if len(flags) else empty_issues()
    bars = [{k: (int(v) if k == "n_bars" else v) for k, v in r.items()} for r in issues.to_dict("records")]
    return data_quality_summary(bars, source_file_problems(snapshot.fetches, venues))


def data_quality_summary(bars: list[dict], files: list[dict]) -> dict:
    counts: dict[str, int] = {}
    for r in bars + files:
        counts[r["reason"]] = counts.get(r["reason"], 0) + 1
    return {"bars": bars, "files": files, "counts": dict(sorted(counts.items()))}
