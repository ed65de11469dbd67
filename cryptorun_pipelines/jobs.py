"""One asset job per cadence, named after the config jobs (``scan.hot`` → ``scan_hot``)."""

from __future__ import annotations

import dagster as dg

from cryptorun_core.artifacts import ROLE_ASSETS
from cryptorun_core.config import ExecutorConfig, JobConfig, MarketConfig
from cryptorun_pipelines.executors import build_executor
from cryptorun_pipelines.partitions import Cadences
from cryptorun_pipelines.run_tags import job_run_tags


#: What each kind of job does, in words a new user of the UI understands (first sentence of its description).
ROLE_SUMMARY: dict[str, str] = {
    "regime": "Regime refresh: ranks the universe by ADV and votes calm / normal / volatile from three market "
    "indicators, writing {artifacts_dir}/{as_of}/regime.json (SPEC §2, §6); the scans read the latest closed one.",
    "hot": "Hot scan: scores and gates the top pairs every cycle, writing signals.csv, premove.csv and explain.json "
    "to {artifacts_dir}/{as_of}/ (SPEC §4-§9); needs the regime partition closed at its T.",
    "warm": "Warm scan: scores the next pairs with relaxed gates from cached data, writing warm_signals.csv "
    "(SPEC §7, §9); needs the regime partition closed at its T.",
}


def job_role(job: JobConfig) -> str:
    return "regime" if job.type == "regime" else job.config.universe


def build_jobs(cadences: Cadences, market: MarketConfig, executor: ExecutorConfig) -> list[dg.UnresolvedAssetJobDefinition]:
    jobs = []
    executor_def = build_executor(executor)  # config's executor.type, partition checked before any step
    for job in (cadences.regime_job, cadences.hot_job, cadences.warm_job):
        if job is None:
            continue
        s = job.config
        description = (
            f"{ROLE_SUMMARY[job_role(job)]} {job.description or job.name} [{job.name}: every '{job.schedule}', universe={s.universe}, "
            f"venues={','.join(s.venues)}, max_sample={s.max_sample}, premove={s.premove}"
            + ("" if job.enabled else ", DISABLED in config")
            + "]"
        )
        jobs.append(
            dg.define_asset_job(
                name=job.dagster_name,
                selection=dg.AssetSelection.assets(*ROLE_ASSETS[job_role(job)]),
                description=description,
                tags=job_run_tags(job, market),  # the job's settings are its metadata
                executor_def=executor_def,
                metadata={"config_job": job.name, "schedule": job.schedule, "enabled": job.enabled, **s.model_dump(mode="json")},
            )
        )
    return jobs
