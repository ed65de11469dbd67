"""One asset job per cadence, named after the config jobs (``scan.hot`` → ``scan_hot``)."""

from __future__ import annotations

import dagster as dg

from cryptorun_core.artifacts import ROLE_ASSETS
from cryptorun_core.config import JobConfig, JobSettings, MarketConfig
from cryptorun_pipelines.partitions import Cadences
from cryptorun_pipelines.run_tags import job_run_tags


#: What each kind of job does, in one sentence a new user of the UI understands (the job's description).
ROLE_SUMMARY: dict[str, str] = {
    "regime": "Ranks the universe by ADV and votes calm / normal / volatile from three market indicators, "
    "writing regime.json (SPEC §2, §6) for the scans that follow.",
    "hot": "Scores and gates the top pairs by ADV with the latest closed regime's weights, writing signals.csv, "
    "premove.csv and explain.json (SPEC §4-§9).",
    "warm": "Scores the next pairs by ADV from cached data with relaxed gates and the latest closed regime's "
    "weights, writing warm_signals.csv (SPEC §7, §9).",
}
#: the job settings each kind of job reads (its metadata in the UI); a regime job reads no scan gate
ROLE_SETTINGS: dict[str, tuple[str, ...]] = {
    "regime": ("venues", "cache_ttl_s", "request_rate_per_s"),
    "hot": tuple(JobSettings.model_fields),
    "warm": tuple(f for f in JobSettings.model_fields if f != "premove"),
}


def job_role(job: JobConfig) -> str:
    return "regime" if job.type == "regime" else job.config.universe


def job_metadata(job: JobConfig) -> dict[str, object]:
    """What the UI shows beside a job: its config name, schedule, whether enabled, the config's own
    line about it, and the settings it reads (:data:`ROLE_SETTINGS`)."""
    settings = job.config.model_dump(mode="json")
    return {
        "config_job": job.name, "schedule": job.schedule, "enabled": job.enabled, "summary": job.description,
        **{k: settings[k] for k in ROLE_SETTINGS[job_role(job)]},
    }


def build_jobs(cadences: Cadences, market: MarketConfig) -> list[dg.UnresolvedAssetJobDefinition]:
    """The jobs of the config's cadences; their executor is the definitions' (build.py)."""
    jobs = []
    for job in (cadences.regime_job, cadences.hot_job, cadences.warm_job):
        if job is None:
            continue
        summary = ROLE_SUMMARY[job_role(job)]
        description = summary if job.enabled else summary.removesuffix(".") + " (disabled in config)."
        jobs.append(
            dg.define_asset_job(
                name=job.dagster_name,
                selection=dg.AssetSelection.assets(*ROLE_ASSETS[job_role(job)]),
                description=description,
                tags=job_run_tags(job, market),
                metadata=job_metadata(job),
            )
        )
    return jobs
