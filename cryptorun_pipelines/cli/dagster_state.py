"""Questions to the Dagster instance: schedule states, run history, dead runs; and the tags of a CLI run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from cryptorun_pipelines.cli.instance import CODE_LOCATION
from cryptorun_pipelines.cli.progress import error_message
from cryptorun_pipelines.partitions import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG
from cryptorun_pipelines.run_tags import DRY_RUN_TAG, WORKER_TAG

if TYPE_CHECKING:  # pragma: no cover
    from dagster import DagsterInstance

#: who marks a dead run failed when ``status`` finds it (the RUN_FAILURE message says so)
STATUS_COMMAND = "`cryptorun schedule status`"


def partition_label(tags: dict[str, str]) -> str | None:
    """The run's partition, or ``first…last`` of a single-run backfill's range; None: no partition."""
    if tags.get(PARTITION_TAG):
        return tags[PARTITION_TAG]
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    return f"{start}…{end}" if start and end else None


def run_worker_tags() -> dict[str, str]:
    """Tags of a run executed in this process (``execute_in_process``): ``cryptorun/worker = pid@host``,
    from which ``status`` and the run monitor tell a dead run from a live one."""
    from cryptorun_pipelines.cli.run_health import this_worker

    return {WORKER_TAG: this_worker()}


@dataclass
class ScheduleState:
    name: str  # the Dagster schedule name
    status: str  # "running" | "stopped" | "not started"
    source: str  # "instance" (state stored by start/UI) | "code" (default_status of the definition) | "none"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def schedule_names(config_jobs: Any) -> dict[str, str]:
    """Dagster schedule name per dotted job name (``scan.hot`` → ``scan_hot_schedule``)."""
    from cryptorun_pipelines.schedules import schedule_name

    return {job.name: schedule_name(job.dagster_name) for job in config_jobs}


def default_statuses(config_jobs: Any = None) -> dict[str, str]:
    """``default_status`` of each schedule in code ("running"/"stopped"): from the config jobs when
    given (cheap), else from the loaded definitions."""
    if config_jobs is not None:
        from cryptorun_pipelines.schedules import default_status, schedule_name

        return {schedule_name(j.dagster_name): default_status(j).value.lower() for j in config_jobs}
    try:
        from cryptorun_pipelines.cli.workspace import load_definitions

        defs = load_definitions()
    except Exception:
        return {}
    return {s.name: str(getattr(s.default_status, "value", s.default_status)).lower() for s in defs.schedules or []}


def schedule_states(
    instance: "DagsterInstance", names: dict[str, str], config_jobs: Any = None
) -> dict[str, ScheduleState]:
    """State of each schedule (keyed by dotted job name) as the instance stores it."""
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import InstigatorStatus

    stored: dict[str, Any] = {}
    try:
        states = instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
    except Exception:  # no schedule storage
        states = []
    for state in states:
        try:
            location = state.origin.repository_origin.code_location_origin.location_name
        except AttributeError:  # pragma: no cover
            location = None
        if location not in (None, CODE_LOCATION):
            continue
        stored[state.name] = state
    defaults = None
    out: dict[str, ScheduleState] = {}
    for job_name, sched_name in names.items():
        state = stored.get(sched_name)
        if state is not None and state.status in (InstigatorStatus.RUNNING, InstigatorStatus.STOPPED):
            status = "running" if state.status == InstigatorStatus.RUNNING else "stopped"
            out[job_name] = ScheduleState(sched_name, status, "instance")
            continue
        if defaults is None:
            defaults = default_statuses(config_jobs)
        default = defaults.get(sched_name)
        if default == "running":
            out[job_name] = ScheduleState(sched_name, "running", "code")
        elif state is not None:
            out[job_name] = ScheduleState(sched_name, "stopped", "instance")
        else:
            out[job_name] = ScheduleState(sched_name, "not started", "none")
    return out


#: The scheduler daemon writes a heartbeat every ~20-30 s; older than this it is considered gone.
HEARTBEAT_MAX_AGE_S = 90.0


def daemon_heartbeat_age(instance: "DagsterInstance") -> float | None:
    """Seconds since the scheduler daemon's last heartbeat, or None when it never ran here."""
    import time

    try:
        beats = instance.get_daemon_heartbeats()
    except Exception:
        return None
    beat = beats.get("SCHEDULER")
    return None if beat is None else max(0.0, time.time() - beat.timestamp)


