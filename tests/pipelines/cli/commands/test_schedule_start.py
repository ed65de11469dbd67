"""``cryptorun schedule start``: waits for the loaded code location; one code server shared by the daemon
and the web UI; queued runs within the profile's limits; dead runs failed by the monitor; read-only."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _cli_helpers import CliEnv, cryptorun_executable, make_env, start_worker  # noqa: E402

from cryptorun_pipelines.cli.commands import schedule_start  # noqa: E402
from cryptorun_pipelines.cli.errors import CliError  # noqa: E402
from cryptorun_pipelines.cli.supervisor import group_pids, proc_cmdline  # noqa: E402

SCHEDULES = {"scan_hot_schedule", "scan_warm_schedule", "regime_refresh_schedule"}
REPO = Path(__file__).resolve().parents[4]


# -- waiting for the code location (a web server that answers before it has loaded it) -------------


class FakeWebserver:
    """/server_info answers at once; the workspace reports the location LOADING ``loading_polls`` times."""

    def __init__(self, loading_polls: int, error: str | None = None):
        self.loading_polls = loading_polls
        self.error = error
        self.workspace_polls = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # noqa: D102 - quiet
                pass

            def do_GET(self):  # noqa: N802
                self._send({"version": "fake"})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self._send({"data": fake.answer(body["query"])})

            def _send(self, payload):
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def loaded(self) -> bool:
        return self.workspace_polls > self.loading_polls

    def answer(self, query: str) -> dict:
        if "workspaceOrError" in query:
            self.workspace_polls += 1
            if self.error:
                entry = {"name": "cryptorun", "loadStatus": "LOADED",
                         "locationOrLoadError": {"__typename": "PythonError", "message": self.error}}
            elif not self.loaded:
                entry = {"name": "cryptorun", "loadStatus": "LOADING", "locationOrLoadError": None}
            else:
                entry = {"name": "cryptorun", "loadStatus": "LOADED", "locationOrLoadError": {
                    "__typename": "RepositoryLocation",
                    "repositories": [{"name": "__repository__", "schedules": [{"name": n} for n in SCHEDULES]}]}}
            return {"workspaceOrError": {"__typename": "Workspace", "locationEntries": [entry]}}
        if "repositoriesOrError" in query:  # before the location has loaded it has no repository
            schedules = [{"name": n, "pipelineName": n, "scheduleState": {"status": "RUNNING"}} for n in SCHEDULES]
            nodes = [{"name": "__repository__", "location": {"name": "cryptorun"}, "schedules": schedules}]
            return {"repositoriesOrError": {"__typename": "RepositoryConnection", "nodes": nodes if self.loaded else []}}
        raise AssertionError(f"unexpected query {query[:80]}")

    def close(self) -> None:
        self.server.shutdown()


def _start_against(url: str, tmp_path: Path) -> schedule_start.Start:
    ctx = SimpleNamespace(config_path=None)
    port = int(url.rsplit(":", 1)[1])
    return schedule_start.Start(ctx, tmp_path, "127.0.0.1", port, stop_timeout=1, read_only=False)  # type: ignore[arg-type]


def test_start_waits_for_the_loaded_location_not_just_server_info(tmp_path: Path) -> None:
    """Today it treats the UI as ready when /server_info answers and then finds no schedules."""
    web = FakeWebserver(loading_polls=3)
    try:
        _start_against(web.url, tmp_path).wait_ready(SCHEDULES, timeout=30)
        assert web.loaded
        states = schedule_start.set_schedules(web.url, dict.fromkeys(SCHEDULES, True))
        assert states == dict.fromkeys(SCHEDULES, "RUNNING")
    finally:
        web.close()


def test_a_location_that_failed_to_load_is_one_clear_error(tmp_path: Path) -> None:
    web = FakeWebserver(loading_polls=0, error="dagster._core.errors.DagsterImportError: no module named x\n  File …")
    try:
        with pytest.raises(CliError) as info:
            _start_against(web.url, tmp_path).wait_ready(SCHEDULES, timeout=30)
    finally:
        web.close()
    assert info.value.message == ("code location 'cryptorun' failed to load: "
                                  "dagster._core.errors.DagsterImportError: no module named x")


# -- the real thing ----------------------------------------------------------------------------------


def _free_port() -> int:
    from cryptorun_pipelines.cli.code_server import free_port

    return free_port()


class Started:
    def __init__(self, env: CliEnv, args: list[str]):
        self.env = env
        self.port = _free_port()
        self.proc = subprocess.Popen([cryptorun_executable(), "schedule", "start", "--port", str(self.port), *args],
                                     env=env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 300
        while not self.ready.is_set() and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.5)
        if not self.ready.is_set():
            self.stop()
            raise AssertionError(self.text + (self.proc.stderr.read() or ""))  # type: ignore[union-attr]
        self.since = time.monotonic()
        self.pgid = int(re.search(r"process group (\d+)", self.text).group(1))

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.append(line)
            if line.startswith("Press Ctrl-C"):
                self.ready.set()

    @property
    def text(self) -> str:
        return "".join(self.lines)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(self.url + "/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def members(self) -> dict[int, list[str]]:
        return {pid: proc_cmdline(pid) for pid in group_pids(self.pgid)}

    def log(self, name: str) -> str:
        return (self.env.home / "cryptorun_logs" / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        pgid = getattr(self, "pgid", None)
        if pgid and group_pids(pgid):
            os.killpg(pgid, signal.SIGKILL)


def _is(cmd: list[str], *words: str) -> bool:
    joined = " ".join(cmd)
    return all(w in joined for w in words)


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) { __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } }
}
"""


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory):
    """`cryptorun schedule start --no-schedules` on a fresh DAGSTER_HOME, for the whole module."""
    env = make_env(tmp_path_factory.mktemp("start"))
    config = env.home.parent / "my_scheduler.yaml"  # a --config of its own, which the code server must read
    config.write_text((REPO / "config" / "scheduler.yaml").read_text())
    s = Started(env, ["--no-schedules", "--config", str(config)])
    s.config = config
    try:
        yield s
    finally:
        s.stop()



