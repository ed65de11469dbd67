"""ReplayMarket on the real OHLCV fixtures (../shared/data/real) and on hand-made folders."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptorun_core.market.base import BAR_COLUMNS, MarketSource
from cryptorun_core.market.replay import ReplayMarket, canonical_base
from cryptorun_core.market.snapshot import collect_snapshot

UTC = timezone.utc
REAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "real"
needs_real = pytest.mark.skipif(
    not (REAL / "daily").is_dir() or not (REAL / "hourly").is_dir(),
    reason=f"real OHLCV fixtures not found at {REAL.resolve()} (CI keeps shared/ beside the repo clone)",
)


def _csv(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, float_precision="round_trip")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).dt.as_unit("ns")
    return frame


@pytest.fixture(scope="module")
def daily() -> ReplayMarket:
    return ReplayMarket(REAL / "daily", resolution="1d", venue="kraken")


@pytest.fixture(scope="module")
def hourly() -> ReplayMarket:
    return ReplayMarket(REAL / "hourly", resolution="1h", venue="coinbase")


# ----------------------------------------------------------------------------------------------
# real fixtures


@needs_real
def test_symbols_are_canonical_with_yahoo_suffixes_stripped(daily):
    symbols = set(daily.symbols)
    assert len(symbols) == 60
    assert {"LUNA/USD", "COMP/USD", "HOT/USD", "IOTA/USD", "BTC/USD"} <= symbols
    assert not {"LUNA1/USD", "COMP1/USD", "HOT1/USD", "MIOTA/USD"} & symbols
    markets = {m.symbol: m for m in daily.list_markets("kraken", datetime(2022, 2, 1, tzinfo=UTC))}
    assert markets["LUNA/USD"].native_symbol == "LUNA1-USD"
    assert markets["LUNA/USD"].base == "LUNA" and markets["LUNA/USD"].quote == "USD"
    assert daily.file_for("IOTA/USD").name == "MIOTA-USD.csv"


def test_canonical_base_rules():
    assert canonical_base("LUNA1") == "LUNA"
    assert canonical_base("comp1") == "COMP"
    assert canonical_base("UNI3") == "UNI"
    assert canonical_base("MIOTA") == "IOTA"
    assert canonical_base("C98") == "C98"  # a real ticker ending in digits keeps them
    assert canonical_base("1INCH") == "1INCH"


@needs_real
@pytest.mark.parametrize("day", ["2020-03-15", "2021-05-19", "2021-11-10", "2022-02-13", "2022-02-14"])
def test_daily_bars_at_midnight_match_the_csv_rows_exactly(daily, day):
    t = datetime.fromisoformat(day).replace(tzinfo=UTC)
    for symbol, stem in (("BTC/USD", "BTC-USD"), ("LUNA/USD", "LUNA1-USD"), ("AVAX/USD", "AVAX-USD")):
        got = daily.fetch_ohlcv([("kraken", symbol)], t, timeframe="1d", limit=30)[0]
        rows = _csv(REAL / "daily" / f"{stem}.csv")
        expected = rows[rows["timestamp"] + pd.Timedelta(days=1) <= pd.Timestamp(t)].tail(30).reset_index(drop=True)
        if expected.empty:
            assert got.error == "no_data"
            continue
        assert got.ok
        pd.testing.assert_frame_equal(got.data, expected[list(BAR_COLUMNS)], check_exact=True)
        assert got.data["timestamp"].iloc[-1] == pd.Timestamp(t) - pd.Timedelta(days=1)


@needs_real
def test_daily_replay_reads_no_lookahead_within_a_day(daily):
    """At 23:59 the day's own bar has not closed: the view equals the one at 00:00."""
    t = datetime(2021, 5, 19, tzinfo=UTC)
    at_midnight = daily.fetch_ohlcv([("kraken", "ETH/USD")], t, timeframe="1d", limit=10)[0].data
    late = daily.fetch_ohlcv([("kraken", "ETH/USD")], t + timedelta(hours=23, minutes=59), timeframe="1d", limit=10)[0].data
    pd.testing.assert_frame_equal(at_midnight, late, check_exact=True)
    assert late["timestamp"].iloc[-1] == pd.Timestamp("2021-05-18", tz="UTC")


