"""In-process pipelines on a small simulated market, shared by the pipeline and reliability suites."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import dagster as dg
import yaml

from cryptorun_core.config import DEFAULT_CONFIG_PATH, AppConfig, load_config

REPO = DEFAULT_CONFIG_PATH.parent.parent


def small_config_dict(artifacts_dir: Path, n_symbols: int = 40) -> dict:
    """config/scheduler.yaml with a small simulated market, smaller hot/warm segments and the ccxt
    OHLCV cache next to the artifacts (never in the checkout)."""
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["global"]["artifacts_dir"] = str(artifacts_dir)
    raw["market"]["simulated"]["n_symbols"] = n_symbols
    raw["market"]["ccxt"]["ohlcv_cache_dir"] = str(artifacts_dir.parent / "ohlcv-cache")
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
    """The definitions of ``small_config_dict`` (changed by ``mutate``) under ``root``, on ``instance``
    (an ephemeral one by default)."""
    from cryptorun_pipelines.build import build_definitions

    raw = small_config_dict(root / "artifacts")
    if mutate:
        mutate(raw)
    path = write_config(root / "config" / "scheduler.yaml", raw)
    config = load_config(path)
    return Pipeline(root, path, config, build_definitions(config, config_path=path), instance or dg.DagsterInstance.ephemeral())


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """The errors of the run's failed steps, for assertion messages."""
    return "\n".join(
        e.step_failure_data.error.to_string() for e in result.all_events if e.event_type_value == "STEP_FAILURE"
    )
