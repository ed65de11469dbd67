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


# ----------------------------------------------------------------------------------------------
# replay: every garbage row reaches the report, unreadable files are named, ended files inactive

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from cryptorun_core.market.replay import ReplayMarket  # noqa: E402
from cryptorun_core.market.snapshot import MarketSnapshot  # noqa: E402
from cryptorun_core.regime_window import compute_window, compute_windows  # noqa: E402

from ..pipeline_support import make_pipeline, small_config_dict, write_config  # noqa: E402

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real OHLCV fixtures not found at {REAL}")
REPLAY_SYMBOLS = ("BTC", "ETH", "ADA", "XRP", "DOGE", "BNB", "LTC", "LINK", "BCH", "ALGO", "EOS", "ETC", "TRX", "XLM")
RT = datetime(2021, 9, 15, tzinfo=timezone.utc)  # daily replay: T at 00:00, period 0 = 2021-09-14


def _replay_raw(tmp: Path, folder: Path, resolution: str = "1d") -> dict:
    raw = small_config_dict(tmp / "artifacts")
    raw["global"]["partitions_start"] = "2021-01-01T00:00:00Z"
    raw["market"]["source"] = "replay"
    raw["market"]["replay"] = {"path": str(folder), "resolution": resolution, "venue": "kraken"}
    raw["market"]["venues"] = ["kraken"]
    raw["market"]["microstructure_sources"] = ["kraken"]
    for job in raw["jobs"]:
        job["config"]["venues"] = ["kraken"]
    return raw


@pytest.fixture(scope="module")
def replay_base(tmp_path_factory):
    if not REAL.is_dir():
        pytest.skip(f"real OHLCV fixtures not found at {REAL}")
    root = tmp_path_factory.mktemp("replay")
    folder = root / "clean"
    folder.mkdir()
    for base in REPLAY_SYMBOLS:
        frame = pd.read_csv(REAL / "daily" / f"{base}-USD.csv", dtype=str)
        frame[(frame["timestamp"] >= "2021-06-01") & (frame["timestamp"] < "2021-09-15")].to_csv(folder / f"{base}-USD.csv", index=False)
    config = load_config(write_config(root / "config.yaml", _replay_raw(root, folder)))
    return root, folder, config


def _variant(replay_base, name: str, edit) -> Path:
    root, clean, _ = replay_base
    folder = root / name
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(clean, folder)
    edit(folder)
    return folder


def _window(replay_base, folder: Path, t=RT):
    return compute_window(ReplayMarket(folder, resolution="1d", venue="kraken"), replay_base[2], t, 10, 20)


def _rows(folder: Path, base: str) -> list[str]:
    return (folder / f"{base}-USD.csv").read_text().splitlines()


def _write_rows(folder: Path, base: str, rows: list[str]) -> None:
    (folder / f"{base}-USD.csv").write_text("\n".join(rows) + "\n")


def _day_row(rows: list[str], day: str) -> int:
    return next(i for i, r in enumerate(rows) if r.startswith(day))


def _scaled(row: str, column: str, factor: float) -> str:
    cells = row.split(",")
    i = ["timestamp", "open", "high", "low", "close", "volume"].index(column)
    cells[i] = repr(float(cells[i]) * factor)
    return ",".join(cells)


def _dq_bars(window) -> set[tuple]:
    return {(b["symbol"], b["reason"], b["action"], b["n_bars"]) for b in window.data_quality["bars"]}


@pytest.fixture(scope="module")
def replay_clean(replay_base):
    return _window(replay_base, replay_base[1])


@needs_real
@pytest.mark.parametrize("bad_first", [True, False], ids=["bad_copy_first", "bad_copy_last"])
def test_replay_conflicting_duplicate_is_dropped_as_a_pair_and_reported(replay_base, replay_clean, bad_first):
    """Observed before: replay kept the file's first copy, silently — with the bad copy (30× the
    volume) first ETH's ADV quintupled and it ranked 1st, and data_quality stayed empty."""
    def edit(folder):
        rows = _rows(folder, "ETH")
        i = _day_row(rows, "2021-09-12")
        bad = _scaled(rows[i], "volume", 30.0)
        rows[i:i + 1] = [bad, rows[i]] if bad_first else [rows[i], bad]
        _write_rows(folder, "ETH", rows)

    window = _window(replay_base, _variant(replay_base, f"dup_{bad_first}", edit))
    assert ("ETH/USD", "duplicate_bar", "rejected", 2) in _dq_bars(window)
    assert window.data_quality["counts"] == {"duplicate_bar": 1}
    eth, eth_clean = (w.ranking.set_index("symbol").loc["ETH/USD"] for w in (window, replay_clean))
    assert eth["rank"] == eth_clean["rank"] and eth["adv_usd"] == pytest.approx(eth_clean["adv_usd"], rel=0.5)


