"""Regime (SPEC §6): indicators, votes, tie rule, confidence, weight blend, next refresh, regime.json."""

from __future__ import annotations

import json
import math
import statistics
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptorun_core.config import FACTORS
from cryptorun_core.regime import (
    RegimeResult,
    band_score,
    blend_weights,
    breadth_ratios,
    breadth_thrust,
    compute_indicators,
    compute_regime,
    confidence,
    ema_seeded,
    indicators_from_closes,
    majority,
    next_refresh,
    pct_above_ma,
    realized_vol,
    vote,
)
from cryptorun_core.universe import rank_universe

T = "2021-05-01T00:00:00Z"
UTC = timezone.utc
REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


# ------------------------------------------------------------------ realized vol


def test_realized_vol_hourly_by_hand():
    # 168 returns alternating +r, −r: mean 0, Σ(x−x̄)² = 168 r², stdev = r·√(168/167)
    r = 0.01
    rets = np.tile([r, -r], 84)
    older = [5.0, 50.0, 500.0]  # wild older closes outside the window must not matter
    closes = np.r_[older, 100.0 * np.exp(np.r_[0.0, np.cumsum(rets)])]
    expected = r * math.sqrt(168 / 167) * math.sqrt(24 * 365)
    assert realized_vol(closes, "1h") == pytest.approx(expected, rel=1e-10)


def test_realized_vol_daily_fallback_by_hand():
    # 7 returns a, −a, a, −a, a, −a, a: mean a/7, Σ(x−x̄)² = 4(6a/7)² + 3(8a/7)² = 48a²/7,
    # variance (ddof 1) = 8a²/7, stdev = a·√(8/7), annualised by √365
    a = 0.05
    rets = [a, -a, a, -a, a, -a, a]
    closes = np.r_[1.0, 1000.0, 100.0 * np.exp(np.r_[0.0, np.cumsum(rets)])]
    assert realized_vol(closes, "1d") == pytest.approx(a * math.sqrt(8 / 7) * math.sqrt(365), rel=1e-10)
    with pytest.raises(ValueError, match="needs 8 closes"):
        realized_vol(closes[-7:], "1d")


# ------------------------------------------------------------------ pct above 20MA, breadth, EMA


def test_pct_above_ma_by_hand():
    up = np.arange(20.0, 0.0, -1.0)  # period 0 = 20 (newest), mean 10.5 → above
    down = np.arange(1.0, 21.0)  # period 0 = 1 → below
    flat = np.full(20, 7.0)  # equal to its mean → not above (strictly above required)
    short = np.r_[np.full(19, 99.0), np.nan]  # 19 periods → left out
    pct, n = pct_above_ma(np.vstack([up, down, flat, short]), 20)
    assert n == 3
    assert pct == pytest.approx(100.0 / 3.0)


def test_breadth_ema_five_periods_by_hand():
    # closes, columns = period 0 (newest) .. 5 (oldest)
    a = [13, 12, 11, 10, 11, 10]
    b = [9, 10, 9, 10, 11, 10]
    c = [8, 9, 10, 10, 11, 10]
    m = np.array([a, b, c], dtype=float)
    # d=4: all up → 1; d=3: all down → 0; d=2: A up, B down, C unchanged → 1/2;
    # d=1: A up, B up, C down → 2/3; d=0: A up, B down, C down → 1/3
    assert breadth_ratios(m, 5).tolist() == pytest.approx([1 / 3, 2 / 3, 1 / 2, 0.0, 1.0])
    # EMA α = 2/11 from oldest: 1 → 9/11 → 92/121 → 2968/3993 → 29374/43923
    assert breadth_thrust(m, 5, span=10) == pytest.approx(29374 / 43923, rel=1e-12)
    assert ema_seeded([1.0, 0.0, 0.5, 2 / 3, 1 / 3], 10) == pytest.approx(29374 / 43923, rel=1e-12)


