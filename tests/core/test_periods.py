"""24h periods aligned to T (SPEC §1)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from cryptorun_core import periods as periods_module
from cryptorun_core.periods import PERIOD_COLUMNS, complete_periods, period_table

UTC = timezone.utc


def _hourly(end: datetime, n: int, venue="kraken", symbol="BTC/USD") -> pd.DataFrame:
    opens = pd.date_range(end=pd.Timestamp(end) - pd.Timedelta(hours=1), periods=n, freq="h", tz=UTC)
    close = np.arange(1, n + 1, dtype=float)
    return pd.DataFrame({"venue": venue, "symbol": symbol, "timestamp": opens, "open": close - 0.5,
                         "high": close + 1, "low": close - 1, "close": close, "volume": np.full(n, 2.0)})


def test_periods_are_aligned_to_t_not_to_midnight():
    t = datetime(2026, 11, 27, 10, 15, tzinfo=UTC)  # not on an hour: the bar opening 09:15 is not a bar; last bar opens 09:00
    bars = _hourly(datetime(2026, 11, 27, 10, tzinfo=UTC), 72)
    out = period_table(bars, t)
    # bars opening 09:00 back to 10:00 the day before form period 0 (24 bars)
    p0 = out[out["period"] == 0].iloc[0]
    assert p0["n_bars"] == 24
    assert p0["close"] == 72.0 and p0["open"] == 48.5
    assert p0["high"] == 73.0 and p0["low"] == 48.0
    assert p0["usd_volume"] == pytest.approx(2.0 * sum(range(49, 73)))
    assert list(out["period"]) == [0, 1, 2]


def test_bars_not_closed_at_t_are_ignored():
    t = datetime(2026, 11, 27, 10, tzinfo=UTC)
    bars = _hourly(datetime(2026, 11, 27, 12, tzinfo=UTC), 50)  # two bars close after T
    out = period_table(bars, t)
    assert out[out["period"] == 0].iloc[0]["close"] == 48.0


def test_incomplete_oldest_period_is_flagged():
    t = datetime(2026, 11, 27, tzinfo=UTC)
    out = period_table(_hourly(t, 30), t)
    assert out.set_index("period")["n_bars"].to_dict() == {0: 24, 1: 6}
    assert complete_periods(out)["period"].tolist() == [0]


def test_daily_bars_are_one_period_each():
    t = datetime(2021, 5, 20, tzinfo=UTC)
    opens = pd.date_range(end="2021-05-19", periods=3, freq="D", tz=UTC)
    bars = pd.DataFrame({"venue": "kraken", "symbol": "BTC/USD", "timestamp": opens, "open": [1.0, 2, 3],
                         "high": [2.0, 3, 4], "low": [0.5, 1, 2], "close": [1.5, 2.5, 3.5], "volume": [10.0, 10, 10]})
    out = complete_periods(period_table(bars, t, timeframe="1d"), "1d")
    assert out["period"].tolist() == [0, 1, 2]
    assert out["close"].tolist() == [3.5, 2.5, 1.5]


def test_row_order_does_not_matter():
    t = datetime(2026, 11, 27, tzinfo=UTC)
    bars = pd.concat([_hourly(t, 60), _hourly(t, 60, venue="okx")])
    shuffled = bars.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(period_table(bars, t), period_table(shuffled, t))


def test_max_periods_limits_output():
    t = datetime(2026, 11, 27, tzinfo=UTC)
    assert period_table(_hourly(t, 240), t, max_periods=4)["period"].max() == 3


def test_empty_input_gives_empty_table():
    t = datetime(2026, 11, 27, tzinfo=UTC)
    out = period_table(_hourly(t, 0), t)
    assert out.empty and "usd_volume" in out.columns


def _many_pairs(t: datetime, seed: int = 5) -> pd.DataFrame:
    """Hourly bars of nine pairs with gaps, random numbers and a few bars not yet closed at T,
    one block of rows per pair (in a non-sorted pair order, as a source answers)."""
    rng = np.random.default_rng(seed)
    frames = []
    for venue in ("okx", "kraken", "binance"):
        for symbol in ("ZZZ/USD", "AAA/USD", "MMM/USD"):
            f = _hourly(t + pd.Timedelta(hours=int(rng.integers(0, 3))), int(rng.integers(30, 200)), venue, symbol)
            f = f[rng.random(len(f)) > 0.15]
            n = len(f)
            f = f.assign(close=rng.lognormal(3, 1, n), open=rng.lognormal(3, 1, n), high=rng.lognormal(4, 1, n),
                         low=rng.lognormal(2, 1, n), volume=rng.lognormal(5, 3, n))
            frames.append(f)
    return pd.concat(frames, ignore_index=True)


def _reference_periods(bars: pd.DataFrame, t: datetime, max_periods: int | None = None) -> pd.DataFrame:
    """The SPEC §1 aggregation with a pandas groupby (sums in time order, compensated as pandas does)."""
    t = pd.Timestamp(t)
    frame = bars[bars["timestamp"] + pd.Timedelta(hours=1) <= t]
    period = np.floor(((t.value - frame["timestamp"].array.asi8) / 3.6e12 - 1.0) / 24).astype(np.int64)
    frame = frame.assign(period=period, usd_volume=frame["close"].to_numpy() * frame["volume"].to_numpy())
    if max_periods is not None:
        frame = frame[frame["period"] < max_periods]
    frame = frame.sort_values(["venue", "symbol", "timestamp"], kind="mergesort")
    out = frame.groupby(["venue", "symbol", "period"], sort=True).agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"),
        volume=("volume", "sum"), usd_volume=("usd_volume", "sum"), n_bars=("close", "size")).reset_index()
    return out.astype({"period": "int64", "n_bars": "int64"})[list(PERIOD_COLUMNS)]


@pytest.mark.parametrize("layout", ["sorted", "blocks", "shuffled"])
@pytest.mark.parametrize("max_periods", [None, 3])
@pytest.mark.parametrize("chunk_rows", [7, 1 << 18])
def test_period_table_equals_a_pandas_groupby_bit_for_bit(monkeypatch, layout, max_periods, chunk_rows):
    """Whatever the row order, and however the pairs are split in chunks of rows (a few rows per chunk:
    pairs longer than a chunk, many chunks), the numbers are those of a pandas groupby, bit for bit."""
    monkeypatch.setattr(periods_module, "_CHUNK_ROWS", chunk_rows)
    t = datetime(2026, 11, 27, 5, tzinfo=UTC)
    bars = _many_pairs(t)
    if layout == "sorted":
        bars = bars.sort_values(["venue", "symbol", "timestamp"], kind="mergesort").reset_index(drop=True)
    elif layout == "shuffled":
        bars = bars.sample(frac=1.0, random_state=1).reset_index(drop=True)
    out = period_table(bars, t, max_periods=max_periods)
    pd.testing.assert_frame_equal(out, _reference_periods(bars, t, max_periods), check_exact=True)


def test_period_table_leaves_missing_keys_to_pandas():
    """A bar without a symbol is dropped (as pandas' groupby does), the other bars aggregate as usual."""
    t = datetime(2026, 11, 27, tzinfo=UTC)
    bars = pd.concat([_hourly(t, 48), _hourly(t, 48, symbol=None)], ignore_index=True)
    out = period_table(bars, t)
    assert out["symbol"].tolist() == ["BTC/USD", "BTC/USD"]
    pd.testing.assert_frame_equal(out, period_table(_hourly(t, 48), t))


# ------------------------------------------------------------------------------------------
# PairPeriods / PeriodHistory: the period table of many T from one history
# ------------------------------------------------------------------------------------------

from cryptorun_core.market.snapshot import MarketSnapshot  # noqa: E402
from cryptorun_core.market.windows import pack_series  # noqa: E402
from cryptorun_core.periods import PairPeriods, PeriodHistory, kahan_sum  # noqa: E402

H = 3_600 * 10**9


def _series(rng, n_hours: int, missing: float, garbage: bool):
    """Hourly bars over n_hours with a share of missing hours and (optionally) garbage bars."""
    hours = np.flatnonzero(rng.random(n_hours) >= missing)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(hours))))
    cols = [close * (1 + rng.normal(0, 0.001, len(hours))), close * 1.01, close * 0.99, close, rng.lognormal(3, 1, len(hours))]
    if garbage:
        cols[3][5] = np.nan
        cols[0][9] = -1.0
        cols[4][14] = -3.0
        cols[1][20], cols[2][20] = 1.0, 2.0  # high < low
        cols[4][30] = 0.0  # zero volume: kept
    return hours, cols


