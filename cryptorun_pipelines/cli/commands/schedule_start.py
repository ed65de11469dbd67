"""``cryptorun schedule start``: one code server, the Dagster daemon and the web UI for this workspace.

On a fresh ``DAGSTER_HOME`` the deployment profile (``deploy/<profile>/dagster.yaml``) has been
installed and the instance initialised before this runs (``main`` → ``prepare_instance``). Then,
all in one process group of their own: ``dagster code-server start`` on a free loopback port (the
one code server of the location, see ``code_server``), and once it serves, ``dagster-daemon`` and
``dagster-webserver`` with a generated workspace pointing to it. Once the web server has *loaded*
the code location with its schedules (not merely answered ``/server_info``), the schedules of the
enabled jobs are turned on through its GraphQL API (stored in the instance, as the UI's toggle
does) and those of disabled jobs turned off. ``--read-only`` starts no daemon, toggles nothing and
runs the web server with Dagster's ``--read-only``. Ctrl-C, SIGTERM or SIGHUP stop the whole group
(SIGKILL after ``--stop-timeout``); if any member dies on its own, the rest is stopped, exit 1.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cryptorun_core.config import CONFIG_PATH_ENV
from cryptorun_pipelines.cli import code_server
from cryptorun_pipelines.cli.context import Context
from cryptorun_pipelines.cli.errors import EXIT_JOB_FAILED, EXIT_OK, CliError, UsageError
from cryptorun_pipelines.cli.instance import CODE_LOCATION, project_root
from cryptorun_pipelines.cli.supervisor import Supervisor, executable, group_pids  # noqa: F401 - group_pids re-exported

READY_TIMEOUT_S = 180.0
START_LOCK = "cryptorun_start.lock"

WORKSPACE_QUERY = """
query CryptoRunWorkspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { repositories { name schedules { name } } }
          ... on PythonError { message }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

SCHEDULES_QUERY = """
query CryptoRunSchedules {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        name
        location { name }
        schedules { name pipelineName scheduleState { status } }
      }
    }
    ... on PythonError { message }
  }
}
"""

START_MUTATION = """
mutation StartSchedule($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
  }
}
"""

STOP_MUTATION = """
mutation StopSchedule($selector: ScheduleSelector!) {
  resetSchedule(scheduleSelector: $selector) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
  }
}
"""


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::", "[::]") else host


def check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def graphql(base_url: str, query: str, variables: dict[str, Any] | None = None, timeout: float = 30.0) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(base_url + "/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        payload = json.loads(resp.read().decode())
    if payload.get("errors"):
        raise CliError(f"GraphQL error: {payload['errors'][0].get('message')}", EXIT_JOB_FAILED)
    return payload["data"]


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _first_line(text: str | None) -> str:
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "no message")


def location_state(base_url: str, wanted: set[str]) -> str | None:
    """None once the web server has loaded the code location with every wanted schedule; else why not yet.

    A location that failed to load raises one error with its message."""
    data = graphql(base_url, WORKSPACE_QUERY, timeout=10)["workspaceOrError"]
    if data.get("__typename") != "Workspace":
        raise CliError(f"the workspace did not load: {_first_line(data.get('message'))}", EXIT_JOB_FAILED)
    entry = next((e for e in data["locationEntries"] if e["name"] == CODE_LOCATION), None)
    if entry is None:
        return f"no code location '{CODE_LOCATION}' in the workspace yet"
    loaded = entry.get("locationOrLoadError") or {}
    if loaded.get("__typename") == "PythonError":
        raise CliError(f"code location '{CODE_LOCATION}' failed to load: {_first_line(loaded.get('message'))}",
                       EXIT_JOB_FAILED)
    if entry["loadStatus"] != "LOADED" or loaded.get("__typename") != "RepositoryLocation":
        return f"code location '{CODE_LOCATION}' is {str(entry['loadStatus']).lower()}"
    present = {s["name"] for repo in loaded["repositories"] for s in repo["schedules"]}
    missing = sorted(wanted - present)
    if missing:
        raise CliError(f"schedules not found in code location '{CODE_LOCATION}': {', '.join(missing)}", EXIT_JOB_FAILED)
    return None


