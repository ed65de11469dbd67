"""Kill a hot run at every step of committing its set: the folder shows the previous complete set
or the new complete set, never a mix (SPEC §9), and a rerun completes it.

The previous set is written first (a complete set of recognisable bytes, committed as a previous
run would, or plain files of the older layout); then a real hot run (a subprocess running the
Dagster job) is stopped at one step by a test hook and killed with SIGKILL:

- half-way through writing each of the three files of its run folder (``CRYPTORUN_TEST_PAUSE_IN_WRITE``);
- after its run folder is complete, after the names point at ``current``, after the switch
  (``CRYPTORUN_TEST_PAUSE_IN_SET``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cryptorun_core import artifact_sets
from cryptorun_core.artifact_sets import commit_set
from cryptorun_core.artifacts import PAUSE_ENV
from cryptorun_core.config import CONFIG_PATH_ENV

from .conftest import HOT_FOLDER, HOT_KEY, REGIME_KEY, SPEC_HOT, failure_text, make_pipeline

RUNNER = """
import sys
import dagster as dg
from cryptorun_pipelines.definitions import defs
result = defs.resolve_job_def("scan_hot").execute_in_process(partition_key=sys.argv[1], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
sys.exit(0 if result.success else 1)
"""
PREVIOUS = {"signals.csv": b"previous signals\n", "premove.csv": b"previous premove\n", "explain.json": b"{\"previous\": true}\n"}
KILL_POINTS = [(PAUSE_ENV, name) for name in ("signals.csv", "premove.csv", "explain.json")] + [
    (artifact_sets.PAUSE_ENV, step) for step in ("staged", "linked", "swapped")
]


def visible(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in sorted(SPEC_HOT) if (folder / name).is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The regime window materialised once (copied into each test) and the new set's bytes."""
    base = tmp_path_factory.mktemp("sets")
    reference = make_pipeline(base / "reference")
    assert reference.run("regime_refresh", REGIME_KEY).success
    template = base / "template"
    shutil.copytree(reference.artifacts, template)
    result = reference.run("scan_hot", HOT_KEY)
    assert result.success, failure_text(result)
    return template, visible(reference.artifacts / HOT_FOLDER)


def _wait_for_pause(proc: subprocess.Popen, env_name: str, point: str, folder: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    if env_name == artifact_sets.PAUSE_ENV:  # the hook says where it stopped
        line = proc.stderr.readline().decode()
        while line and "paused at" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline().decode()
        assert f"paused at {point}" in line, f"the run did not stop at {point} (code {proc.poll()})"
        return
    while time.monotonic() < deadline:  # a half-written file in the new run folder
        partial = [p for p in (folder / ".sets" / "hot").glob(f"*/{point}") if p.stat().st_size > 0]
        if partial:
            return
        assert proc.poll() is None, f"the run ended (code {proc.returncode}) before writing {point}"
        time.sleep(0.05)
    raise AssertionError(f"no partial {point} appeared")


CASES = [("sets", env, point) for env, point in KILL_POINTS] + [
    ("plain", env, point) for env, point in KILL_POINTS if point in ("premove.csv", "linked", "swapped")
]


@pytest.mark.parametrize("layout, env_name, point", CASES, ids=[f"{layout}-{point}" for layout, _, point in CASES])
def test_a_kill_at_any_step_shows_the_previous_or_the_new_set(world, tmp_path, layout, env_name, point):
    template, new = world
    p = make_pipeline(tmp_path)
    shutil.copytree(template, p.artifacts, dirs_exist_ok=True)
    folder = p.artifacts / HOT_FOLDER
    if layout == "sets":
        commit_set(folder, "hot", PREVIOUS)  # a previous run's complete set
    else:
        for name, data in PREVIOUS.items():  # a folder written before sets existed
            (folder / name).write_bytes(data)
    env = {k: v for k, v in os.environ.items() if k not in (PAUSE_ENV, artifact_sets.PAUSE_ENV)}
    env[CONFIG_PATH_ENV] = str(p.config_path)
    env[env_name] = f"{point}:120"
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, HOT_KEY], env=env, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_pause(proc, env_name, point, folder)
        during = visible(folder)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    after = visible(folder)
    expected_after = new if point == "swapped" else PREVIOUS
    assert during in (PREVIOUS, new) and after == expected_after, {"during": during, "after": after}
    result = p.run("scan_hot", HOT_KEY)  # a rerun completes the set and cleans up the killed run's folder
    assert result.success, failure_text(result)
    assert visible(folder) == new
    runs = [d for d in (folder / ".sets" / "hot").iterdir() if d.is_dir() and not d.is_symlink()]
    assert len([d for d in runs if not d.name.endswith(artifact_sets.PARTIAL)]) == 1  # the killed run's partial
    # folder is left to the clean-up of a later commit (an hour on: it may be a live writer's)
