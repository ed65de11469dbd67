"""rank_universe (SPEC §2): hand-worked ADV, exclusions, ranking, tiers, segments, point-in-time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptorun_core.schemas import UniverseRankingSchema
from cryptorun_core.universe import RANKING_COLUMNS, rank_universe

T = "2021-05-01T00:00:00Z"


def _row(ranking: pd.DataFrame, symbol: str) -> pd.Series:
    sel = ranking[ranking["symbol"] == symbol]
    assert len(sel) == 1, f"{symbol} missing from ranking"
    return sel.iloc[0]


@pytest.fixture(scope="module")
def hand_case(hourly_bars):
    """3 symbols on kraken/okx/coinbase with constant closes so Σ close·volume is easy by hand.

    AAA/USD  kraken 8 periods: close 10, volume 1000 (periods 0..6) → 10,000 $/bar → 240,000 $/period;
                    period 7 has volume 5000 (1,200,000 $) but is the 8th newest, so not in the ADV.
             okx    8 periods: close 20, volume 100 → 2,000 $/bar → 48,000 $/period, except period 2
                    which misses one bar → incomplete on okx → contributes nothing.
             ADV = (6·(240,000 + 48,000) + 240,000)/7 = 1,968,000/7 = 281,142.857…  (tier3), n_periods 8
    BBB/USD  okx    7 periods: close 100, volume 500 → 50,000 $/bar → 1,200,000 $/period → ADV 1.2M (tier2)
    CCC/USD  kraken 10 periods close 1 volume 300,000 → 7,200,000 $/period
             coinbase 7 periods close 1 volume 100,000 → 2,400,000 $/period → ADV 9.6M (tier1), n_periods 10
    """
    a_k_vol = np.r_[np.full(24, 5000.0), np.full(7 * 24, 1000.0)]  # oldest period first
    a_k = hourly_bars("AAA/USD", "kraken", np.full(8 * 24, 10.0), a_k_vol, T)
    a_o = hourly_bars("AAA/USD", "okx", np.full(8 * 24, 20.0), 100.0, T)
    # period 2 covers bars opening in [T-72h, T-48h): drop the one opening at T-60h
    a_o = a_o[a_o["timestamp"] != pd.Timestamp(T) - pd.Timedelta(hours=60)]
    b_o = hourly_bars("BBB/USD", "okx", np.full(7 * 24, 100.0), 500.0, T)
    c_k = hourly_bars("CCC/USD", "kraken", np.full(10 * 24, 1.0), 300_000.0, T)
    c_c = hourly_bars("CCC/USD", "coinbase", np.full(7 * 24, 1.0), 100_000.0, T)
    return [a_k, a_o, b_o, c_k, c_c]


def test_hand_adv_tiers_ranks(hand_case, make_snapshot, app_config):
    ranking = rank_universe(make_snapshot(hand_case, T), app_config, validate=True)
    assert list(ranking.columns) == list(RANKING_COLUMNS)
    assert ranking["symbol"].tolist() == ["CCC/USD", "BBB/USD", "AAA/USD"]
    assert ranking["rank"].tolist() == [1, 2, 3]
    assert str(ranking["rank"].dtype) == "Int64"

    a = _row(ranking, "AAA/USD")
    assert a["adv_usd"] == pytest.approx(1_968_000 / 7, rel=1e-12)
    assert a["n_periods"] == 8
    assert a["tier"] == "tier3"
    assert a["venues"] == "kraken,okx"

    b = _row(ranking, "BBB/USD")
    assert b["adv_usd"] == pytest.approx(1_200_000.0, rel=1e-12)
    assert (b["tier"], b["venues"], b["n_periods"]) == ("tier2", "okx", 7)

    c = _row(ranking, "CCC/USD")
    assert c["adv_usd"] == pytest.approx(9_600_000.0, rel=1e-12)
    assert (c["tier"], c["venues"], c["n_periods"]) == ("tier1", "kraken,coinbase", 10)  # config order

    assert ranking["eligible"].all()
    assert ranking["exclusion_reason"].isna().all()
    assert ranking["segment"].tolist() == ["hot", "hot", "hot"]


def test_segments_and_ties(hourly_bars, make_snapshot, app_config):
    # equal ADV (24 · 10 · 1000 = 240,000) → ties broken by symbol
    frames = [hourly_bars(s, "kraken", np.full(7 * 24, 10.0), 1000.0, T) for s in ("ZZZ/USD", "MMM/USD", "AAA/USD")]
    frames.append(hourly_bars("TOP/USD", "kraken", np.full(7 * 24, 10.0), 2000.0, T))
    ranking = rank_universe(make_snapshot(frames, T), app_config, hot_size=1, warm_size=2, validate=True)
    assert ranking["symbol"].tolist() == ["TOP/USD", "AAA/USD", "MMM/USD", "ZZZ/USD"]
    assert ranking["segment"].tolist() == ["hot", "warm", "warm", "none"]
    assert ranking["eligible"].all()  # 'none' segment is still eligible


def test_exclusions(hourly_bars, make_snapshot, markets_from_bars, app_config):
    big = 300_000.0  # close 1 → 7.2M $/period
    frames = {
        "USDT/USD": [hourly_bars("USDT/USD", "kraken", np.full(8 * 24, 1.0), big, T)],
        "EUR/USD": [hourly_bars("EUR/USD", "okx", np.full(8 * 24, 1.0), big, T)],
        "DDD/USD": [hourly_bars("DDD/USD", v, np.full(8 * 24, 1.0), big, T) for v in ("kraken", "okx")],
        "EEE/USD": [
            hourly_bars("EEE/USD", "kraken", np.full(8 * 24, 1.0), big, T),  # inactive here: ignored
            hourly_bars("EEE/USD", "okx", np.full(8 * 24, 1.0), 10_000.0, T),  # 240,000 $/period
        ],
        "FFF/USD": [hourly_bars("FFF/USD", "kraken", np.full(6 * 24, 1.0), big, T)],  # 6 periods
        "GGG/USD": [hourly_bars("GGG/USD", "kraken", np.full(8 * 24, 1.0), 4166.0, T)],  # 99,984 $/period
        "OK/USD": [hourly_bars("OK/USD", "coinbase", np.full(8 * 24, 1.0), big, T)],
        # not part of the universe at all: non-USD quote, unconfigured venue
        "BTC/EUR": [hourly_bars("BTC/EUR", "kraken", np.full(8 * 24, 1.0), big, T)],
        "XXX/USD": [hourly_bars("XXX/USD", "binance", np.full(8 * 24, 1.0), big, T)],
    }
    bars = pd.concat([f for fs in frames.values() for f in fs], ignore_index=True)
    markets = markets_from_bars(bars, inactive=[("kraken", "DDD/USD"), ("okx", "DDD/USD"), ("kraken", "EEE/USD")])
    ranking = rank_universe(make_snapshot(bars, T, markets=markets), app_config, validate=True)

    assert ranking["symbol"].tolist() == ["OK/USD", "EEE/USD", "DDD/USD", "EUR/USD", "FFF/USD", "GGG/USD", "USDT/USD"]
    reasons = dict(zip(ranking["symbol"], ranking["exclusion_reason"]))
    assert reasons == {
        "OK/USD": None,
        "EEE/USD": None,
        "DDD/USD": "inactive",
        "EUR/USD": "stablecoin_or_fiat",
        "FFF/USD": "insufficient_periods",
        "GGG/USD": "adv_below_min",
        "USDT/USD": "stablecoin_or_fiat",
    }
    e = _row(ranking, "EEE/USD")
    assert e["venues"] == "okx" and e["adv_usd"] == pytest.approx(240_000.0)
    excluded = ranking[~ranking["eligible"]]
    assert excluded["rank"].isna().all() and (excluded["segment"] == "none").all() and excluded["tier"].isna().all()
    assert _row(ranking, "GGG/USD")["adv_usd"] == pytest.approx(99_984.0)
    assert _row(ranking, "FFF/USD")["n_periods"] == 6
    assert _row(ranking, "DDD/USD")["venues"] == "kraken,okx"  # all listings shown when none is active


def test_listed_without_bars_is_inactive(hourly_bars, make_snapshot, markets_from_bars, app_config):
    """SPEC §2: a listing with no closed bar in period 0 is an inactive market."""
    bars = hourly_bars("AAA/USD", "kraken", np.full(7 * 24, 1.0), 300_000.0, T)
    ghost = hourly_bars("NEW/USD", "okx", [1.0], 1.0, T)
    markets = markets_from_bars(pd.concat([bars, ghost]))
    ranking = rank_universe(make_snapshot(bars, T, markets=markets), app_config, validate=True)
    new = _row(ranking, "NEW/USD")
    assert new["exclusion_reason"] == "inactive" and new["n_periods"] == 0 and np.isnan(new["adv_usd"])


def test_no_bar_in_period_0_is_inactive_even_with_a_long_history(hourly_bars, make_snapshot, app_config):
    """A feed (or replayed file) that ended 25 h before T: inactive, not ranked; one venue that
    stopped leaves the symbol active on the others, without that venue's volume."""
    full = hourly_bars("AAA/USD", "kraken", np.full(10 * 24, 2.0), 300_000.0, T)
    ended = hourly_bars("BBB/USD", "kraken", np.full(10 * 24, 2.0), 300_000.0, pd.Timestamp(T) - pd.Timedelta(hours=25))
    other = hourly_bars("AAA/USD", "okx", np.full(10 * 24, 2.0), 300_000.0, pd.Timestamp(T) - pd.Timedelta(hours=25))
    ranking = rank_universe(make_snapshot(pd.concat([full, ended, other], ignore_index=True), T), app_config, validate=True)
    bbb = _row(ranking, "BBB/USD")
    assert bbb["exclusion_reason"] == "inactive" and not bbb["eligible"] and bbb["segment"] == "none"
    aaa = _row(ranking, "AAA/USD")
    assert aaa["eligible"] and aaa["venues"] == "kraken"
    assert aaa["adv_usd"] == pytest.approx(24 * 2.0 * 300_000.0)