@needs_real
def test_replay_conflicting_duplicates_give_the_same_bytes_whatever_the_file_order(replay_base):
    def edit(bad_first):
        def apply(folder):
            rows = _rows(folder, "ETH")
            i = _day_row(rows, "2021-09-12")
            bad = _scaled(rows[i], "close", 1.5)
            rows[i:i + 1] = [bad, rows[i]] if bad_first else [rows[i], bad]
            _write_rows(folder, "ETH", rows)
        return apply

    a = _window(replay_base, _variant(replay_base, "order_a", edit(True)))
    b = _window(replay_base, _variant(replay_base, "order_b", edit(False)))
    pd.testing.assert_frame_equal(a.ranking, b.ranking, check_exact=True)
    assert json_bytes(a.regime_json("k")) == json_bytes(b.regime_json("k")) and a.data_quality == b.data_quality


@needs_real
def test_replay_identical_duplicate_is_collapsed_and_reported(replay_base, replay_clean):
    def edit(folder):
        rows = _rows(folder, "BTC")
        i = _day_row(rows, "2021-09-10")
        rows.insert(i, rows[i])
        _write_rows(folder, "BTC", rows)

    window = _window(replay_base, _variant(replay_base, "identical", edit))
    assert _dq_bars(window) == {("BTC/USD", "duplicate_bar", "repaired", 1)}
    pd.testing.assert_frame_equal(window.ranking, replay_clean.ranking, check_exact=True)


GARBAGE_ROWS = {  # (column, new text) → (reason)
    "nan_close": ("close", "", "nan_price"),
    "negative_low": ("low", "-3", "non_positive_price"),
    "close_1e300": ("close", "1e300", "price_out_of_range"),
    "volume_1e300": ("volume", "1e300", "volume_out_of_range"),
    "spike_100x": ("close", None, "price_spike"),
}


@needs_real
@pytest.mark.parametrize("kind", sorted(GARBAGE_ROWS))
def test_replay_garbage_rows_are_reported_and_never_become_numbers(replay_base, replay_clean, kind):
    """Observed before: NaN / negative rows were dropped by replay with no report; a close or volume
    of 1e300 gave ADV 2e306 (numpy overflow warning) and a 100× one-bar spike ranked the symbol 1st."""
    column, text, reason = GARBAGE_ROWS[kind]
    target = "LINK"

    def edit(folder):
        rows = _rows(folder, target)
        i = _day_row(rows, "2021-09-11")
        if text is None:  # the day's close and high 100× its neighbours'
            rows[i] = _scaled(_scaled(rows[i], "close", 100.0), "high", 100.0)
        else:
            cells = rows[i].split(",")
            cells[["timestamp", "open", "high", "low", "close", "volume"].index(column)] = text
            rows[i] = ",".join(cells)
        _write_rows(folder, target, rows)

    window = _window(replay_base, _variant(replay_base, kind, edit))
    assert _dq_bars(window) == {(f"{target}/USD", reason, "rejected", 1)}
    ranking = window.ranking.set_index("symbol")
    clean = replay_clean.ranking.set_index("symbol")
    assert np.isfinite(ranking["adv_usd"].dropna()).all() and ranking["adv_usd"].max() == clean["adv_usd"].max()
    assert abs(ranking.loc[f"{target}/USD", "rank"] - clean.loc[f"{target}/USD", "rank"]) <= 1  # one day fewer, no more
    assert ranking.loc[f"{target}/USD", "adv_usd"] == pytest.approx(clean.loc[f"{target}/USD", "adv_usd"], rel=0.3)
    assert all(np.isfinite(v) for v in window.indicators.values())


UNREADABLE = {
    "empty": lambda p: p.write_bytes(b""),
    "binary_junk": lambda p: p.write_bytes(bytes(range(256)) * 8),
    "non_utf8_row": lambda p: p.write_bytes(p.read_bytes() + "2021-09-15T00:00:00Z,1,1,1,1,\xe9\n".encode("latin-1")),
    "corrupt_parquet": None,
}


