"""SPEC §3: book metrics, venue choice, sources, Fresh and Depth badges, aggregator refusal."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _builders as B  # noqa: E402

from cryptorun_core.microstructure import bar_status, book_metrics, choose_venue  # noqa: E402
from cryptorun_core.schemas import BookMetricsSchema  # noqa: E402

CFG = B.config()
T = B.T0


def _hand_book(venue="kraken", symbol="AAA/USD", book_time=T):
    return B.levels(venue, symbol, [
        ("bid", 100.0, 1.0), ("bid", 99.0, 2.0), ("bid", 97.0, 5.0),
        ("ask", 101.0, 1.0), ("ask", 102.0, 1.0), ("ask", 104.0, 3.0),
    ], book_time)


def test_hand_computed_spread_and_depth():
    m = book_metrics(_hand_book(), T, CFG)
    BookMetricsSchema.validate(m)
    r = m.iloc[0]
    # mid = (100 + 101)/2 = 100.5; spread = 1/100.5·1e4 = 99.502 bps
    assert r["mid"] == pytest.approx(100.5)
    assert r["spread_bps"] == pytest.approx(1 / 100.5 * 1e4)
    # band ±2%: bids ≥ 98.49 → 100·1 + 99·2 = 298; asks ≤ 102.51 → 101·1 + 102·1 = 203
    assert r["bid_depth_usd"] == pytest.approx(298.0)
    assert r["ask_depth_usd"] == pytest.approx(203.0)
    assert r["depth_usd"] == pytest.approx(501.0)
    assert bool(r["valid"]) and r["invalid_reason"] is None
    assert r["book_age_s"] == 0.0


def test_band_comes_from_config():
    cfg = B.with_changes(CFG, gates={"depth_band_pct": 4.0})
    r = book_metrics(_hand_book(), T, cfg).iloc[0]
    # ±4%: bids ≥ 96.48 → 298 + 485 = 783; asks ≤ 104.52 → 203 + 312 = 515
    assert r["depth_usd"] == pytest.approx(783 + 515)


@pytest.mark.parametrize(
    "rows, reason",
    [
        ([("bid", 101.0, 1.0), ("ask", 100.0, 1.0)], "crossed_book"),
        ([("bid", 100.0, 1.0), ("ask", 100.0, 1.0)], "crossed_book"),  # locked counts as crossed
        ([("bid", 100.0, 0.0), ("ask", 101.0, 0.0)], "empty_book"),
        ([("bid", 100.0, 1.0)], "one_sided_book"),
        ([("ask", 100.0, 1.0)], "one_sided_book"),
        ([("bid", -1.0, 1.0), ("ask", 101.0, 1.0)], "bad_levels"),
        ([("bid", 100.0, np.nan), ("ask", 101.0, 1.0)], "bad_levels"),
    ],
)
def test_invalid_books(rows, reason):
    m = book_metrics(B.levels("okx", "AAA/USD", rows), T, CFG)
    assert not bool(m.iloc[0]["valid"])
    assert m.iloc[0]["invalid_reason"] == reason
    assert np.isnan(m.iloc[0]["spread_bps"]) and np.isnan(m.iloc[0]["depth_usd"])


@pytest.mark.parametrize("venue", ["coingecko", "CoinMarketCap", "cmc", "my_aggregator", "composite_feed"])
def test_aggregator_books_refused(venue):
    books = pd.concat([_hand_book(), _hand_book(venue=venue)], ignore_index=True)
    with pytest.raises(ValueError, match="aggregator"):
        book_metrics(books, T, CFG)


def test_books_after_T_are_ignored_and_newest_at_or_before_T_used():
    old = _hand_book(book_time=T - pd.Timedelta(seconds=30))
    future = B.levels("kraken", "AAA/USD", [("bid", 50.0, 1.0), ("ask", 51.0, 1.0)], T + pd.Timedelta(seconds=5))
    m = book_metrics(pd.concat([old, future], ignore_index=True), T, CFG)
    assert m.iloc[0]["mid"] == pytest.approx(100.5)
    assert m.iloc[0]["book_age_s"] == pytest.approx(30.0)


def test_shuffling_levels_changes_nothing():
    books = pd.concat([B.book(v, s, 100.0 + i, levels=50, bid_amount=np.linspace(1, 3, 50))
                       for i, (v, s) in enumerate([(v, s) for v in B.VENUES for s in ("A/USD", "B/USD")])], ignore_index=True)
    a = book_metrics(books, T, CFG)
    b = book_metrics(books.sample(frac=1.0, random_state=3), T, CFG)
    pd.testing.assert_frame_equal(a, b)


def _status(venue_lags: dict[str, float], symbol="AAA/USD", n=200):
    frames = [B.bars(symbol, v, np.full(n, 100.0), end=T - pd.Timedelta(hours=lag)) for v, lag in venue_lags.items()]
    return bar_status(pd.concat(frames, ignore_index=True), T, CFG)


def test_bar_lag_and_freshness():
    st_ = _status({"kraken": 0, "okx": 2, "coinbase": 3}).set_index("venue")
    assert st_.loc["kraken", "bar_lag_bars"] == 0 and bool(st_.loc["kraken", "bars_fresh"])
    assert st_.loc["okx", "bar_lag_bars"] == 2 and bool(st_.loc["okx", "bars_fresh"])
    assert st_.loc["coinbase", "bar_lag_bars"] == 3 and not bool(st_.loc["coinbase", "bars_fresh"])
    assert st_.loc["kraken", "n_bars"] == 200


def test_choose_venue_largest_depth_sources_and_badges():
    books = pd.concat([
        B.book("kraken", "AAA/USD", 100.0, levels=3, bid_amount=1.0, ask_amount=1.0),
        B.book("okx", "AAA/USD", 100.0, levels=3, bid_amount=2.0, ask_amount=2.0),  # deepest
        B.book("coinbase", "AAA/USD", 100.0, levels=3, bid_amount=1.5, ask_amount=1.5),
    ], ignore_index=True)
    m = book_metrics(books, T, CFG)
    status = _status({"kraken": 0, "okx": 0, "coinbase": 3})  # coinbase bars are stale
    out = choose_venue(m, status, ["AAA/USD"], B.VENUES, CFG, {"AAA/USD": "tier3"}).iloc[0]
    assert out["venue"] == "okx"
    assert out["sources"] == 2  # coinbase: valid book but stale bars
    assert out["fresh"] == "●"
    depth = m.set_index("venue").loc["okx", "depth_usd"]
    assert out["depth_usd"] == pytest.approx(depth)
    assert out["depth_badge"] == ("✓" if depth >= 25_000 else "✗")
    assert out["depth_badge"] == "✗"  # ~$1.2k of depth vs $25k


def test_choose_venue_tie_breaks_by_venue_order():
    books = pd.concat([B.book(v, "AAA/USD", 100.0, levels=3) for v in ("coinbase", "okx")], ignore_index=True)
    m = book_metrics(books, T, CFG)
    status = _status({"kraken": 0, "okx": 0, "coinbase": 0})
    assert choose_venue(m, status, ["AAA/USD"], B.VENUES, CFG).iloc[0]["venue"] == "okx"
    assert choose_venue(m, status, ["AAA/USD"], ("coinbase", "okx", "kraken"), CFG).iloc[0]["venue"] == "coinbase"


def test_fresh_needs_book_no_older_than_60s():
    status = _status({"kraken": 1})
    for age, badge in ((60, "●"), (61, "○")):
        m = book_metrics(B.book("kraken", "AAA/USD", 100.0, book_time=T - pd.Timedelta(seconds=age)), T, CFG)
        assert choose_venue(m, status, ["AAA/USD"], B.VENUES, CFG).iloc[0]["fresh"] == badge


def test_no_valid_book_falls_back_to_bars_venue():
    books = B.levels("kraken", "AAA/USD", [("bid", 101.0, 1.0), ("ask", 100.0, 1.0)])  # crossed
    m = book_metrics(books, T, CFG)
    status = bar_status(pd.concat([B.bars("AAA/USD", "kraken", np.full(100, 1.0)),
                                   B.bars("AAA/USD", "okx", np.full(300, 1.0))], ignore_index=True), T, CFG)
    out = choose_venue(m, status, ["AAA/USD", "ZZZ/USD"], B.VENUES, CFG).set_index("symbol")
    assert out.loc["AAA/USD", "venue"] == "okx"  # most bars
    assert not bool(out.loc["AAA/USD", "has_book"])
    assert out.loc["AAA/USD", "book_invalid_reason"] == "crossed_book"
    assert out.loc["AAA/USD", "fresh"] == "○" and out.loc["AAA/USD", "sources"] == 0
    assert out.loc["ZZZ/USD", "venue"] is None


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.floats(90, 99.9), st.floats(0.01, 10)), min_size=1, max_size=8),
       st.lists(st.tuples(st.floats(100.1, 110), st.floats(0.01, 10)), min_size=1, max_size=8))
def test_depth_is_sum_within_band(bids, asks):
    rows = [("bid", p, a) for p, a in bids] + [("ask", p, a) for p, a in asks]
    r = book_metrics(B.levels("kraken", "X/USD", rows), T, CFG).iloc[0]
    mid = (max(p for p, _ in bids) + min(p for p, _ in asks)) / 2
    want = sum(p * a for p, a in bids if p >= mid * 0.98) + sum(p * a for p, a in asks if p <= mid * 1.02)
    assert r["depth_usd"] == pytest.approx(want)
    assert r["spread_bps"] >= 0


def test_empty_book_metrics_has_the_columns_and_dtypes_and_is_a_new_frame_each_call():
    from cryptorun_core.microstructure import BOOK_METRIC_COLUMNS, empty_book_metrics

    a = empty_book_metrics()
    assert list(a.columns) == list(BOOK_METRIC_COLUMNS) and len(a) == 0
    assert str(a["book_time"].dtype) == "datetime64[ns, UTC]" and a["valid"].dtype == bool
    assert a["n_bid_levels"].dtype == np.int64 and a["venue"].dtype == object and a["spread_bps"].dtype == np.float64
    a["extra"] = 1.0
    a.loc[0] = None
    b = empty_book_metrics()
    assert list(b.columns) == list(BOOK_METRIC_COLUMNS) and len(b) == 0
    pd.testing.assert_frame_equal(book_metrics(pd.DataFrame(), B.T0, B.config()), b)
