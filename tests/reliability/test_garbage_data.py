"""Garbage data: every corruption is rejected or repaired with a reason code in explain.json —
no crash, no lookahead, schemas hold (run_scan validates its tables with the pandera schemas).

Injected through :class:`FaultyMarket` around the simulated market, then collect_snapshot →
rank_universe → compute_regime → run_scan, and once through the Dagster job in-process.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from cryptorun_core.artifacts import json_bytes
from cryptorun_core.config import load_config
from cryptorun_core.engine import run_scan
from cryptorun_core.market.simulated import SimulatedMarket
from cryptorun_core.market.snapshot import collect_snapshot
from cryptorun_core.regime import compute_regime
from cryptorun_core.schemas import SignalsSchema
from cryptorun_core.universe import rank_universe, segment_symbols

from .conftest import HOT_FOLDER, HOT_KEY, REGIME_KEY, failure_text
from .faults import BAR_FAULTS, BOOK_FAULTS, FaultyMarket

CFG = load_config(check_artifacts_dir=False)
T = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
SIM = SimulatedMarket(seed=7, n_symbols=40)
HOT = CFG.job("scan.hot")


def cycle(market, as_of=T, ranking=None, regime=None):
    if ranking is None:
        uni = collect_snapshot(market, None, as_of, limit=720, with_books=False)
        ranking = rank_universe(uni, CFG, hot_size=10, warm_size=20)
        regime = {**compute_regime(uni, ranking, CFG).to_dict(), "partition_key": REGIME_KEY}
    hot, warm = segment_symbols(ranking, "hot"), segment_symbols(ranking, "warm")
    snap = collect_snapshot(market, hot + warm, as_of, limit=720,
                            book_filter=lambda b: [(v, s) for v, s in b[["venue", "symbol"]].drop_duplicates().itertuples(index=False) if s in set(hot)])
    return ranking, regime, run_scan(snap, ranking, regime, CFG, HOT)


@pytest.fixture(scope="module")
def clean():
    return cycle(SIM)


@pytest.fixture(scope="module")
def target(clean):
    return segment_symbols(clean[0], "hot")[2]


def symbols_of(res) -> dict:
    return {s["symbol"]: s for s in res.explain["symbols"]}


def without_dq(explain: dict) -> dict:
    return {k: v for k, v in explain.items() if k not in ("data_quality", "venue_health")}  # the wrapper keeps its own accounting


EXPECTED_BAR = {  # fault → (reason, action) in explain.json data_quality.bars
    "nan_price": ("nan_price", "rejected"),
    "zero_price": ("non_positive_price", "rejected"),
    "negative_price": ("non_positive_price", "rejected"),
    "zero_volume": ("zero_volume", "kept"),
    "high_below_low": ("high_below_low", "rejected"),
    "duplicate_bar": ("duplicate_bar", "rejected"),
    "out_of_order": ("out_of_order", "repaired"),
    "bar_after_as_of": ("bar_after_as_of", "rejected"),
}


@pytest.fixture(scope="module")
def bar_runs(clean, target):
    venue = symbols_of(clean[2])[target]["venue"]  # corrupt the venue the symbol is scored on
    out = {}
    for kind in BAR_FAULTS:
        out[kind] = cycle(FaultyMarket(SIM, bar_faults={(venue, target): kind}))
    return venue, out


@pytest.mark.parametrize("kind", BAR_FAULTS)
def test_garbage_bars_are_rejected_or_repaired_with_a_reason(bar_runs, target, kind):
    venue, runs = bar_runs
    ranking, _, res = runs[kind]
    reason, action = EXPECTED_BAR[kind]
    dq = res.explain["data_quality"]
    mine = [b for b in dq["bars"] if (b["venue"], b["symbol"]) == (venue, target)]
    assert {(b["reason"], b["action"]) for b in mine} >= {(reason, action)}, mine
    assert dq["counts"][reason] >= 1
    assert target in symbols_of(res)  # still evaluated (other venues, or the bars that are sound)
    json_bytes(res.explain)  # JSON-ready, no NaN
    if kind == "duplicate_bar":  # one conflicting copy (dropped) and identical copies (collapsed)
        assert ("duplicate_bar", "repaired") in {(b["reason"], b["action"]) for b in mine}


def test_rejected_bars_are_treated_as_missing_never_as_values(bar_runs, target):
    """NaN, zero, negative and inverted bars on the same rows all give the same scan: a gap."""
    _, runs = bar_runs
    outs = [symbols_of(runs[k][2])[target] for k in ("nan_price", "zero_price", "negative_price", "high_below_low")]
    assert all(o == outs[0] for o in outs)
    assert outs[0]["bars"]["n_bars"] == 720 - 3


def test_sound_repairs_change_nothing_but_the_report(clean, bar_runs):
    """Out-of-order and after-T bars are repaired / dropped: every number equals the clean cycle's (no lookahead)."""
    _, runs = bar_runs
    for kind in ("out_of_order", "bar_after_as_of"):
        ranking, _, res = runs[kind]
        assert ranking.equals(clean[0])
        assert json_bytes(without_dq(res.explain)) == json_bytes(without_dq(clean[2].explain)), kind
        assert res.signals.equals(clean[2].signals)


