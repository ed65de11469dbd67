"""``cryptorun schedule status``: per job, schedule state, last run, next tick, latest artifacts."""

from __future__ import annotations

import os
from typing import Any

from cryptorun_core.config import JobConfig
from cryptorun_pipelines.cli.commands.schedule_list import emit_jobs, status_text
from cryptorun_pipelines.cli.context import Context
from cryptorun_pipelines.cli.dagster_state import last_run, schedule_names, schedule_states
from cryptorun_pipelines.cli.header import artifact_folders
from cryptorun_pipelines.cli.render import WIDTH, Style, fit, fmt_ago, fmt_duration, fmt_time
from cryptorun_pipelines.cli.timing import next_tick, utcnow


def job_files(job: JobConfig) -> tuple[str, ...]:
    """The SPEC §9 files a job writes into an as_of folder."""
    from cryptorun_core.artifacts import BY_ASSET, ROLE_ASSETS
    from cryptorun_pipelines.jobs import job_role

    return tuple(BY_ASSET[a].filename for a in ROLE_ASSETS[job_role(job)] if BY_ASSET[a].spec_file)


def latest_folder(artifacts_dir: str, files: tuple[str, ...]) -> str | None:
    for folder in artifact_folders(artifacts_dir):
        if any((folder / f).is_file() for f in files):
            return str(folder)
    return None


def collect_status(ctx: Context, instance: Any) -> list[dict[str, Any]]:
    names = schedule_names(ctx.config.jobs)
    states = schedule_states(instance, names)
    now = utcnow()
    out = []
    for job in ctx.config.jobs:
        run = last_run(instance, job.dagster_name)
        state = states.get(job.name)
        out.append(
            {
                "name": job.name,
                "dagster_job": job.dagster_name,
                "enabled": job.enabled,
                "schedule": job.schedule,
                "schedule_state": state.status if state else None,
                "status": status_text(job.enabled, state),
                "next_tick": next_tick(job.schedule, now).isoformat() if job.enabled else None,
                "last_run": run.to_dict() if run else None,
                "latest_artifacts": latest_folder(ctx.config.global_.artifacts_dir, job_files(job)),
            }
        )
    return out


def _rel(path: str | None) -> str:
    if not path:
        return "none yet"
    try:
        rel = os.path.relpath(path)
    except ValueError:  # pragma: no cover - other drive
        return path
    return rel if len(rel) < len(path) and not rel.startswith("../..") else path


def render_status(rows: list[dict[str, Any]], style: Style, now=None) -> list[str]:
    from datetime import datetime

    lines: list[str] = []
    for r in rows:
        tick = fmt_time(datetime.fromisoformat(r["next_tick"])) if r["next_tick"] else "-"
        state = r["status"]
        coloured = style(state, "green" if "running" in state else ("red" if state.startswith("disabled") else "yellow"))
        head = f"{r['name']:<16}{state}"
        tail = f"next tick {tick}"
        gap = max(2, WIDTH - len(head) - len(tail))
        lines.append(style(f"{r['name']:<16}", "bold", "cyan") + coloured + " " * gap + tail)
        run = r["last_run"]
        if run:
            started = datetime.fromisoformat(run["started_at"]) if run["started_at"] else (
                datetime.fromisoformat(run["created_at"]) if run["created_at"] else None)
            status = run["status"]
            dry = " (dry run)" if run.get("dry_run") else ""
            text = (f"  last run   {status:<8} partition {run['partition'] or '-'}  "
                    f"took {fmt_duration(run['duration_s'])}  {fmt_ago(started, now)}{dry}")
            text = fit(text, WIDTH)
            lines.append(text.replace(status, style.status(status.lower()) if style.colour else status, 1)
                         if style.colour else text)
        else:
            lines.append("  last run   none yet")
        lines.append(fit(f"  artifacts  {_rel(r['latest_artifacts'])}", WIDTH))
    return lines


def run_status(ctx: Context) -> int:
    return emit_jobs(ctx, collect_status, render_status)
