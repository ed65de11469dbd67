"""The real `dagster` command against the code location (subprocesses, temporary DAGSTER_HOME)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