def test_breadth_all_unchanged_or_missing_is_half():
    m = np.array([[5.0, 5.0, 5.0], [np.nan, 3.0, 2.0]])  # symbol 2 lacks period 0
    ratios = breadth_ratios(m, 2)
    assert ratios.tolist() == [0.5, 1.0]  # d=0: nobody moved → 0.5; d=1: symbol 2 up → 1
    assert breadth_thrust(m, 2) == pytest.approx(1.0 * 9 / 11 + 0.5 * 2 / 11)


# ------------------------------------------------------------------ votes, tie rule, confidence, blend


def test_vote_boundaries(app_config):
    th = app_config.regime.thresholds
    v = lambda vol, pct, thr: vote({"realized_vol_7d": vol, "pct_above_20ma": pct, "breadth_thrust": thr}, th)
    assert v(0.39, 71, 0.61) == {"vol_vote": "calm", "ma_vote": "calm", "breadth_vote": "calm"}
    assert v(0.40, 70, 0.60) == {"vol_vote": "normal", "ma_vote": "normal", "breadth_vote": "normal"}
    assert v(0.80, 45, 0.40) == {"vol_vote": "normal", "ma_vote": "normal", "breadth_vote": "normal"}
    assert v(0.81, 44.9, 0.39) == {"vol_vote": "volatile", "ma_vote": "volatile", "breadth_vote": "volatile"}


def test_majority_and_tie_rule():
    assert majority({"vol_vote": "calm", "ma_vote": "calm", "breadth_vote": "volatile"}) == "calm"
    assert majority({"vol_vote": "volatile", "ma_vote": "normal", "breadth_vote": "volatile"}) == "volatile"
    assert majority({"vol_vote": "normal", "ma_vote": "normal", "breadth_vote": "normal"}) == "normal"
    assert majority({"vol_vote": "volatile", "ma_vote": "normal", "breadth_vote": "calm"}) == "normal"
    assert majority({"vol_vote": "calm", "ma_vote": "volatile", "breadth_vote": "normal"}) == "normal"


def test_confidence_and_blend_by_hand(app_config):
    rc = app_config.regime
    ind = {"realized_vol_7d": 0.30, "pct_above_20ma": 80.0, "breadth_thrust": 0.50}
    votes = vote(ind, rc.thresholds)
    assert votes == {"vol_vote": "calm", "ma_vote": "calm", "breadth_vote": "normal"}
    label = majority(votes)
    assert label == "calm"
    # vol: (0.40 − 0.30)/0.40 = 0.25; pct: (80 − 70)/25 = 0.4; two agree:
    # c = 0.5·2/3 + 0.5·(0.25 + 0.4)/2 = 0.333… + 0.1625 = 0.4958333…
    c = confidence(ind, votes, label, rc.thresholds)
    assert c == pytest.approx(1 / 3 + 0.1625, rel=1e-12)
    blend = blend_weights(label, c, rc.weights)
    # momentum = c·0.40 + (1 − c)·0.35 etc.
    assert blend["momentum"] == pytest.approx(c * 0.40 + (1 - c) * 0.35)
    assert blend["technical"] == pytest.approx(c * 0.30 + (1 - c) * 0.25)
    assert blend["volume"] == pytest.approx(c * 0.20 + (1 - c) * 0.25)
    assert blend["quality"] == pytest.approx(c * 0.10 + (1 - c) * 0.15)
    assert blend["momentum"] == pytest.approx(0.3747916666666667)
    assert sum(blend.values()) == pytest.approx(1.0)


def test_confidence_three_different_votes(app_config):
    th = app_config.regime.thresholds
    ind = {"realized_vol_7d": 0.90, "pct_above_20ma": 60.0, "breadth_thrust": 0.70}
    votes = vote(ind, th)
    assert votes == {"vol_vote": "volatile", "ma_vote": "normal", "breadth_vote": "calm"}
    assert majority(votes) == "normal"
    # only the normal vote agrees: pct 60 is 10 from 70 and 15 from 45 → 10/25 = 0.4
    # c = 0.5·1/3 + 0.5·0.4 = 0.3666…
    assert confidence(ind, votes, "normal", th) == pytest.approx(1 / 6 + 0.2, rel=1e-12)