def _history_case():
    rng = np.random.default_rng(3)
    t0 = pd.Timestamp("2026-10-01", tz=UTC).value
    n_hours = 24 * 60
    as_of = t0 + H * np.arange(24 * 35, n_hours + 1, 4)  # 4h cycle times: all six phases of the day
    pairs = [("kraken", "AAA/USD"), ("okx", "AAA/USD"), ("kraken", "BBB/USD"), ("coinbase", "CCC/USD")]
    series, windows = [], []
    for p, (missing, garbage) in enumerate([(0.0, False), (0.05, True), (0.3, False), (0.0, True)]):
        hours, cols = _series(rng, n_hours, missing, garbage)
        ts = t0 + hours * H
        series.append((ts, *cols))
        stop = np.searchsorted(ts + H, as_of, side="right")
        if p == 3:  # a feed outage: the newest 30 hours are not served at some T
            stop = np.where(np.arange(len(as_of)) % 5 == 0, np.searchsorted(ts + H, as_of - 30 * H, side="right"), stop)
        windows.append((np.maximum(stop - 500, 0), stop))  # fetch limit of 500 bars: oldest period cut
    w = pack_series(pairs, as_of, series, windows, lambda v, s, t: "no data")
    return w, pairs


def _snapshot_at(w, pairs, i: int) -> MarketSnapshot:
    frames = []
    for j, (venue, symbol) in enumerate(pairs):
        a, b = w.start[i, j], w.stop[i, j]
        frames.append(pd.DataFrame({"venue": venue, "symbol": symbol,
                                    "timestamp": pd.to_datetime(w.ts[a:b], utc=True),
                                    **{c: w.values[a:b, k] for k, c in enumerate(("open", "high", "low", "close", "volume"))}}))
    bars = pd.concat(frames, ignore_index=True)
    t = pd.Timestamp(int(w.as_of_ns[i]), tz=UTC).to_pydatetime()
    return MarketSnapshot(as_of=t, timeframe="1h", source="test", bars=bars, books=pd.DataFrame(), fetches=pd.DataFrame(),
                          markets=pd.DataFrame())


