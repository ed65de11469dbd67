"""Fixtures of the browser tests: a real ``dagster-webserver`` + ``dagster-daemon`` on a temporary
DAGSTER_HOME and artifacts dir, and Debian's Chromium driven by Playwright (never downloaded).

Everything started here runs in its own process group and is torn down with SIGTERM, then
SIGKILL, whatever happens in the tests. Each test saves a screenshot of every step under its
``tmp_path``; the paths are printed in the report of a failed test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.servers import unavailable

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CRYPTORUN_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCATION = "cryptorun"  # workspace.yaml's location_name
#: set to a folder (docs/screenshots) to save the screenshots docs/ui.md shows while the tests run
DOCS_SCREENSHOTS_ENV = "CRYPTORUN_DOCS_SCREENSHOTS"
ENV_VARS = ("DAGSTER_HOME", "CRYPTORUN_CONFIG", "CRYPTORUN_ARTIFACTS_DIR", "CRYPTORUN_MARKET_SOURCE")

# The partitions the tests use (the simulated market is a pure function of time: any past date works).
#: regime partition pre-materialised in-process before the browser starts (the hot scan's upstream)
UPSTREAM_REGIME_KEY = "2026-11-20-08:00"
#: hot partition launched from the UI: cycle 11:45 → T 12:00 reads regime 08:00 (T 12:00)
HOT_KEY = "2026-11-20-11:45"
HOT_AS_OF_FOLDER = "2026-11-20T12-00-00Z"
#: a week of regime partitions backfilled from the UI (42 x 4h)
BACKFILL_FIRST, BACKFILL_LAST = "2026-11-13-00:00", "2026-11-19-20:00"


# ------------------------------------------------------------------------------------------
# processes
# ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        unavailable(f"{name} is not installed (pip install dagster-webserver)")
    return found


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stop_group(proc: subprocess.Popen | None, grace_s: float = 10.0) -> None:
    """SIGTERM the process group of ``proc`` (started with start_new_session: the group id is its
    pid), then SIGKILL whatever of the group is still there after ``grace_s``."""
    if proc is None:
        return
    pgid = proc.pid
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        if not _group_alive(pgid):
            break
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _group_alive(pgid):
                break
            time.sleep(0.2)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def browser_config(root: Path) -> Path:
    """config/scheduler.yaml made small and quiet for the UI tests: a 30-symbol simulated market on
    one venue, hot 10 / warm 10 pairs, and every job disabled (schedules STOPPED, so the daemon
    launches nothing on its own while the tests run)."""
    raw = yaml.safe_load((REPO / "config" / "scheduler.yaml").read_text())
    raw["global"]["artifacts_dir"] = str(root / "artifacts")
    raw["market"]["source"] = "simulated"
    raw["market"]["simulated"]["n_symbols"] = 30
    raw["market"]["venues"] = ["kraken"]
    raw["market"]["microstructure_sources"] = ["kraken"]
    for job in raw["jobs"]:
        job["enabled"] = False
        job["config"]["venues"] = ["kraken"]
        if job["config"].get("universe") in ("hot", "warm"):
            job["config"]["max_sample"] = 10
    path = root / "config" / "scheduler.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


DAGSTER_YAML = """\
# Runs launched from the UI execute in a subprocess of the webserver (no queue, no daemon needed);
# backfills are driven by the daemon, which launches their run the same way.
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
run_launcher:
  module: dagster._core.launcher
  class: DefaultRunLauncher
telemetry:
  enabled: false
nux:
  enabled: false