def set_schedules(base_url: str, wanted: dict[str, bool]) -> dict[str, str]:
    """Turn schedules on/off (``wanted``: Dagster schedule name → on); returns the resulting states."""
    data = graphql(base_url, SCHEDULES_QUERY)
    repos = data["repositoriesOrError"]
    if repos.get("__typename") != "RepositoryConnection":
        raise CliError(f"the workspace did not load: {repos.get('message', repos.get('__typename'))}", EXIT_JOB_FAILED)
    result: dict[str, str] = {}
    for repo in repos["nodes"]:
        location = repo["location"]["name"]
        if location != CODE_LOCATION:
            continue
        for sched in repo["schedules"]:
            name = sched["name"]
            if name not in wanted:
                continue
            status = sched["scheduleState"]["status"]
            selector = {"repositoryLocationName": location, "repositoryName": repo["name"], "scheduleName": name}
            if wanted[name] and status != "RUNNING":
                res = graphql(base_url, START_MUTATION, {"selector": selector})["startSchedule"]
                status = _mutation_status(res, name)
            elif not wanted[name] and status == "RUNNING":
                res = graphql(base_url, STOP_MUTATION, {"selector": selector})["resetSchedule"]
                status = _mutation_status(res, name)
            result[name] = status
    missing = sorted(set(wanted) - set(result))
    if missing:
        raise CliError(f"schedules not found in code location '{CODE_LOCATION}': {', '.join(missing)}", EXIT_JOB_FAILED)
    return result


def _mutation_status(res: dict[str, Any], name: str) -> str:
    if res.get("__typename") != "ScheduleStateResult":
        raise CliError(f"could not change schedule {name}: {res.get('message', res.get('__typename'))}", EXIT_JOB_FAILED)
    return res["scheduleState"]["status"]


class Start:
    """The code server, daemon and web server of one ``schedule start``."""

    def __init__(self, ctx: Context, home: Path, host: str, port: int, stop_timeout: float, read_only: bool):
        self.ctx = ctx
        self.home = home
        self.host = host
        self.port = port
        self.read_only = read_only
        # not DAGSTER_HOME/logs: Dagster clears that folder when its processes start
        self.sup = Supervisor(home / "cryptorun_logs", stop_timeout)
        self.stop_requested = threading.Event()
        self.signal_received: int | None = None
        self.code_port = code_server.free_port()
        self.workspace: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://{_client_host(self.host)}:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.ctx.config_path:  # the code server and its runs read the config the CLI validated
            env[CONFIG_PATH_ENV] = os.path.abspath(self.ctx.config_path)
        return env

    def spawn_code_server(self) -> None:
        argv = code_server.command(executable("dagster"), self.code_port, project_root())
        self.sup.spawn("code-server", argv, env=self.env(), cwd=str(project_root()))

    def spawn_servers(self) -> None:
        self.workspace = code_server.write_workspace(self.home, self.code_port, os.getpid())
        ws, env, cwd = str(self.workspace), self.env(), str(project_root())
        if not self.read_only:
            self.sup.spawn("daemon", [executable("dagster-daemon"), "run", "-w", ws], env=env, cwd=cwd)
        web = [executable("dagster-webserver"), "-w", ws, "-h", self.host, "-p", str(self.port)]
        self.sup.spawn("webserver", web + (["--read-only"] if self.read_only else []), env=env, cwd=cwd)

    def wait_code_server(self) -> None:
        code_server.wait_serving(self.code_port, self.sup.dead, self.stop_requested)

    def wait_ready(self, wanted: set[str], timeout: float = READY_TIMEOUT_S) -> None:
        """Until the web server has loaded the code location with every ``wanted`` schedule."""
        deadline = time.monotonic() + timeout
        why = f"the web server did not answer on {self.base_url}"
        while time.monotonic() < deadline:
            if self.stop_requested.is_set():
                return
            problem = self.sup.dead()
            if problem:
                raise CliError(problem, EXIT_JOB_FAILED)
            if http_ok(self.base_url + "/server_info"):
                try:
                    why = location_state(self.base_url, wanted)
                except (urllib.error.URLError, OSError) as exc:
                    why = f"the web server did not answer ({exc})"
                if why is None:
                    return
            self.stop_requested.wait(0.5)
        raise CliError(f"{why} within {timeout:.0f}s", EXIT_JOB_FAILED)

    def stop(self) -> list[int]:
        killed = self.sup.stop(first=("webserver", "daemon"))  # the code server's clients go first
        if self.workspace is not None:
            self.workspace.unlink(missing_ok=True)
        return killed


