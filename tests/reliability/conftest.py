"""Fixtures of the reliability suite: small configs, in-process pipelines, the ccxt wire-format fakes.

The fake venue HTTP layer is the one of ``tests/core/market/test_ccxt_live.py`` (real ccxt
exchange objects whose ``fetch`` answers in each venue's wire format), loaded from that file so
both suites exercise the same fake.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from cryptorun_core.config import ARTIFACTS_DIR_ENV, CONFIG_PATH_ENV, MARKET_SOURCE_ENV

from ..pipeline_support import REPO, Pipeline, failure_text, make_pipeline, small_config_dict, write_config  # noqa: F401

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
