"""``cryptorun schedule status``: per job, schedule state, last run, next tick, latest artifacts.

The state words are true: a schedule that is on only ticks while the daemon runs ("enabled · on,
daemon stopped" otherwise). Before it reads the runs, ``status`` marks failed every STARTED run
whose worker process is gone (``run_health``), so a killed run does not stay STARTED here or in
the UI.
"""

from __future__ import annotations

import os
from typing import Any

from cryptorun_core.config import JobConfig
from cryptorun_pipelines.cli.commands.schedule_list import daemon_info, emit_jobs, schedule_words
from cryptorun_pipelines.cli.context import Context
from cryptorun_pipelines.cli.dagster_state import (
    fail_dead_runs,
    last_run,
    last_written_on_demand,
    schedule_names,
    schedule_states,
)
from cryptorun_pipelines.cli.header import artifact_folders
from cryptorun_pipelines.cli.render import WIDTH, Style, fit, fmt_ago, fmt_duration, fmt_time
from cryptorun_core.timefmt import utcnow
from cryptorun_pipelines.cli.timing import next_tick


def job_files(job: JobConfig) -> tuple[str, ...]:
    """The SPEC §9 files a job writes into an as_of folder."""
    from cryptorun_core.artifacts import BY_ASSET, ROLE_ASSETS
    from cryptorun_pipelines.jobs import job_role

    return tuple(BY_ASSET[a].filename for a in ROLE_ASSETS[job_role(job)] if BY_ASSET[a].spec_file)


def latest_folder(artifacts_dir: str, job: JobConfig) -> str | None:
    files: tuple[str, ...] | None = None  # the IO manager's layout is imported only if there is a folder
    for folder in artifact_folders(artifacts_dir):
        files = files or job_files(job)
        if any((folder / f).is_file() for f in files):
            return str(folder)
    return None


def collect_status(ctx: Context, instance: Any) -> list[dict[str, Any]]:
    marked = fail_dead_runs(instance)
    names = schedule_names(ctx.config.jobs)
    states = schedule_states(instance, names, ctx.config.jobs)
    daemon_up = daemon_info(instance)["running"]
    now = utcnow()
    out = []
    for job in ctx.config.jobs:
        run = last_run(instance, job.dagster_name)
        state = states.get(job.name)
        words, ticking = schedule_words(job.enabled, state, daemon_up)
        out.append(
            {
                "name": job.name,
                "dagster_job": job.dagster_name,
                "enabled": job.enabled,
                "schedule": job.schedule,
                "schedule_state": state.status if state else None,
                "ticking": ticking,
                "status": words,
                "next_tick": next_tick(job.schedule, now).isoformat() if job.enabled else None,
                "last_run": run.to_dict() if run else None,
                # a regime window a scan computed because its own run had not: newer than last_run
                "written_on_demand": _written_on_demand(instance, job),
                "marked_failed": [m for m in marked if m["job"] == job.dagster_name],
                "latest_artifacts": latest_folder(ctx.config.global_.artifacts_dir, job),
            }
        )
    return out


def _written_on_demand(instance: Any, job: JobConfig) -> dict | None:
    from cryptorun_core.artifacts import ROLE_ASSETS
    from cryptorun_pipelines.jobs import job_role

    role = job_role(job)
    return last_written_on_demand(instance, ROLE_ASSETS[role][-1]) if role == "regime" else None


def _wrapped(lead: str, text: str, max_lines: int = 3) -> list[str]:
    """``text`` after ``lead``, wrapped under itself within the width (a long message is not cut short)."""
    import textwrap

    body = textwrap.wrap(text, WIDTH - len(lead)) or [""]
    lines = [lead + body[0]] + [" " * len(lead) + b for b in body[1:]]
    return [fit(line, WIDTH) for line in lines[:max_lines]]


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
        ticks = bool(r["next_tick"]) and r["ticking"]
        state = r["status"]
        coloured = style(state, "green" if "running" in state else ("red" if state.startswith("disabled") else "yellow"))
        head = f"{r['name']:<16}{state}"
        tail = f"next tick {tick}" if ticks else "no tick due"
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
            if run.get("failure"):
                lines.extend(_wrapped("  failed     ", run["failure"].splitlines()[0]))
        else:
            lines.append("  last run   none yet")
        made = r.get("written_on_demand")
        if made:
            at = datetime.fromisoformat(made["at"]) if made.get("at") else None
            lines.extend(_wrapped("  written    ", f"partition {made['partition'] or '-'} by {made['job'] or 'a'} run "
                                  f"{made['run_id'][:8]} (computed on demand) {fmt_ago(at, now)}"))
        for m in r.get("marked_failed") or []:
            if run and m["run_id"] == run["run_id"]:
                continue  # the last run's own "failed" line says it
            text = f"run {m['run_id'][:8]} ({m['partition'] or '-'}) was STARTED but its {m['reason']}: marked failed"
            lines.extend(style(line, "red") for line in _wrapped("  ✗ dead run ", text))
        lines.append(fit(f"  artifacts  {_rel(r['latest_artifacts'])}", WIDTH))
    return lines


def run_status(ctx: Context) -> int:
    return emit_jobs(ctx, collect_status, render_status)
