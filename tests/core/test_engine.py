"""run_scan end to end on hand-made snapshots: shapes, SPEC §9 columns, determinism, point in time."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _builders as B  # noqa: E402

from cryptorun_core.artifacts import PREMOVE_COLUMNS, SIGNALS_COLUMNS, WARM_SIGNALS_COLUMNS, csv_bytes, json_bytes  # noqa: E402
from cryptorun_core.config import FACTORS  # noqa: E402
from cryptorun_core.engine import ScanResult, run_scan  # noqa: E402
from cryptorun_core.gates import GATES  # noqa: E402
from cryptorun_core.market.snapshot import MarketSnapshot  # noqa: E402

CFG = B.config()
HOT = CFG.job("scan.hot")
WARM = CFG.job("scan.warm")
EXTRAS = ["tier", "technical", "volume", "quality", "vadr_min", "depth_badge"]


@pytest.fixture(scope="module")
def hot():
    snap, rk = B.universe(30, strong=(0, 3, 5), seed=1)
    return snap, rk, run_scan(snap, rk, B.regime("normal"), CFG, HOT)


def _bytes(res: ScanResult, kind="signals"):
    out = [csv_bytes(res.signals, kind), json_bytes(res.explain), res.evaluated.to_csv(index=False).encode()]
    if res.premove is not None:
        out.append(csv_bytes(res.premove, "premove"))
    return out


def test_hot_scan_shapes(hot):
    snap, rk, res = hot
    assert list(res.signals.columns) == list(SIGNALS_COLUMNS) + EXTRAS
    assert res.evaluated["symbol"].tolist() == rk["symbol"].tolist()  # hot segment, rank order
    assert set(res.signals["symbol"]) == set(res.evaluated.loc[res.evaluated["decision"] == "entry", "symbol"])
    assert {"S000/USD", "S003/USD", "S005/USD"} <= set(res.signals["symbol"])  # the planted uptrends
    s = res.signals["score"].to_numpy()
    assert (s[:-1] >= s[1:]).all()
    assert (res.signals["timestamp"] == "2026-11-10T12:00:00Z").all()
    assert set(res.signals["fresh"]) == {"●"} and (res.signals["regime"] == "normal").all()
    assert list(res.premove.columns) == list(PREMOVE_COLUMNS) and len(res.premove) == 30
    ev = res.evaluated
    for g in GATES:
        assert f"gate_{g}" in ev.columns
    assert ((ev["score"] >= 0) & (ev["score"] <= 100)).all()
    header = csv_bytes(res.signals, "signals").decode().split("\n")[0]
    assert header.startswith("timestamp,symbol,score,momentum_core,vadr,spread_bps,depth_usd,regime,fresh,venue,sources,")


def test_explain_content(hot):
    snap, rk, res = hot
    ex = res.explain
    assert ex["as_of"] == "2026-11-10T12:00:00Z" and ex["job"] == "scan.hot"
    assert ex["regime"] == {"label": "normal", "confidence": 0.6, "as_of": "2026-11-10T12:00:00Z", "partition_key": "2026-11-10-08:00"}
    assert set(ex["weights"]["factors"]) == set(FACTORS)
    assert ex["weights"]["momentum_timeframes"] == {"1h": 0.2, "4h": 0.35, "12h": 0.3, "24h": 0.15, "7d": 0.0}
    assert ex["thresholds"]["score_min"] == 75.0
    assert ex["thresholds"]["spread_max_bps"] == {"tier1": 25.0, "tier2": 50.0, "tier3": 80.0}
    assert set(ex["hashes"]) >= {"config", "bars", "books"} and all(len(h) == 64 for h in ex["hashes"].values())
    c = ex["counts"]
    assert c["evaluated"] == 30 and c["entries"] == len(res.signals)
    assert sum(c["rejections_first_failure"].values()) == 30 - c["entries"]
    assert all(c["rejections_all_failures"][g] >= c["rejections_first_failure"][g] for g in GATES)
    assert ex["venue_health"] == snap.health
    assert [s["symbol"] for s in ex["symbols"]] == rk["symbol"].tolist()
    for sym in ex["symbols"]:
        assert [g["gate"] for g in sym["gates"]] == list(GATES)
        total = sum(sym["factors"][f]["contribution"] for f in FACTORS)
        assert total == pytest.approx(sym["score"], abs=0.06)
        assert sym["decision"] in ("entry", "reject")
    json_bytes(ex)  # JSON-ready


def test_same_inputs_same_bytes(hot):
    snap, rk, res = hot
    again = run_scan(snap, rk, B.regime("normal"), CFG, HOT)
    assert _bytes(again) == _bytes(res)


def _shuffled(snap: MarketSnapshot, seed: int) -> MarketSnapshot:
    return MarketSnapshot(as_of=snap.as_of, timeframe=snap.timeframe, source=snap.source,
                          bars=snap.bars.sample(frac=1, random_state=seed).reset_index(drop=True),
                          books=snap.books.sample(frac=1, random_state=seed + 1).reset_index(drop=True),
                          fetches=snap.fetches.sample(frac=1, random_state=seed), markets=snap.markets, health=snap.health)


def test_shuffling_input_rows_changes_nothing(hot):
    snap, rk, res = hot
    out = run_scan(_shuffled(snap, 11), rk.sample(frac=1, random_state=2), B.regime("normal"), CFG, HOT)
    assert _bytes(out) == _bytes(res)


def _with_future(snap: MarketSnapshot, hours: int = 5) -> MarketSnapshot:
    """Append bars after T (and a book stamped after T) — data that did not exist at T."""
    t = pd.Timestamp(snap.as_of)
    last = snap.bars.sort_values("timestamp").groupby(["venue", "symbol"]).tail(1)
    extra = []
    for k in range(hours):
        f = last.copy()
        f["timestamp"] = t + pd.Timedelta(hours=k)  # bars opening at T or later close after T
        f[["open", "high", "low", "close"]] = f[["open", "high", "low", "close"]] * (1.5 + k)
        f["volume"] = f["volume"] * 50
        extra.append(f)
    future_book = snap.books.copy()
    future_book["book_time"] = t + pd.Timedelta(seconds=30)
    future_book["amount"] = future_book["amount"] * 9
    return MarketSnapshot(as_of=snap.as_of, timeframe=snap.timeframe, source=snap.source,
                          bars=pd.concat([snap.bars, *extra], ignore_index=True),
                          books=pd.concat([snap.books, future_book], ignore_index=True),
                          fetches=snap.fetches, markets=snap.markets, health=snap.health)


def test_data_after_T_changes_nothing(hot):
    snap, rk, res = hot
    out = run_scan(_with_future(snap), rk, B.regime("normal"), CFG, HOT)
    assert _bytes(out) == _bytes(res)


def test_warm_scan_columns_cache_and_relaxed_thresholds():
    snap, rk = B.universe(30, strong=(12, 15), seed=4)
    rk["segment"] = ["hot"] * 10 + ["warm"] * 20
    f = snap.fetches.copy()
    f["from_cache"] = f["venue"] != "coinbase"
    f["ttl_remaining_s"] = np.where(f["from_cache"], 900.0, np.nan)
    snap = MarketSnapshot(as_of=snap.as_of, timeframe="1h", source="test", bars=snap.bars, books=snap.books, fetches=f,
                          markets=snap.markets, health=snap.health)
    res = run_scan(snap, rk, B.regime("calm", 0.8), CFG, WARM)
    assert res.premove is None
    assert res.evaluated["symbol"].tolist() == rk["symbol"].tolist()[10:]
    assert list(res.signals.columns) == list(WARM_SIGNALS_COLUMNS) + EXTRAS
    assert len(res.signals) >= 1
    for row in res.signals.itertuples():
        assert row.cached == (row.venue != "coinbase")
        assert (row.ttl_remaining_s == 900.0) if row.cached else np.isnan(row.ttl_remaining_s)
    ex = res.explain
    assert ex["job"] == "scan.warm" and ex["thresholds"]["score_min"] == 65.0
    assert ex["thresholds"]["spread_max_bps"]["tier1"] == pytest.approx(37.5)
    assert ex["thresholds"]["depth_min_usd"]["tier1"] == pytest.approx(75_000)
    assert ex["thresholds"]["vadr"]["vadr_min"]["tier1"] == 1.85  # warm: tier minimum only
    assert ex["weights"]["momentum_timeframes"]["7d"] == 0.05  # calm timeframe weights
    header = csv_bytes(res.signals, "warm_signals").decode().split("\n")[0]
    assert header.startswith(",".join(WARM_SIGNALS_COLUMNS) + ",tier,")


def test_vadr_p80_spans_hot_and_warm():
    snap, rk = B.universe(8, n_warm=14, seed=2, book_levels=20)
    res = run_scan(snap, rk, B.regime(), CFG, HOT)
    v = res.explain["thresholds"]["vadr"]
    assert v["n_unfrozen"] == 22 and v["p80"] is not None and v["used"]
    assert len(res.evaluated) == 8
    assert res.evaluated["vadr_min"].to_numpy() == pytest.approx(np.full(8, max(v["p80"], 1.85)), abs=1e-4)
    only_hot = rk[rk["segment"] == "hot"]
    res2 = run_scan(snap, only_hot, B.regime(), CFG, HOT)
    assert res2.explain["thresholds"]["vadr"]["p80"] is None
    assert (res2.evaluated["vadr_min"] == 1.85).all()


def test_missing_book_rejects_with_no_book_gates():
    snap, rk = B.universe(12, seed=3, book_levels=10)
    books = snap.books[snap.books["symbol"] != "S002/USD"]
    snap = MarketSnapshot(as_of=snap.as_of, timeframe="1h", source="t", bars=snap.bars, books=books, fetches=snap.fetches,
                          markets=snap.markets, health={})
    res = run_scan(snap, rk, B.regime(), CFG, HOT)
    row = res.evaluated.set_index("symbol").loc["S002/USD"]
    assert row["decision"] == "reject" and row["primary_reason"] == "stale_data" and row["fresh"] == "○"
    sym = next(s for s in res.explain["symbols"] if s["symbol"] == "S002/USD")
    gates = {g["gate"]: g for g in sym["gates"]}
    assert gates["spread"]["reason"] == "no_book" and gates["depth"]["reason"] == "no_book"
    assert sym["venue"] == "kraken"  # fallback: most bars, then venue order


def test_short_history_is_rejected_and_frozen():
    snap, rk = B.universe(10, n_bars=300, seed=5, book_levels=10)
    res = run_scan(snap, rk, B.regime(), CFG, HOT)
    assert res.evaluated["vadr_frozen"].all()
    assert (res.evaluated["gate_vadr"] == False).all()  # noqa: E712
    snap, rk = B.universe(10, n_bars=150, seed=5, book_levels=10)
    res = run_scan(snap, rk, B.regime(), CFG, HOT)
    assert (res.evaluated["primary_reason"] == "insufficient_history").all()
    assert res.signals.empty and list(res.signals.columns) == list(SIGNALS_COLUMNS) + EXTRAS


def test_refusals():
    snap, rk = B.universe(10, n_bars=200, seed=6, book_levels=5)
    daily = MarketSnapshot(as_of=snap.as_of, timeframe="1d", source="t", bars=snap.bars, books=snap.books,
                           fetches=snap.fetches, markets=snap.markets)
    with pytest.raises(ValueError, match="daily-only"):
        run_scan(daily, rk, B.regime(), CFG, HOT)
    agg = snap.books.copy()
    agg.loc[agg.index[:3], "venue"] = "coingecko"
    bad = MarketSnapshot(as_of=snap.as_of, timeframe="1h", source="t", bars=snap.bars, books=agg, fetches=snap.fetches,
                         markets=snap.markets)
    with pytest.raises(ValueError, match="aggregator"):
        run_scan(bad, rk, B.regime(), CFG, HOT)
    with pytest.raises(ValueError, match="after"):
        run_scan(snap, rk, B.regime(as_of=B.T0 + pd.Timedelta(hours=1)), CFG, HOT)
    with pytest.raises(ValueError, match="regime label"):
        run_scan(snap, rk, {**B.regime(), "regime": "bubbly"}, CFG, HOT)


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["calm", "normal", "volatile"]), st.integers(0, 3))
def test_properties_scores_bounded_shuffle_and_future_invariant(seed, label, strong):
    snap, rk = B.universe(12, n_bars=400, seed=seed, book_levels=8, strong=tuple(range(strong)))
    res = run_scan(snap, rk, B.regime(label), CFG, HOT)
    for col in ("score", "momentum_core", "technical", "volume", "quality"):
        vals = res.evaluated[col].dropna().to_numpy()
        assert ((vals >= 0) & (vals <= 100)).all()
    assert ((res.premove["premove_score"] >= 0) & (res.premove["premove_score"] <= 100)).all()
    assert _bytes(run_scan(_shuffled(snap, seed), rk.sample(frac=1, random_state=seed), B.regime(label), CFG, HOT)) == _bytes(res)
    assert _bytes(run_scan(_with_future(snap, 3), rk, B.regime(label), CFG, HOT)) == _bytes(res)


def test_config_hash_ignores_machine_local_paths():
    from cryptorun_core.explain import config_hash

    moved = CFG.model_copy(update={"global_": CFG.global_.model_copy(update={"artifacts_dir": "/elsewhere/artifacts"})})
    assert config_hash(moved) == config_hash(CFG)
    stricter = CFG.model_copy(update={"gates": CFG.gates.model_copy(update={"history_min_bars": 200})})
    assert config_hash(stricter) != config_hash(CFG)


def test_book_levels_in_blocks_of_pairs_change_nothing(hot, monkeypatch):
    import cryptorun_core.scan_inputs as E

    snap, rk, res = hot
    t = pd.Timestamp(snap.as_of)
    venues, symbols = tuple(HOT.config.venues), rk["symbol"].tolist()
    whole = E.scan_books(snap, t, venues, symbols, CFG)
    assert len(list(whole.blocks())) == 1
    monkeypatch.setattr(E, "_BOOK_BLOCK_LEVELS", 150)  # about one run per block, some pairs alone over the size
    blocked = E.scan_books(snap, t, venues, symbols, CFG)
    assert len(list(blocked.blocks())) > len(symbols)
    pd.testing.assert_frame_equal(pd.DataFrame(blocked.metrics), pd.DataFrame(whole.metrics))
    assert E.books_hash(blocked) == E.books_hash(whole)
    assert sorted(blocked.rows.tolist()) == sorted(whole.rows.tolist()) and len(whole.rows) == int(whole.n_levels.sum())
    assert _bytes(run_scan(snap, rk, B.regime("normal"), CFG, HOT)) == _bytes(res)


def test_books_stamped_after_T_or_elsewhere_are_not_used(hot):
    import dataclasses

    import cryptorun_core.scan_inputs as E

    snap, rk, _ = hot
    t = pd.Timestamp(snap.as_of)
    books = snap.books.copy()
    late = books["symbol"] == rk["symbol"].iloc[0]
    books.loc[late, "book_time"] = t + pd.Timedelta(minutes=1)  # every level of one symbol is after T
    kb = E.scan_books(dataclasses.replace(snap, books=books), t, ("okx",), rk["symbol"].tolist(), CFG)
    assert rk["symbol"].iloc[0] not in set(kb.metrics["symbol"]) and set(kb.metrics["venue"]) == {"okx"}
    none = E.scan_books(snap, t, ("okx",), [], CFG)
    assert len(none.runs) == 0 and len(none.metrics["venue"]) == 0 and len(none.rows) == 0
    assert E.books_hash(none) == E.books_hash(E.scan_books(snap, t, ("nowhere",), ["X"], CFG))
