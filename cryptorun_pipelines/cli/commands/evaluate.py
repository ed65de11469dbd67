"""``cryptorun evaluate --from TIME --to TIME [--step 4h]``: forward returns of past cycles (uses data after T)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pandas as pd

from cryptorun_core import evaluation
from cryptorun_core.artifacts import artifact_path, as_of_folder
from cryptorun_core.asset_keys import SIGNAL_EVALUATION
from cryptorun_core.market.factory import build_market_source
from cryptorun_core.timefmt import utcnow
from cryptorun_pipelines.cli.context import Context
from cryptorun_pipelines.cli.errors import EXIT_OK, UsageError
from cryptorun_pipelines.cli.timing import parse_time


def parse_step(text: str | None) -> timedelta | None:
    if not text:
        return None
    m = re.fullmatch(r"(\d+)\s*([mhd])", text.strip())
    if not m or int(m.group(1)) == 0:
        raise UsageError(f"--step: '{text}' is not a positive duration (use e.g. 15m, 4h, 1d)")
    return timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[m.group(2)]: int(m.group(1))})


def run_evaluate(ctx: Context, start_text: str, end_text: str, step_text: str | None = None) -> int:
    from cryptorun_pipelines.assets.evaluation import evaluate_range, write_evaluation

    start, end = parse_time(start_text), parse_time(end_text)
    if end < start:
        raise UsageError(f"--to {end_text} is before --from {start_text}")
    problem = evaluation.unsettled_problem(end, utcnow())
    if problem:
        raise UsageError(f"--to {end_text}: {problem}")
    step = parse_step(step_text)
    source = build_market_source(ctx.config)
    try:
        rows = evaluate_range(source, ctx.config, start, end, step)
    finally:
        source.close()
    folder = artifact_path(ctx.config.global_.artifacts_dir, SIGNAL_EVALUATION, f"{as_of_folder(start)}_{as_of_folder(end)}")
    paths = write_evaluation(folder, rows, start, end)
    if ctx.json:
        ctx.out.write(json.dumps({**evaluation.report(rows, start, end), "files": {k: str(v) for k, v in paths.items()}},
                                 sort_keys=True) + "\n")
        return EXIT_OK
    summary = evaluation.summarize(rows)
    ctx.out.write(f"{evaluation.LABEL}\n{rows['as_of'].nunique() if len(rows) else 0} cycles, {len(rows)} evaluated symbols "
                  f"({start.isoformat()} .. {end.isoformat()})\n")
    ctx.out.write(markdown_table(summary) + "\n")
    ctx.out.write(f"files: {folder}\n")
    return EXIT_OK


def markdown_table(summary) -> str:
    """The summary as a markdown table (returns in %, hit rate in %, Spearman to 3 decimals)."""
    head = "| job | grouping | group | horizon | count | mean % | median % | hit rate % | Spearman(score, fwd) |"
    lines = [head, "|" + "---|" * 9]
    def pct(v) -> str:
        return "" if pd.isna(v) else f"{100 * v:.3f}"

    for r in summary.itertuples(index=False):
        rho = "" if pd.isna(r.spearman_score) else f"{r.spearman_score:.3f}"
        hit = "" if pd.isna(r.hit_rate) else f"{100 * r.hit_rate:.1f}"
        lines.append(f"| {r.job} | {r.grouping} | {r.group} | {r.horizon} | {r.count} | {pct(r.mean)} | {pct(r.median)} | {hit} | {rho} |")
    return "\n".join(lines)