def test_daily_only_snapshot(daily_bars, make_snapshot, app_config):
    # 10 daily bars; ADV = mean of the last 7 close·volume; ADV exactly at the minimum is eligible
    closes = np.arange(1.0, 11.0)  # 1..10, newest 10
    vols = np.full(10, 1000.0)
    a = daily_bars("AAA/USD", "kraken", closes, vols, T)
    b = daily_bars("BBB/USD", "kraken", np.ones(8), 100_000.0, T)  # ADV exactly 100,000
    late = daily_bars("AAA/USD", "kraken", [1e6], 1e6, pd.Timestamp(T) + pd.Timedelta(days=1))  # opens at T
    ranking = rank_universe(make_snapshot([a, b, late], T, timeframe="1d"), app_config, validate=True)
    ra = _row(ranking, "AAA/USD")
    assert ra["n_periods"] == 10
    assert ra["adv_usd"] == pytest.approx(1000.0 * (4 + 5 + 6 + 7 + 8 + 9 + 10) / 7)  # 7,000
    assert ra["exclusion_reason"] == "adv_below_min"
    rb = _row(ranking, "BBB/USD")
    assert rb["eligible"] and rb["adv_usd"] == 100_000.0 and rb["tier"] == "tier3" and rb["rank"] == 1


def test_empty_snapshot(make_snapshot, app_config):
    ranking = rank_universe(make_snapshot([], T), app_config, validate=True)
    assert ranking.empty and list(ranking.columns) == list(RANKING_COLUMNS)


