"""``cryptorun schedule list``: the jobs of the config as a table."""

from __future__ import annotations

from typing import Any

from cryptorun_pipelines.cli.context import Context
from cryptorun_pipelines.cli.dagster_state import (
    ScheduleState,
    daemon_heartbeat_age,
    daemon_running,
    schedule_names,
    schedule_states,
)
from cryptorun_pipelines.cli.errors import EXIT_OK
from cryptorun_pipelines.cli.instance import get_instance
from cryptorun_pipelines.cli.render import Column, Style, fmt_time, table
from cryptorun_core.timefmt import utcnow
from cryptorun_pipelines.cli.timing import next_tick


def status_text(enabled: bool, state: ScheduleState | None) -> str:
    """``enabled · running`` / ``enabled · stopped`` / ``disabled`` (…``· running`` if on anyway)."""
    word = "enabled" if enabled else "disabled"
    if state is None:
        return word
    return f"{word} · {'running' if state.status == 'running' else 'stopped'}"


def daemon_info(instance: Any) -> dict[str, Any]:
    age = daemon_heartbeat_age(instance)
    return {"running": daemon_running(age), "heartbeat_age_s": round(age, 1) if age is not None else None}


def daemon_line(info: dict[str, Any], style: Style) -> str:
    if info["running"]:
        return "Dagster daemon " + style("running", "green") + f" (last heartbeat {info['heartbeat_age_s']:.0f}s ago)"
    return ("Dagster daemon " + style("not running", "yellow")
            + ": schedules tick while `cryptorun schedule start` runs")


def collect_jobs(ctx: Context, instance: Any) -> list[dict[str, Any]]:
    names = schedule_names(ctx.config.jobs)
    states = schedule_states(instance, names)
    now = utcnow()
    rows = []
    for job in ctx.config.jobs:
        state = states.get(job.name)
        rows.append(
            {
                "name": job.name,
                "dagster_job": job.dagster_name,
                "dagster_schedule": names.get(job.name),
                "schedule": job.schedule,
                "type": job.type,
                "enabled": job.enabled,
                "schedule_state": state.status if state else None,
                "schedule_state_source": state.source if state else None,
                "status": status_text(job.enabled, state),
                "description": job.description,
                "next_tick": next_tick(job.schedule, now).isoformat() if job.enabled else None,
            }
        )
    return rows


def render_list(rows: list[dict[str, Any]], style: Style) -> list[str]:
    from datetime import datetime

    def status_styler(text: str) -> str:
        if "running" in text:
            return style(text, "green")
        if text.startswith("disabled"):
            return style(text, "red")
        return style(text, "yellow")

    cells = []
    for r in rows:
        tick = fmt_time(datetime.fromisoformat(r["next_tick"]), short=True) if r["next_tick"] else "-"
        cells.append([r["name"], r["schedule"], r["status"], r["description"], tick])
    columns = [
        Column("JOB NAME", min_width=8),
        Column("SCHEDULE", min_width=8),
        Column("STATUS", min_width=8),
        Column("DESCRIPTION", min_width=11, flex=True, wrap=True),
        Column("NEXT TICK", min_width=9),
    ]
    return table(columns, cells, style=style, stylers=[lambda t: style(t, "cyan"), None, status_styler, None, None])


def emit_jobs(ctx: Context, collect, render) -> int:
    """Header, one block per job (``render`` of ``collect``'s rows) and the daemon line — or all of it as JSON."""
    instance = get_instance()
    rows = collect(ctx, instance)
    daemon = daemon_info(instance)
    if ctx.json:
        ctx.emit_json({"header": ctx.header().to_dict(), "jobs": rows, "daemon": daemon})
        return EXIT_OK
    ctx.print_header()
    for line in render(rows, ctx.style):
        ctx.print(line)
    ctx.print()
    ctx.print(daemon_line(daemon, ctx.style))
    return EXIT_OK


def run_list(ctx: Context) -> int:
    return emit_jobs(ctx, collect_jobs, render_list)
