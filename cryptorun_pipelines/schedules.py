"""Schedules from ``config/scheduler.yaml``: one per job, filling the partition that ends at the tick."""

from __future__ import annotations

import dagster as dg

from cryptorun_core.config import AppConfig, JobConfig
from cryptorun_pipelines.run_tags import TRIGGER_TAG


def schedule_name(dagster_job_name: str) -> str:
    return f"{dagster_job_name}_schedule"


def default_status(job: JobConfig) -> dg.DefaultScheduleStatus:
    """A schedule is on by default exactly when its config job is enabled."""
    return dg.DefaultScheduleStatus.RUNNING if job.enabled else dg.DefaultScheduleStatus.STOPPED


def build_schedules(config: AppConfig, jobs: list[dg.UnresolvedAssetJobDefinition]) -> list[dg.ScheduleDefinition]:
    """A disabled config job keeps its job; its schedule defaults to STOPPED."""
    by_name = {j.name: j for j in jobs}
    schedules = []
    for job in config.jobs:
        target = by_name.get(job.dagster_name)
        if target is None:
            continue
        schedules.append(
            dg.build_schedule_from_partitioned_job(
                target,
                name=schedule_name(job.dagster_name),
                description=f"Runs {job.dagster_name} ({job.name}) at '{job.schedule}' UTC; each tick fills the partition "
                "that ends at the tick (its as-of time T = the tick)"
                + ("." if job.enabled else "; STOPPED by default because the job is disabled in config/scheduler.yaml."),
                default_status=default_status(job),
                tags={TRIGGER_TAG: "schedule"},  # cryptorun/job comes with the job's own tags
            )
        )
    return schedules