def test_garbage_never_moves_the_universe(clean, target):
    """Rejected bars (on every venue) count as missing, never as values: NaN, negative, inverted
    bars and a conflicting duplicate on period 0 all give the ADV of an incomplete period 0 (the
    symbol stays eligible), and identical duplicates are not counted twice."""
    advs = {}
    for kind in ("nan_price", "negative_price", "duplicate_bar", "high_below_low"):
        ranking = cycle(FaultyMarket(SIM, bar_faults={(None, target): kind}))[0]
        row = ranking.set_index("symbol").loc[target]
        assert row["eligible"], kind
        advs[kind] = row["adv_usd"]
    assert len(set(advs.values())) == 1, advs
    assert advs["nan_price"] != clean[0].set_index("symbol").loc[target, "adv_usd"]  # period 0 no longer complete


def test_zero_volume_everywhere_is_excluded_by_adv_not_a_crash(clean, target):
    ranking, _, res = cycle(FaultyMarket(SIM, bar_faults={(None, target): "zero_volume"}))
    assert ranking.set_index("symbol").loc[target, "exclusion_reason"] == "adv_below_min"
    assert target not in symbols_of(res)


@pytest.mark.parametrize("kind", BOOK_FAULTS)
def test_garbage_books_are_invalid_with_a_reason_and_the_venue_is_not_chosen(clean, target, kind):
    base = symbols_of(clean[2])[target]
    venue = base["venue"]
    _, _, res = cycle(FaultyMarket(SIM, book_faults={(venue, target): kind}), ranking=clean[0], regime=clean[1])
    dq = res.explain["data_quality"]
    got = {(b["venue"], b["symbol"], b["reason"]) for b in dq["books"]}
    assert (venue, target, kind) in got
    sym = symbols_of(res)[target]
    assert sym["venue"] != venue  # the broken book is never the symbol's venue
    assert sym["sources"] == base["sources"] - 1


def test_every_book_broken_means_no_book_not_a_crash(clean, target):
    market = FaultyMarket(SIM, book_faults={(None, target): "crossed_book"})
    _, _, res = cycle(market, ranking=clean[0], regime=clean[1])
    sym = symbols_of(res)[target]
    assert sym["book"]["has_book"] is False and sym["book"]["invalid_reason"] == "crossed_book"
    assert sym["decision"] == "reject" and sym["sources"] == 0


def test_symbols_that_vanish_between_cycles(clean):
    ranking, regime, _ = clean
    hot, warm = segment_symbols(ranking, "hot"), segment_symbols(ranking, "warm")
    later = T + timedelta(minutes=15)
    market = FaultyMarket(SIM, vanished={hot[1]: later, warm[0]: later})
    _, _, res = cycle(market, as_of=later, ranking=ranking, regime=regime)
    sym = symbols_of(res)[hot[1]]
    assert sym["decision"] == "reject" and sym["primary_reason"] == "insufficient_history"
    assert sym["venue"] is None and sym["sources"] == 0
    assert {"symbol": hot[1], "reason": "not_listed"} in res.explain["data_quality"]["unavailable"]
    assert hot[1] not in set(res.signals["symbol"])


def test_garbage_through_the_dagster_job(pipeline, monkeypatch):
    """Several faults at once through the pipeline: the run succeeds and explain.json on disk
    carries the reason codes; signals.csv still satisfies its schema."""
    import cryptorun_core.market.factory as factory

    assert pipeline.run("regime_refresh", REGIME_KEY).success
    ranking = pd.read_parquet(pipeline.artifacts / ".pipeline" / HOT_FOLDER / "universe.parquet")
    hot = segment_symbols(ranking, "hot")
    original = factory.build_market_source
    bar_faults = {(None, hot[0]): "nan_price", ("kraken", hot[1]): "duplicate_bar", (None, hot[2]): "high_below_low"}
    book_faults = {("kraken", hot[3]): "crossed_book", ("okx", hot[4]): "absurd_spread", ("coinbase", hot[5]): "one_sided_book"}
    monkeypatch.setattr(factory, "build_market_source",
                        lambda config, job=None: FaultyMarket(original(config, job), bar_faults=bar_faults, book_faults=book_faults))
    result = pipeline.run("scan_hot", HOT_KEY)
    assert result.success, failure_text(result)
    folder = pipeline.artifacts / HOT_FOLDER
    explain = json.loads((folder / "explain.json").read_text())
    counts = explain["data_quality"]["counts"]
    assert counts.get("nan_price") and counts.get("duplicate_bar") and counts.get("high_below_low")
    books = {(b["venue"], b["symbol"], b["reason"]) for b in explain["data_quality"]["books"]}
    fetches = pd.read_parquet(pipeline.artifacts / ".pipeline" / HOT_FOLDER / "snapshots" / "scan_hot" / "fetches.parquet")
    asked = set(fetches.loc[fetches["kind"] == "book", ["venue", "symbol"]].itertuples(index=False, name=None))
    expected = {(v, sym, reason) for (v, sym), reason in book_faults.items() if (v, sym) in asked}
    assert expected and expected <= books
    signals = pd.read_csv(io.BytesIO((folder / "signals.csv").read_bytes()), keep_default_na=False, na_values=[""])
    if len(signals):
        SignalsSchema.validate(signals)
