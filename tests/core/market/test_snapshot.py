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
