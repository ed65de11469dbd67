"""Child processes in one process group of their own, stopped as a whole.

The first process spawned leads a new group; the others join it, and whatever they spawn (run
workers of the code server) inherits it. :meth:`Supervisor.stop` sends SIGTERM to the clients
first (a gRPC server waits for its clients' calls before it exits), then to the group, SIGKILL
after a timeout, and waits until no member is left, so nothing outlives the command.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from cryptorun_pipelines.cli.errors import CliError


def executable(name: str) -> str:
    """The console script installed next to this interpreter (the project's virtualenv)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise CliError(f"'{name}' is not installed (pip install dagster-webserver)", 2)
    return found


def proc_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


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
    """Callers install their own SIGINT handler before spawning: a script that started them in the
    background left SIGINT ignored, a child would inherit that, and Dagster's servers map SIGTERM
    onto the SIGINT handler (they would then ignore SIGTERM too). A handled signal is reset to the
    default in the child at exec."""

    def __init__(self, log_dir: Path, stop_timeout: float):
        self.log_dir = log_dir
        self.stop_timeout = stop_timeout
        self.procs: dict[str, subprocess.Popen] = {}
        self.pgid: int | None = None
        self._logs: list[IO[bytes]] = []

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def spawn(self, name: str, argv: list[str], *, env: dict[str, str], cwd: str) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path(name), "ab", buffering=0)  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            process_group=0 if self.pgid is None else self.pgid,
        )
        if self.pgid is None:
            self.pgid = proc.pid
        self.procs[name] = proc
        return proc

    def dead(self) -> str | None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return f"{name} exited with code {proc.returncode}{self.last_error(name)} (see {self.log_path(name)})"
        return None

    def last_error(self, name: str) -> str:
        """': <the last line of the log that names an error>' or ''."""
        try:
            lines = self.log_path(name).read_text(errors="replace").splitlines()[-200:]
        except OSError:
            return ""
        for line in reversed(lines):
            if "Error" in line or "error" in line:
                return ": " + line.strip()[:200]
        return ""

    def stop(self, first: tuple[str, ...] = ()) -> list[int]:
        """SIGTERM to the processes named in ``first`` (clients of the others) and, once they are gone,
        to the whole group; SIGKILL to whatever is left after the timeout. Returns the pids killed."""
        if self.pgid is None:
            return []
        deadline = time.monotonic() + self.stop_timeout
        clients = [self.procs[name] for name in first if name in self.procs]
        for proc in clients:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        while any(proc.poll() is None for proc in clients) and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            os.killpg(self.pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        killed: list[int] = []
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
        for log in self._logs:
            log.close()
        return killed
