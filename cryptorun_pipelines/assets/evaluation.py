"""Signal evaluation (group ``evaluation``): forward returns of past cycles' entries vs rejects.

USES DATA AFTER T. A daily-partitioned asset of its own job (``evaluate_signals``, its own partitions
definition): partition D evaluates the hot and warm cycles with T in [D, D + 1 day) against bars that
closed up to 24 h after each T, so D can run from D + 2 days on (its ``SETTLE_METADATA``; the executor
refuses it before, and the asset itself under ``execute_in_process``, which no executor sees). No scan
asset reads it (``tests/pipelines/test_evaluation_assets.py``).
"""


from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from cryptorun_core import evaluation
from cryptorun_core.artifacts import (
    EVALUATION_FILES,
    artifact_path,
    atomic_write,
    csv_bytes,
    json_bytes,
)
from cryptorun_core.asset_keys import SIGNAL_EVALUATION
from cryptorun_core.config import AppConfig
from cryptorun_core.timefmt import utcnow
from cryptorun_pipelines.executors import SETTLE_METADATA
from cryptorun_pipelines.resources import CryptoRunConfigResource, MarketSourceResource
from cryptorun_pipelines.run_tags import venue_tags

EVALUATION_JOB = "evaluate_signals"


def write_evaluation(folder: Path, rows: pd.DataFrame, start: datetime, end: datetime) -> dict[str, Path]:
    """The evaluation's files (:data:`EVALUATION_FILES`), each written atomically; returns their paths."""
    from cryptorun_pipelines.charts.evaluation import evaluation_chart_png

    summary = evaluation.summarize(rows)
    report = evaluation.report(rows, start, end)
    data = {
        "rows": csv_bytes(rows, "evaluation"),
        "summary": csv_bytes(summary, "evaluation_summary"),
        "report": json_bytes(report),
        "chart": evaluation_chart_png(summary),
    }
    return {name: atomic_write(folder / EVALUATION_FILES[name], data[name]) for name in EVALUATION_FILES}


def evaluate_range(source, config: AppConfig, start: datetime, end: datetime, step: timedelta | None = None) -> pd.DataFrame:
    jobs = [j for j in config.jobs if j.type != "regime" and j.enabled]
    return evaluation.Evaluator(source, config).evaluate(jobs, start, end, step)


def build_evaluation_assets(config: AppConfig) -> tuple[list[dg.AssetsDefinition], list]:
    """The evaluation asset and its job (one asset job per partitions definition)."""
    pdef = dg.DailyPartitionsDefinition(start_date=config.global_.partitions_start.strftime("%Y-%m-%d"), timezone="UTC")

    @dg.asset(
        name=SIGNAL_EVALUATION,
        group_name="evaluation",
        partitions_def=pdef,
        kinds={"csv", "json"},
        description="Forward returns (1h/4h/24h, USES DATA AFTER T) of every symbol the hot and warm cycles of the "
        "day evaluated: entries vs rejects, by primary_reason, regime and tier.",
        metadata={"uses_data_after_t": True, SETTLE_METADATA: evaluation.SETTLE // timedelta(hours=1),
                  "stored_as": "{artifacts_dir}/evaluation/{day}/"},
        tags={"uses_data_after_t": "true"},
    )
    def signal_evaluation(context: dg.AssetExecutionContext, cryptorun_config: CryptoRunConfigResource,
                          market_source: MarketSourceResource) -> dg.MaterializeResult:
        from cryptorun_pipelines.charts.render import markdown_image
        from cryptorun_pipelines.charts.tables import badge_table

        cfg = cryptorun_config.load()
        day = datetime.strptime(context.partition_key, "%Y-%m-%d").replace(tzinfo=UTC)
        end = day + timedelta(days=1) - timedelta(seconds=1)
        # the executor refuses such a day before any step, but execute_in_process (the Python API)
        # bypasses every executor: without this, forward returns of bars that do not exist yet
        unsettled = evaluation.unsettled_problem(end, utcnow())
        if unsettled is not None:
            raise dg.Failure(f"partition {context.partition_key} of {EVALUATION_JOB} is not final yet: {unsettled}")
        with market_source.open(None) as source:
            rows = evaluate_range(source, cfg, day, end)
        paths = write_evaluation(artifact_path(cfg.global_.artifacts_dir, SIGNAL_EVALUATION, context.partition_key), rows, day, end)
        summary = evaluation.summarize(rows)
        overview = summary[summary["grouping"].isin(["decision", "score_gate"])]
        return dg.MaterializeResult(metadata={
            "uses_data_after_t": True,
            "label": evaluation.LABEL,
            "cycles": int(rows["as_of"].nunique()) if len(rows) else 0,
            "evaluated": len(rows),
            "forward_returns_chart": dg.MetadataValue.md(markdown_image(paths["chart"].read_bytes(),
                                                                        "mean forward return of entries and rejects")),
            "summary": dg.MetadataValue.md(badge_table(overview, list(evaluation.SUMMARY_COLUMNS), n=40)),
            "files": dg.MetadataValue.json({k: str(v) for k, v in paths.items()}),
        })

    job = dg.define_asset_job(
        name=EVALUATION_JOB, selection=dg.AssetSelection.assets(signal_evaluation), partitions_def=pdef,
        description="Signal evaluation (uses data after T): forward returns of the day's hot and warm cycles.",
        tags=venue_tags(config.market, config.market.venues),  # a live source reads the venues: their queue limits apply
    )
    return [signal_evaluation], [job]