@pytest.mark.e2e
def test_one_code_server_shared_by_the_daemon_and_the_web_ui(started: Started) -> None:
    members = started.members()
    code_servers = [p for p, cmd in members.items() if _is(cmd, "code-server", "start")]
    grpc_servers = [p for p, cmd in members.items() if _is(cmd, "api", "grpc")]
    assert len(code_servers) == 1 and len(grpc_servers) == 1, members  # its child serves the definitions
    daemon = next(cmd for cmd in members.values() if _is(cmd, "dagster-daemon", "run"))
    web = next(cmd for cmd in members.values() if _is(cmd, "dagster-webserver"))
    workspace = Path(daemon[daemon.index("-w") + 1])
    assert web[web.index("-w") + 1] == str(workspace)
    assert workspace.parent == started.env.home  # generated in DAGSTER_HOME, not the repository
    entry = yaml.safe_load(workspace.read_text())["load_from"][0]["grpc_server"]
    code_cmd = members[code_servers[0]]
    assert entry == {"host": "127.0.0.1", "port": int(code_cmd[code_cmd.index("-p") + 1]), "location_name": "cryptorun"}
    assert f"code server pid {code_servers[0]}" in started.text
    # the code server (and the runs it launches) reads the config the CLI was given
    for pid in code_servers + grpc_servers:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"CRYPTORUN_CONFIG={started.config}".encode() in environ
    # the fresh home got the local profile and an initialised instance before anything started
    assert "profile local: installed now, instance initialised" in started.text
    from cryptorun_pipelines.cli.instance import profile_file

    assert (started.env.home / "dagster.yaml").read_bytes() == profile_file("local").read_bytes()


@pytest.mark.e2e
def test_a_second_start_on_the_same_instance_is_refused(started: Started) -> None:
    res = started.env.run("schedule", "start", "--port", str(_free_port()), timeout=300)
    assert res.returncode == 2
    assert "another `cryptorun schedule start`" in res.stderr and str(started.env.home) in res.stderr


