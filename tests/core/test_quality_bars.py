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


# ----------------------------------------------------------------------------------------------
# magnitude rules: range and one-bar spikes (config ``sanitation``)

from pathlib import Path  # noqa: E402

from cryptorun_core.config import load_config  # noqa: E402
from cryptorun_core.quality import BarRules  # noqa: E402

RULES = BarRules.of(load_config(check_artifacts_dir=False))
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


def _series(closes, volumes=None, venue="kraken", symbol="AAA/USD") -> pd.DataFrame:
    closes = np.asarray(closes, dtype=float)
    n = len(closes)
    ts = pd.date_range(end=pd.Timestamp(T) - pd.Timedelta(hours=1), periods=n, freq="h")
    vol = np.full(n, 10.0) if volumes is None else np.asarray(volumes, dtype=float)
    return pd.DataFrame({"venue": venue, "symbol": symbol, "timestamp": ts, "open": closes, "high": closes * 1.01,
                         "low": closes * 0.99, "close": closes, "volume": vol})


def _reasons(bars, rules=RULES) -> dict[str, int]:
    _, issues = sanitize_bars(bars, T, rules=rules)
    return issues.groupby("reason")["n_bars"].sum().to_dict()


def test_range_rule_rejects_absurd_prices_and_volumes():
    bars = _series(np.full(10, 100.0))
    bars.loc[3, "close"] = 1e300
    bars.loc[5, "volume"] = 1e300
    bars.loc[7, "low"] = 1e-300
    clean, issues = sanitize_bars(bars, T, rules=RULES)
    assert _reasons(bars) == {"price_out_of_range": 2, "volume_out_of_range": 1}
    assert len(clean) == 7 and np.isfinite(clean[["open", "high", "low", "close", "volume"]].to_numpy()).all()
    assert set(issues["action"]) == {"rejected"}
    assert _reasons(bars, rules=None) == {}  # the rules are what rejects them (finite, positive values)


def test_one_bar_spike_is_rejected_but_a_lasting_move_is_not():
    closes = np.full(12, 100.0)
    closes[4] = 100.0 * RULES.price_spike_ratio * 1.7  # up and back down: a spike
    closes[8:] = 2500.0  # a jump that lasts: kept (the bar after it agrees)
    bars = _series(closes)
    clean, issues = sanitize_bars(bars, T, rules=RULES)
    spikes = issues[issues["reason"] == "price_spike"]
    assert spikes["n_bars"].tolist() == [1]
    assert spikes["first_timestamp"].iloc[0] == bars["timestamp"].iloc[4].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert 2500.0 in set(clean["close"]) and closes[4] not in set(clean["close"])


def test_a_spike_down_and_the_newest_bar_are_judged():
    down = _series([100, 100, 100 / (RULES.price_spike_ratio * 2), 100, 100])
    assert _reasons(down) == {"price_spike": 1}
    newest = _series([100, 100, 100, 100 * RULES.price_spike_ratio * 2])  # no bar after it yet
    assert _reasons(newest) == {"price_spike": 1}
    oldest = _series([100 * RULES.price_spike_ratio * 2, 100, 100, 100])  # nothing before it to judge by
    assert _reasons(oldest) == {}


def test_volume_spike_needs_two_quiet_neighbours():
    vol = np.full(9, 10.0)
    vol[4] = 10.0 * RULES.volume_spike_ratio * 2
    assert _reasons(_series(np.full(9, 100.0), vol)) == {"volume_spike": 1}
    vol[5] = vol[4]  # two loud bars in a row: volume that lasts, kept
    assert _reasons(_series(np.full(9, 100.0), vol)) == {}


def test_spikes_are_judged_per_pair_and_after_garbage_is_gone():
    a = _series([100, 100, 5000, 100, 100], symbol="AAA/USD")
    b = _series([5000, 5000, 5000, 5000, 5000], symbol="BBB/USD")  # a neighbour of AAA in the table, not in time
    c = _series([100, 100, 100, 100, 100], symbol="CCC/USD")
    c.loc[2, "close"] = np.nan  # the garbage bar is not a neighbour
    clean, issues = sanitize_bars(pd.concat([b, a, c], ignore_index=True), T, rules=RULES)
    got = {(r.symbol, r.reason): r.n_bars for r in issues.itertuples()}
    assert got == {("AAA/USD", "price_spike"): 1, ("CCC/USD", "nan_price"): 1}


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real not available")
def test_the_default_rules_leave_the_real_history_untouched():
    """The thresholds are set above anything the real 2021–22 history holds (max one-bar move 4.6×,
    max one-bar volume 336× both neighbours): no real bar is rejected."""
    for folder, step in (("daily", "1D"), ("hourly", "1h")):
        frames = []
        for path in sorted((REAL / folder).glob("*.csv")):
            f = pd.read_csv(path, float_precision="round_trip")
            f["timestamp"] = pd.to_datetime(f["timestamp"], utc=True)
            frames.append(f.assign(venue="kraken", symbol=path.stem.replace("-", "/")))
        bars = pd.concat(frames, ignore_index=True)
        as_of = bars["timestamp"].max() + pd.Timedelta(step)
        for cut in (None, 3):  # also with each file's newest bars cut (each bar is the newest once)
            grp = bars.groupby("symbol")["timestamp"]
            b = bars if cut is None else bars[grp.cumcount() < grp.transform("size") // cut]
            _, issues = sanitize_bars(b.reset_index(drop=True), as_of, "1d" if folder == "daily" else "1h", rules=RULES)
            assert set(issues["reason"]) <= {"zero_volume"}, issues[issues["reason"] != "zero_volume"]