def _same(a: PairPeriods, b: PairPeriods) -> None:
    assert list(a.venue) == list(b.venue) and list(a.symbol) == list(b.symbol)
    for name in ("n_bars", "usd_volume", "close"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, name
        assert np.array_equal(x, y, equal_nan=True), name


def test_period_history_equals_period_table_at_every_t():
    """Gaps, garbage bars, windows cut by the fetch limit and by an outage, all phases of the day."""
    w, pairs = _history_case()
    history = PeriodHistory(w, "1h")
    venue = np.array([p[0] for p in pairs] + ["okx"], dtype=object)
    symbol = np.array([p[1] for p in pairs] + ["ZZZ/USD"], dtype=object)  # a pair never read: no bars
    cut = 0
    for i in range(len(w.as_of_ns)):
        snap = _snapshot_at(w, pairs, i)
        table = snap.periods()
        _same(history.at(i, venue, symbol), PairPeriods.from_table(table, venue, symbol))
        _same(history.at(i, venue, symbol, max_periods=31), PairPeriods.from_table(table, venue, symbol, max_periods=31))
        clean = snap.clean_bars()[0]
        for v, s in pairs:
            sel = clean[(clean["venue"] == v) & (clean["symbol"] == s)]
            close, volume = history.bars(i, v, s)
            assert np.array_equal(close, sel["close"].to_numpy()) and np.array_equal(volume, sel["volume"].to_numpy())
        cut += int((table["n_bars"] < 24).sum())
    assert cut  # incomplete periods occur (gaps, cuts)


def test_period_history_pairs_without_rows_have_no_bars():
    w, pairs = _history_case()
    history = PeriodHistory(w, "1h")
    venue = np.array([p[0] for p in pairs], dtype=object)
    symbol = np.array([p[1] for p in pairs], dtype=object)
    rows = history.rows(venue, symbol)
    assert list(rows) == [0, 1, 2, 3] and list(history.rows(np.array(["okx"], object), np.array(["ZZZ/USD"], object))) == [-1]
    rows[[1, 3]] = -1  # not served at T
    got = history.at(3, venue, symbol, rows)
    assert (got.n_bars[[1, 3]] == 0).all() and np.isnan(got.close[[1, 3]]).all()
    assert (got.n_bars[0] > 0).any()


def test_pack_series_rejects_unsorted_or_duplicate_bars():
    ts = np.array([0, H, H, 3 * H])
    cols = [np.ones(4)] * 5
    with pytest.raises(ValueError, match="strictly ascending"):
        pack_series([("kraken", "BTC/USD")], np.array([4 * H]), [(ts, *cols)], [(np.array([0]), np.array([4]))], lambda *a: "")


def test_kahan_sum_is_pandas_groupby_sum():
    rng = np.random.default_rng(0)
    values = rng.lognormal(10, 3, 500)
    expected = pd.DataFrame({"g": 0, "v": values}).groupby("g")["v"].sum().iloc[0]
    assert kahan_sum(values.tolist()) == expected


def test_taking_pairs_keeps_their_numbers_and_pads_missing_periods_with_no_bars():
    from cryptorun_core.periods import PairPeriods

    venue = np.array(["kraken", "okx", "okx"], dtype=object)
    symbol = np.array(["BTC/USD", "BTC/USD", "ETH/USD"], dtype=object)
    listed = PairPeriods(venue, symbol, np.array([[24, 24], [24, 3], [0, 24]]),
                         np.array([[10.0, 11.0], [20.0, 2.0], [0.0, 31.0]]),
                         np.array([[1.0, 1.5], [2.0, 2.5], [np.nan, 3.5]]))
    got = listed.take(np.array(["okx", "kraken"], dtype=object), np.array(["ETH/USD", "BTC/USD"], dtype=object), 3)
    assert got.venue.tolist() == ["okx", "kraken"] and got.symbol.tolist() == ["ETH/USD", "BTC/USD"]
    assert got.n_bars.tolist() == [[0, 24, 0], [24, 24, 0]]  # period 2 was never seen: no bars
    assert got.usd_volume.tolist() == [[0.0, 31.0, 0.0], [10.0, 11.0, 0.0]]
    np.testing.assert_array_equal(got.close, [[np.nan, 3.5, np.nan], [1.0, 1.5, np.nan]])
    narrower = listed.take(venue[:1], symbol[:1], 1)
    assert narrower.n_bars.tolist() == [[24]] and narrower.close.tolist() == [[1.0]]
    assert listed.take(np.array(["coinbase"], dtype=object), np.array(["BTC/USD"], dtype=object), 2) is None
