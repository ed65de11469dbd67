"""Fixtures of the pipeline tests: a small simulated market, tmp artifacts dirs, ephemeral instances."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import dagster as dg
import pytest
import yaml

from cryptorun_core.config import ARTIFACTS_DIR_ENV, CONFIG_PATH_ENV, MARKET_SOURCE_ENV, DEFAULT_CONFIG_PATH, AppConfig, load_config
from cryptorun_pipelines.build import build_definitions

REPO = DEFAULT_CONFIG_PATH.parent.parent
SPEC_SCAN_HOT = {"signals.csv", "premove.csv", "explain.json"}
SPEC_SCAN_WARM = {"warm_signals.csv"}
SPEC_REGIME = {"regime.json"}

# the cycles the shared fixture materialises: three regime windows around 12:00 on 2026-11-20, hot
# cycles just before (11:30 → T 11:45), on (11:45 → T 12:00) and just after (12:00 → T 12:15) the
# 4h boundary, and warm cycles ending at 10:00 and 12:00.
REGIME_KEYS = ("2026-11-20-04:00", "2026-11-20-08:00")
HOT_KEYS = ("2026-11-20-11:30", "2026-11-20-11:45", "2026-11-20-12:00")
WARM_KEYS = ("2026-11-20-08:00", "2026-11-20-10:00")


ENV_OVERRIDES = (CONFIG_PATH_ENV, ARTIFACTS_DIR_ENV, MARKET_SOURCE_ENV)


@pytest.fixture
def clean_env(monkeypatch):
    """The pipeline tests choose config and artifacts dirs explicitly: no CRYPTORUN_* overrides."""
    for var in ENV_OVERRIDES:
        monkeypatch.delenv(var, raising=False)


def small_config_dict(artifacts_dir: Path) -> dict:
    """config/scheduler.yaml with a 40-symbol simulated market and smaller hot/warm segments."""
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["global"]["artifacts_dir"] = str(artifacts_dir)
    raw["market"]["simulated"]["n_symbols"] = 40
    for job in raw["jobs"]:
        if job["name"] == "scan.hot":
            job["config"]["max_sample"] = 10
        if job["name"] == "scan.warm":
            job["config"]["max_sample"] = 20
    return raw


def write_config(path: Path, raw: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@dataclass
class Pipeline:
    root: Path
    config_path: Path
    config: AppConfig
    defs: dg.Definitions
    instance: dg.DagsterInstance

    @property
    def artifacts(self) -> Path:
        return Path(self.config.global_.artifacts_dir)

    def run(self, job: str, partition_key: str, **kwargs) -> dg.ExecuteInProcessResult:
        kwargs.setdefault("instance", self.instance)
        kwargs.setdefault("raise_on_error", False)
        return self.defs.resolve_job_def(job).execute_in_process(partition_key=partition_key, **kwargs)


def make_pipeline(root: Path, mutate: Callable[[dict], None] | None = None, instance: dg.DagsterInstance | None = None) -> Pipeline:
    raw = small_config_dict(root / "artifacts")
    if mutate:
        mutate(raw)
    path = write_config(root / "config" / "scheduler.yaml", raw)
    config = load_config(path)
    return Pipeline(root, path, config, build_definitions(config, config_path=path), instance or dg.DagsterInstance.ephemeral())


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    out = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            out.append(event.step_failure_data.error.to_string())
    return "\n".join(out)


@pytest.fixture
def pipeline(tmp_path, clean_env) -> Pipeline:
    return make_pipeline(tmp_path)


@pytest.fixture(scope="session")
def materialized(tmp_path_factory) -> Pipeline:
    """One pipeline with the REGIME_KEYS, HOT_KEYS and WARM_KEYS partitions materialised."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ENV_OVERRIDES:
            mp.delenv(var, raising=False)
        p = make_pipeline(tmp_path_factory.mktemp("materialized"))
        for job, keys in (("regime_refresh", REGIME_KEYS), ("scan_hot", HOT_KEYS), ("scan_warm", WARM_KEYS)):
            for key in keys:
                result = p.run(job, key)
                assert result.success, failure_text(result)
    return p