hours_2021 = st.integers(min_value=0, max_value=390 * 24 * 60).map(
    lambda m: datetime(2021, 1, 10, tzinfo=UTC) + timedelta(minutes=m)
)


@needs_real
@settings(max_examples=25, deadline=None)
@given(t=hours_2021, later=st.integers(min_value=1, max_value=24 * 30))
def test_hourly_replay_has_no_lookahead(hourly, t, later):
    got = hourly.fetch_ohlcv([("coinbase", "BTC/USD"), ("coinbase", "XRP/USD")], t, timeframe="1h", limit=100)
    t_later = t + timedelta(hours=later)
    newer = hourly.fetch_ohlcv([("coinbase", "BTC/USD"), ("coinbase", "XRP/USD")], t_later, timeframe="1h", limit=1000)
    for r, r_new in zip(got, newer):
        bars = r.data
        assert (bars["timestamp"] + pd.Timedelta(hours=1) <= pd.Timestamp(t)).all()
        # the newest bar is the last one closed by T: nothing held back either
        assert bars["timestamp"].iloc[-1] == pd.Timestamp(t).floor("1h") - pd.Timedelta(hours=1)
        assert len(bars) == 100
        # a later view repeats the earlier bars unchanged
        overlap = r_new.data[r_new.data["timestamp"].isin(bars["timestamp"])].reset_index(drop=True)
        pd.testing.assert_frame_equal(overlap, bars[bars["timestamp"].isin(overlap["timestamp"])].reset_index(drop=True), check_exact=True)


@needs_real
@pytest.mark.parametrize("t", ["2021-01-01T05:00:00Z", "2021-06-30T12:34:00Z", "2022-02-04T00:00:00Z", "2022-03-01T00:00:00Z"])
def test_hourly_bars_equal_the_csv_rows_closed_by_t(hourly, t):
    t = pd.Timestamp(t)
    rows = _csv(REAL / "hourly" / "ETH-USD.csv")
    expected = rows[rows["timestamp"] + pd.Timedelta(hours=1) <= t].tail(48).reset_index(drop=True)
    got = hourly.fetch_ohlcv([("coinbase", "ETH/USD")], t.to_pydatetime(), timeframe="1h", limit=48)[0]
    pd.testing.assert_frame_equal(got.data, expected[list(BAR_COLUMNS)], check_exact=True)


@needs_real
def test_hourly_replay_can_serve_closed_utc_days(hourly):
    t = datetime(2021, 5, 20, 7, tzinfo=UTC)
    days = hourly.fetch_ohlcv([("coinbase", "BTC/USD")], t, timeframe="1d", limit=3)[0].data
    rows = _csv(REAL / "hourly" / "BTC-USD.csv")
    may19 = rows[rows["timestamp"].dt.floor("1D") == pd.Timestamp("2021-05-19", tz="UTC")]
    assert list(days["timestamp"]) == list(pd.date_range("2021-05-17", periods=3, freq="1D", tz="UTC"))
    assert days["open"].iloc[-1] == may19["open"].iloc[0]
    assert days["close"].iloc[-1] == may19["close"].iloc[-1]
    assert days["low"].iloc[-1] == may19["low"].min()
    assert days["volume"].iloc[-1] == pytest.approx(may19["volume"].sum())


@needs_real
def test_daily_replay_snapshot_lists_only_symbols_with_history(daily):
    t = datetime(2020, 8, 1, tzinfo=UTC)
    snapshot = collect_snapshot(daily, None, t, limit=30)
    assert snapshot.timeframe == "1d" and snapshot.source == "replay"
    listed = set(snapshot.markets["symbol"])
    assert "BTC/USD" in listed and "AVAX/USD" in listed  # AVAX has 2 bars in July 2020
    assert "AAVE/USD" not in listed  # first bar 2020-10-03
    assert (snapshot.bars["timestamp"] + pd.Timedelta(days=1) <= pd.Timestamp(t)).all()
    books = snapshot.fetches[snapshot.fetches["kind"] == "book"]
    assert (books["error"] == "no_book").all() and len(books) == len(listed)


