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
``duplicate_bar``      repaired    identical copies of one bar: one is kept
``duplicate_bar``      rejected    conflicting copies of one bar (same open time, different
                                   values): every copy is dropped, the bar becomes a gap
``out_of_order``       repaired    a source answered a pair's bars out of time order: sorted
                                   (detected per answer by ``collect_snapshot``, which notes it
                                   in the fetch log; the long bars table itself has no order)
``zero_volume``        kept        the bar traded nothing (legitimate, reported only)
=====================  ==========  ===========================================================

Open or close outside [low, high] is left alone (venues round their extremes); only an inverted
range is garbage. The result does not depend on the order of the input rows (same bytes for any permutation).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from cryptorun_core.market.base import TIMEFRAME_DELTA, Timeframe, to_utc

ISSUE_COLUMNS = ("venue", "symbol", "reason", "action", "n_bars", "first_timestamp")
BAR_REASONS = (
    "missing_timestamp", "bar_after_as_of", "nan_price", "non_positive_price", "bad_volume", "high_below_low",
    "duplicate_bar", "out_of_order", "zero_volume",
)
_PRICES = ("open", "high", "low", "close")


def empty_issues() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype="int64" if c == "n_bars" else object) for c in ISSUE_COLUMNS})


def _issue_rows(venue: np.ndarray, symbol: np.ndarray, ts: np.ndarray, mask: np.ndarray, reason: str, action: str) -> list[dict]:
    if not mask.any():
        return []
    sel = pd.DataFrame({"venue": venue[mask], "symbol": symbol[mask], "ts": ts[mask]})
    grp = sel.groupby(["venue", "symbol"], sort=True)["ts"]
    agg = pd.DataFrame({"n_bars": grp.size(), "first": grp.min()}).reset_index()
    return [
        {"venue": r.venue, "symbol": r.symbol, "reason": reason, "action": action, "n_bars": int(r.n_bars),
         "first_timestamp": None if r.first == np.iinfo(np.int64).min else pd.Timestamp(int(r.first), tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")}
        for r in agg.itertuples(index=False)
    ]


def sanitize_bars(bars: pd.DataFrame, as_of: datetime, timeframe: Timeframe = "1h") -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(clean, issues)``: sound closed bars sorted by (venue, symbol, timestamp), one per open time,
    and one row per (venue, symbol, reason, action) with ``n_bars`` affected and the first open time.

    ``bars`` is a long bars table (``venue, symbol, timestamp, open, high, low, close, volume``);
    other columns are kept. See the module docstring for the rules.
    """
    if bars is None or len(bars) == 0:
        return bars, empty_issues()
    t = pd.Timestamp(to_utc(as_of))
    step = pd.Timedelta(TIMEFRAME_DELTA[timeframe])
    b = bars.reset_index(drop=True)
    ts_s = b["timestamp"]
    if not isinstance(ts_s.dtype, pd.DatetimeTZDtype):
        ts_s = pd.to_datetime(ts_s, utc=True, errors="coerce")
    ts_s = ts_s.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    ts = ts_s.array.asi8.copy()  # NaT → int64 min
    nat = ts_s.isna().to_numpy()
    venue = b["venue"].astype(str).to_numpy()
    symbol = b["symbol"].astype(str).to_numpy()
    px = np.column_stack([pd.to_numeric(b[c], errors="coerce").to_numpy(float) for c in _PRICES])
    vol = pd.to_numeric(b["volume"], errors="coerce").to_numpy(float)
    h, lo = px[:, 1], px[:, 2]

    issues: list[dict] = []
    bad = nat.copy()
    issues += _issue_rows(venue, symbol, ts, nat, "missing_timestamp", "rejected")
    after = ~bad & (ts + step.value > t.value)
    issues += _issue_rows(venue, symbol, ts, after, "bar_after_as_of", "rejected")
    bad |= after
    checks = (
        ("nan_price", ~np.isfinite(px).all(axis=1)),
        ("non_positive_price", np.nan_to_num(px, nan=1.0, posinf=1.0, neginf=1.0).min(axis=1) <= 0),
        ("bad_volume", ~np.isfinite(vol) | (np.nan_to_num(vol, nan=0.0) < 0)),
        ("high_below_low", h < lo),
    )
    for reason, mask in checks:
        m = ~bad & mask
        issues += _issue_rows(venue, symbol, ts, m, reason, "rejected")
        bad |= m
    issues += _issue_rows(venue, symbol, ts, ~bad & (vol == 0), "zero_volume", "kept")

    vcode, _ = pd.factorize(venue, sort=True)
    scode, _ = pd.factorize(symbol, sort=True)
    keep_idx = np.nonzero(~bad)[0]

    # duplicates: identical copies collapse to one, conflicting copies are all dropped
    order = keep_idx[np.lexsort((ts[keep_idx], scode[keep_idx], vcode[keep_idx]))]
    if len(order) > 1:
        key_same = (vcode[order][1:] == vcode[order][:-1]) & (scode[order][1:] == scode[order][:-1]) & (ts[order][1:] == ts[order][:-1])
        if key_same.any():
            vals = np.column_stack([px, vol])[order]
            dup_any = np.zeros(len(order), dtype=bool)
            dup_any[1:] |= key_same
            dup_any[:-1] |= key_same
            # group id of each duplicated key; conflicting when any value differs within the group
            gid = np.cumsum(np.concatenate([[True], ~key_same]))
            frame = pd.DataFrame(vals[dup_any], columns=["o", "h", "l", "c", "v"]).assign(g=gid[dup_any])
            conflicting_g = set(frame.groupby("g").nunique(dropna=False).max(axis=1).loc[lambda s: s > 1].index)
            conflict = dup_any & np.isin(gid, list(conflicting_g))
            extra = np.zeros(len(order), dtype=bool)
            extra[1:] = key_same & ~conflict[1:]  # later identical copies
            rows_conflict, rows_extra = order[conflict], order[extra]
            m_conf = np.zeros(len(b), dtype=bool)
            m_conf[rows_conflict] = True
            m_extra = np.zeros(len(b), dtype=bool)
            m_extra[rows_extra] = True
            issues += _issue_rows(venue, symbol, ts, m_extra, "duplicate_bar", "repaired")
            issues += _issue_rows(venue, symbol, ts, m_conf, "duplicate_bar", "rejected")
            bad |= m_conf | m_extra

    good = np.nonzero(~bad)[0]
    good = good[np.lexsort((ts[good], scode[good], vcode[good]))]
    clean = b.iloc[good].reset_index(drop=True)
    if len(clean) and not isinstance(b["timestamp"].dtype, pd.DatetimeTZDtype):
        clean["timestamp"] = ts_s.iloc[good].reset_index(drop=True)
    if not issues:
        return clean, empty_issues()
    out = pd.DataFrame(issues, columns=list(ISSUE_COLUMNS))
    out = out.sort_values(["venue", "symbol", "reason", "action"], kind="mergesort").reset_index(drop=True)
    out["n_bars"] = out["n_bars"].astype("int64")
    return clean, out