def daemon_running(age_s: float | None) -> bool:
    return age_s is not None and age_s <= HEARTBEAT_MAX_AGE_S


@dataclass
class RunInfo:
    run_id: str
    status: str
    partition: str | None
    started_at: datetime | None
    ended_at: datetime | None
    created_at: datetime | None
    dry_run: bool
    failure: str | None = None  # the RUN_FAILURE message of a failed run

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.ended_at:
            return (self.ended_at - self.started_at).total_seconds()
        return None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("started_at", "ended_at", "created_at"):
            out[key] = out[key].isoformat() if out[key] else None
        out["duration_s"] = round(self.duration_s, 3) if self.duration_s is not None else None
        return out


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=timezone.utc) if value else None


def last_run(instance: "DagsterInstance", dagster_job_name: str) -> RunInfo | None:
    from dagster import RunsFilter

    records = instance.get_run_records(filters=RunsFilter(job_name=dagster_job_name), limit=1)
    if not records:
        return None
    rec = records[0]
    run = rec.dagster_run
    tags = run.tags or {}
    failure = failure_message(instance, run.run_id) if run.status.value == "FAILURE" else None
    return RunInfo(
        run_id=run.run_id,
        status=run.status.value,
        partition=partition_label(tags),
        started_at=_ts(rec.start_time),
        ended_at=_ts(rec.end_time),
        created_at=rec.create_timestamp if isinstance(rec.create_timestamp, datetime) else _ts(rec.create_timestamp),
        dry_run=str(tags.get(DRY_RUN_TAG, "")).lower() in ("true", "1"),
        failure=failure,
    )


def last_written_on_demand(instance: "DagsterInstance", asset: str) -> dict | None:
    """The newest materialisation of ``asset`` when a scan computed it on demand (the IO manager
    records those with ``computed_by_run``): partition, the run and its job, and when. None when the
    newest one came from the asset's own job, or there is none."""
    from dagster import AssetKey

    records = instance.fetch_materializations(AssetKey(asset), limit=1).records
    if not records:
        return None
    record = records[0]
    by = record.asset_materialization.metadata.get("computed_by_run") if record.asset_materialization else None
    if by is None:
        return None
    run = instance.get_run_by_id(by.value)
    return {
        "partition": record.partition_key,
        "run_id": by.value,
        "job": run.job_name if run else None,
        "at": _ts(record.timestamp).isoformat() if _ts(record.timestamp) else None,
    }


def failure_message(instance: "DagsterInstance", run_id: str) -> str | None:
    from dagster import DagsterEventType

    conn = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_FAILURE, limit=1, ascending=False)
    for record in conn.records:
        entry = record.event_log_entry
        # a run that failed outside its steps (the executor's checks, a missing Celery worker) says why in
        # its error; the event's message is only "… failed. An exception was thrown during execution."
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        error = error_message(getattr(data, "error", None))
        return error or (entry.message or "").strip() or None
    return None


def fail_dead_runs(instance: "DagsterInstance") -> list[dict[str, Any]]:
    """Mark STARTED runs whose worker process is gone as failed, so the UI agrees; what was marked."""
    from cryptorun_pipelines.cli.run_health import fail_dead_runs as fail

    return [
        {"run_id": run.run_id, "job": run.job_name, "partition": partition_label(run.tags or {}), "reason": h.reason}
        for run, h in fail(instance, STATUS_COMMAND)
    ]