@needs_real
def test_tickers_are_the_last_close(daily):
    t = datetime(2021, 11, 11, tzinfo=UTC)
    ticker = daily.fetch_tickers([("kraken", "BTC/USD")], t)[0]
    rows = _csv(REAL / "daily" / "BTC-USD.csv")
    last = rows[rows["timestamp"] == pd.Timestamp("2021-11-10", tz="UTC")].iloc[0]
    assert ticker.data.bid == ticker.data.ask == ticker.data.last == last["close"]
    assert ticker.stamped_at == t


@needs_real
def test_is_a_daily_market_source_for_one_venue(daily, hourly):
    assert isinstance(daily, MarketSource) and daily.name == "replay"
    assert daily.native_timeframe == "1d" and hourly.native_timeframe == "1h"
    assert daily.venues == ("kraken",)
    other = daily.fetch_ohlcv([("okx", "BTC/USD"), ("kraken", "NOPE/USD")], datetime(2021, 1, 1, tzinfo=UTC))
    assert [r.error for r in other] == ["bad_symbol", "bad_symbol"]
    assert daily.fetch_ohlcv([("kraken", "BTC/USD")], datetime(2021, 1, 1, tzinfo=UTC), timeframe="1h")[0].error == "no_data"
    assert daily.data_problems("kraken", datetime(2022, 2, 14, tzinfo=UTC)) == [] and daily.problems == {}


# ----------------------------------------------------------------------------------------------
# hand-made folders: errors, dropped rows, parquet, recorded books


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


GOOD = """timestamp,open,high,low,close,volume
2024-01-01T00:00:00Z,10,11,9,10.5,100
2024-01-02T00:00:00Z,10.5,12,10,11.5,120
2024-01-03T00:00:00Z,11.5,12,0,11,90
2024-01-04T00:00:00Z,11,,10,10.8,80
2024-01-05T00:00:00Z,10.8,11,10.1,-1,70
2024-01-06T00:00:00Z,10.9,11.2,10.4,11.1,60
"""


