"""24h periods aligned to T (SPEC §1)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from cryptorun_core.periods import complete_periods, period_table

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
