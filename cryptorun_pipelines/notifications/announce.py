"""Which finished scan runs are announced, and their entries queued in the ledger.

A run is announced when it is a successful run of a scan job, not a dry run (a dry run writes
no artifacts, so there is nothing committed to announce — ``cryptorun notify test`` rehearses
delivery instead), and not part of a backfill unless ``notifications.backfills`` is true.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from cryptorun_core.config import AppConfig, JobConfig
from cryptorun_pipelines.notifications.ledger import Ledger
from cryptorun_pipelines.notifications.message import read_entries
from cryptorun_pipelines.partitions import (
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    Cadences,
    as_of_for_key,
)
from cryptorun_pipelines.run_tags import BACKFILL_TAG, DRY_RUN_TAG


@dataclass(frozen=True)
class ScanJob:
    role: str  # hot | warm
    job: JobConfig
    partitions_def: dg.TimeWindowPartitionsDefinition


def scan_jobs(cadences: Cadences) -> dict[str, ScanJob]:
    """{Dagster job name: the scan it runs} of the configured scan jobs."""
    out = {}
    for role, job, pdef in (("hot", cadences.hot_job, cadences.hot), ("warm", cadences.warm_job, cadences.warm)):
        if job is not None and pdef is not None:
            out[job.dagster_name] = ScanJob(role, job, pdef)
    return out


def is_dry_run(run: dg.DagsterRun) -> bool:
    """Tagged by ``cryptorun schedule run --dry-run`` or launched with config/dry_run.yaml."""
    if str(run.tags.get(DRY_RUN_TAG, "")).lower() in ("true", "1"):
        return True
    io_config = ((run.run_config or {}).get("resources") or {}).get("io_manager") or {}
    return bool((io_config.get("config") or {}).get("dry_run"))


def silence_reason(run: dg.DagsterRun, announce_backfills: bool) -> str | None:
    """Why ``run``'s entries are not announced, or None."""
    if is_dry_run(run):
        return "a dry run"
    if run.tags.get(BACKFILL_TAG) and not announce_backfills:
        return f"part of backfill {run.tags[BACKFILL_TAG]} (notifications.backfills is false)"
    return None


def run_partitions(run: dg.DagsterRun, pdef: dg.TimeWindowPartitionsDefinition) -> list[str]:
    """The partition keys ``run`` filled: its key, or every key of its range."""
    tags = run.tags
    if tags.get(PARTITION_TAG):
        return [tags[PARTITION_TAG]]
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if start and end:
        return list(pdef.get_partition_keys_in_range(dg.PartitionKeyRange(start, end)))
    return []


def artifacts_dir_of(run: dg.DagsterRun, config: AppConfig) -> str:
    """Where ``run`` wrote: the launch-time ``cryptorun_config.artifacts_dir`` if its run config set
    one, else the code location's."""
    resource = ((run.run_config or {}).get("resources") or {}).get("cryptorun_config") or {}
    return (resource.get("config") or {}).get("artifacts_dir") or config.global_.artifacts_dir


@dataclass
class Queued:
    entries: int = 0  # entries found in the run's artifacts
    new: int = 0  # deliveries queued (entry × target) that were never queued before
    notes: list[str] = field(default_factory=list)


def queue_run(
    run: dg.DagsterRun, scan: ScanJob, config: AppConfig, ledger: Ledger, targets: list[str], now: float
) -> Queued:
    """Read the entries ``run`` committed and queue the ones never queued before, for every target."""
    out = Queued()
    reason = silence_reason(run, config.notifications.backfills)
    if reason:
        out.notes.append(f"run {run.run_id[:8]} ({scan.job.name}) not announced: {reason}")
        return out
    root = artifacts_dir_of(run, config)
    for key in run_partitions(run, scan.partitions_def):
        try:
            entries = read_entries(root, scan.role, scan.job.name, key, as_of_for_key(scan.partitions_def, key))
        except FileNotFoundError as exc:
            out.notes.append(f"run {run.run_id[:8]} ({scan.job.name} {key}): no signal file to announce ({Path(exc.filename or '').name} missing)")
            continue
        except (OSError, ValueError, KeyError) as exc:
            out.notes.append(f"run {run.run_id[:8]} ({scan.job.name} {key}): signal file unreadable: {type(exc).__name__}: {exc}")
            continue
        out.entries += len(entries)
        out.new += ledger.enqueue([e.with_run(run.run_id, config.notifications.ui_base_url) for e in entries], targets, now)
    return out
