"""The signal-evaluation asset: its own daily partitions and job, read by no scan asset (it uses data
after T), materialised on the real hourly history; and the `record` / `evaluate` commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from cryptorun_core.artifacts import EVALUATION_FILES, artifact_path
from cryptorun_core.config import CONFIG_PATH_ENV
from cryptorun_pipelines.assets.evaluation import EVALUATION_JOB
from cryptorun_pipelines.cli.main import main

from .conftest import REPO, failure_text, make_pipeline

REAL_HOURLY = str((REPO / ".." / "shared" / "data" / "real" / "hourly").resolve())


def _real_hourly(raw: dict) -> None:
    raw["global"]["partitions_start"] = "2021-01-01T00:00:00Z"
    raw["market"].update(source="replay", venues=["kraken"], microstructure_sources=["kraken"])
    raw["market"]["replay"].update(path=REAL_HOURLY, resolution="1h", venue="kraken")
    for job in raw["jobs"]:
        job["config"]["venues"] = ["kraken"]
        if job["name"] == "scan.hot":
            job["schedule"] = "0 */4 * * *"  # 6 cycles a day keep the test short
        if job["name"] == "scan.warm":
            job["schedule"] = "0 */4 * * *"


def test_no_signal_asset_reads_the_evaluation(tmp_path, clean_env):
    p = make_pipeline(tmp_path)
    graph = p.defs.resolve_asset_graph()
    evaluation_key = dg.AssetKey("signal_evaluation")
    assert evaluation_key in graph.get_all_asset_keys()
    for key in graph.get_all_asset_keys():
        assert evaluation_key not in graph.get(key).parent_keys, f"{key.to_user_string()} reads the evaluation (data after T)"
    assert not graph.get(evaluation_key).child_keys
    for job in ("scan_hot", "scan_warm", "regime_refresh"):
        assert evaluation_key not in p.defs.resolve_job_def(job).asset_layer.selected_asset_keys
    job = p.defs.resolve_job_def(EVALUATION_JOB)
    assert job.asset_layer.selected_asset_keys == {evaluation_key}
    assert isinstance(job.partitions_def, dg.DailyPartitionsDefinition)
    assert graph.get(evaluation_key).metadata["uses_data_after_t"] is True


def test_evaluation_partition_on_real_hourly_history(tmp_path, clean_env):
    p = make_pipeline(tmp_path, _real_hourly)
    result = p.run(EVALUATION_JOB, "2021-06-01")
    assert result.success, failure_text(result)
    rows = pd.read_csv(artifact_path(p.artifacts, "signal_evaluation", "2021-06-01") / EVALUATION_FILES["rows"])
    assert list(rows.columns[:3]) == ["as_of", "job", "segment"]
    assert rows["as_of"].nunique() == 6 and set(rows["symbol"]) == {"BTC/USD", "ETH/USD", "LTC/USD", "XRP/USD", "BCH/USD"}
    assert rows[["fwd_1h", "fwd_4h", "fwd_24h"]].notna().all().all()
    report = json.loads((artifact_path(p.artifacts, "signal_evaluation", "2021-06-01") / EVALUATION_FILES["report"]).read_text())
    assert report["uses_data_after_t"] is True and report["evaluated"] == len(rows)
    png = (artifact_path(p.artifacts, "signal_evaluation", "2021-06-01") / EVALUATION_FILES["chart"]).read_bytes()
    assert png.startswith(b"\x89PNG")
    mats = result.asset_materializations_for_node("signal_evaluation")
    md = mats[0].metadata
    assert "data:image/png;base64" in md["forward_returns_chart"].value and md["uses_data_after_t"].value is True


def test_evaluate_refuses_cycles_whose_forward_returns_do_not_exist_yet(tmp_path, clean_env, capsys):
    p = make_pipeline(tmp_path)
    to = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%MZ")
    code = main(["--config", str(p.config_path), "evaluate", "--from", to, "--to", to])
    err = capsys.readouterr().err
    assert code == 2 and f"--to {to}: the cycles up to {to} need bars up to 24 h later" in err, err
    assert not (p.artifacts / "evaluation").exists()


def test_execute_in_process_refuses_a_day_whose_forward_returns_do_not_exist_yet(tmp_path, clean_env):
    # execute_in_process bypasses the checked executor: the asset itself must refuse the day
    p = make_pipeline(tmp_path)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    result = p.run(EVALUATION_JOB, yesterday)
    assert not result.success
    assert f"partition {yesterday} of {EVALUATION_JOB} is not final yet: the cycles up to" in failure_text(result)
    assert not (p.artifacts / "evaluation").exists()


def test_record_then_evaluate_from_the_cli(tmp_path, clean_env, capsys, monkeypatch):
    p = make_pipeline(tmp_path, lambda raw: raw["market"]["record"].update(folder=str(tmp_path / "rec")))
    monkeypatch.setenv(CONFIG_PATH_ENV, str(p.config_path))  # `--config` exports it: restored after the test
    for t in ("2026-11-20T10:00Z", "2026-11-20T11:00Z"):
        assert main(["--config", str(p.config_path), "record", "--as-of", t, "--json"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert out[0]["books"] > 0 and out[0]["bytes_written"] > out[1]["bytes_written"] > 0  # the second is incremental
    def replay_recording(raw: dict) -> None:
        raw["market"].update(source="replay")
        raw["market"]["replay"].update(path=str(tmp_path / "rec"))
        # a gate every symbol can reach, so the replayed hot cycle reads its recorded books instead of
        # skipping them as unable to score (which symbols could reach 75 depends on the market's draw)
        for job in raw["jobs"]:
            if job["name"] == "scan.hot":
                job["config"]["score_min"] = 1

    replayed = make_pipeline(tmp_path / "replay", replay_recording)
    code = main(["--config", str(replayed.config_path), "evaluate", "--from", "2026-11-20T10:00Z", "--to", "2026-11-20T10:00Z",
                 "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cycles"] == 1 and report["evaluated"] > 0 and report["uses_data_after_t"] is True
    assert Path(report["files"]["rows"]).is_file()
    # the replay of the recorded cycle has its books: not every symbol is stale
    rows = pd.read_csv(report["files"]["rows"])
    assert (rows["primary_reason"] != "stale_data").any()
    assert main(["--config", str(replayed.config_path), "record"]) == 2  # nothing live to record from a replay
    assert "nothing live to record" in capsys.readouterr().err