def test_schema_rejects_inconsistent_rows(hand_case, make_snapshot, app_config):
    ranking = rank_universe(make_snapshot(hand_case, T), app_config, validate=True)
    bad = ranking.copy()
    bad.loc[0, "exclusion_reason"] = "inactive"
    with pytest.raises(Exception):
        UniverseRankingSchema.validate(bad)


# ------------------------------------------------------------------ properties


def _random_bars(hourly_bars, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for i, sym in enumerate(["AAA/USD", "BBB/USD", "CCC/USD", "DDD/USD", "USDC/USD"]):
        for venue in ("kraken", "okx", "coinbase"):
            if rng.random() < 0.3:
                continue
            n = int(rng.integers(100, 260))
            closes = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
            vols = rng.uniform(0, 2000, n) * (i + 1)
            b = hourly_bars(sym, venue, closes, vols, T)
            frames.append(b.drop(index=rng.choice(len(b), size=3, replace=False)))  # a few gaps
    return pd.concat(frames, ignore_index=True)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), perm_seed=st.integers(0, 2**32 - 1))
def test_shuffling_bars_changes_nothing(hourly_bars, make_snapshot, app_config, seed, perm_seed):
    bars = _random_bars(hourly_bars, seed)
    base = rank_universe(make_snapshot(bars, T), app_config, hot_size=2, warm_size=1)
    shuffled = bars.sample(frac=1.0, random_state=np.random.RandomState(perm_seed % 2**32)).reset_index(drop=True)
    other = rank_universe(make_snapshot(shuffled, T), app_config, hot_size=2, warm_size=1)
    pd.testing.assert_frame_equal(base, other)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    extra=st.lists(
        st.tuples(
            st.sampled_from(["AAA/USD", "BBB/USD", "LATE/USD"]),
            st.sampled_from(["kraken", "okx", "coinbase"]),
            st.integers(-59, 72 * 60),  # open time in minutes after T - 59min: closes after T
            st.floats(0.01, 1e6),
            st.floats(0, 1e9),
        ),
        min_size=1,
        max_size=20,
    ),
)
def test_bars_after_T_change_nothing(hourly_bars, make_snapshot, app_config, seed, extra):
    bars = _random_bars(hourly_bars, seed)
    base = rank_universe(make_snapshot(bars, T), app_config)
    t = pd.Timestamp(T)
    late = pd.DataFrame(
        [
            {"venue": v, "symbol": s, "timestamp": t + pd.Timedelta(minutes=m), "open": c, "high": c, "low": c, "close": c, "volume": vol}
            for s, v, m, c, vol in extra
        ]
    )
    # markets are those listed at T: keep the original listing
    snap = make_snapshot(pd.concat([bars, late], ignore_index=True), T)
    snap.markets = make_snapshot(bars, T).markets
    pd.testing.assert_frame_equal(base, rank_universe(snap, app_config))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_an_overflowing_adv_is_excluded_and_never_written(app_config):
    """Only possible with magnitude rules looser than the defaults (a close·volume beyond 1e308):
    the symbol is excluded as adv_not_finite and its ADV left empty, never inf."""
    from cryptorun_core.periods import PairPeriods
    from cryptorun_core.universe import rank_pairs

    venue = np.array(["kraken", "kraken"], dtype=object)
    symbol = np.array(["AAA/USD", "BBB/USD"], dtype=object)
    periods = PairPeriods(venue, symbol, np.full((2, 8), 24, np.int64), np.array([[1e6] * 8, [np.inf] + [1e6] * 7]),
                          np.ones((2, 8)))
    ranking = rank_pairs(periods, np.array([True, True]), app_config, "1h", validate=True).set_index("symbol")
    assert ranking.loc["BBB/USD", "exclusion_reason"] == "adv_not_finite" and np.isnan(ranking.loc["BBB/USD", "adv_usd"])
    assert ranking.loc["AAA/USD", "rank"] == 1
