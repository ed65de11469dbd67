"""MarketSource owns the per-request loop: a source implements one request of each kind."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from cryptorun_core.market.base import FetchResult, MarketSource, OrderBook, Ticker


class OneAtATime(MarketSource):
    name = "one-at-a-time"

    def __init__(self):
        self.calls: list[tuple] = []

    @property
    def venues(self):
        return ("v1", "v2")

    def list_markets(self, venue, as_of):
        return []

    def ohlcv_request(self, venue, symbol, as_of, timeframe, limit):
        self.calls.append(("ohlcv", venue, symbol, as_of, timeframe, limit))
        return FetchResult(venue, symbol, None, stamped_at=as_of, error="no_data", detail=symbol)

    def ticker_request(self, venue, symbol, as_of):
        self.calls.append(("ticker", venue, symbol, as_of))
        return FetchResult(venue, symbol, Ticker(1.0, 1.0, 1.0, None, None), stamped_at=as_of)

    def book_request(self, venue, symbol, as_of, depth):
        self.calls.append(("book", venue, symbol, as_of, depth))
        return FetchResult(venue, symbol, OrderBook.from_levels([[1.0, 1.0]], [[1.1, 1.0]], as_of), stamped_at=as_of)


REQUESTS = [("v2", "B/USD"), ("v1", "A/USD"), ("v2", "A/USD")]


def test_batches_answer_every_request_in_request_order_with_T_in_utc():
    source = OneAtATime()
    t = datetime(2021, 5, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))  # = 00:00 UTC
    bars = source.fetch_ohlcv(REQUESTS, t, "1d", 30)
    assert [(r.venue, r.symbol) for r in bars] == REQUESTS and [r.detail for r in bars] == ["B/USD", "A/USD", "A/USD"]
    assert len(source.fetch_tickers(REQUESTS, t)) == 3 and len(source.fetch_order_books(REQUESTS, t, depth=5)) == 3
    utc = datetime(2021, 5, 1, tzinfo=timezone.utc)
    assert {c[3] for c in source.calls} == {utc} and all(c[3].tzinfo is timezone.utc for c in source.calls)
    assert [c[0] for c in source.calls] == ["ohlcv"] * 3 + ["ticker"] * 3 + ["book"] * 3
    assert source.calls[0][4:] == ("1d", 30) and source.calls[-1][4] == 5
    assert source.fetch_ohlcv([], pd.Timestamp("2021-05-01")) == []


def test_a_source_without_a_request_kind_says_so():
    class BarsOnly(OneAtATime):
        book_request = MarketSource.book_request

    with pytest.raises(NotImplementedError, match="BarsOnly answers no book request"):
        BarsOnly().fetch_order_books(REQUESTS, datetime(2021, 5, 1, tzinfo=timezone.utc))
