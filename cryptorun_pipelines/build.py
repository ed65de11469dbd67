"""``build_definitions(config)``: the whole Dagster code location, derived from one AppConfig.

Change ``config/scheduler.yaml`` (a cron string, ``enabled``, a job's universe/venues/max_sample/
premove) and the partitions, jobs, schedules and asset metadata change with it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import dagster as dg

from cryptorun_core.config import AppConfig, resolve_config_path
from cryptorun_pipelines.assets.evaluation import build_evaluation_assets
from cryptorun_pipelines.assets.market import build_market_assets
from cryptorun_pipelines.assets.regime import build_regime_assets
from cryptorun_pipelines.assets.signals import build_signal_assets
from cryptorun_pipelines.charts.catalog import annotate_assets
from cryptorun_pipelines.checks import build_checks
from cryptorun_pipelines.executors import build_executor
from cryptorun_pipelines.io_managers.artifacts import ArtifactIOManager
from cryptorun_pipelines.jobs import build_jobs
from cryptorun_pipelines.notifications import build_notification_sensor
from cryptorun_pipelines.partitions import build_cadences
from cryptorun_pipelines.resources import CryptoRunConfigResource, MarketSourceResource, RegimeWindowResource
from cryptorun_pipelines.schedules import build_schedules


def build_resources(config: AppConfig, config_path: str | os.PathLike[str], *, dry_run: bool = False) -> dict[str, object]:
    """One resource per concern: the run's config (loaded once per run, with the launcher's artifacts
    folder and market source), the market source, and the artifact store, which computes a missing
    regime window a scan reads through the on-demand regime window resource."""
    config_resource = CryptoRunConfigResource.of(config, str(config_path))
    market = MarketSourceResource(config=config_resource)
    return {
        "cryptorun_config": config_resource,
        "market_source": market,
        # configure_at_launch: a run config may set just `dry_run` (config/dry_run.yaml)
        "io_manager": ArtifactIOManager.configure_at_launch(
            config=config_resource, dry_run=dry_run, upstream=RegimeWindowResource(market_source=market),
        ),
    }


def build_definitions(
    config: AppConfig, *, config_path: str | os.PathLike[str] | None = None, dry_run: bool = False
) -> dg.Definitions:
    """Assets (grouped universe / market / regime / signals), checks, one job per cadence and
    the schedules of ``config``.

    ``config_path`` is the file ``config`` was loaded from (default ``$CRYPTORUN_CONFIG`` or
    ``config/scheduler.yaml``): every run loads it once, as the ``cryptorun_config`` resource.
    ``dry_run`` makes the IO manager write nothing (also settable per run, see config/dry_run.yaml).
    """
    cadences = build_cadences(config)
    with warnings.catch_warnings():
        # backfill_policy, dagster-pandera types and partitioned asset checks are marked beta/preview
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        warnings.simplefilter("ignore", category=dg.PreviewWarning)
        # owners, cadence/layer tags, column schemas, SPEC sections, code references (UI only)
        assets = annotate_assets(
            [
                *build_regime_assets(cadences),
                *build_market_assets(cadences),
                *build_signal_assets(cadences),
            ]
        )
        checks = build_checks(cadences)
    jobs = build_jobs(cadences, config.market)
    evaluation_assets, evaluation_jobs = build_evaluation_assets(config)  # uses data after T; read by no scan
    return dg.Definitions(
        assets=[*assets, *evaluation_assets],
        asset_checks=checks,
        jobs=[*jobs, *evaluation_jobs],
        schedules=build_schedules(config, jobs),
        sensors=[build_notification_sensor(config, cadences, dry_run=dry_run)],  # docs/notifications.md
        resources=build_resources(config, config_path or resolve_config_path(), dry_run=dry_run),
        # every job's, and that of runs launched from the asset graph: executor.type, with the partition,
        # venue-limit and dry-run checks before any step (executors.py)
        executor=build_executor(config.executor),
    )
