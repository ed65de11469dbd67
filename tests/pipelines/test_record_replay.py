"""Record a live (ccxt) hot cycle through the recorder, replay the recording, get the same files.

The live side is real ccxt exchange objects fed venue-format payloads (the fake world of
``tests/core/market/test_ccxt_live.py``); the replay side is :class:`RecordedMarket` on the folder the
recorder wrote. signals.csv, premove.csv and explain.json must be byte-identical, apart from what
names the source: explain's ``source`` and ``venue_health`` (the live venues' request accounting;
a replay makes no request).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cryptorun_core.artifacts import csv_bytes, json_bytes
from cryptorun_core.book_pruning import SKIPPED_BOOK_ERROR, read_segment
from cryptorun_core.config import CONFIG_PATH_ENV, load_config
from cryptorun_core.engine import run_scan, score_upper_bound
from cryptorun_core.market.recorded import RecordedMarket
from cryptorun_core.market.recording import RecordingSource, part_files
from cryptorun_core.market.snapshot import collect_snapshot
from cryptorun_core.regime import compute_regime
from cryptorun_core.universe import rank_universe, segment_symbols

from .test_live_books import _job, fakes  # noqa: F401  (fixture)

CFG = load_config(check_artifacts_dir=False)
SOURCE_FIELDS = ("source", "venue_health")


def _cycle(source, as_of, job=None, score_min=None):
    """The hot cycle at ``as_of`` as the pipeline computes it: universe, regime, hot snapshot, scan."""
    uni = collect_snapshot(source, None, as_of, venues=CFG.job("scan.hot").config.venues, limit=720, with_books=False)
    ranking = rank_universe(uni, CFG, hot_size=10, warm_size=0)
    regime = {**compute_regime(uni, ranking, CFG).to_dict(), "partition_key": "2026-11-20-08:00"}
    if job is None:
        hot = segment_symbols(ranking, "hot")
        bars = collect_snapshot(source, hot, as_of, venues=CFG.job("scan.hot").config.venues, limit=720, with_books=False)
        bound = score_upper_bound(bars, ranking, regime, CFG, _job(75.0)).sort_values()
        job = _job(float((bound.iloc[0] + bound.iloc[1]) / 2) if score_min is None else score_min)
    snap = read_segment(source, CFG, job, ranking, as_of, "hot", regime=regime)
    res = run_scan(snap, ranking, regime, CFG, job)
    files = {
        "signals.csv": csv_bytes(res.signals, "signals"),
        "premove.csv": csv_bytes(res.premove, "premove"),
        "explain.json": json_bytes(res.explain),
    }
    return files, snap, job


def _without_source(explain: bytes) -> bytes:
    doc = json.loads(explain)
    for key in SOURCE_FIELDS:
        doc.pop(key)
    return json_bytes(doc)


@pytest.mark.parametrize("score_min", [None, 0.0])
def test_a_recorded_live_cycle_replays_byte_identical(fakes, tmp_path, score_min):  # noqa: F811
    world = fakes.make_world()
    recorder = RecordingSource(world.market, tmp_path / "rec", now=lambda: world.now[0])
    live, live_snap, job = _cycle(recorder, fakes.AS_OF, score_min=score_min)
    world.market.close()
    assert len(live_snap.books) and part_files(tmp_path / "rec", "books")
    if score_min is None:  # some books were skipped live: the replay skips the same ones
        assert (live_snap.fetches["error"] == SKIPPED_BOOK_ERROR).any()
    else:
        assert len(pd.read_csv(__import__("io").BytesIO(live["signals.csv"]))) or len(pd.read_csv(__import__("io").BytesIO(live["premove.csv"])))

    replay = RecordedMarket(tmp_path / "rec", fakes.VENUES, max_book_age_s=CFG.gates.fresh_max_book_age_s)
    again, replay_snap, _ = _cycle(replay, fakes.AS_OF, job=job)
    assert replay_snap.source == "recording" and live_snap.source == "ccxt"
    assert again["signals.csv"] == live["signals.csv"]
    assert again["premove.csv"] == live["premove.csv"]
    assert _without_source(again["explain.json"]) == _without_source(live["explain.json"])
    assert json.loads(again["explain.json"])["counts"] == json.loads(live["explain.json"])["counts"]


def test_the_dagster_hot_job_replays_a_recording(tmp_path, clean_env, capsys, monkeypatch):
    """`cryptorun record` at T, then the scan_hot partition ending at T on the recording: the books
    the recorder kept pass the freshness gate (plain replayed history fails it: no books)."""
    from cryptorun_pipelines.cli.main import main

    from .conftest import failure_text, make_pipeline

    live = make_pipeline(tmp_path / "live", lambda raw: raw["market"]["record"].update(folder=str(tmp_path / "rec")))
    monkeypatch.setenv(CONFIG_PATH_ENV, str(live.config_path))  # `--config` exports it: restored after the test
    assert main(["--config", str(live.config_path), "record", "--as-of", "2026-11-20T12:00Z"]) == 0
    assert "recorded simulated at 2026-11-20T12:00:00+00:00" in capsys.readouterr().out
    def replay_recording(raw: dict) -> None:
        raw["market"].update(source="replay")
        raw["market"]["replay"].update(path=str(tmp_path / "rec"))
        # a gate every symbol can reach, so the cycle reads its recorded books instead of skipping them
        # as unable to score (which symbols could reach 75 depends on the simulated market's draw)
        for job in raw["jobs"]:
            if job["name"] == "scan.hot":
                job["config"]["score_min"] = 1

    replay = make_pipeline(tmp_path / "replay", replay_recording)
    result = replay.run("scan_hot", "2026-11-20-11:45")
    assert result.success, failure_text(result)
    explain = json.loads((replay.artifacts / "2026-11-20T12-00-00Z" / "explain.json").read_text())
    assert explain["source"] == "recording"
    reasons = {s["symbol"]: s["primary_reason"] for s in explain["symbols"]}
    assert reasons and any(r != "stale_data" for r in reasons.values())
