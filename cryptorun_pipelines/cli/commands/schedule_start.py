"""``cryptorun schedule start``: the Dagster daemon and web UI for this workspace.

Both run as subprocesses in one process group of their own (``dagster-daemon run`` leads it,
``dagster-webserver`` joins it, and the code servers they spawn inherit it). Once the web
server answers, the schedules of the enabled jobs are turned on through its GraphQL API (which
stores the state in the shared instance, exactly as the UI's toggle does) and those of
disabled jobs are turned off. Ctrl-C, SIGTERM or SIGHUP stop everything: SIGTERM to the whole
group, SIGKILL after ``--stop-timeout`` seconds, so no process is left behind. Should the
daemon or the web server die on its own, the rest is stopped too and the exit code is 1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cryptorun_pipelines.cli.context import Context
from cryptorun_pipelines.cli.errors import EXIT_JOB_FAILED, EXIT_OK, CliError, UsageError
from cryptorun_pipelines.cli.instance import CODE_LOCATION, project_root, use_dagster_home, workspace_file

READY_TIMEOUT_S = 120.0

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


def _executable(name: str) -> str:
    """The console script installed next to this interpreter (the project's virtualenv)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    import shutil

    found = shutil.which(name)
    if not found:
        raise CliError(f"'{name}' is not installed (pip install dagster-webserver)", 2)
    return found


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


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry))
    return sorted(pids)


class Supervisor:
    """Starts the daemon and the web server in one new process group and stops the group."""

    def __init__(self, ctx: Context, host: str, port: int, stop_timeout: float):
        self.ctx = ctx
        self.host = host
        self.port = port
        self.stop_timeout = stop_timeout
        self.procs: dict[str, subprocess.Popen] = {}
        self.pgid: int | None = None
        self.stop_requested = threading.Event()
        self.signal_received: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://{_client_host(self.host)}:{self.port}"

    @property
    def log_dir(self) -> Path:
        # not DAGSTER_HOME/logs: Dagster clears that folder when its processes start
        return Path(os.environ["DAGSTER_HOME"]) / "cryptorun_logs"

    def _log_file(self, name: str) -> Any:
        path = self.log_dir
        path.mkdir(parents=True, exist_ok=True)
        return open(path / f"{name}.log", "ab", buffering=0)  # noqa: SIM115 - closed with the process

    def spawn(self) -> None:
        ws = str(workspace_file())
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        cwd = str(project_root())
        daemon_cmd = [_executable("dagster-daemon"), "run", "-w", ws]
        web_cmd = [_executable("dagster-webserver"), "-w", ws, "-h", self.host, "-p", str(self.port)]
        log = self._log_file("daemon")
        daemon = subprocess.Popen(daemon_cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, process_group=0)
        self.pgid = daemon.pid
        self.procs["daemon"] = daemon
        log = self._log_file("webserver")
        self.procs["webserver"] = subprocess.Popen(web_cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                                   stderr=subprocess.STDOUT, process_group=self.pgid)

    def dead(self) -> str | None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return f"{name} exited with code {proc.returncode} (see {self.log_dir / (name + '.log')})"
        return None

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stop_requested.is_set():
                return
            problem = self.dead()
            if problem:
                raise CliError(problem, EXIT_JOB_FAILED)
            if http_ok(self.base_url + "/server_info"):
                return
            self.stop_requested.wait(0.25)
        raise CliError(f"the web server did not answer on {self.base_url} within {timeout:.0f}s", EXIT_JOB_FAILED)

    def stop(self) -> list[int]:
        """SIGTERM to the group, SIGKILL after the timeout; returns pids that needed SIGKILL."""
        if self.pgid is None:
            return []
        killed: list[int] = []
        try:
            os.killpg(self.pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline:
            for proc in self.procs.values():
                proc.poll()  # reap our direct children
            if not group_pids(self.pgid):
                break
            time.sleep(0.1)
        else:
            killed = group_pids(self.pgid)
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
        deadline = time.monotonic() + 5
        while group_pids(self.pgid) and time.monotonic() < deadline:  # grandchildren re-parented to init
            time.sleep(0.05)
        return killed


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


def _forget_daemon_heartbeat() -> None:
    """The daemon is gone: drop its heartbeat so `status` does not report it alive for a while."""
    try:
        from cryptorun_pipelines.cli.instance import get_instance

        get_instance().wipe_daemon_heartbeats()
    except Exception:  # pragma: no cover - best effort
        pass


def run_start(ctx: Context, *, host: str, port: int, schedules: bool = True, stop_timeout: float = 10.0) -> int:
    from cryptorun_pipelines.cli.dagster_state import schedule_names

    home = use_dagster_home()
    check_port_free(host, port)
    names = schedule_names(ctx.config.jobs)
    sup = Supervisor(ctx, host, port, stop_timeout)

    def on_signal(signum: int, _frame: Any) -> None:
        sup.signal_received = signum
        sup.stop_requested.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    code = EXIT_OK
    try:
        ctx.print_header()
        sup.spawn()
        ctx.print(f"Dagster instance  {home}")
        ctx.print(f"daemon pid {sup.procs['daemon'].pid}, web server pid {sup.procs['webserver'].pid} "
                  f"(process group {sup.pgid})")
        ctx.print(f"logs in {sup.log_dir}")
        ctx.print(f"waiting for the web UI on {sup.base_url} …")
        ctx.out.flush()
        sup.wait_ready()
        if not sup.stop_requested.is_set():
            ctx.print(ctx.style(f"Dagster UI ready: {sup.base_url}", "green", "bold"))
            if schedules:
                wanted = {names[j.name]: j.enabled for j in ctx.config.jobs}
                states = set_schedules(sup.base_url, wanted)
                for job in ctx.config.jobs:
                    state = states.get(names[job.name], "?").lower()
                    ctx.print(f"  {job.name:<16}{names[job.name]:<26}{job.schedule:<14} {ctx.style.status(state)}")
            ctx.print("Press Ctrl-C to stop.")
            ctx.out.flush()
        while not sup.stop_requested.wait(0.5):
            problem = sup.dead()
            if problem:
                raise CliError(problem, EXIT_JOB_FAILED)
    except CliError as exc:
        sys.stderr.write(f"cryptorun: error: {exc.message}\n")
        code = exc.exit_code
    finally:
        why = signal.Signals(sup.signal_received).name if sup.signal_received else "exit"
        if sup.pgid is not None:
            ctx.print(f"stopping ({why}) …")
            ctx.out.flush()
            killed = sup.stop()
            _forget_daemon_heartbeat()
            ctx.print("stopped" + (f" (SIGKILL sent to {len(killed)} process(es) after {stop_timeout:.0f}s)" if killed else ""))
        for s, handler in previous.items():
            signal.signal(s, handler)
    return code
