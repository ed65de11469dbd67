"""collect_snapshot turns a MarketSource's answers into the tables the engine reads."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from cryptorun_core.market.base import FetchResult, MarketDataError, MarketInfo, MarketSource, OrderBook, Ticker, closed_bars
from cryptorun_core.market.snapshot import MarketSnapshot, collect_snapshot

UTC = timezone.utc
T = datetime(2026, 11, 27, 12, tzinfo=UTC)


class TwoVenueSource(MarketSource):
    """A hand-written source: okx fails listing when told, ETH has no book on kraken."""

    name = "handmade"

    def __init__(self, okx_down: bool = False):
        self.okx_down = okx_down
        self.book_requests: list[tuple[str, str]] = []

    @property
    def venues(self):
        return ("kraken", "okx")

    def list_markets(self, venue, as_of):
        if venue == "okx" and self.okx_down:
            raise ConnectionError("okx unreachable")
        return [MarketInfo(venue, s, s.replace("/", "-"), s.split("/")[0], "USD") for s in ("BTC/USD", "ETH/USD")] + [
            MarketInfo(venue, "OLD/USD", "OLD-USD", "OLD", "USD", active=False)
        ]

    def fetch_ohlcv(self, requests, as_of, timeframe="1h", limit=720):
        out = []
        for venue, symbol in requests:
            opens = pd.date_range(end=pd.Timestamp(as_of), periods=30, freq="h", tz=UTC)  # the last one is still open
            px = np.linspace(100, 130, 30)
            frame = pd.DataFrame({"timestamp": opens, "open": px, "high": px + 1, "low": px - 1, "close": px, "volume": 1.0})
            out.append(FetchResult(venue, symbol, closed_bars(frame, as_of, limit=limit), stamped_at=as_of, requests=1))
        return out

    def fetch_tickers(self, requests, as_of):
        return [FetchResult(v, s, Ticker(1, 2, 1.5)) for v, s in requests]

    def fetch_order_books(self, requests, as_of, depth=100):
        self.book_requests.extend(requests)
        out = []
        for venue, symbol in requests:
            if (venue, symbol) == ("kraken", "ETH/USD"):
                out.append(FetchResult(venue, symbol, None, error="no_book", detail="no book recorded"))
            else:
                out.append(FetchResult(venue, symbol, OrderBook.from_levels([[99, 1], [98, 2]], [[101, 1]], as_of), stamped_at=as_of))
        return out


def test_snapshot_holds_closed_bars_books_and_fetch_log():
    snap = collect_snapshot(TwoVenueSource(), None, T)
    assert snap.symbols == ["BTC/USD", "ETH/USD"]  # the inactive market is not fetched
    assert (snap.bars["timestamp"] + pd.Timedelta(hours=1) <= pd.Timestamp(T)).all()
    assert len(snap.bars) == 4 * 29
    assert set(snap.books["side"]) == {"bid", "ask"}
    assert len(snap.books) == 3 * 3  # three books of three levels; kraken ETH has none
    failed = snap.fetches[~snap.fetches["ok"]]
    assert failed[["venue", "symbol", "kind", "error"]].values.tolist() == [["kraken", "ETH/USD", "book", "no_book"]]
    assert snap.fetches[snap.fetches["kind"] == "ohlcv"]["requests"].sum() == 4


def test_symbols_filter_and_book_filter_limit_requests():
    source = TwoVenueSource()
    snap = collect_snapshot(source, ["BTC/USD"], T, book_filter=lambda bars: [("okx", "BTC/USD")])
    assert snap.symbols == ["BTC/USD"]
    assert source.book_requests == [("okx", "BTC/USD")]


def test_a_venue_that_cannot_list_is_reported_and_the_rest_goes_on():
    snap = collect_snapshot(TwoVenueSource(okx_down=True), None, T)
    assert set(snap.bars["venue"]) == {"kraken"}
    down = snap.fetches[snap.fetches["kind"] == "markets"]
    assert down[["venue", "error"]].values.tolist() == [["okx", "venue_down"]]
    assert "okx unreachable" in down["detail"].iloc[0]


def test_no_venue_at_all_raises():
    class Dead(TwoVenueSource):
        def list_markets(self, venue, as_of):
            raise ConnectionError(f"{venue} down")

    with pytest.raises(MarketDataError, match="kraken: ConnectionError: kraken down"):
        collect_snapshot(Dead(), None, T)


def test_parquet_round_trip(tmp_path):
    snap = collect_snapshot(TwoVenueSource(), None, T)
    paths = snap.write_parquet(tmp_path / "snap")
    assert sorted(p.name for p in paths.values()) == ["bars.parquet", "books.parquet", "fetches.parquet", "markets.parquet", "meta.json"]
    back = MarketSnapshot.read_parquet(tmp_path / "snap")
    assert back.as_of == T and back.source == "handmade" and back.timeframe == "1h"
    pd.testing.assert_frame_equal(back.bars, snap.bars)
    pd.testing.assert_frame_equal(back.books, snap.books)
    assert not list((tmp_path / "snap").glob("*.tmp"))


class ScriptedSource(TwoVenueSource):
    """Serves the given bar frame per (venue, symbol) as is (contract breaches included)."""

    def __init__(self, frames: dict[tuple[str, str], pd.DataFrame]):
        super().__init__()
        self.frames = frames

    def fetch_ohlcv(self, requests, as_of, timeframe="1h", limit=720):
        return [FetchResult(v, s, self.frames[(v, s)], stamped_at=as_of, requests=1) for v, s in requests]


def _bars(opens, close0: float = 100.0) -> pd.DataFrame:
    px = close0 + np.arange(len(opens), dtype=float)
    return pd.DataFrame({"timestamp": opens, "open": px, "high": px + 1, "low": px - 1, "close": px, "volume": 1.0})


def test_each_answer_is_held_to_the_contract_and_the_repairs_are_noted():
    hours = pd.date_range(end=pd.Timestamp(T) - pd.Timedelta(hours=1), periods=6, freq="h", tz=UTC)  # closed by T
    late = pd.date_range(start=pd.Timestamp(T), periods=2, freq="h", tz=UTC)  # still open at T / future
    shuffled = _bars(hours).iloc[[2, 0, 5, 1, 4, 3]]
    with_late = pd.concat([shuffled, _bars(late, 500.0)]).iloc[[0, 6, 1, 2, 7, 3, 4, 5]]
    nat_in_order = _bars(hours).astype({"timestamp": object})
    nat_in_order.loc[2, "timestamp"] = pd.NaT  # NaT is left to the engine's sanitation, not "out of order"
    frames = {
        ("kraken", "BTC/USD"): with_late,
        ("kraken", "ETH/USD"): _bars(hours.tz_convert("Europe/Paris")),  # another zone: same instants
        ("okx", "BTC/USD"): _bars(late),  # nothing closed by T: no rows
        ("okx", "ETH/USD"): nat_in_order,
    }
    snap = collect_snapshot(ScriptedSource(frames), None, T, with_books=False)
    bars = snap.bars
    assert str(bars["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert all(bars[c].dtype == np.float64 for c in ("open", "high", "low", "close", "volume"))
    assert isinstance(bars.index, pd.RangeIndex) and bars.index.start == 0
    # answers in request order, each answer's rows contiguous
    assert bars[["venue", "symbol"]].drop_duplicates().values.tolist() == [
        ["kraken", "BTC/USD"], ["kraken", "ETH/USD"], ["okx", "ETH/USD"]]
    btc = bars[(bars["venue"] == "kraken") & (bars["symbol"] == "BTC/USD")]
    assert btc["timestamp"].tolist() == list(hours) and btc["close"].tolist() == list(100.0 + np.arange(6))
    eth = bars[(bars["venue"] == "kraken") & (bars["symbol"] == "ETH/USD")]
    assert eth["timestamp"].tolist() == list(hours)
    okx = bars[bars["venue"] == "okx"]
    assert okx["timestamp"].isna().tolist() == [False, False, True, False, False, False]
    detail = snap.fetches.set_index(["venue", "symbol"])["detail"]
    assert detail[("kraken", "BTC/USD")] == (
        "bar_after_as_of: kraken served 2 bar(s) of BTC/USD closing after T (dropped); "
        "out_of_order: kraken served 6 bars of BTC/USD out of time order (sorted)")
    assert detail[("okx", "BTC/USD")].startswith("bar_after_as_of: okx served 2 bar(s)")
    assert not detail[("kraken", "ETH/USD")] and not detail[("okx", "ETH/USD")]


def test_numbers_served_as_text_or_ints_become_float():
    hours = pd.date_range(end=pd.Timestamp(T) - pd.Timedelta(hours=1), periods=3, freq="h", tz=UTC)
    text = _bars(hours).astype({"close": str, "volume": object})
    text.loc[1, "volume"] = None
    ints = _bars(hours).astype({c: "int64" for c in ("open", "high", "low", "close")})
    frames = {("kraken", "BTC/USD"): text, ("kraken", "ETH/USD"): ints,
              ("okx", "BTC/USD"): _bars(hours), ("okx", "ETH/USD"): _bars(hours)}
    bars = collect_snapshot(ScriptedSource(frames), None, T, with_books=False).bars
    assert all(bars[c].dtype == np.float64 for c in ("open", "high", "low", "close", "volume"))
    assert bars["close"].iloc[:3].tolist() == [100.0, 101.0, 102.0]
    assert np.isnan(bars["volume"].iloc[1])


def test_parquet_files_dictionary_encode_text_only_and_every_table_round_trips(tmp_path):
    import pyarrow.parquet as pq

    snap = collect_snapshot(TwoVenueSource(), None, T)
    snap.write_parquet(tmp_path / "snap")
    back = MarketSnapshot.read_parquet(tmp_path / "snap")
    for name in ("bars", "books", "fetches", "markets"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(snap, name))
    meta = pq.ParquetFile(tmp_path / "snap" / "bars.parquet").metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert any("DICTIONARY" in e for e in encodings["symbol"])
    assert not any("DICTIONARY" in e for e in encodings["close"])
