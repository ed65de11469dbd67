"""Bar sanitation (:mod:`cryptorun_core.quality`): the clean table's order and duplicates, whatever
the layout of the input rows."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from cryptorun_core.quality import issues_from_flags, sanitize_bars, sanitize_flags

UTC = timezone.utc
T = datetime(2026, 11, 27, 5, tzinfo=UTC)


def _blocks(seed: int = 2) -> pd.DataFrame:
    """Hourly bars of six pairs, one block of rows per pair in time order (pairs not sorted), with
    gaps, garbage bars, a bar after T, and identical and conflicting copies next to the original."""
    rng = np.random.default_rng(seed)
    frames = []
    for venue in ("okx", "kraken"):
        for symbol in ("ZZZ/USD", "AAA/USD", "MMM/USD"):
            n = int(rng.integers(20, 60))
            ts = pd.date_range(end=pd.Timestamp(T), periods=n, freq="h")  # the newest bar closes after T
            ts = ts[np.append(rng.random(n - 1) > 0.1, True)]
            m = len(ts)
            close = rng.lognormal(3, 1, m)
            f = pd.DataFrame({"venue": venue, "symbol": symbol, "timestamp": ts, "open": close, "high": close * 1.01,
                              "low": close * 0.99, "close": close, "volume": rng.lognormal(3, 1, m)})
            f.loc[f.index[3], "close"] = np.nan
            f.loc[f.index[5], "volume"] = 0.0
            f.loc[f.index[7], "high"] = f.loc[f.index[7], "low"] / 2
            copies = f.iloc[[9, 9, 11, 12]].copy()
            copies.iloc[2, copies.columns.get_loc("volume")] *= 2  # conflicting copy of bar 11
            f = pd.concat([f, copies]).sort_values("timestamp", kind="mergesort")
            frames.append(f)
    return pd.concat(frames, ignore_index=True)


def _reference_clean(bars: pd.DataFrame) -> pd.DataFrame:
    """Sound closed bars, sorted by (venue, symbol, timestamp), identical copies collapsed, conflicting dropped."""
    px = bars[["open", "high", "low", "close"]]
    sound = (np.isfinite(px).all(axis=1) & (px > 0).all(axis=1) & np.isfinite(bars["volume"]) & (bars["volume"] >= 0)
             & ~(bars["high"] < bars["low"]) & (bars["timestamp"] + pd.Timedelta(hours=1) <= pd.Timestamp(T)))
    b = bars[sound].sort_values(["venue", "symbol", "timestamp"], kind="mergesort")
    b = b.drop_duplicates()
    b = b[~b.duplicated(["venue", "symbol", "timestamp"], keep=False)]
    return b.reset_index(drop=True)


@pytest.mark.parametrize("layout", ["blocks", "sorted", "reversed_blocks", "shuffled", "time_reversed"])
def test_clean_bars_are_canonical_for_any_row_layout(layout):
    bars = _blocks()
    if layout == "sorted":
        bars = bars.sort_values(["venue", "symbol", "timestamp"], kind="mergesort").reset_index(drop=True)
    elif layout == "reversed_blocks":
        bars = pd.concat([g for _, g in bars.groupby(["venue", "symbol"], sort=False)][::-1], ignore_index=True)
    elif layout == "shuffled":
        bars = bars.sample(frac=1.0, random_state=4).reset_index(drop=True)
    elif layout == "time_reversed":
        bars = bars.iloc[::-1].reset_index(drop=True)
    clean, issues = sanitize_bars(bars, T)
    pd.testing.assert_frame_equal(clean, _reference_clean(bars), check_exact=True)
    ref_clean, ref_issues = sanitize_bars(_blocks(), T)
    pd.testing.assert_frame_equal(clean, ref_clean)
    pd.testing.assert_frame_equal(issues, ref_issues)
    reasons = issues.groupby("reason")["n_bars"].sum().to_dict()
    assert reasons == {"bar_after_as_of": 6, "duplicate_bar": reasons["duplicate_bar"], "high_below_low": 6,
                       "nan_price": 6, "zero_volume": 6}
    dups = issues[issues["reason"] == "duplicate_bar"].groupby("action")["n_bars"].sum().to_dict()
    # per pair: the two extra copies of bar 9 and the one of bar 12 repaired, both versions of bar 11 rejected
    assert dups == {"repaired": 18, "rejected": 12}


def test_sound_sorted_bars_are_returned_without_a_copy():
    bars = _reference_clean(_blocks())
    clean, flags = sanitize_flags(bars, T)
    assert clean is bars
    assert set(issues_from_flags(flags)["reason"]) == {"zero_volume"}  # reported, kept


def test_blocks_of_rows_with_rejected_bars_keep_their_order():
    """Pairs as blocks out of order and some bars rejected: the clean rows are the sound ones, sorted."""
    bars = _blocks().drop_duplicates(["venue", "symbol", "timestamp"]).reset_index(drop=True)
    clean, _ = sanitize_flags(bars, T)
    pd.testing.assert_frame_equal(clean, _reference_clean(bars), check_exact=True)
    assert clean["venue"].iloc[0] == "kraken" and clean["symbol"].iloc[0] == "AAA/USD"
