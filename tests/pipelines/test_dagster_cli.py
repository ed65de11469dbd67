"""The real `dagster` command against the code location (subprocesses, temporary DAGSTER_HOME)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .conftest import REPO, SPEC_REGIME, SPEC_SCAN_HOT, small_config_dict, write_config

DAGSTER = str(Path(sys.executable).with_name("dagster"))
MODULE = "cryptorun_pipelines.definitions"


def env_for(tmp_path: Path) -> dict[str, str]:
    config = write_config(tmp_path / "config" / "scheduler.yaml", small_config_dict(tmp_path / "artifacts"))
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTORUN_", "DAGSTER_"))}
    env.update(CRYPTORUN_CONFIG=str(config), DAGSTER_HOME=str(home))
    return env


def dagster(env: dict[str, str], *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([DAGSTER, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_definitions_validate(tmp_path):
    proc = dagster(env_for(tmp_path), "definitions", "validate", "-m", MODULE)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.e2e
def test_dagster_job_execute_dry_run_then_real(tmp_path):
    env = env_for(tmp_path)
    artifacts = tmp_path / "artifacts"
    tag = lambda key: json.dumps({"dagster/partition": key})  # noqa: E731

    # the regime window the hot cycle at T 12:00 reads
    proc = dagster(env, "job", "execute", "-m", MODULE, "-j", "regime_refresh", "--tags", tag("2026-11-20-08:00"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    folder = artifacts / "2026-11-20T12-00-00Z"
    assert {p.name for p in folder.iterdir()} == SPEC_REGIME

    # dry run of the hot cycle: computes everything, logs what it would write, writes nothing
    before = sorted(p for p in artifacts.rglob("*") if p.is_file())
    proc = dagster(env, "job", "execute", "-m", MODULE, "-j", "scan_hot", "-c", "config/dry_run.yaml", "--tags", tag("2026-11-20-11:45"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    logs = proc.stdout + proc.stderr
    assert "dry run: would write hot_signals" in logs and "signals.csv" in logs
    assert sorted(p for p in artifacts.rglob("*") if p.is_file()) == before

    # the same cycle for real
    proc = dagster(env, "job", "execute", "-m", MODULE, "-j", "scan_hot", "--tags", tag("2026-11-20-11:45"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert {p.name for p in folder.iterdir() if not p.name.startswith(".")} == SPEC_REGIME | SPEC_SCAN_HOT
    explain = json.loads((folder / "explain.json").read_text())
    assert explain["inputs"]["regime_weights"] == "2026-11-20-08:00"


REFUSED = [
    ({"dagster/partition": "2026-11-20-11:46"},
     "'2026-11-20-11:46' is not a partition of scan_hot (one every 15 min from {first}): the nearest are 2026-11-20-11:45 and 2026-11-20-12:00"),
    # (a key Dagster cannot even parse, "2026-11-20 11:45", fails in Dagster's run creation, before any executor)
    ({"dagster/partition": "2026-11-20-9:45"}, "'2026-11-20-9:45' is not a partition key of scan_hot: write it 2026-11-20-09:45"),
    ({"dagster/asset_partition_range_start": "2026-11-20-12:00", "dagster/asset_partition_range_end": "2026-11-20-11:00"},
     "the range of scan_hot is inverted: start 2026-11-20-12:00 is after end 2026-11-20-11:00"),
    ({}, "scan_hot is partitioned: give the partition it fills with the tag dagster/partition"),
]


@pytest.mark.e2e
@pytest.mark.parametrize("executor", ["in_process", "multiprocess"])
@pytest.mark.parametrize("tags,sentence", REFUSED, ids=["off-tick", "malformed", "inverted-range", "no-tag"])
def test_dagster_job_execute_refuses_a_bad_partition_before_any_step(tmp_path, executor, tags, sentence):
    from cryptorun_core.config import load_config
    from cryptorun_pipelines.partitions import build_cadences, format_key

    raw = small_config_dict(tmp_path / "artifacts")
    raw["executor"]["type"] = executor
    env = env_for(tmp_path)
    write_config(Path(env["CRYPTORUN_CONFIG"]), raw)
    first = format_key(build_cadences(load_config(env["CRYPTORUN_CONFIG"])).hot.start)
    proc = dagster(env, "job", "execute", "-m", MODULE, "-j", "scan_hot", *(["--tags", json.dumps(tags)] if tags else []))
    logs = proc.stdout + proc.stderr
    assert proc.returncode != 0
    # one line says what is wrong with the key and which keys are valid; no step started, nothing written
    refused = [line for line in logs.splitlines() if line.startswith("cryptorun_pipelines.executors.PartitionRefused")]
    assert len(refused) == 1, logs[-3000:]
    assert refused[0].startswith(f"cryptorun_pipelines.executors.PartitionRefused: {sentence.format(first=first)}"), refused
    assert "STEP_START" not in logs and "Invariant" not in logs and "IndexError" not in logs
    assert not (tmp_path / "artifacts").exists()


@pytest.mark.e2e
def test_a_run_config_switching_to_a_live_source_is_refused_before_any_step(tmp_path):
    """The job was built for the simulated market, so its runs carry no venue tag and the queue's
    per-venue limits never counted them: a run config setting ``market_source: ccxt`` must not call
    the venues (nothing touches the network: the refusal comes before any step)."""
    import yaml

    env = env_for(tmp_path)
    run_config = tmp_path / "live.yaml"
    run_config.write_text(yaml.safe_dump({"resources": {"cryptorun_config": {"config": {"market_source": "ccxt"}}}}))
    proc = dagster(env, "job", "execute", "-m", MODULE, "-j", "scan_hot", "-c", str(run_config),
                   "--tags", json.dumps({"dagster/partition": "2026-11-20-11:45"}))
    logs = proc.stdout + proc.stderr
    assert proc.returncode != 0
    refused = [line for line in logs.splitlines() if line.startswith("cryptorun_pipelines.executors.VenueLimitsBypassed")]
    assert refused == [(
        "cryptorun_pipelines.executors.VenueLimitsBypassed: scan_hot: the run's config sets market_source ccxt, but the job "
        "was built for an offline market source, so its runs carry no cryptorun/venue.* tag and the queue's per-venue "
        "limits would not hold; set market.source in the config file the code location loads (or "
        "CRYPTORUN_MARKET_SOURCE where it starts)")], logs[-3000:]
    assert "STEP_START" not in logs
    assert not (tmp_path / "artifacts").exists()


@pytest.mark.e2e
@pytest.mark.parametrize("case", ["not-final", "live-source", "asset-graph"])
def test_the_evaluation_job_is_checked_like_the_scans(tmp_path, case):
    """The simulated market serves bars of any time, the future's too: yesterday's evaluation would
    read forward returns from bars that have not closed yet, and a run config switching it to ccxt
    would call the venues outside their queue limits. Both are refused before the step, also when
    the run is launched from the asset graph (Dagster's own job, ``dagster asset materialize``);
    nothing is written."""
    import yaml

    env = env_for(tmp_path)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    settled = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%d")
    args = ["--tags", json.dumps({"dagster/partition": yesterday if case == "not-final" else settled})]
    if case == "live-source":
        run_config = tmp_path / "live.yaml"
        run_config.write_text(yaml.safe_dump({"resources": {"cryptorun_config": {"config": {"market_source": "ccxt"}}}}))
        args += ["-c", str(run_config)]
    if case == "asset-graph":
        proc = dagster(env, "asset", "materialize", "-m", MODULE, "--select", "signal_evaluation", "--partition", yesterday)
    else:
        proc = dagster(env, "job", "execute", "-m", MODULE, "-j", "evaluate_signals", *args)
    logs = proc.stdout + proc.stderr
    assert proc.returncode != 0
    error, sentence = {
        "not-final": ("PartitionRefused", f"partition {yesterday} of evaluate_signals is not final yet: it reads data up to 24 h"),
        "asset-graph": ("PartitionRefused", f"partition {yesterday} of __ASSET_JOB is not final yet: it reads data up to 24 h"),
        "live-source": ("VenueLimitsBypassed", "evaluate_signals: the run's config sets market_source ccxt"),
    }[case]
    refused = [line for line in logs.splitlines() if line.startswith(f"cryptorun_pipelines.executors.{error}")]
    assert len(refused) == 1 and refused[0].startswith(f"cryptorun_pipelines.executors.{error}: {sentence}"), logs[-3000:]
    assert "STEP_START" not in logs
    assert not (tmp_path / "artifacts").exists()


@pytest.mark.e2e
def test_a_live_materialisation_from_the_asset_graph_is_refused_before_any_step(tmp_path):
    """Runs launched from the asset graph belong to Dagster's own job, which has none of our jobs'
    ``cryptorun/venue.*`` tags: on a live code location the queue would not count them against any
    venue. Refused before any step (nothing touches the network), with the job to launch instead."""
    raw = small_config_dict(tmp_path / "artifacts")
    raw["market"]["source"] = "ccxt"
    env = env_for(tmp_path)
    write_config(Path(env["CRYPTORUN_CONFIG"]), raw)
    proc = dagster(env, "asset", "materialize", "-m", MODULE, "--select", "universe_ranking,regime_indicators,regime_weights",
                   "--partition", "2026-11-20-08:00")
    logs = proc.stdout + proc.stderr
    assert proc.returncode != 0
    refused = [line for line in logs.splitlines() if line.startswith("cryptorun_pipelines.executors.VenueLimitsBypassed")]
    assert len(refused) == 1 and "a run launched from the asset graph (__ASSET_JOB) carries no cryptorun/venue.* tag" in refused[0], logs[-3000:]
    assert "STEP_START" not in logs
    assert not (tmp_path / "artifacts").exists()
