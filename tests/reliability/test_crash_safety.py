"""Crash safety: ``kill -9`` a run while it writes artifacts; two concurrent runs of one partition.

A subprocess runs the Dagster job (``execute_in_process`` on an ephemeral instance, the
definitions loaded from ``CRYPTORUN_CONFIG``). The test hook of
:func:`cryptorun_core.artifacts.atomic_write` (env ``CRYPTORUN_TEST_PAUSE_IN_WRITE=<file>:<s>``)
makes it stop after writing half of that file's bytes to its temporary file; the test waits for
the temporary file, checks what a reader would see, then SIGKILLs the subprocess's whole process
group. Afterwards: no partial file is visible (temp files are hidden dot-files, ignored by the
readers), and rerunning the partition produces the full, byte-identical set.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cryptorun_core.artifacts import PAUSE_ENV
from cryptorun_core.config import CONFIG_PATH_ENV
from cryptorun_pipelines.cli.header import build_header, newest_file

from .conftest import HOT_FOLDER, HOT_KEY, REGIME_KEY, SPEC_HOT, failure_text, folder_bytes, make_pipeline

RUNNER = """
import sys
import dagster as dg
from cryptorun_pipelines.definitions import defs
job, key = sys.argv[1], sys.argv[2]
result = defs.resolve_job_def(job).execute_in_process(partition_key=key, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
sys.exit(0 if result.success else 1)
"""
REGIME_FOLDER = HOT_FOLDER  # the regime window 08:00–12:00 ends at 12:00 too


def normalized(files: dict[str, bytes]) -> dict[str, object]:
    """Artifact bytes comparable across artifacts dirs: explain.json's config hash covers the
    (absolute) artifacts_dir, everything else is compared byte for byte."""
    out: dict[str, object] = {}
    for name, data in files.items():
        if name == "explain.json":
            doc = json.loads(data)
            doc["hashes"].pop("config")
            out[name] = doc
        else:
            out[name] = data
    return out


def spawn(root: Path, job: str, key: str, pause: str | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != PAUSE_ENV}
    env[CONFIG_PATH_ENV] = str(root / "config" / "scheduler.yaml")
    if pause:
        env[PAUSE_ENV] = f"{pause}:120"
    return subprocess.Popen([sys.executable, "-c", RUNNER, job, key], env=env, cwd=root, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and anything it started: kill -9
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def wait_for_temp(folder: Path, name: str, proc: subprocess.Popen, timeout: float = 150.0) -> Path:
    """The half-written file: a hidden temporary file beside its target (single-file sets), or the
    file in a new run folder of the hidden ``.sets`` tree (the hot set, committed whole)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.is_dir():
            temps = [p for p in folder.iterdir() if p.name.startswith(f".{name}.") and p.name.endswith(".tmp")]
            temps += list(folder.glob(f".sets/*/*/{name}"))
            if temps and temps[0].stat().st_size > 0:
                return temps[0]
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (code {proc.returncode}) before writing {name}: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"no temporary file for {name} appeared in {folder}")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A template with the regime partition materialised, the reference hot set, and the
    crash scenarios running in parallel (each in its own artifacts dir)."""
    base = tmp_path_factory.mktemp("crash")
    template = make_pipeline(base / "template")
    assert template.run("regime_refresh", REGIME_KEY).success
    regime_ref = folder_bytes(template.artifacts / REGIME_FOLDER)
    template_tree = base / "template_artifacts"
    shutil.copytree(template.artifacts, template_tree)
    assert template.run("scan_hot", HOT_KEY).success
    reference = normalized({k: v for k, v in folder_bytes(template.artifacts / HOT_FOLDER).items() if k in SPEC_HOT})

    scenarios = {
        "signals.csv": ("scan_hot", HOT_KEY),
        "explain.json": ("scan_hot", HOT_KEY),
        "regime.json": ("regime_refresh", REGIME_KEY),
    }
    roots, procs = {}, {}
    for name, (job, key) in scenarios.items():
        root = base / name.replace(".", "_")
        make_pipeline(root)  # writes root/config/scheduler.yaml pointing at root/artifacts
        if job == "scan_hot":
            shutil.copytree(template_tree, root / "artifacts", dirs_exist_ok=True)
        roots[name], procs[name] = root, spawn(root, job, key, pause=name)
    concurrent_root = base / "concurrent"
    make_pipeline(concurrent_root)
    shutil.copytree(template_tree, concurrent_root / "artifacts", dirs_exist_ok=True)
    concurrent = [spawn(concurrent_root, "scan_hot", HOT_KEY) for _ in range(2)]

    seen: dict[str, dict] = {}
    try:
        for name, proc in procs.items():
            folder = roots[name] / "artifacts" / HOT_FOLDER
            temp = wait_for_temp(folder, name, proc)
            # what a reader sees while the write is in flight: no file of that name, or a complete one
            seen[name] = {"temp": temp, "visible_during": folder_bytes(folder)}
            kill_group(proc)
            seen[name]["visible_after"] = folder_bytes(folder)
            seen[name]["temps_after"] = sorted(p.name for p in folder.iterdir() if p.name.startswith("."))
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                kill_group(proc)
    codes = [p.wait(timeout=300) for p in concurrent]
    return {"reference": reference, "regime_ref": regime_ref, "roots": roots, "seen": seen,
            "concurrent": (concurrent_root, codes, [p.stderr.read().decode()[-2000:] for p in concurrent])}


@pytest.mark.parametrize("name", ["signals.csv", "explain.json", "regime.json"])
def test_kill_mid_write_leaves_no_partial_file_visible(world, name):
    seen = world["seen"][name]
    reference = {**world["reference"], **normalized(world["regime_ref"])}
    hidden = seen["temp"].relative_to(world["roots"][name] / "artifacts" / HOT_FOLDER).parts[0]
    assert hidden.startswith(".")  # a dot-file, or inside the dot-folder .sets
    for phase in ("visible_during", "visible_after"):
        visible = normalized(seen[phase])
        assert name not in visible, f"{name} visible {phase} the interrupted write"
        for other, data in visible.items():  # anything visible is complete
            assert data == reference[other], f"{other} {phase} differs from a complete write"
    assert seen["temps_after"] and all(t.startswith(".") for t in seen["temps_after"])


@pytest.mark.parametrize("name", ["signals.csv", "explain.json", "regime.json"])
def test_readers_ignore_leftover_temp_files_and_a_rerun_completes_the_set(world, name):
    root = world["roots"][name]
    p = make_pipeline(root)
    folder = p.artifacts / HOT_FOLDER
    header = build_header(p.artifacts, p.config.market.venues)
    for path in (newest_file(p.artifacts, "explain.json"), newest_file(p.artifacts, "regime.json")):
        assert path is None or not path.name.startswith(".")
    if name == "regime.json":
        assert header.regime is None  # the half-written regime.json is not there to be read
        result = p.run("regime_refresh", REGIME_KEY)
        assert result.success, failure_text(result)
        assert normalized(folder_bytes(folder)) == normalized(world["regime_ref"])
        return
    result = p.run("scan_hot", HOT_KEY)
    assert result.success, failure_text(result)
    files = folder_bytes(folder)
    assert set(files) == SPEC_HOT | {"regime.json"}
    assert normalized({k: v for k, v in files.items() if k in SPEC_HOT}) == world["reference"]
    # a rerun of the partition on the simulated market is byte-identical
    again = p.run("scan_hot", HOT_KEY)
    assert again.success and folder_bytes(folder) == files


def test_two_concurrent_runs_of_one_partition_leave_one_consistent_set(world):
    root, codes, errors = world["concurrent"]
    assert codes == [0, 0], errors
    folder = root / "artifacts" / HOT_FOLDER
    files = folder_bytes(folder)
    assert normalized({k: v for k, v in files.items() if k in SPEC_HOT}) == world["reference"]
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]  # both writers finished cleanly
    snap = root / "artifacts" / ".pipeline" / HOT_FOLDER / "snapshots" / "scan_hot"
    assert not [p.name for p in snap.iterdir() if p.name.endswith(".tmp")]