"""


@dataclass
class DagsterServer:
    root: Path
    home: Path
    artifacts: Path
    config_path: Path
    port: int
    env: dict[str, str]
    logs: dict[str, Path] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 60.0) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(self.url + "/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            out = json.loads(resp.read())
        if out.get("errors"):
            raise AssertionError(f"GraphQL errors: {out['errors']}")
        return out["data"]

    def log_tail(self, n: int = 40) -> str:
        parts = []
        for name, path in self.logs.items():
            lines = path.read_text(errors="replace").splitlines()[-n:] if path.exists() else []
            parts.append(f"--- {name} ({path}) ---\n" + "\n".join(lines))
        return "\n".join(parts)


def _wait_until_loaded(server: DagsterServer, procs: dict[str, subprocess.Popen], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    query = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
                 locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}\n{server.log_tail()}")
        try:
            entries = server.graphql(query, timeout=10)["workspaceOrError"]["locationEntries"]
            states = {e["name"]: (e["loadStatus"], (e["locationOrLoadError"] or {}).get("__typename")) for e in entries}
            last = str(states)
            if states.get(LOCATION) == ("LOADED", "RepositoryLocation"):
                return
            if states.get(LOCATION, ("", ""))[1] == "PythonError":
                raise AssertionError(f"code location failed to load: {entries}\n{server.log_tail()}")
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last = repr(exc)
        time.sleep(1.0)
    raise AssertionError(f"dagster-webserver not ready after {timeout_s}s ({last})\n{server.log_tail()}")


def _prematerialise_upstream(server: DagsterServer) -> None:
    """The hot scan's upstream regime partition, materialised in-process on the same DAGSTER_HOME
    (the runs show in the UI like any other)."""
    import dagster as dg

    from cryptorun_core.config import load_config
    from cryptorun_pipelines.build import build_definitions

    config = load_config(server.config_path)
    defs = build_definitions(config, config_path=server.config_path)
    with dg.DagsterInstance.from_config(str(server.home)) as instance:
        result = defs.resolve_job_def("regime_refresh").execute_in_process(
            partition_key=UPSTREAM_REGIME_KEY, instance=instance, raise_on_error=False,
            tags={"cryptorun/trigger": "browser-test-setup"},
        )
    assert result.success, f"pre-materialising regime_refresh {UPSTREAM_REGIME_KEY} failed"


# module scope: the servers, the environment this process borrows for the set-up run and
# Playwright's event loop must all be gone before the rest of the suite runs
@pytest.fixture(scope="module")
def dagster_server(tmp_path_factory) -> DagsterServer:
    """dagster-webserver and dagster-daemon on a temporary DAGSTER_HOME, serving workspace.yaml."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) to run the browser tests")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("the playwright package is missing: pip install -e '.[test]'")
    webserver_bin, daemon_bin = _tool("dagster-webserver"), _tool("dagster-daemon")

    root = tmp_path_factory.mktemp("dagster-ui")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    artifacts = root / "artifacts"
    artifacts.mkdir()
    config_path = browser_config(root)
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(
        DAGSTER_HOME=str(home),
        CRYPTORUN_CONFIG=str(config_path),
        CRYPTORUN_ARTIFACTS_DIR=str(artifacts),
        PYTHONUNBUFFERED="1",
    )
    server = DagsterServer(root, home, artifacts, config_path, free_port(), env)
    procs: dict[str, subprocess.Popen] = {}
    handles = []
    saved = {k: os.environ.get(k) for k in ENV_VARS}
    try:
        # the hot scan's upstream, in this process on the same instance, BEFORE the servers start:
        # they would otherwise race this process creating the SQLite schema (alembic "more than one head")
        for k in ("DAGSTER_HOME", "CRYPTORUN_CONFIG", "CRYPTORUN_ARTIFACTS_DIR"):
            os.environ[k] = env[k]
        os.environ.pop("CRYPTORUN_MARKET_SOURCE", None)
        try:
            _prematerialise_upstream(server)
        finally:  # the servers get their own env; this process's must not leak into other tests
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        for name, argv in (
            ("webserver", [webserver_bin, "-h", "127.0.0.1", "-p", str(server.port), "-w", str(REPO / "workspace.yaml")]),
            ("daemon", [daemon_bin, "run", "-w", str(REPO / "workspace.yaml")]),
        ):
            log = root / f"{name}.log"
            server.logs[name] = log
            handle = open(log, "wb")
            handles.append(handle)
            procs[name] = subprocess.Popen(
                argv, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # own process group: torn down as a whole
            )
        _wait_until_loaded(server, procs, timeout_s=150)
        yield server
    finally:
        for proc in procs.values():
            stop_group(proc)
        for handle in handles:
            handle.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ------------------------------------------------------------------------------------------
# browser
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_context(dagster_server, tmp_path_factory):
    """A persistent Chromium context on a fresh user-data-dir (Debian's /usr/bin/chromium)."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    pw = sync_playwright().start()
    context = None
    try:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1600, "height": 1000},
            timeout=120_000,
        )
        context.set_default_timeout(60_000)
        context.set_default_navigation_timeout(90_000)
        yield context
    finally:
        try:
            if context is not None:
                context.close()
        finally:
            pw.stop()


class UI:
    """One test's page plus its step screenshots."""

    def __init__(self, page, server: DagsterServer, shots_dir: Path):
        self.page = page
        self.server = server
        self.shots_dir = shots_dir
        self.shots: list[Path] = []

    def goto(self, path: str) -> None:
        self.page.goto(self.server.url + path, wait_until="domcontentloaded")
        try:
            self.page.wait_for_load_state("networkidle", timeout=30_000)
        except Exception:  # noqa: BLE001 - a page that keeps polling never idles; the waits below decide
            pass

    def doc_shot(self, name: str, locator=None) -> None:
        """With ``CRYPTORUN_DOCS_SCREENSHOTS=docs/screenshots`` set, save the page (or ``locator``'s
        element) as ``name``.png there: how docs/ui.md's screenshots are retaken."""
        folder = os.environ.get(DOCS_SCREENSHOTS_ENV)
        if not folder:
            return
        path = Path(folder) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        (locator or self.page).screenshot(path=str(path))

    def shot(self, name: str) -> Path:
        path = self.shots_dir / f"{len(self.shots) + 1:02d}-{name}.png"
        try:
            self.page.screenshot(path=str(path))
        except Exception as exc:  # noqa: BLE001 - a screenshot must not hide the real failure
            path = path.with_suffix(".txt")
            path.write_text(f"screenshot failed: {exc!r}")
        self.shots.append(path)
        return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
    ui = getattr(item, "_cryptorun_ui", None)
    if ui is not None and report.failed:
        if report.when == "call":
            ui.shot("failure")
        text = "\n".join(str(p) for p in ui.shots) or "(none taken)"
        report.sections.append(("screenshots", text))
        server = ui.server
        report.sections.append(("dagster logs (tail)", server.log_tail(30)))


@pytest.fixture
def ui(request, browser_context, dagster_server, tmp_path) -> UI:
    page = browser_context.new_page()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    ui = UI(page, dagster_server, shots)
    request.node._cryptorun_ui = ui
    try:
        yield ui
    finally:
        page.close()
