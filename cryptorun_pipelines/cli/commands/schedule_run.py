"""``cryptorun schedule run JOB``: execute one job of the Dagster definitions now.

The job runs in this process (``JobDefinition.execute_in_process``) against the persistent
instance at ``$DAGSTER_HOME``, so the run, its events and materialisations show in the web UI
exactly like a scheduled run. A scan whose regime window (universe ranking / regime of the
window closed at its T) nobody computed computes it in the same run, as the scheduled scans do;
the command says so first (:func:`cryptorun_pipelines.upstream.missing_upstream`).
``--dry-run`` builds the definitions with ``dry_run=True`` (the artifacts IO manager then writes
nothing and keeps the bytes, the regime window's included, in memory) and reports what it would
have written.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptorun_core.asset_keys import HOT_EXPLAIN, HOT_SIGNALS, REGIME_WEIGHTS, WARM_SIGNALS
from cryptorun_core.config import JobConfig
from cryptorun_pipelines.cli import gcpolicy
from cryptorun_pipelines.cli.context import Context
from cryptorun_pipelines.cli.dagster_state import run_worker_tags
from cryptorun_pipelines.cli.errors import EXIT_OK, JobFailed
from cryptorun_pipelines.cli.instance import get_instance
from cryptorun_pipelines.cli.progress import RunMonitor, error_message
from cryptorun_pipelines.cli.render import (
    WIDTH, Column, Style, badge_form, badges, display_width, fit, fmt_duration, fmt_iso, fmt_score, fmt_time, table,
    terminal_width,
)
from cryptorun_pipelines.cli.timing import resolve_partition
from cryptorun_pipelines.run_tags import DRY_RUN_TAG, TRIGGER_TAG

#: Dagster's console logger would print every event on stderr; the CLI shows its own progress.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def quiet_warnings() -> None:
    """Beta/preview warnings raised while the definitions load are noise on a command line."""
    warnings.filterwarnings("ignore", module=r"(dagster|dagster_pandera|cryptorun_pipelines)(\..*)?$")


@dataclass
class ArtifactFile:
    asset: str
    name: str
    path: str
    rows: int | None
    unit: str
    bytes: int | None
    written: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunOutcome:
    job: str
    partition: str
    run_id: str
    success: bool
    duration_s: float
    dry_run: bool
    error: str | None = None
    failed_step: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)


def _load_defs(ctx: Context, dry_run: bool):
    """The definitions of the config this command loaded (the run loads it once more, as its resource)."""
    from cryptorun_pipelines.build import build_definitions

    quiet_warnings()
    return build_definitions(ctx.config, config_path=ctx.config_path, dry_run=dry_run)


def run_config(ctx: Context) -> dict[str, Any]:
    """The run's config: quiet console, and the config file and overrides this command resolved, so
    the run records in the UI exactly what it read."""
    settings = {"config_path": ctx.config_path, "artifacts_dir": ctx.config.global_.artifacts_dir,
                "market_source": ctx.config.market.source}
    return {**QUIET_RUN_CONFIG, "resources": {"cryptorun_config": {"config": settings}}}


def _metadata_value(value: Any) -> Any:
    return getattr(value, "value", value)


def execute(ctx: Context, defs: Any, job: JobConfig, key: str, *, dry_run: bool, trigger: str) -> RunOutcome:
    """Run ``job`` for partition ``key`` in process with live progress; never raises on job failure."""
    from dagster._core.utils import make_new_run_id

    instance = get_instance()
    gcpolicy.loaded()  # imports, definitions and instance are in place: collect the run's garbage only
    job_def = defs.resolve_job_def(job.dagster_name)
    run_id = make_new_run_id()
    # the worker tag lets `status` (and run monitoring on a shared instance) tell a killed run from a running one
    tags = {TRIGGER_TAG: trigger, **({DRY_RUN_TAG: "true"} if dry_run else {}), **run_worker_tags()}
    progress_out = ctx.err if ctx.json else ctx.out
    label = f"{job.name} {key}"
    t0 = time.monotonic()
    monitor = RunMonitor(instance, run_id, progress_out, label=label, tty=ctx.tty and not ctx.json, style=ctx.style)
    with monitor:
        result = job_def.execute_in_process(
            partition_key=key,
            instance=instance,
            run_id=run_id,
            tags=tags,
            run_config=run_config(ctx),
            raise_on_error=False,
        )
    duration = time.monotonic() - t0
    outcome = RunOutcome(job.name, key, run_id, bool(result.success), duration, dry_run)
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        name = mat.asset_key.path[-1]
        outcome.metadata[name] = {k: _metadata_value(v) for k, v in mat.metadata.items()}
        try:
            outcome.values[name] = result.asset_value(mat.asset_key)
        except Exception:  # pragma: no cover - value not captured
            pass
    if not result.success:
        failures = result.get_step_failure_events()
        if failures:
            ev = failures[0]
            outcome.failed_step = ev.step_key
            outcome.error = error_message(getattr(ev.event_specific_data, "error", None)) or "step failed"
        else:
            # the run failed outside a step's own failure: its executor's checks, or the instance lost
            # while a step ran (the step's failure event could not be stored); the run's failure says why
            run_failure = result.get_run_failure_event()
            error = error_message(getattr(run_failure.event_specific_data, "error", None)) if run_failure else ""
            started = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
            finished = {e.step_key for e in result.all_events if e.event_type_value in ("STEP_SUCCESS", "STEP_SKIPPED")}
            unfinished = [step for step in started if step not in finished]
            outcome.failed_step = unfinished[-1] if unfinished else None
            outcome.error = error or ("the run failed while its steps ran" if started else "the run failed before any step ran")
    return outcome


# ---------------------------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------------------------


def _rows_of(value: Any) -> tuple[int | None, str]:
    if value is None:
        return None, "rows"
    if hasattr(value, "shape"):
        return int(len(value)), "rows"
    if isinstance(value, dict):
        if isinstance(value.get("symbols"), list):
            return len(value["symbols"]), "symbols"
        if "regime" in value:
            return 1, "regime"
    return None, "rows"


def artifact_files(job: JobConfig, outcome: RunOutcome) -> list[ArtifactFile]:
    """The SPEC §9 files of the run (written, or that would have been), with row counts."""
    from cryptorun_core.artifacts import BY_ASSET, ROLE_ASSETS
    from cryptorun_pipelines.jobs import job_role

    files = []
    for asset in ROLE_ASSETS[job_role(job)]:
        spec = BY_ASSET[asset]
        if not spec.spec_file or asset not in outcome.metadata:
            continue
        meta = outcome.metadata[asset]
        paths = meta.get("artifact_paths") or []
        path = str(paths[0]) if paths else ""
        rows, unit = _rows_of(outcome.values.get(asset))
        size = meta.get("bytes")
        written = bool(path) and not outcome.dry_run and Path(path).is_file()
        if written:
            size = Path(path).stat().st_size
        files.append(ArtifactFile(asset, spec.filename, path, rows, unit, int(size) if size is not None else None, written))
    return files


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return ""
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} kB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


def _num(value: Any) -> str:
    v = float(value)
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3f}"


def regime_used(job: JobConfig, outcome: RunOutcome) -> dict[str, Any] | None:
    if job.type == "regime":
        reg = outcome.values.get(REGIME_WEIGHTS)
        if not isinstance(reg, dict):
            return None
        return {
            "label": reg.get("regime"),
            "confidence": reg.get("confidence"),
            "as_of": reg.get("as_of"),
            "partition_key": reg.get("partition_key"),
            "indicators": reg.get("indicators"),
            "votes": reg.get("votes"),
            "weight_blend": reg.get("weight_blend"),
            "computed": True,
        }
    explain = outcome.values.get(HOT_EXPLAIN)
    if isinstance(explain, dict) and isinstance(explain.get("regime"), dict):
        r = explain["regime"]
        return {"label": r.get("label"), "confidence": r.get("confidence"), "as_of": r.get("as_of"),
                "partition_key": r.get("partition_key"), "computed": False}
    meta = outcome.metadata.get(WARM_SIGNALS) or outcome.metadata.get(HOT_SIGNALS) or {}
    if meta.get("regime"):
        return {"label": meta.get("regime"), "confidence": meta.get("regime_confidence"), "as_of": None,
                "partition_key": meta.get("regime_partition"), "computed": False}
    return None


def top_rows(job: JobConfig, outcome: RunOutcome, n: int) -> list[dict[str, Any]]:
    """Top ``n`` evaluated symbols by score (hot: from explain; warm: its entries)."""
    rows: list[dict[str, Any]] = []
    explain = outcome.values.get(HOT_EXPLAIN)
    if isinstance(explain, dict) and isinstance(explain.get("symbols"), list):
        for sym in explain["symbols"]:
            failed = next((g for g in sym.get("gates", []) if not g.get("passed")), None)
            rows.append(
                {
                    "symbol": sym.get("symbol"),
                    "score": sym.get("score"),
                    "fresh": sym.get("fresh"),
                    "depth_badge": sym.get("depth_badge"),
                    "venue": sym.get("venue"),
                    "sources": sym.get("sources"),
                    "tier": sym.get("tier"),
                    "decision": sym.get("decision"),
                    "primary_reason": sym.get("primary_reason"),
                    "detail": failed.get("detail") if failed else None,
                }
            )
    else:
        frame = outcome.values.get(WARM_SIGNALS)
        if frame is not None and hasattr(frame, "to_dict"):
            for rec in frame.to_dict("records"):
                rows.append(
                    {
                        "symbol": rec.get("symbol"),
                        "score": rec.get("score"),
                        "fresh": rec.get("fresh"),
                        "depth_badge": rec.get("depth_badge", "✓"),  # an entry passed the depth gate
                        "venue": rec.get("venue"),
                        "sources": rec.get("sources"),
                        "tier": rec.get("tier"),
                        "decision": "entry",
                        "primary_reason": None,
                        "detail": None,
                    }
                )
    rows.sort(key=lambda r: (-(float(r["score"]) if r["score"] is not None and r["score"] == r["score"] else -1.0),
                             str(r["symbol"])))
    for i, row in enumerate(rows[:n], 1):
        row["rank"] = i
    return rows[:n]


def render_top(rows: list[dict[str, Any]], style: Style, width: int | None = None) -> list[str]:
    """The top symbols in ``width`` columns (the terminal's by default): every badge of every row
    shows, in the widest badge form that fits beside the other columns, wrapped if even the tightest
    does not."""
    width = terminal_width() if width is None else width
    cells = [[str(r["rank"]), str(r["symbol"]), fmt_score(r["score"]), "", str(r["decision"] or "-")] for r in rows]
    titles, aligns, gap = ("#", "SYMBOL", "SCORE", "BADGES", "DECISION"), (">", "<", ">", "<", "<"), 2
    widths = [max([len(t)] + [display_width(row[i]) for row in cells]) for i, t in enumerate(titles)]
    widths[1] = min(widths[1], 12)
    widths[3] = max(len(titles[3]), width - gap * (len(titles) - 1) - sum(w for i, w in enumerate(widths) if i != 3))
    form = badge_form(rows, widths[3])
    for row, r in zip(cells, rows):
        row[3] = badges(r, form=form)
    widths[3] = min(widths[3], max([len(titles[3])] + [display_width(row[3]) for row in cells]))
    # every row laid out in the same fixed widths; the badge cell wraps rather than lose a badge
    columns = [Column(t, min_width=w, max_width=w, align=a, wrap=(i == 3)) for i, (t, w, a) in enumerate(zip(titles, widths, aligns))]

    def decision_style(text: str) -> str:
        return style(text, "green", "bold") if text == "entry" else style(text, "red")

    def badge_style(text: str) -> str:
        if not style.colour:
            return text
        return (text.replace("●", style("●", "green")).replace("○", style("○", "yellow"))
                .replace("✓", style("✓", "green")).replace("✗", style("✗", "red")))

    stylers = [None, lambda t: style(t, "bold"), None, badge_style, decision_style]
    out = table(columns, [], style=style, width=width, gap=gap)
    for row, cell in zip(rows, cells):
        out.extend(table(columns, [cell], style=style, width=width, gap=gap, stylers=stylers)[1:])
        if row["decision"] != "entry" and row.get("primary_reason"):
            detail = f"     ↳ {row['primary_reason']}" + (f": {row['detail']}" if row.get("detail") else "")
            out.append(style(fit(detail, width), "dim"))
    return out


def display_path(path: str, width: int = WIDTH - 14) -> str:
    """``path`` relative to the working directory when that is shorter; cut from the left to fit."""
    import os

    try:
        rel = os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive
        rel = path
    shown = rel if len(rel) < len(path) and not rel.startswith("../..") else path
    return shown if len(shown) <= width else "…" + shown[-(width - 1):]


def render_summary(
    job: JobConfig, outcome: RunOutcome, files: list[ArtifactFile], regime: dict[str, Any] | None,
    top: list[dict[str, Any]], folder: str, upstream: list[dict[str, Any]], style: Style,
) -> list[str]:
    lines: list[str] = []
    verdict = style("✓ succeeded", "green", "bold") if outcome.success else style("✗ failed", "red", "bold")
    dry = " (dry run)" if outcome.dry_run else ""
    lines.append(f"{job.name} {outcome.partition}{dry} {verdict} in {fmt_duration(outcome.duration_s)}")
    lines.append(f"  run        {outcome.run_id}")
    for up in upstream:
        done = ("computed and written" if up["written"] else "computed in memory" if outcome.dry_run
                else "not written")
        lines.append(fit(f"  upstream   {up['job']} {up['partition']} {done} by this run", WIDTH))
    if not files:
        pass  # failed before writing anything
    elif outcome.dry_run:
        lines.append("  dry run    nothing written; the run would have written:")
        lines.append(f"    {display_path(folder, WIDTH - 5)}/")
    else:
        lines.append(f"  artifacts  {display_path(folder)}/")
    for f in files:
        count = f"{f.rows} {f.unit}" if f.rows is not None else "-"
        lines.append(f"    {f.name:<18}{count:>14}  {_fmt_bytes(f.bytes):>9}")
    if regime:
        conf = f"{float(regime['confidence']):.2f}" if regime.get("confidence") is not None else "-"
        label = style.status(str(regime.get("label")))
        lines.append(f"  regime     {label} (confidence {conf}), as of {fmt_iso(regime.get('as_of'))}")
        if regime.get("computed"):
            ind = regime.get("indicators") or {}
            if ind:
                lines.append(fit("  indicators " + " · ".join(f"{k} {_num(v)}" for k, v in ind.items()), WIDTH))
            votes = regime.get("votes") or {}
            if votes:
                lines.append(fit("  votes      " + " · ".join(f"{k.removesuffix('_vote')} {v}" for k, v in votes.items()), WIDTH))
            wb = regime.get("weight_blend") or {}
            if wb:
                lines.append(fit("  weights    " + " · ".join(f"{k} {float(v):.3f}" for k, v in wb.items()), WIDTH))
        elif regime.get("partition_key"):
            lines.append(f"             from regime partition {regime['partition_key']}")
    explain = outcome.values.get(HOT_EXPLAIN)
    counts = explain.get("counts") if isinstance(explain, dict) else None
    if counts:
        reasons = counts.get("primary_reasons") or {}
        lines.append(f"  entries    {counts.get('entries', 0)} of {counts.get('evaluated', 0)} evaluated")
        if reasons:
            ordered = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
            lines.append(fit("  rejected   " + ", ".join(f"{k} {v}" for k, v in ordered), WIDTH))
    if top:
        lines.append("")
        lines.append(style(f"Top {len(top)} by score", "bold"))
        lines.extend(render_top(top, style))
    elif job.type == "scan" and outcome.success:
        lines.append("")
        lines.append("No symbol evaluated." if job.config.universe == "hot" else "No entries.")
    return lines


# ---------------------------------------------------------------------------------------------
# command
# ---------------------------------------------------------------------------------------------


def run_job(ctx: Context, name: str, *, dry_run: bool, partition: str | None, as_of: str | None, top: int) -> int:
    from cryptorun_core.timefmt import as_of_folder
    from cryptorun_pipelines.partitions import as_of_for_key, build_cadences
    from cryptorun_pipelines.upstream import missing_upstream

    job = ctx.job(name)
    quiet_warnings()
    cadences = ctx.cadences or build_cadences(ctx.config)
    pdef = cadences.partitions_for_job(job.name)
    key = resolve_partition(pdef, key=partition, as_of=as_of, job=job.name)
    t_as_of = as_of_for_key(pdef, key)
    folder = str(Path(ctx.config.global_.artifacts_dir) / as_of_folder(t_as_of))

    if not ctx.json:
        ctx.print_header()
        ctx.print(f"Running {ctx.style(job.name, 'bold', 'cyan')} partition {key} (as of {fmt_time(t_as_of)})")
        if dry_run:
            ctx.print("Dry run: everything is computed, nothing is written.")
        if ctx.config.executor.type != "in_process":  # said, so nobody takes this run for a test of the executor
            ctx.print(f"executor.type {ctx.config.executor.type}: for launched runs; this one runs in this process")
        ctx.out.flush()

    defs = _load_defs(ctx, dry_run)
    upstream_runs: list[dict[str, Any]] = []
    missing = missing_upstream(job.name, key, ctx.config, cadences=cadences)
    for up_job_name, up_key in sorted({(m.job, m.partition_key) for m in missing}):
        where = "computes it in memory" if dry_run else "computes and writes it"
        upstream_runs.append({"job": up_job_name, "partition": up_key, "computed_by": "this run", "written": not dry_run})
        if not ctx.json:
            ctx.print(fit(f"Regime window {up_key} is missing: this run {where}", WIDTH))
    if missing and not ctx.json:
        ctx.out.flush()

    outcome = execute(ctx, defs, job, key, dry_run=dry_run, trigger="cli")
    if upstream_runs and not dry_run:  # written only if the run got that far: what is still missing was not
        still = {(m.job, m.partition_key) for m in missing_upstream(job.name, key, ctx.config, cadences=cadences)}
        for up in upstream_runs:
            up["written"] = (up["job"], up["partition"]) not in still
    files = artifact_files(job, outcome)
    regime = regime_used(job, outcome)
    rows = top_rows(job, outcome, top) if job.type == "scan" else []

    if ctx.json:
        explain = outcome.values.get(HOT_EXPLAIN)
        ctx.emit_json(
            {
                "header": ctx.header(refresh=True).to_dict(),
                "job": job.name,
                "dagster_job": job.dagster_name,
                "partition": key,
                "as_of": t_as_of.isoformat(),
                "dry_run": dry_run,
                "success": outcome.success,
                "run_id": outcome.run_id,
                "duration_s": round(outcome.duration_s, 3),
                "error": outcome.error,
                "failed_step": outcome.failed_step,
                "upstream": upstream_runs,
                "artifact_dir": folder,
                "files": [f.to_dict() for f in files],
                "regime": regime,
                "counts": explain.get("counts") if isinstance(explain, dict) else None,
                "top": rows,
            }
        )
    else:
        ctx.print()
        for line in render_summary(job, outcome, files, regime, rows, folder, upstream_runs, ctx.style):
            ctx.print(line)
    if not outcome.success:
        where = f" at step {outcome.failed_step}" if outcome.failed_step else ""
        raise JobFailed(f"{job.name} partition {key} failed{where}: {outcome.error} (run {outcome.run_id})")
    return EXIT_OK
