"""Fixtures for the ``cryptorun`` CLI tests: the installed entry point, an isolated environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli_helpers import HOT_PARTITION, CliEnv, make_env  # noqa: E402


@pytest.fixture
def cli_env(tmp_path: Path) -> CliEnv:
    """A fresh DAGSTER_HOME and artifacts folder for one test."""
    return make_env(tmp_path)


@pytest.fixture(scope="module")
def ran_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[CliEnv, subprocess.CompletedProcess]:
    """An environment in which ``cryptorun schedule run scan.hot --partition HOT_PARTITION`` ran once
    (materialising its missing upstream regime partition first)."""
    env = make_env(tmp_path_factory.mktemp("cli_ran"))
    result = env.run("schedule", "run", "scan.hot", "--partition", HOT_PARTITION, "--top", "5")
    return env, result
