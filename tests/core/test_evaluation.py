"""Signal evaluation: forward returns from bars closed after T, grouped statistics, cycles recomputed
point in time. Runs on the real hourly history and on a recording."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryptorun_core import evaluation
from cryptorun_core.config import load_config
from cryptorun_core.market.factory import build_market_source
from cryptorun_core.market.recorded import RecordedMarket
from cryptorun_core.market.recording import RecordingSource, record_cycle
from cryptorun_core.market.simulated import SimulatedMarket

REPO = Path(__file__).resolve().parents[2]
REAL_HOURLY = REPO.parent / "shared" / "data" / "real" / "hourly"


@pytest.fixture(scope="module")
def real():
    """The replay configuration of the real hourly history (``../shared/data/real``, see its README)."""
    if not REAL_HOURLY.is_dir():
        pytest.skip(f"real hourly OHLCV not found at {REAL_HOURLY}")
    return load_config(REPO / "config" / "replay_hourly.yaml", check_artifacts_dir=False)


def test_cycle_times_and_regime_tick():
    start, end = datetime(2021, 6, 1, 0, 5, tzinfo=UTC), datetime(2021, 6, 1, 1, 0, tzinfo=UTC)
    assert evaluation.cycle_times("*/15 * * * *", start, end)[0] == datetime(2021, 6, 1, 0, 15, tzinfo=UTC)
    assert len(evaluation.cycle_times("*/15 * * * *", start, end)) == 4
    assert len(evaluation.cycle_times("*/15 * * * *", start, end, step=timedelta(hours=1))) == 1
    assert evaluation.regime_tick("0 */4 * * *", datetime(2021, 6, 1, 7, 59, tzinfo=UTC)) == datetime(2021, 6, 1, 4, tzinfo=UTC)
    assert evaluation.regime_tick("0 */4 * * *", datetime(2021, 6, 1, 8, tzinfo=UTC)) == datetime(2021, 6, 1, 8, tzinfo=UTC)


def test_forward_returns_on_real_history_are_the_closes_after_t(real):
    source = build_market_source(real)
    t = datetime(2021, 6, 1, 12, tzinfo=UTC)
    ev = evaluation.Evaluator(source, real)
    rows = ev.cycle(real.job("scan.hot"), t)
    assert set(rows["symbol"]) == {"BTC/USD", "ETH/USD", "LTC/USD", "XRP/USD", "BCH/USD"}
    assert (rows["primary_reason"] == "stale_data").all()  # replayed history has no books
    out = ev.forward_returns(rows)
    hourly = pd.read_csv(REPO / "../shared/data/real/hourly/BTC-USD.csv", float_precision="round_trip")
    close = hourly.set_index(pd.to_datetime(hourly["timestamp"], utc=True))["close"]
    at_t = close[pd.Timestamp(t) - pd.Timedelta(hours=1)]  # the bar closing at T opened an hour before
    btc = out[out["symbol"] == "BTC/USD"].iloc[0]
    for h in evaluation.HORIZONS_H:
        assert btc[f"fwd_{h}h"] == pytest.approx(close[pd.Timestamp(t) + pd.Timedelta(hours=h - 1)] / at_t - 1, rel=1e-12)
    # the cycle itself never saw those bars: the same rows come out of a source that ends at T
    assert rows.equals(ev.cycle(real.job("scan.hot"), t))


def test_forward_returns_are_missing_where_the_history_ends(real):
    source = build_market_source(real)
    t = datetime(2022, 2, 3, 12, tzinfo=UTC)  # the data ends 2022-02-04T00:00Z
    out = evaluation.Evaluator(source, real).forward_returns(evaluation.Evaluator(source, real).cycle(real.job("scan.hot"), t))
    assert out["fwd_1h"].notna().all() and out["fwd_24h"].isna().all()


def test_summary_statistics_by_hand():
    rows = pd.DataFrame({
        "as_of": pd.Timestamp("2021-06-01", tz="UTC"), "job": "scan.hot", "segment": "hot",
        "symbol": list("ABCDE"), "venue": "kraken", "tier": ["tier1"] * 3 + ["tier2"] * 2, "regime": "calm",
        "score": [90.0, 80.0, 70.0, 60.0, 50.0], "decision": ["entry", "entry", "reject", "reject", "reject"],
        "score_gate": ["pass", "pass", "fail", "fail", "fail"],
        "primary_reason": ["entry", "entry", "score_below_threshold", "score_below_threshold", "insufficient_history"],
        "fwd_1h": [0.02, 0.01, -0.01, 0.0, np.nan], "fwd_4h": [0.04, -0.02, 0.01, -0.01, -0.03], "fwd_24h": np.nan,
    })
    s = evaluation.summarize(rows).set_index(["grouping", "group", "horizon"])
    entry = s.loc[("decision", "entry", "1h")]
    assert entry["count"] == 2 and entry["mean"] == pytest.approx(0.015) and entry["hit_rate"] == 1.0
    reject = s.loc[("decision", "reject", "1h")]
    assert reject["count"] == 2 and reject["median"] == pytest.approx(-0.005) and reject["hit_rate"] == 0.0
    # all, 4h: scores 90..50 vs returns .04 -.02 .01 -.01 -.03 -> ranks 5 4 3 2 1 vs 5 2 4 3 1
    rho = np.corrcoef([5, 4, 3, 2, 1], [5, 2, 4, 3, 1])[0, 1]
    assert s.loc[("all", "all", "4h"), "spearman_score"] == pytest.approx(rho)
    assert s.loc[("tier", "tier2", "4h"), "count"] == 2 and pd.isna(s.loc[("tier", "tier2", "4h"), "spearman_score"])
    assert s.loc[("all", "all", "24h"), "count"] == 0
    assert s.loc[("primary_reason", "insufficient_history", "1h"), "count"] == 0
    rep = evaluation.report(rows, datetime(2021, 6, 1, tzinfo=UTC), datetime(2021, 6, 2, tzinfo=UTC))
    assert rep["uses_data_after_t"] is True and "uses data after T" in rep["label"]


def test_evaluation_runs_on_a_recording(tmp_path, real):
    """Record the hot + warm reads of two days of cycles, then evaluate from the recording alone."""
    cfg = real.model_copy(update={"market": real.market.model_copy(update={"venues": ("kraken",)})})
    sim = SimulatedMarket(seed=3, n_symbols=12, venues=("kraken",))
    rec = RecordingSource(sim, tmp_path / "rec")
    t0 = datetime(2026, 11, 20, tzinfo=UTC)
    for i in range(0, 30, 2):
        record_cycle(rec, cfg, t0 + timedelta(hours=i))
    replay = RecordedMarket(tmp_path / "rec", ("kraken",), max_book_age_s=cfg.gates.fresh_max_book_age_s)
    ev = evaluation.Evaluator(replay, cfg)
    hot = cfg.job("scan.hot")
    # score_min 0: every book can matter, so the replay (which skips books as a live run does) reads them all
    job = hot.model_copy(update={"config": hot.config.model_copy(update={"score_min": 0.0})})
    rows = ev.evaluate([job], t0, t0 + timedelta(hours=4), step=timedelta(hours=2))
    assert rows["as_of"].nunique() == 3 and len(rows) >= 3 * 5
    assert rows["fwd_1h"].notna().all() and rows["fwd_24h"].notna().all()
    # books were recorded at these T: the freshness gate passes on the recording
    assert not (rows["primary_reason"] == "stale_data").all()
    # the same cycles on the simulated market itself give the same decisions and forward returns
    direct = evaluation.Evaluator(sim, cfg).evaluate([job], t0, t0 + timedelta(hours=4), step=timedelta(hours=2))
    pd.testing.assert_frame_equal(rows.reset_index(drop=True), direct.reset_index(drop=True))
