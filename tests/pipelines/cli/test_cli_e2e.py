"""End-to-end tests of the installed ``cryptorun`` command, each in a subprocess with its own
DAGSTER_HOME and artifacts folder."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli_helpers import (  # noqa: E402
    HOT_FOLDER,
    HOT_PARTITION,
    REGIME_FOLDER,
    REGIME_PARTITION,
    CliEnv,
    cryptorun_executable,
)

pytestmark = pytest.mark.e2e

ANSI = "\x1b["
JOBS = ["scan.hot", "scan.warm", "regime.refresh"]


def assert_fits(text: str, width: int = 80) -> None:
    too_wide = [line for line in text.splitlines() if len(line) > width]
    assert not too_wide, f"lines wider than {width} columns: {too_wide}"


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    return lines[0]


# -- list ------------------------------------------------------------------------------------


def test_list_table(cli_env: CliEnv) -> None:
    res = cli_env.run("schedule", "list")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert ANSI not in out  # not a terminal: no colour
    assert_fits(out)
    assert "no data yet" in out  # the header, before any run
    for title in ("JOB NAME", "SCHEDULE", "STATUS", "DESCRIPTION", "NEXT TICK"):
        assert title in out
    for name, cron in zip(JOBS, ["*/15 * * * *", "0 */2 * * *", "0 */4 * * *"]):
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert cron in row
        assert "enabled" in row


def test_list_json(cli_env: CliEnv) -> None:
    res = cli_env.run("schedule", "list", "--json")
    assert res.returncode == 0, res.stderr
    payload = json.loads(res.stdout)
    assert [j["name"] for j in payload["jobs"]] == JOBS
    hot = payload["jobs"][0]
    assert hot["dagster_job"] == "scan_hot"
    assert hot["schedule"] == "*/15 * * * *"
    assert hot["enabled"] is True
    assert hot["schedule_state"] in ("running", "stopped", "not started")
    assert hot["next_tick"].endswith("+00:00")
    assert payload["header"]["has_data"] is False
    assert "running" in payload["daemon"]


# -- run ---------------------------------------------------------------------------------------


def test_run_scan_hot_writes_artifacts_and_summary(ran_env) -> None:
    env, res = ran_env
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert ANSI not in out
    assert_fits(out)
    folder = env.artifacts / HOT_FOLDER
    for name in ("signals.csv", "premove.csv", "explain.json", "regime.json"):
        assert (folder / name).is_file(), name
    # the missing regime window was computed by the scan's own run, and said so
    assert "Regime window 2026-11-20-08:00 is missing: this run computes and writes it" in out
    assert "upstream   regime.refresh 2026-11-20-08:00 computed and written by this run" in out
    # summary: folder, files with row counts, regime used, top rows with badges
    assert HOT_FOLDER in out
    rows = sum(1 for _ in (folder / "premove.csv").open()) - 1
    assert re.search(rf"premove\.csv\s+{rows} rows", out)
    explain = json.loads((folder / "explain.json").read_text())
    assert re.search(rf"explain\.json\s+{len(explain['symbols'])} symbols", out)
    assert f"regime     {explain['regime']['label']}" in out
    assert "Top 5 by score" in out
    badge = re.compile(r"\[Fresh [●○]\] \[Depth [✓✗]\] \[Venue (kraken|okx|coinbase)\] \[Sources \d\]")
    assert len(badge.findall(out)) == 5
    best = max(explain["symbols"], key=lambda s: (s["score"], s["symbol"]))
    if best["decision"] != "entry":
        assert f"↳ {best['primary_reason']}" in out
    # plain progress lines (stdout is not a terminal)
    assert "started  hot_scan" in out and "finished hot_scan" in out


def test_run_dry_run_writes_nothing(ran_env) -> None:
    env, first = ran_env
    assert first.returncode == 0
    before = env.files()
    # the next cycle (T 12:15) reads the same regime window, which the first run materialised
    res = env.run("schedule", "run", "scan.hot", "--partition", "2026-11-20-12:00", "--dry-run", "--top", "3")
    assert res.returncode == 0, res.stdout + res.stderr
    assert env.files() == before
    assert not (env.artifacts / "2026-11-20T12-15-00Z").exists()
    out = res.stdout
    assert_fits(out)
    assert "nothing written" in out and "would have written" in out
    assert "2026-11-20T12-15-00Z/" in out
    for name in ("signals.csv", "premove.csv", "explain.json"):
        assert name in out
    assert "Top 3 by score" in out


def test_dry_run_on_a_fresh_home_computes_the_regime_window_in_memory(cli_env: CliEnv) -> None:
    """The first thing a new user tries: exits 0, writes nothing anywhere, says what it computed."""
    res = cli_env.run("schedule", "run", "scan.hot", "--dry-run", "--partition", HOT_PARTITION, "--top", "3")
    assert res.returncode == 0, res.stdout + res.stderr
    assert not any(cli_env.artifacts.rglob("*"))  # no file, no folder
    out = res.stdout
    assert_fits(out)
    assert "Regime window 2026-11-20-08:00 is missing: this run computes it in memory" in out
    assert "upstream   regime.refresh 2026-11-20-08:00 computed in memory by this run" in out
    assert "nothing written" in out and "Top 3 by score" in out


def test_run_json(ran_env) -> None:
    env, _ = ran_env
    res = env.run("schedule", "run", "scan.hot", "--partition", HOT_PARTITION, "--json", "--top", "2")
    assert res.returncode == 0, res.stderr
    payload = json.loads(res.stdout)  # progress went to stderr
    assert payload["success"] is True and payload["partition"] == HOT_PARTITION
    assert payload["upstream"] == []  # already there
    assert {f["name"] for f in payload["files"]} == {"signals.csv", "premove.csv", "explain.json"}
    assert all(f["written"] for f in payload["files"])
    assert len(payload["top"]) == 2 and {"fresh", "depth_badge", "venue", "sources", "score"} <= set(payload["top"][0])


def test_run_regime_refresh(cli_env: CliEnv) -> None:
    res = cli_env.run("schedule", "run", "regime.refresh", "--partition", REGIME_PARTITION)
    assert res.returncode == 0, res.stdout + res.stderr
    path = cli_env.artifacts / REGIME_FOLDER / "regime.json"
    assert path.is_file()
    regime = json.loads(path.read_text())
    assert regime["partition_key"] == REGIME_PARTITION
    out = res.stdout
    assert_fits(out)
    assert re.search(r"regime\.json\s+1 regime", out)
    assert f"regime     {regime['regime']} (confidence {regime['confidence']:.2f})" in out
    assert "weights    momentum" in out


def test_status_after_run(ran_env) -> None:
    env, first = ran_env
    assert first.returncode == 0
    res = env.run("schedule", "status")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert_fits(out)
    assert ANSI not in out
    assert "Regime " in out and "APIs " in out  # the header, from the artifacts
    block = out[out.index("scan.hot"):out.index("scan.warm")]
    assert "last run   SUCCESS" in block
    assert f"partition {HOT_PARTITION}" in block
    assert HOT_FOLDER in block
    payload = json.loads(env.run("schedule", "status", "--json").stdout)
    hot = next(j for j in payload["jobs"] if j["name"] == "scan.hot")
    assert hot["last_run"]["status"] == "SUCCESS"
    assert hot["last_run"]["partition"] in (HOT_PARTITION,)
    assert hot["latest_artifacts"].endswith(HOT_FOLDER)
    regime = next(j for j in payload["jobs"] if j["name"] == "regime.refresh")
    assert regime["latest_artifacts"].endswith(HOT_FOLDER)  # the window the scan computed (same as_of folder)
    assert payload["header"]["regime"] in ("calm", "normal", "volatile")


# -- errors ------------------------------------------------------------------------------------


def test_bad_job_name_exit_2(cli_env: CliEnv) -> None:
    res = cli_env.run("schedule", "run", "scan.lukewarm")
    assert res.returncode == 2
    line = one_line(res.stderr)
    assert "unknown job 'scan.lukewarm'" in line and "scan.hot" in line


def test_usage_error_exit_2(cli_env: CliEnv) -> None:
    res = cli_env.run("schedule", "run", "scan.hot", "--partition", "2026-11-20-11:45", "--as-of", "2026-11-20T12:00Z")
    assert res.returncode == 2
    assert "not allowed with argument" in one_line(res.stderr)
    res = cli_env.run("schedule", "run", "scan.hot", "--partition", "2026-11-20-11:44")
    assert res.returncode == 2
    assert "is not a partition" in one_line(res.stderr)


def test_broken_config_exit_2_names_key(cli_env: CliEnv, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3]
    raw = yaml.safe_load((root / "config" / "scheduler.yaml").read_text())
    raw["jobs"][0]["schedule"] = "every fifteen minutes"
    bad = tmp_path / "config" / "scheduler.yaml"
    bad.parent.mkdir()
    bad.write_text(yaml.safe_dump(raw))
    res = cli_env.run("--config", str(bad), "schedule", "list")
    assert res.returncode == 2
    line = one_line(res.stderr)
    assert "jobs[scan.hot].schedule" in line
    # the same through the environment
    res = cli_env.run("schedule", "status", env={"CRYPTORUN_CONFIG": str(bad)})
    assert res.returncode == 2
    assert "jobs[scan.hot].schedule" in one_line(res.stderr)


def test_job_failure_exit_1(cli_env: CliEnv, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3]
    raw = yaml.safe_load((root / "config" / "scheduler.yaml").read_text())
    # an empty replay folder passes load (a missing one is a config error) and fails the run
    raw["market"]["source"] = "replay"
    raw["market"]["replay"]["path"] = str(tmp_path / "empty_history")
    (tmp_path / "empty_history").mkdir()
    cfg = tmp_path / "config" / "scheduler.yaml"
    cfg.parent.mkdir()
    cfg.write_text(yaml.safe_dump(raw))
    env = {k: v for k, v in cli_env.env.items() if k != "CRYPTORUN_MARKET_SOURCE"}
    res = subprocess.run([cryptorun_executable(), "--config", str(cfg), "schedule", "run", "regime.refresh",
                          "--partition", REGIME_PARTITION], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr
    line = one_line(res.stderr)
    assert "failed at step regime_window" in line and "empty_history" in line
    assert "✗ failed" in res.stdout
    assert not (cli_env.artifacts / REGIME_FOLDER).exists()


# -- start -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pgrp_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``, read from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rfind(")") + 2:].split()[0] != "Z"


def _http(url: str, body: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.read()


@pytest.mark.timeout(420)
def test_start_serves_ui_runs_schedules_and_stops_on_sigterm(cli_env: CliEnv) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [cryptorun_executable(), "schedule", "start", "--port", str(port), "--stop-timeout", "90"],
        env=cli_env.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def reader() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                ready.set()

    threading.Thread(target=reader, daemon=True).start()
    pgid = None
    try:
        deadline = time.monotonic() + 300
        while not ready.is_set() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert ready.is_set(), "".join(lines) + (proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
        text = "".join(lines)
        pgid = int(re.search(r"process group (\d+)", text).group(1))
        assert pgid != os.getpgid(proc.pid)  # its own group, not ours or the CLI's

        status, body = _http(f"http://127.0.0.1:{port}/server_info")
        assert status == 200 and b"dagster" in body.lower()

        # the enabled jobs' schedules are on, as stored in the instance
        query = "{ repositoriesOrError { ... on RepositoryConnection { nodes { schedules { name scheduleState { status } } } } } }"
        _, body = _http(f"http://127.0.0.1:{port}/graphql", {"query": query})
        schedules = {
            s["name"]: s["scheduleState"]["status"]
            for repo in json.loads(body)["data"]["repositoriesOrError"]["nodes"]
            for s in repo["schedules"]
        }
        assert schedules.get("scan_hot_schedule") == "RUNNING", schedules
        # and as the instance reports it (`status` reads the instance's schedule states)
        payload = json.loads(cli_env.run("schedule", "status", "--json").stdout)
        states = {j["name"]: j["schedule_state"] for j in payload["jobs"]}
        assert states == {"scan.hot": "running", "scan.warm": "running", "regime.refresh": "running"}

        members = _pgrp_members(pgid)
        # the code server (a proxy and its child), the daemon, the web server (+ a scheduled run's worker)
        assert len(members) >= 4
        assert "profile local: installed now, instance initialised" in text  # a fresh home

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        assert proc.returncode == 0, proc.stderr.read()  # type: ignore[union-attr]
        deadline = time.monotonic() + 10
        while _pgrp_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _pgrp_members(pgid) == []
        assert [p for p in members if _alive(p)] == []
        assert "stopping (SIGTERM)" in "".join(lines)
        assert "SIGKILL" not in "".join(lines)  # everything stopped on SIGTERM, none had to be killed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if pgid is not None and _pgrp_members(pgid):
            os.killpg(pgid, signal.SIGKILL)


def test_a_closed_pipe_ends_quietly(cli_env: CliEnv) -> None:
    """`cryptorun schedule list | head -1`: the reader stops early; no BrokenPipeError, exit 0."""
    proc = subprocess.Popen([cryptorun_executable(), "schedule", "list"], env=cli_env.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=str(cli_env.home.parent))
    proc.stdout.close()  # the reader is gone before the command writes (head -1 after its line, sooner)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err and err.strip() == ""