@needs_real
@pytest.mark.parametrize("kind", sorted(UNREADABLE))
def test_replay_one_unreadable_file_skips_only_its_symbol(replay_base, replay_clean, kind):
    """Observed before: the whole cycle aborted with "no venue answered … EmptyDataError", naming no file."""
    def edit(folder):
        path = folder / "DOGE-USD.csv"
        if kind == "corrupt_parquet":
            path.unlink()
            (folder / "DOGE-USD.parquet").write_bytes(b"PAR1" + bytes(range(200)) + b"PAR1")
        else:
            UNREADABLE[kind](path)

    window = _window(replay_base, _variant(replay_base, f"unreadable_{kind}", edit))
    (problem,) = window.data_quality["files"]
    name = "DOGE-USD.parquet" if kind == "corrupt_parquet" else "DOGE-USD.csv"
    assert problem["symbol"] == "DOGE/USD" and problem["reason"] == "unreadable_file" and name in problem["detail"]
    assert window.data_quality["counts"] == {"unreadable_file": 1}
    others = replay_clean.ranking[replay_clean.ranking["symbol"] != "DOGE/USD"]
    assert list(window.ranking["symbol"]) == list(others["symbol"])  # the rest goes on, unchanged
    assert "DOGE/USD" not in set(window.ranking["symbol"])


@needs_real
def test_replay_symlink_out_of_the_folder_is_refused_and_reported(replay_base, replay_clean, tmp_path):
    outside = tmp_path / "SHIB-USD.csv"
    shutil.copy(replay_base[1] / "BTC-USD.csv", outside)
    window = _window(replay_base, _variant(replay_base, "symlink", lambda f: (f / "SHIB-USD.csv").symlink_to(outside)))
    (problem,) = window.data_quality["files"]
    assert problem["reason"] == "file_outside_folder" and "SHIB-USD.csv" in problem["detail"]
    pd.testing.assert_frame_equal(window.ranking, replay_clean.ranking, check_exact=True)


@needs_real
def test_replay_symbol_whose_file_ended_is_inactive(replay_base, replay_clean):
    """Observed before: ALGO and CHZ end 2022-02-02 and were still ranked on 02-13 (SPEC §2: no bar
    in period 0 → inactive)."""
    def edit(folder):
        rows = _rows(folder, "XRP")
        _write_rows(folder, "XRP", rows[: _day_row(rows, "2021-09-12")])  # last bar 2021-09-11

    window = _window(replay_base, _variant(replay_base, "ended", edit))
    xrp = window.ranking.set_index("symbol").loc["XRP/USD"]
    assert xrp["exclusion_reason"] == "inactive" and xrp["segment"] == "none" and pd.isna(xrp["rank"])
    assert replay_clean.ranking.set_index("symbol").loc["XRP/USD", "eligible"]
    assert "XRP/USD" not in window.regime.details.get("symbols", []) if window.regime.details else True


@needs_real
def test_replay_range_reads_report_what_single_reads_report(replay_base):
    """A regime backfill (one range read) gives each partition the data-quality report, ranking and
    regime a run of that partition alone gives — garbage or not."""
    def edit(folder):
        rows = _rows(folder, "ETH")
        i = _day_row(rows, "2021-09-12")
        rows.insert(i, _scaled(rows[i], "close", 1.5))
        _write_rows(folder, "ETH", rows)
        (folder / "DOGE-USD.csv").write_bytes(b"")

    times = [RT - timedelta(days=2), RT - timedelta(days=1), RT]
    for folder in (replay_base[1], _variant(replay_base, "range", edit)):
        batch = compute_windows(ReplayMarket(folder, resolution="1d", venue="kraken"), replay_base[2], times, 10, 20)
        for t, got in zip(times, batch):
            alone = _window(replay_base, folder, t)
            pd.testing.assert_frame_equal(got.ranking, alone.ranking, check_exact=True)
            assert got.regime_json("k") == alone.regime_json("k") and got.data_quality == alone.data_quality
    assert {b["reason"] for b in batch[-1].data_quality["bars"]} == {"duplicate_bar"}
    assert [f["symbol"] for f in batch[-1].data_quality["files"]] == ["DOGE/USD"]


