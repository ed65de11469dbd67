"""Is the worker process of a STARTED run still alive?

A run killed with ``kill -9`` (or lost with its machine) never writes its end: Dagster keeps it
STARTED for good. Dagster's run monitoring asks the run launcher about the worker, and its
``DefaultRunLauncher`` cannot say (``supports_check_run_worker_health`` is False), so it only
catches runs that overstay ``max_runtime_seconds``. Runs of ``cryptorun schedule run`` do not go
through a launcher at all (``execute_in_process`` in the CLI process). Here the worker is found
from the run itself: the ``cryptorun/worker`` tag (``pid@host``, set by the CLI) or, on a local
SQLite instance, the ``pid`` Dagster records in the run's first engine events ("Started process
for run", "Executing steps in process"). A worker is dead when no process has its pid on its host,
or when the process with that pid started after the run did (the pid was reused). A worker on
another host cannot be checked from here and counts as alive.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptorun_pipelines.run_tags import WORKER_TAG

if TYPE_CHECKING:  # pragma: no cover
    from dagster import DagsterInstance
    from dagster._core.storage.dagster_run import DagsterRun, RunRecord

#: a process that started this long after the run's worker was recorded holds a reused pid
#: (``/proc/stat``'s boot time is whole seconds)
PID_REUSE_SLACK_S = 2.0
#: engine events read to find the worker's pid (it is in the first one or two)
PID_EVENTS_LIMIT = 10


@dataclass(frozen=True)
class Worker:
    pid: int
    host: str
    since: float  # epoch seconds at which the process is known to have existed
    source: str  # "tag" | "event"

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}"


@dataclass(frozen=True)
class Health:
    alive: bool | None  # None: cannot tell (no worker recorded, another host)
    worker: Worker | None
    reason: str


def this_worker() -> str:
    """The ``cryptorun/worker`` value of a run executed in this process."""
    return f"{os.getpid()}@{socket.gethostname()}"


def parse_worker(value: str | None, since: float) -> Worker | None:
    pid, sep, host = (value or "").partition("@")
    if not sep or not pid.isdigit() or not host:
        return None
    return Worker(int(pid), host, since, "tag")


def _boot_time() -> float | None:
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def process_started_at(pid: int) -> float | None | bool:
    """Epoch seconds at which process ``pid`` started; False if there is none (or a zombie); None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: existence only
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    if not fields or fields[0] in ("Z", "X"):
        return False
    boot = _boot_time()
    if boot is None or len(fields) < 20:
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def worker_alive(worker: Worker) -> bool | None:
    if worker.host != socket.gethostname():
        return None
    started = process_started_at(worker.pid)
    if started is False:
        return False
    if started is None:
        return True
    return started <= worker.since + PID_REUSE_SLACK_S


def _is_local_instance(instance: "DagsterInstance") -> bool:
    """SQLite storage: every process using it runs on this machine."""
    from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

    return isinstance(instance.run_storage, SqliteRunStorage)


def _event_worker(instance: "DagsterInstance", run_id: str) -> Worker | None:
    from dagster import DagsterEventType

    conn = instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=PID_EVENTS_LIMIT)
    for record in conn.records:
        event = record.event_log_entry.dagster_event
        data = getattr(event, "engine_event_data", None) if event else None
        pid = getattr((data.metadata or {}).get("pid"), "value", None) if data else None
        if pid is not None and str(pid).isdigit():
            return Worker(int(pid), socket.gethostname(), record.event_log_entry.timestamp, "event")
    return None


def run_worker(instance: "DagsterInstance", record: "RunRecord") -> Worker | None:
    run = record.dagster_run
    created = record.create_timestamp.timestamp() if hasattr(record.create_timestamp, "timestamp") else float(record.create_timestamp)
    worker = parse_worker((run.tags or {}).get(WORKER_TAG), created)
    if worker is None and _is_local_instance(instance):
        worker = _event_worker(instance, run.run_id)
    return worker


def check_run(instance: "DagsterInstance", record: "RunRecord") -> Health:
    worker = run_worker(instance, record)
    if worker is None:
        return Health(None, None, "no worker process recorded for this run")
    alive = worker_alive(worker)
    if alive is None:
        return Health(None, worker, f"worker {worker.describe()} is on another host")
    if alive:
        return Health(True, worker, f"worker {worker.describe()} is alive")
    return Health(False, worker, f"worker {worker.describe()} is gone (killed or crashed)")


def dead_run_message(health: Health, by: str) -> str:
    return f"Run {health.reason}; marked failed by {by}."


def started_runs(instance: "DagsterInstance") -> list[Any]:
    from dagster import DagsterRunStatus, RunsFilter

    return list(instance.get_run_records(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED])))


def fail_dead_runs(instance: "DagsterInstance", by: str) -> list[tuple["DagsterRun", Health]]:
    """Mark every STARTED run whose worker is gone as failed (with the reason); returns them."""
    failed = []
    for record in started_runs(instance):
        health = check_run(instance, record)
        if health.alive is False:
            current = instance.get_run_by_id(record.dagster_run.run_id)
            if current is None or current.is_finished:  # it ended while we looked
                continue
            instance.report_run_failed(current, dead_run_message(health, by))
            failed.append((current, health))
    return failed
