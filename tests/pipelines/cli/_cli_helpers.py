"""Helpers of the ``cryptorun`` CLI tests (a plain module: tests cannot import a conftest under
``--import-mode=importlib``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import unavailable

#: A closed scan.hot partition (window 11:45–12:00, T = 12:00); its upstream regime window is 08:00–12:00.
HOT_PARTITION = "2026-11-20-11:45"
HOT_FOLDER = "2026-11-20T12-00-00Z"
REGIME_PARTITION = "2026-11-20-04:00"
REGIME_FOLDER = "2026-11-20T08-00-00Z"


def cryptorun_executable() -> str:
    candidate = Path(sys.executable).parent / "cryptorun"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("cryptorun")
    if not found:
        unavailable("the `cryptorun` entry point is not installed (pip install -e .)")
    return found


@dataclass
class CliEnv:
    home: Path
    artifacts: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [cryptorun_executable(), *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(self.home.parent),
        )

    def files(self) -> set[str]:
        return {str(p.relative_to(self.artifacts)) for p in self.artifacts.rglob("*") if p.is_file()}


def make_env(base: Path) -> CliEnv:
    home = base / "dagster_home"
    artifacts = base / "artifacts"
    home.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    for var in ("CRYPTORUN_CONFIG", "CRYPTORUN_MARKET_SOURCE", "NO_COLOR", "CRYPTORUN_DEBUG"):
        env.pop(var, None)
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "CRYPTORUN_ARTIFACTS_DIR": str(artifacts),
            "CRYPTORUN_MARKET_SOURCE": "simulated",
            "COLUMNS": "80",
        }
    )
    return CliEnv(home=home, artifacts=artifacts, env=env)


#: a run executed in its own process exactly as `cryptorun schedule run` executes one
#: (execute_in_process on the persistent instance), whose only step waits until it is killed
WORKER_SCRIPT = """
import sys, time, pathlib
import dagster as dg
from cryptorun_pipelines.cli.dagster_state import run_worker_tags
from cryptorun_pipelines.cli.instance import get_instance

started = pathlib.Path(sys.argv[1])

@dg.op
def wait_to_be_killed():
    started.write_text("started")
    time.sleep(600)

@dg.job(name=sys.argv[3])
def job():
    wait_to_be_killed()

tags = run_worker_tags() if sys.argv[2] == "tagged" else {"cryptorun/trigger": "cli"}
job.execute_in_process(instance=get_instance(), tags={**tags, "dagster/partition": "2026-11-20-08:00"})
"""


def start_worker(env: CliEnv, tmp_path: Path, *, tagged: bool, job: str = "regime_refresh") -> subprocess.Popen:
    started = tmp_path / f"started-{job}-{tagged}"
    proc = subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, str(started), "tagged" if tagged else "plain", job],
                            env=env.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not started.exists():
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the worker's step never started"
        time.sleep(0.1)
    return proc
