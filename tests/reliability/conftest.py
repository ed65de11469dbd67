"""Fixtures of the reliability suite: small configs, in-process pipelines, the ccxt wire-format fakes.

The fake venue HTTP layer is the one of ``tests/core/market/test_ccxt_live.py`` (real ccxt
exchange objects whose ``fetch`` answers in each venue's wire format), loaded from that file so
both suites exercise the same fake.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import dagster as dg
import pytest
import yaml

from cryptorun_core.config import ARTIFACTS_DIR_ENV, CONFIG_PATH_ENV, DEFAULT_CONFIG_PATH, MARKET_SOURCE_ENV, AppConfig, load_config

REPO = DEFAULT_CONFIG_PATH.parent.parent
CCXT_FAKES_PATH = REPO / "tests" / "core" / "market" / "test_ccxt_live.py"

# partitions used throughout: the regime window 08:00–12:00 on 2026-11-20 and the hot cycles
# ending at 12:00 (key 11:45) and 12:15 (key 12:00), both reading that regime window.
REGIME_KEY = "2026-11-20-08:00"
HOT_KEY = "2026-11-20-11:45"
HOT_KEY_2 = "2026-11-20-12:00"
HOT_FOLDER = "2026-11-20T12-00-00Z"
HOT_FOLDER_2 = "2026-11-20T12-15-00Z"
SPEC_HOT = {"signals.csv", "premove.csv", "explain.json"}


def pytest_configure(config):
    config.addinivalue_line("markers", "soak: long soak run (500 cycles); run with -m soak")


def pytest_collection_modifyitems(config, items):
    """The soak test only runs when asked for (``-m soak``): it is not CI-affordable."""
    if "soak" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="soak run: use `pytest tests/reliability -m soak`")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch):
    """Each test chooses config and artifacts dirs explicitly (and the CLI's os.environ writes are undone)."""
    for var in (CONFIG_PATH_ENV, ARTIFACTS_DIR_ENV, MARKET_SOURCE_ENV):
        monkeypatch.setenv(var, "x")
        monkeypatch.delenv(var)


def small_config_dict(artifacts_dir: Path, n_symbols: int = 40) -> dict:
    """config/scheduler.yaml with a small simulated market and smaller hot/warm segments."""
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


def make_pipeline(root: Path, mutate: Callable[[dict], None] | None = None) -> Pipeline:
    from cryptorun_pipelines.build import build_definitions

    raw = small_config_dict(root / "artifacts")
    if mutate:
        mutate(raw)
    path = write_config(root / "config" / "scheduler.yaml", raw)
    config = load_config(path)
    return Pipeline(root, path, config, build_definitions(config, config_path=path), dg.DagsterInstance.ephemeral())


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(
        e.step_failure_data.error.to_string() for e in result.all_events if e.event_type_value == "STEP_FAILURE"
    )


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Visible files of an as_of folder → bytes (hidden temp files are not artifacts)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


@pytest.fixture
def pipeline(tmp_path) -> Pipeline:
    return make_pipeline(tmp_path)


@pytest.fixture(scope="session")
def ccxt_fakes():
    """The module ``tests/core/market/test_ccxt_live.py`` (FakeVenueAPI, build_exchange, FakeClock, AS_OF …)."""
    name = "cryptorun_reliability_ccxt_fakes"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, CCXT_FAKES_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