def test_band_score_clipping_and_all_agree(app_config):
    th = app_config.regime.thresholds
    assert band_score(0.0, 0.40, 0.80) == 1.0  # 0.40/0.40
    assert band_score(100.0, 70.0, 45.0) == 1.0  # 30/25 clipped
    assert band_score(0.60, 0.40, 0.80) == pytest.approx(0.5)  # centre of the normal band
    ind = {"realized_vol_7d": 2.0, "pct_above_20ma": 0.0, "breadth_thrust": 0.0}
    votes = vote(ind, th)
    assert set(votes.values()) == {"volatile"}
    assert confidence(ind, votes, "volatile", th) == 1.0
    weights = app_config.regime.weights
    assert blend_weights("volatile", 1.0, weights) == pytest.approx({"momentum": 0.3, "technical": 0.2, "volume": 0.3, "quality": 0.2})
    assert blend_weights("volatile", 0.0, weights) == pytest.approx({"momentum": 0.35, "technical": 0.25, "volume": 0.25, "quality": 0.15})


def test_next_refresh():
    d = lambda s: datetime.fromisoformat(s).replace(tzinfo=UTC)
    assert next_refresh(d("2021-05-01T00:00:00"), 4) == d("2021-05-01T04:00:00")
    assert next_refresh(d("2021-05-01T03:59:59"), 4) == d("2021-05-01T04:00:00")
    assert next_refresh(d("2021-05-01T04:00:00"), 4) == d("2021-05-01T08:00:00")
    assert next_refresh(d("2021-05-01T22:30:00"), 4) == d("2021-05-02T00:00:00")
    assert next_refresh(d("2021-05-01T21:00:00"), 5) == d("2021-05-02T00:00:00")  # cron 0 */5: 0,5,10,15,20
    assert next_refresh(d("2021-05-01T10:15:00"), 1) == d("2021-05-01T11:00:00")


@settings(max_examples=200, deadline=None)
@given(
    vol=st.floats(0, 5, allow_nan=False),
    pct=st.floats(0, 100, allow_nan=False),
    thrust=st.floats(0, 1, allow_nan=False),
)
def test_blend_sums_to_one_and_confidence_bounded(app_config, vol, pct, thrust):
    rc = app_config.regime
    ind = {"realized_vol_7d": vol, "pct_above_20ma": pct, "breadth_thrust": thrust}
    votes = vote(ind, rc.thresholds)
    label = majority(votes)
    c = confidence(ind, votes, label, rc.thresholds)
    assert 0.0 <= c <= 1.0
    agreeing = sum(v == label for v in votes.values())
    assert agreeing >= 1
    assert c >= 0.5 * agreeing / 3 - 1e-12  # the vote share alone
    blend = blend_weights(label, c, rc.weights)
    assert set(blend) == set(FACTORS)
    assert sum(blend.values()) == pytest.approx(1.0, abs=1e-12)
    assert all(w >= 0 for w in blend.values())


# ------------------------------------------------------------------ snapshot level