@needs_real
def test_replay_scan_reports_every_repair_in_explain_and_writes_no_absurd_number(tmp_path):
    """An hourly replay cycle with a 1e300 close, a NaN row, a 100× spike and an unreadable file:
    explain.json data_quality names each, premove and the evaluated numbers stay finite."""
    folder = tmp_path / "hourly"
    folder.mkdir()
    for base in ("BTC", "ETH", "LTC", "XRP", "BCH"):
        frame = pd.read_csv(REAL / "hourly" / f"{base}-USD.csv", dtype=str)
        frame[(frame["timestamp"] >= "2021-04-01") & (frame["timestamp"] < "2021-06-01T12")].to_csv(folder / f"{base}-USD.csv", index=False)
    for base, hour, column, factor in (("ETH", "2021-06-01T05", "close", 1e300 / 3000), ("LTC", "2021-05-31T20", "close", 100.0),
                                        ("LTC", "2021-05-31T20", "high", 100.0)):
        rows = _rows(folder, base)
        i = _day_row(rows, hour)
        rows[i] = _scaled(rows[i], column, factor)
        _write_rows(folder, base, rows)
    rows = _rows(folder, "BTC")
    i = _day_row(rows, "2021-06-01T03")
    rows[i] = ",".join(rows[i].split(",")[:4] + ["", rows[i].split(",")[5]])
    _write_rows(folder, "BTC", rows)
    (folder / "JUNK-USD.csv").write_bytes(bytes(range(256)) * 4)
    config = load_config(write_config(tmp_path / "config.yaml", _replay_raw(tmp_path, folder, "1h")))
    market = ReplayMarket(folder, resolution="1h", venue="kraken")
    t = datetime(2021, 6, 1, 12, tzinfo=timezone.utc)
    uni = collect_snapshot(market, None, t, limit=720, with_books=False)
    ranking = rank_universe(uni, config, hot_size=10, warm_size=20)
    regime = {**compute_regime(uni, ranking, config).to_dict(), "partition_key": "k"}
    assert np.isfinite(ranking["adv_usd"]).all() and ranking["eligible"].all()
    snap = collect_snapshot(market, segment_symbols(ranking, "hot"), t, limit=720)
    res = run_scan(snap, ranking, regime, config, config.job("scan.hot"))
    dq = res.explain["data_quality"]
    got = {(b["symbol"], b["reason"], b["action"]) for b in dq["bars"]}
    assert {("ETH/USD", "price_out_of_range", "rejected"), ("BTC/USD", "nan_price", "rejected"),
            ("LTC/USD", "price_spike", "rejected")} <= got
    assert [(f["symbol"], f["reason"]) for f in dq["files"]] == [("JUNK/USD", "unreadable_file")]
    assert "JUNK-USD.csv" in dq["files"][0]["detail"]
    text = json_bytes(res.explain).decode()
    assert "Infinity" not in text and "NaN" not in text and "e+29" not in text and "e+30" not in text
    numbers = res.premove.select_dtypes("number").to_numpy(float)
    assert np.isfinite(numbers[~np.isnan(numbers)]).all() and (np.nan_to_num(numbers) < 1e12).all()
    ev = res.evaluated.select_dtypes("number").to_numpy(float)
    assert np.isfinite(ev[~np.isnan(ev)]).all()


@needs_real
def test_replay_regime_job_reports_data_quality_in_its_metadata(replay_base, tmp_path):
    """The regime job had no data-quality output at all: now each partition's regime_weights
    materialisation carries the report (regime.json's format is fixed by SPEC §9) and the run log a warning."""
    def edit(folder):
        rows = _rows(folder, "ETH")
        i = _day_row(rows, "2021-09-12")
        rows.insert(i, _scaled(rows[i], "volume", 30.0))
        _write_rows(folder, "ETH", rows)
        (folder / "DOGE-USD.csv").write_bytes(b"")

    folder = _variant(replay_base, "pipeline", edit)
    pipe = make_pipeline(tmp_path, lambda raw: raw.update(_replay_raw(tmp_path / "artifacts", folder)))
    result = pipe.run("regime_refresh", "2021-09-14-20:00")
    assert result.success, failure_text(result)
    mats = [m for m in result.get_asset_materialization_events() if m.asset_key.to_user_string() == "regime_weights"]
    meta = mats[0].step_materialization_data.materialization.metadata
    dq = meta["data_quality"].value
    assert {(b["symbol"], b["reason"], b["action"]) for b in dq["bars"]} == {("ETH/USD", "duplicate_bar", "rejected")}
    assert [f["symbol"] for f in dq["files"]] == ["DOGE/USD"] and "DOGE-USD.csv" in dq["files"][0]["detail"]
    assert meta["bars_rejected_or_repaired"].value == 2 and meta["unreadable_files"].value == 1
    warnings = [e.message for e in result.all_events if e.event_type_value == "ENGINE_EVENT" or e.is_step_event]
    logs = [r.user_message for r in pipe.instance.all_logs(result.run_id) if r.user_message]
    assert any("data quality" in m and "DOGE-USD.csv" in m and "duplicate_bar" in m for m in logs), warnings
    regime_json = json.loads((pipe.artifacts / "2021-09-15T00-00-00Z" / "regime.json").read_text())
    assert "data_quality" not in regime_json