@pytest.mark.e2e
def test_queued_regime_runs_run_one_at_a_time(started: Started) -> None:
    run_ids = []
    for key in ("2026-11-20-04:00", "2026-11-20-08:00"):
        params = {
            "selector": {"repositoryLocationName": "cryptorun", "repositoryName": "__repository__",
                         "jobName": "regime_refresh"},
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": key}]},
            "runConfigData": "{}",
        }
        res = started.graphql(LAUNCH, {"params": params})["data"]["launchRun"]
        assert res["__typename"] == "LaunchRunSuccess", res
        run_ids.append(res["run"]["runId"])
    deadline = time.monotonic() + 400
    with dg.DagsterInstance.from_config(str(started.env.home)) as instance:
        while True:
            records = [instance.get_run_record_by_id(r) for r in run_ids]
            if all(r.dagster_run.is_finished for r in records):
                break
            assert time.monotonic() < deadline, [r.dagster_run.status for r in records]
            time.sleep(1)
    assert [r.dagster_run.status for r in records] == [dg.DagsterRunStatus.SUCCESS] * 2
    first, second = sorted(records, key=lambda r: r.start_time)
    assert second.start_time >= first.end_time, "two regime.refresh runs overlapped"


@pytest.mark.e2e
def test_the_monitor_fails_a_killed_run_without_any_command(started: Started, tmp_path: Path) -> None:
    worker = start_worker(started.env, tmp_path, tagged=True, job="regime_refresh")
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    deadline = time.monotonic() + 240  # the profile's poll interval is 30 s
    with dg.DagsterInstance.from_config(str(started.env.home)) as instance:
        run = next(r for r in instance.get_runs() if r.tags.get("cryptorun/worker", "").startswith(f"{worker.pid}@"))
        while not instance.get_run_by_id(run.run_id).is_finished:
            assert time.monotonic() < deadline, "the killed run is still STARTED"
            time.sleep(2)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        [event] = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    assert f"worker process {worker.pid}" in event.event_log_entry.message


@pytest.mark.e2e
def test_status_while_started_says_the_daemon_runs(started: Started) -> None:
    payload = json.loads(started.env.run("schedule", "status", "--json").stdout)
    assert payload["daemon"]["running"] is True
    assert all(j["ticking"] == (j["schedule_state"] == "running") for j in payload["jobs"])


def _get_mutation(url: str, mutation: str, host: str) -> dict:
    """A mutation as a cross-site page would send it: a plain GET, with a foreign Host header."""
    from urllib.parse import quote

    req = urllib.request.Request(f"{url}/graphql?query={quote(mutation)}", headers={"Host": host})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.mark.e2e
def test_the_web_ui_runs_get_mutations_for_any_host(started: Started) -> None:
    """Dagster's behaviour, documented in docs/reliability.md: if this fails, Dagster changed it."""
    res = _get_mutation(started.url, "mutation { setNuxSeen }", host="attacker.example")
    assert res == {"data": {"setNuxSeen": True}}


@pytest.mark.e2e
def test_no_code_server_restarts_over_seventy_seconds(started: Started) -> None:
    """Today the daemon replaces its own code server about once a minute ("No heartbeat received")."""
    before = {p for p, cmd in started.members().items() if _is(cmd, "api", "grpc")}
    time.sleep(max(0.0, 75 - (time.monotonic() - started.since)))
    after = {p for p, cmd in started.members().items() if _is(cmd, "api", "grpc")}
    assert before == after and len(after) == 1
    daemon_log = started.log("daemon")
    assert "No heartbeat received" not in daemon_log and "shutting down" not in daemon_log.lower()
    assert "No heartbeat received" not in started.log("code-server")


@pytest.mark.e2e
def test_read_only_start_for_viewers(cli_env: CliEnv) -> None:
    s = Started(cli_env, ["--read-only"])
    try:
        members = s.members()
        assert not any(_is(cmd, "dagster-daemon") for cmd in members.values())  # nothing ticks or launches
        assert any(_is(cmd, "dagster-webserver", "--read-only") for cmd in members.values())
        assert "read-only" in s.text and "running" not in s.text.split("Dagster UI ready")[1]
        query = ('mutation { startSchedule(scheduleSelector: {repositoryLocationName: "cryptorun", '
                 'repositoryName: "__repository__", scheduleName: "scan_hot_schedule"}) { __typename } }')
        for res in (s.graphql(query), _get_mutation(s.url, query, host="attacker.example")):
            assert res.get("errors") or res["data"]["startSchedule"]["__typename"] == "UnauthorizedError", res
        with dg.DagsterInstance.from_config(str(cli_env.home)) as instance:
            assert instance.all_instigator_state() == []  # no schedule was toggled
    finally:
        s.stop()
    assert s.proc.returncode == 0 and group_pids(s.pgid) == []
