"""``build_definitions(config)``: the whole Dagster code location, derived from one AppConfig.

Change ``config/scheduler.yaml`` (a cron string, ``enabled``, a job's universe/venues/max_sample/
premove) and the partitions, jobs, schedules and asset metadata change with it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import dagster as dg

from cryptorun_core.config import ARTIFACTS_DIR_ENV, CONFIG_PATH_ENV, MARKET_SOURCE_ENV, AppConfig
from cryptorun_pipelines.assets.market import build_market_assets
from cryptorun_pipelines.assets.regime import build_regime_assets
from cryptorun_pipelines.assets.signals import build_signal_assets
from cryptorun_pipelines.assets.universe import build_universe_assets
from cryptorun_pipelines.charts.catalog import annotate_assets
from cryptorun_pipelines.checks import build_checks
from cryptorun_pipelines.io_managers.artifacts import ArtifactIOManager
from cryptorun_pipelines.jobs import JOB_ASSETS, build_jobs, job_role
from cryptorun_pipelines.partitions import Cadences, build_cadences
from cryptorun_pipelines.resources import CryptoRunConfigResource, MarketSourceResource
from cryptorun_pipelines.schedules import build_schedules


def _env_or(value, env: str):
    """``EnvVar(env)`` when the variable is set (resolved in the run worker, visible in the UI), else ``value``."""
    return dg.EnvVar(env) if os.environ.get(env) else value


def producers(config: AppConfig, cadences: Cadences | None = None) -> dict[str, str]:
    """asset name → the dotted config job that materialises it (``cadences``: those of ``config``, if built already)."""
    cad = cadences or build_cadences(config)
    out: dict[str, str] = {}
    for job in (cad.regime_job, cad.hot_job, cad.warm_job):
        if job is not None:
            out.update({asset: job.name for asset in JOB_ASSETS[job_role(job)]})
    return out


def build_resources(
    config: AppConfig,
    *,
    config_path: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    cadences: Cadences | None = None,
) -> dict[str, object]:
    if config_path is not None:
        cfg_path = str(Path(config_path).resolve())
    else:
        cfg_path = _env_or(None, CONFIG_PATH_ENV)
    config_resource = CryptoRunConfigResource(config_path=cfg_path)
    return {
        "cryptorun_config": config_resource,
        "market_source": MarketSourceResource(config=config_resource, source=_env_or(None, MARKET_SOURCE_ENV)),
        # configure_at_launch: a run config may set just `dry_run` (config/dry_run.yaml); the values
        # given here stay the defaults of the other fields.
        "io_manager": ArtifactIOManager.configure_at_launch(
            artifacts_dir=_env_or(config.global_.artifacts_dir, ARTIFACTS_DIR_ENV),
            dry_run=dry_run,
            producers=producers(config, cadences),
            snapshot_retention_hours=config.global_.snapshot_retention_hours,
        ),
    }


def build_definitions(
    config: AppConfig, *, config_path: str | os.PathLike[str] | None = None, dry_run: bool = False
) -> dg.Definitions:
    """Assets (grouped universe / market / regime / signals), checks, one job per cadence and
    the schedules of ``config``.

    ``config_path`` is the file the run-time resource reloads (default ``$CRYPTORUN_CONFIG`` or
    ``config/scheduler.yaml``); pass the file ``config`` was loaded from when it is another one.
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
                *build_universe_assets(cadences),
                *build_regime_assets(cadences),
                *build_market_assets(cadences, source=config.market.source),
                *build_signal_assets(cadences),
            ]
        )
        checks = build_checks(cadences)
    jobs = build_jobs(cadences, config.market)
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        schedules=build_schedules(config, jobs),
        resources=build_resources(config, config_path=config_path, dry_run=dry_run, cadences=cadences),
    )