def test_missing_folder_raises(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        ReplayMarket(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no \\*.csv"):
        ReplayMarket(tmp_path)


def _problem(market: ReplayMarket, symbol: str) -> tuple[str, str]:
    (got,) = [r for r in market.data_problems("kraken", datetime(2024, 2, 1, tzinfo=UTC)) if r.symbol == symbol]
    assert not got.ok and got.data is None
    return got.error, got.detail


def test_bad_columns_name_the_file_and_the_problem(tmp_path):
    _write(tmp_path / "BTC-USD.csv", "time,open,high,low,close\n2024-01-01,1,1,1,1\n")
    _write(tmp_path / "ETH-USD.csv", GOOD)
    market = ReplayMarket(tmp_path)
    got = market.fetch_ohlcv([("kraken", "BTC/USD")], datetime(2024, 2, 1, tzinfo=UTC), timeframe="1d")[0]
    assert got.error == "no_data"
    reason, detail = _problem(market, "BTC/USD")
    assert reason == "unreadable_file"
    assert "BTC-USD.csv" in detail and "timestamp" in detail and "volume" in detail
    assert [m.symbol for m in market.list_markets("kraken", datetime(2024, 2, 1, tzinfo=UTC))] == ["ETH/USD"]


def test_unparseable_timestamps_are_reported_and_foreign_quotes_raise(tmp_path):
    _write(tmp_path / "a" / "ETH-USD.csv", "timestamp,open,high,low,close,volume\nyesterday,1,1,1,1,1\n")
    reason, detail = _problem(ReplayMarket(tmp_path / "a"), "ETH/USD")
    assert reason == "unreadable_file" and "ETH-USD.csv" in detail and "timestamp" in detail
    _write(tmp_path / "b" / "ETH-EUR.csv", GOOD)
    with pytest.raises(ValueError, match="ETH-EUR.csv.*EUR"):
        ReplayMarket(tmp_path / "b")


def test_bad_rows_are_served_as_recorded_for_the_sanitation_to_report(tmp_path):
    """Replay judges no value: the zero low, the blank high and the negative close reach the
    cycle's sanitation (which rejects them with a reason code), in time order."""
    _write(tmp_path / "SOL-USD.csv", GOOD)
    market = ReplayMarket(tmp_path)
    bars = market.fetch_ohlcv([("kraken", "SOL/USD")], datetime(2024, 2, 1, tzinfo=UTC), timeframe="1d")[0].data
    assert list(bars["close"]) == [10.5, 11.5, 11.0, 10.8, -1.0, 11.1]
    assert bars["high"].isna().sum() == 1 and market.problems == {}


UNREADABLE = {
    "empty": b"",
    "binary_junk": bytes(range(256)) * 4,
    "non_utf8_row": GOOD.encode() + "2024-01-07T00:00:00Z,11,12,10,11,5\xe9\n".encode("latin-1"),
    "header_only_garbage": b"\x00\x01\x02,\x03\n\x04,\x05\n",
}


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
def test_one_unreadable_file_skips_its_symbol_only(tmp_path, kind):
    (tmp_path / "BAD-USD.csv").write_bytes(UNREADABLE[kind])
    _write(tmp_path / "ETH-USD.csv", GOOD)
    market = ReplayMarket(tmp_path)
    t = datetime(2024, 2, 1, tzinfo=UTC)
    assert [m.symbol for m in market.list_markets("kraken", t)] == ["ETH/USD"]
    reason, detail = _problem(market, "BAD/USD")
    assert reason == "unreadable_file" and "BAD-USD.csv" in detail
    snapshot = collect_snapshot(market, None, t, limit=30)  # the cycle goes on with the rest
    assert set(snapshot.bars["symbol"]) == {"ETH/USD"}
    files = snapshot.fetches[snapshot.fetches["kind"] == "file"]
    assert list(files["symbol"]) == ["BAD/USD"] and list(files["error"]) == ["unreadable_file"]
    assert "BAD-USD.csv" in files["detail"].iloc[0]


def test_corrupt_parquet_is_reported(tmp_path):
    frame = _csv(_write(tmp_path / "src.csv", GOOD))
    (tmp_path / "src.csv").unlink()
    frame.to_parquet(tmp_path / "BTC-USD.parquet")
    data = (tmp_path / "BTC-USD.parquet").read_bytes()
    (tmp_path / "BTC-USD.parquet").write_bytes(data[: len(data) // 2] + b"\0" * 64 + data[-8:])
    _write(tmp_path / "ETH-USD.csv", GOOD)
    market = ReplayMarket(tmp_path)
    reason, detail = _problem(market, "BTC/USD")
    assert reason == "unreadable_file" and "BTC-USD.parquet" in detail
    assert [m.symbol for m in market.list_markets("kraken", datetime(2024, 2, 1, tzinfo=UTC))] == ["ETH/USD"]


def test_a_symlink_out_of_the_folder_is_refused(tmp_path):
    outside = _write(tmp_path / "elsewhere" / "BTC-USD.csv", GOOD)
    folder = tmp_path / "replay"
    _write(folder / "ETH-USD.csv", GOOD)
    (folder / "BTC-USD.csv").symlink_to(outside)
    (folder / "SOL-USD.csv").symlink_to(folder / "ETH-USD.csv")  # inside the folder: fine
    market = ReplayMarket(folder)
    assert market.symbols == ["ETH/USD", "SOL/USD"]
    reason, detail = _problem(market, "BTC/USD")
    assert reason == "file_outside_folder" and "BTC-USD.csv" in detail
    got = market.fetch_ohlcv([("kraken", "BTC/USD")], datetime(2024, 2, 1, tzinfo=UTC), timeframe="1d")[0]
    assert got.error == "bad_symbol"


def test_duplicated_open_times_are_served_for_the_sanitation_not_range_read(tmp_path):
    """Both copies of a duplicated day are served (file order never decides); a range read of such a
    file is refused, so every cycle is sanitized (and reported) on its own."""
    _write(tmp_path / "ETH-USD.csv", GOOD.replace("2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z"))
    market = ReplayMarket(tmp_path)
    bars = market.fetch_ohlcv([("kraken", "ETH/USD")], datetime(2024, 2, 1, tzinfo=UTC), timeframe="1d")[0].data
    assert (bars["timestamp"] == pd.Timestamp("2024-01-01", tz="UTC")).sum() == 2
    with pytest.raises(NotImplementedError, match="ETH-USD.csv"):
        market.bar_windows([("kraken", "ETH/USD")], [datetime(2024, 2, 1, tzinfo=UTC)], timeframe="1d", limit=30)


def test_parquet_files_and_suffix_collisions(tmp_path):
    frame = _csv(_write(tmp_path / "src.csv", GOOD)).iloc[:2].astype({"volume": "int64"})  # ints come back as floats
    (tmp_path / "src.csv").unlink()
    frame.to_parquet(tmp_path / "LUNA1-USD.parquet")
    _write(tmp_path / "LUNA-USD.csv", GOOD)
    market = ReplayMarket(tmp_path)
    # Terra classic (LUNA1) keeps its digit when a plain LUNA file exists
    assert market.symbols == ["LUNA/USD", "LUNA1/USD"]
    got = market.fetch_ohlcv([("kraken", "LUNA1/USD")], datetime(2024, 1, 3, tzinfo=UTC), timeframe="1d")[0].data
    pd.testing.assert_frame_equal(got, frame[list(BAR_COLUMNS)].astype({"volume": float}), check_exact=True)


def test_recorded_books_are_served_as_of_t(tmp_path):
    _write(tmp_path / "BTC-USD.csv", GOOD)
    _write(
        tmp_path / "books" / "BTC-USD.csv",
        "timestamp,side,price,amount\n"
        "2024-01-02T00:00:00Z,bid,99,1\n2024-01-02T00:00:00Z,bid,100,2\n2024-01-02T00:00:00Z,ask,101,1\n"
        "2024-01-03T00:00:00Z,bid,104,1\n2024-01-03T00:00:00Z,ask,105,3\n2024-01-03T00:00:00Z,ask,106,1\n",
    )
    _write(tmp_path / "ETH-USD.csv", GOOD)
    market = ReplayMarket(tmp_path)
    early, = market.fetch_order_books([("kraken", "BTC/USD")], datetime(2024, 1, 1, tzinfo=UTC))
    assert early.error == "no_book"
    mid, eth = market.fetch_order_books([("kraken", "BTC/USD"), ("kraken", "ETH/USD")], datetime(2024, 1, 2, 18, tzinfo=UTC))
    assert eth.error == "no_book" and eth.data is None
    assert mid.data.timestamp == datetime(2024, 1, 2, tzinfo=UTC) == mid.stamped_at
    np.testing.assert_array_equal(mid.data.bids, [[100, 2], [99, 1]])  # best first
    np.testing.assert_array_equal(mid.data.asks, [[101, 1]])
    late, = market.fetch_order_books([("kraken", "BTC/USD")], datetime(2024, 3, 1, tzinfo=UTC), depth=1)
    np.testing.assert_array_equal(late.data.asks, [[105, 3]])


@needs_real
def test_real_files_that_ended_are_inactive_not_ranked(daily):
    """ALGO and CHZ end 2022-02-02: on 2022-02-13 they have no bar in period 0 (SPEC §2), so they
    are inactive — before, they were still ranked."""
    from cryptorun_core.config import load_config
    from cryptorun_core.universe import rank_universe

    config = load_config(check_artifacts_dir=False)
    t = datetime(2022, 2, 13, tzinfo=UTC)
    ranking = rank_universe(collect_snapshot(daily, None, t, venues=["kraken"], limit=30, with_books=False), config).set_index("symbol")
    for symbol in ("ALGO/USD", "CHZ/USD"):
        assert ranking.loc[symbol, "exclusion_reason"] == "inactive" and ranking.loc[symbol, "segment"] == "none"
    assert ranking.loc["BTC/USD", "rank"] == 1