def _hold_start_lock(home: Path) -> int:
    """One non-read-only ``start`` per instance: a second daemon would tick every schedule twice."""
    fd = os.open(home / START_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise UsageError(f"another `cryptorun schedule start` (pid {other}) is running on DAGSTER_HOME {home}; "
                         "stop it first, or add --read-only for a viewer's web UI") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _forget_daemon_heartbeat() -> None:
    """The daemon is gone: drop its heartbeat so `status` does not report it alive for a while."""
    try:
        from cryptorun_pipelines.cli.instance import get_instance

        get_instance().wipe_daemon_heartbeats()
    except Exception:  # pragma: no cover - best effort
        pass


def _instance_line(setup: Any) -> str:
    done = []
    if setup.installed:
        done.append("installed now")
    if setup.initialised:
        done.append("instance initialised" + (" and upgraded" if setup.upgraded else ""))
    if setup.repaired:
        done.append("repaired duplicate alembic heads in " + ", ".join(setup.repaired))
    extra = (": " + ", ".join(done)) if done else ""
    return f"Dagster instance  {setup.home} (profile {setup.profile}{extra})"


def run_start(ctx: Context, *, host: str, port: int, schedules: bool = True, stop_timeout: float = 30.0,
              read_only: bool = False, setup: Any = None) -> int:
    from cryptorun_pipelines.cli.dagster_state import schedule_names
    from cryptorun_pipelines.cli.instance import prepare_instance

    setup = setup or prepare_instance()
    home = setup.home
    check_port_free(host, port)
    lock = None if read_only else _hold_start_lock(home)
    names = schedule_names(ctx.config.jobs)
    start = Start(ctx, home, host, port, stop_timeout, read_only)

    def on_signal(signum: int, _frame: Any) -> None:
        start.signal_received = signum
        start.stop_requested.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    code = EXIT_OK
    try:
        ctx.print_header()
        ctx.print(_instance_line(setup))
        if setup.notice:
            ctx.print(f"note: {setup.notice}")
        start.spawn_code_server()
        ctx.print(f"code server pid {start.sup.procs['code-server'].pid} on {code_server.HOST}:{start.code_port} "
                  "(the one code server of the daemon and the web UI)")
        ctx.out.flush()
        start.wait_code_server()
        if not start.stop_requested.is_set():
            start.spawn_servers()
            daemon = start.sup.procs.get("daemon")
            who = (f"daemon pid {daemon.pid}, " if daemon else "no daemon (read-only), ")
            ctx.print(f"{who}web server pid {start.sup.procs['webserver'].pid} (process group {start.sup.pgid})")
            ctx.print(f"logs in {start.sup.log_dir}")
            ctx.print(f"waiting for the web UI to load code location '{CODE_LOCATION}' on {start.base_url} …")
            ctx.out.flush()
            start.wait_ready(set(names.values()))
        if not start.stop_requested.is_set():
            mode = " (read-only: nothing can be launched or changed)" if read_only else ""
            ctx.print(ctx.style(f"Dagster UI ready: {start.base_url}{mode}", "green", "bold"))
            if schedules and not read_only:
                wanted = {names[j.name]: j.enabled for j in ctx.config.jobs}
                states = set_schedules(start.base_url, wanted)
                for job in ctx.config.jobs:
                    state = states.get(names[job.name], "?").lower()
                    ctx.print(f"  {job.name:<16}{names[job.name]:<26}{job.schedule:<14} {ctx.style.status(state)}")
            ctx.print("Press Ctrl-C to stop.")
            ctx.out.flush()
        while not start.stop_requested.wait(0.5):
            problem = start.sup.dead()
            if problem:
                raise CliError(problem, EXIT_JOB_FAILED)
    except CliError as exc:
        sys.stderr.write(f"cryptorun: error: {exc.message}\n")
        code = exc.exit_code
    finally:
        why = signal.Signals(start.signal_received).name if start.signal_received else "exit"
        if start.sup.pgid is not None:
            ctx.print(f"stopping ({why}) …")
            ctx.out.flush()
            killed = start.stop()
            if not read_only:
                _forget_daemon_heartbeat()
            ctx.print("stopped" + (f" (SIGKILL sent to {len(killed)} process(es) after {stop_timeout:.0f}s)" if killed else ""))
        if lock is not None:
            os.close(lock)
        for s, handler in previous.items():
            signal.signal(s, handler)
    return code