def _hand_hourly_bars(hourly_bars):
    """BTC alternating ±1% hourly (flat period closes), UP rising, DOWN falling, SHORT rising for 15 days.

    On okx: UP with fewer bars and a falling path (never its primary venue: fewer periods),
    BTC with 100 bars and a huge volume (not enough bars for the vol window → kraken is used).
    """
    n = 720
    btc = 30000.0 * np.exp(np.r_[0.0, np.cumsum(np.tile([0.01, -0.01], n // 2))][1:])
    frames = [
        hourly_bars("BTC/USD", "kraken", btc, 100.0, T),
        hourly_bars("UP/USD", "kraken", np.linspace(50.0, 100.0, n), 1000.0, T),
        hourly_bars("DOWN/USD", "kraken", np.linspace(100.0, 50.0, n), 1000.0, T),
        hourly_bars("SHORT/USD", "coinbase", np.linspace(10.0, 20.0, 360), 10_000.0, T),
        hourly_bars("UP/USD", "okx", np.linspace(200.0, 10.0, 600), 1e6, T),
        hourly_bars("BTC/USD", "okx", np.linspace(10.0, 100.0, 100), 1e9, T),
    ]
    return frames


def test_compute_regime_hand_snapshot(hourly_bars, make_snapshot, app_config):
    snap = make_snapshot(_hand_hourly_bars(hourly_bars), T)
    ranking = rank_universe(snap, app_config, validate=True)
    assert ranking["eligible"].all()
    result = compute_regime(snap, ranking, app_config, validate=True)

    vol = 0.01 * math.sqrt(168 / 167) * math.sqrt(24 * 365)  # ≈ 0.9387 → volatile
    pct = 100.0 / 3.0  # UP above; DOWN below; BTC flat (equal, not above); SHORT left out → volatile
    # ratios: d=0..13 UP, SHORT up and DOWN down → 2/3; d=14..28 UP up, DOWN down → 1/2 (29 comparisons).
    # EMA seeded at 1/2 stays 1/2 for 15 values, then closes (9/11) of the gap to 2/3 per step, 14 times.
    thrust = 2 / 3 - (2 / 3 - 1 / 2) * (9 / 11) ** 14  # ≈ 0.6566 → calm
    assert result.indicators == pytest.approx({"realized_vol_7d": vol, "pct_above_20ma": pct, "breadth_thrust": thrust}, rel=1e-9)
    assert result.details["n_thrust_comparisons"] == 29
    assert result.details["benchmark_venue"] == "kraken"
    assert result.details["primary_venues"]["UP/USD"] == "kraken"
    assert result.votes == {"vol_vote": "volatile", "ma_vote": "volatile", "breadth_vote": "calm"}
    assert result.label == "volatile"
    conf = 0.5 * 2 / 3 + 0.5 * ((vol - 0.80) / 0.40 + (45 - pct) / 25) / 2
    assert result.confidence == pytest.approx(conf, rel=1e-9)
    assert result.weight_blend["momentum"] == pytest.approx(conf * 0.30 + (1 - conf) * 0.35)

    d = result.to_dict()
    assert set(d) == {
        "timestamp", "regime", "indicators", "confidence", "votes", "weight_blend", "next_refresh",
        "as_of", "universe_size", "benchmark", "thresholds",
    }
    assert d["timestamp"] == d["as_of"] == "2021-05-01T00:00:00Z"
    assert d["next_refresh"] == "2021-05-01T04:00:00Z"
    assert d["regime"] == "volatile" and d["universe_size"] == 4 and d["benchmark"] == "BTC/USD"
    assert set(d["indicators"]) == {"realized_vol_7d", "pct_above_20ma", "breadth_thrust"}
    assert set(d["votes"]) == {"vol_vote", "ma_vote", "breadth_vote"}
    assert set(d["weight_blend"]) == set(FACTORS)
    assert d["thresholds"]["realized_vol_7d"] == {"calm": 0.40, "volatile": 0.80}
    assert json.loads(json.dumps(d)) == d  # plain JSON types
    assert RegimeResult.from_dict({**d, "partition_key": "x"}).to_dict() == d
    assert compute_indicators(snap, ranking, app_config, validate=True) == result.indicators


def test_universe_size_cap(hourly_bars, make_snapshot, app_config):
    snap = make_snapshot(_hand_hourly_bars(hourly_bars), T)
    ranking = rank_universe(snap, app_config)
    cfg = app_config.model_copy(update={"universe": app_config.universe.model_copy(update={"regime_universe_size": 2})})
    res = compute_regime(snap, ranking, cfg)
    top2 = ranking.sort_values("rank")["symbol"].head(2).tolist()
    assert res.universe_size == 2 and res.details["symbols"] == top2


def test_missing_benchmark_and_empty_universe(hourly_bars, make_snapshot, app_config):
    frames = [f for f in _hand_hourly_bars(hourly_bars) if f["symbol"].iloc[0] != "BTC/USD"]
    snap = make_snapshot(frames, T)
    ranking = rank_universe(snap, app_config)
    with pytest.raises(ValueError, match="benchmark BTC/USD"):
        compute_regime(snap, ranking, app_config)
    full = make_snapshot(_hand_hourly_bars(hourly_bars), T)
    empty = rank_universe(full, app_config).iloc[0:0]
    with pytest.raises(ValueError, match="no eligible symbols"):
        compute_regime(full, empty, app_config)
    excluded = rank_universe(full, app_config).assign(eligible=False, rank=pd.NA)
    with pytest.raises(ValueError, match="no eligible symbols"):
        compute_indicators(full, excluded, app_config)


def test_short_benchmark_history(hourly_bars, make_snapshot, app_config):
    frames = _hand_hourly_bars(hourly_bars)
    frames[0] = frames[0].iloc[-100:]
    frames = [f for f in frames if not (f["symbol"].iloc[0] == "BTC/USD" and f["venue"].iloc[0] == "okx")]
    snap = make_snapshot(frames, T)
    with pytest.raises(ValueError, match="realized_vol_7d needs 169"):
        compute_regime(snap, rank_universe(snap, app_config), app_config)


def test_daily_snapshot_uses_fallback_and_30_comparisons(daily_bars, make_snapshot, app_config):
    rng = np.random.default_rng(3)
    frames = [daily_bars(s, "kraken", 100 * np.exp(np.cumsum(rng.normal(0, 0.03, 40))), 1e5, T) for s in ("BTC/USD", "A/USD", "B/USD")]
    snap = make_snapshot(frames, T, timeframe="1d")
    res = compute_regime(snap, rank_universe(snap, app_config), app_config)
    closes = frames[0]["close"].to_numpy()
    rets = [math.log(closes[i + 1] / closes[i]) for i in range(len(closes) - 8, len(closes) - 1)]
    assert res.indicators["realized_vol_7d"] == pytest.approx(statistics.stdev(rets) * math.sqrt(365), rel=1e-10)
    assert res.details["n_thrust_comparisons"] == 30


@settings(max_examples=10, deadline=None)
@given(perm_seed=st.integers(0, 2**32 - 1))
def test_regime_shuffle_invariant(hourly_bars, make_snapshot, app_config, perm_seed):
    bars = pd.concat(_hand_hourly_bars(hourly_bars), ignore_index=True)
    rng = np.random.default_rng(11)
    bars["close"] = bars["close"] * np.exp(rng.normal(0, 0.01, len(bars)))  # break the symmetries
    base_snap = make_snapshot(bars, T)
    base = compute_regime(base_snap, rank_universe(base_snap, app_config), app_config).to_dict()
    shuffled = bars.sample(frac=1.0, random_state=np.random.RandomState(perm_seed)).reset_index(drop=True)
    snap = make_snapshot(shuffled, T)
    assert compute_regime(snap, rank_universe(snap, app_config), app_config).to_dict() == base


@settings(max_examples=10, deadline=None)
@given(
    extra=st.lists(
        st.tuples(
            st.sampled_from(["BTC/USD", "UP/USD", "DOWN/USD", "SHORT/USD", "LATE/USD"]),
            st.sampled_from(["kraken", "okx", "coinbase"]),
            st.integers(-59, 72 * 60),  # minutes after T for the open; every such bar closes after T
            st.floats(0.01, 1e6),
            st.floats(0, 1e9),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_regime_ignores_bars_after_T(hourly_bars, make_snapshot, app_config, extra):
    bars = pd.concat(_hand_hourly_bars(hourly_bars), ignore_index=True)
    base_snap = make_snapshot(bars, T)
    ranking = rank_universe(base_snap, app_config)
    base = compute_regime(base_snap, ranking, app_config).to_dict()
    t = pd.Timestamp(T)
    late = pd.DataFrame(
        [
            {"venue": v, "symbol": s, "timestamp": t + pd.Timedelta(minutes=m), "open": c, "high": c, "low": c, "close": c, "volume": vol}
            for s, v, m, c, vol in extra
        ]
    )
    snap = make_snapshot(pd.concat([bars, late], ignore_index=True), T, markets=base_snap.markets)
    ranking2 = rank_universe(snap, app_config)
    pd.testing.assert_frame_equal(ranking, ranking2)
    assert compute_regime(snap, ranking2, app_config).to_dict() == base


# ------------------------------------------------------------------ real daily history (2021)


@pytest.fixture(scope="module")
def real_daily():
    folder = REAL_DATA / "daily"
    if not folder.is_dir():
        pytest.skip(f"real data not found at {folder}")
    frames = []
    for path in sorted(folder.glob("*.csv")):
        df = pd.read_csv(path)
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
        df["symbol"] = path.stem.removesuffix("-USD") + "/USD"
        df["venue"] = "kraken"
        frames.append(df)
    bars = pd.concat(frames, ignore_index=True)[["venue", "symbol", "timestamp", "open", "high", "low", "close", "volume"]]
    # plain-python view for the reference computation: {symbol: {date: (close, volume)}}
    ref: dict[str, dict[pd.Timestamp, tuple[float, float]]] = {}
    for sym, ts, close, volume in zip(bars["symbol"], bars["timestamp"], bars["close"], bars["volume"]):
        ref.setdefault(sym, {})[ts] = (float(close), float(volume))
    return bars, ref


def _reference(ref, t: pd.Timestamp, cfg) -> dict:
    """Straightforward loops over the raw daily bars (period d = the day opening at T − (d+1) days)."""
    day = pd.Timedelta(days=1)
    universe = []
    for sym, rows in ref.items():
        days = sorted(ts for ts in rows if ts + day <= t)
        if sym.split("/")[0] in cfg.market.excluded_bases or len(days) < cfg.universe.min_periods:
            continue
        if t - day not in rows:  # SPEC §2: no bar in period 0 → inactive (ALGO, CHZ, OMG end of Dec 2021)
            continue
        last7 = days[-7:]
        adv = sum(rows[ts][0] * rows[ts][1] for ts in last7) / len(last7)
        if adv >= cfg.universe.min_adv_usd:
            universe.append((-adv, sym))
    universe = [s for _, s in sorted(universe)][: cfg.universe.regime_universe_size]

    btc = ref["BTC/USD"]
    btc_days = sorted(ts for ts in btc if ts + day <= t)[-8:]
    rets = [math.log(btc[btc_days[i + 1]][0] / btc[btc_days[i]][0]) for i in range(7)]
    vol = statistics.stdev(rets) * math.sqrt(365)

    def close(sym, d):
        row = ref[sym].get(t - (d + 1) * day)
        return None if row is None else row[0]

    above = counted = 0
    for sym in universe:
        closes = [close(sym, d) for d in range(20)]
        if any(c is None for c in closes):
            continue
        counted += 1
        above += closes[0] > sum(closes) / 20
    pct = 100.0 * above / counted

    ratios = []  # index d
    for d in range(30):
        adv = dec = 0
        for sym in universe:
            a, b = close(sym, d), close(sym, d + 1)
            if a is None or b is None:
                continue
            adv += a > b
            dec += a < b
        ratios.append(adv / (adv + dec) if adv + dec else 0.5)
    alpha = 2 / 11
    ema = ratios[29]
    for d in range(28, -1, -1):
        ema = alpha * ratios[d] + (1 - alpha) * ema
    return {"realized_vol_7d": vol, "pct_above_20ma": pct, "breadth_thrust": ema, "universe": universe}


@pytest.mark.parametrize("when", ["2021-01-15", "2021-03-01", "2021-05-20", "2021-09-07", "2021-12-31"])
def test_real_daily_history_matches_reference(real_daily, make_snapshot, app_config, when):
    bars, ref = real_daily
    t = pd.Timestamp(when, tz="UTC")
    snap = make_snapshot(bars, t, timeframe="1d")  # includes bars after T: must be ignored
    ranking = rank_universe(snap, app_config)
    result = compute_regime(snap, ranking, app_config)
    expected = _reference(ref, t, app_config)
    assert result.details["symbols"] == expected["universe"]
    for key in ("realized_vol_7d", "pct_above_20ma", "breadth_thrust"):
        assert result.indicators[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12), key
    assert result.details["n_thrust_comparisons"] == 30


def test_real_daily_votes_vary_over_2021(real_daily, make_snapshot, app_config):
    bars, _ = real_daily
    seen = {"vol_vote": set(), "ma_vote": set(), "breadth_vote": set()}
    labels = set()
    for t in pd.date_range("2021-01-01", "2021-12-31", freq="5D", tz="UTC"):
        snap = make_snapshot(bars, t, timeframe="1d")
        res = compute_regime(snap, rank_universe(snap, app_config), app_config)
        for k, v in res.votes.items():
            seen[k].add(v)
        labels.add(res.label)
    for k, values in seen.items():
        assert len(values) >= 2, f"{k} never varies over 2021: {values}"
    assert len(labels) >= 2


# ------------------------------------------------------------------------------------------
# the array-level cores shared by single cycles and single-run backfills
# ------------------------------------------------------------------------------------------

from cryptorun_core.periods import PairPeriods  # noqa: E402
from cryptorun_core.regime import benchmark_closes, period_close_matrix  # noqa: E402


def _pair_periods(rows):
    """rows: (venue, symbol, n_bars list, usd list, close list)."""
    venue = np.array([r[0] for r in rows], dtype=object)
    symbol = np.array([r[1] for r in rows], dtype=object)
    out = PairPeriods.empty(venue, symbol, 3)
    for p, (_, _, n, usd, close) in enumerate(rows):
        out.n_bars[p], out.usd_volume[p] = n, usd
        out.close[p] = np.where(np.array(n) > 0, close, np.nan)
    return out


def test_primary_venue_most_periods_then_volume_then_config_order():
    venues = ("kraken", "okx", "coinbase")
    periods = _pair_periods([
        ("coinbase", "A/USD", [24, 24, 24], [1, 1, 1], [1.0, 2.0, 3.0]),   # most periods
        ("kraken", "A/USD", [24, 24, 0], [9, 9, 0], [4.0, 5.0, 6.0]),
        ("okx", "B/USD", [24, 24, 24], [5, 5, 5], [7.0, 8.0, 9.0]),
        ("kraken", "B/USD", [24, 24, 24], [5, 5, 6], [1.5, 2.5, 3.5]),     # larger Σ usd
        ("okx", "C/USD", [1, 0, 0], [2, 0, 0], [10.0, 0, 0]),
        ("kraken", "C/USD", [1, 0, 0], [2, 0, 0], [11.0, 0, 0]),           # tie: config order
        ("kraken", "D/USD", [0, 0, 0], [0, 0, 0], [0, 0, 0]),              # no period: no primary
    ])
    mat, primary = period_close_matrix(periods, ["A/USD", "B/USD", "C/USD", "D/USD", "E/USD"], 3, venues)
    assert primary == {"A/USD": "coinbase", "B/USD": "kraken", "C/USD": "kraken"}
    np.testing.assert_array_equal(mat[0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(mat[1], [1.5, 2.5, 3.5])
    np.testing.assert_array_equal(mat[2], [11.0, np.nan, np.nan])
    assert np.isnan(mat[3:]).all()


def test_benchmark_venue_full_window_then_bars_then_volume():
    venues = ("kraken", "okx", "coinbase")
    full = np.linspace(1, 2, 200)
    series = {"okx": (full, np.ones(200)), "coinbase": (full, np.full(200, 2.0)), "kraken": (full[:100], np.full(100, 9.0))}
    closes, venue = benchmark_closes(series, "BTC/USD", "1h", venues)
    assert venue == "coinbase" and len(closes) == 200
    with pytest.raises(ValueError, match="has only 100 closed 1h bars on kraken"):
        benchmark_closes({"kraken": series["kraken"]}, "BTC/USD", "1h", venues)
    with pytest.raises(ValueError, match="benchmark BTC/USD"):
        benchmark_closes({}, "BTC/USD", "1h", venues)
