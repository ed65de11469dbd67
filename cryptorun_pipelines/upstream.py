"""Missing upstream partitions: find them, and materialise them first (used by ``cryptorun schedule run``).

A scan partition reads the universe ranking and regime weights of the latest regime window closed
at its T (``partitions.upstream_key``). On a fresh instance nobody has materialised that window, and
the scan run fails with a message naming it::

    regime_weights partition 2026-11-27-08:00 is missing (no …/regime.json): run
    `cryptorun schedule run regime.refresh --partition 2026-11-27-08:00` (…) first

:func:`ensure_upstream` does exactly that before launching the scan: it runs the producing job for
every missing upstream partition on the same instance (so the runs show in the UI), then returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import dagster as dg

from cryptorun_core.config import AppConfig, load_config
from cryptorun_pipelines.io_managers.artifacts import ArtifactIOManager
from cryptorun_pipelines.jobs import JOB_ASSETS, job_role
from cryptorun_pipelines.partitions import Cadences, as_of_for_key, build_cadences, latest_closed_key, upstream_key

UTC = timezone.utc
#: upstream assets read by each scan role (from the regime job's partitions)
SCAN_UPSTREAM = ("universe_ranking", "regime_weights")


class UpstreamRunFailed(RuntimeError):
    """The run that should have materialised a missing upstream partition failed."""


@dataclass(frozen=True)
class MissingPartition:
    asset: str
    partition_key: str
    job: str  # dotted config job that materialises it

    @property
    def dagster_job(self) -> str:
        return self.job.replace(".", "_")

    def message(self) -> str:
        return (
            f"{self.asset} partition {self.partition_key} is missing: run "
            f"`cryptorun schedule run {self.job} --partition {self.partition_key}`"
        )


def _defs() -> dg.Definitions:
    from cryptorun_pipelines.definitions import defs

    return defs


def _io_manager(defs: dg.Definitions) -> ArtifactIOManager:
    """The definitions' ArtifactIOManager with its code-level values (EnvVars resolved)."""
    io = defs.resources.get("io_manager") if defs.resources else None
    data = getattr(io, "data", None)  # a PartialResource (configure_at_launch)
    if isinstance(io, ArtifactIOManager):
        data = {f: getattr(io, f) for f in ("artifacts_dir", "cache_dir", "dry_run", "producers")}
    if getattr(io, "resource_cls", ArtifactIOManager) is not ArtifactIOManager or data is None:
        raise TypeError("the definitions' io_manager is not the ArtifactIOManager")
    values = {k: (v.get_value() if isinstance(v, dg.EnvVar) else v) for k, v in data.items()}
    return ArtifactIOManager(**values)


def latest_closed_partition(job_name: str, now: datetime | None = None, config: AppConfig | None = None) -> str:
    """The default partition of a manual run: the job's window that closed most recently at ``now``."""
    cad = build_cadences(config or load_config(check_artifacts_dir=False))
    key = latest_closed_key(cad.partitions_for_job(job_name), now or datetime.now(UTC))
    if key is None:
        raise ValueError(f"{job_name} has no closed partition yet (partitions start {cad.partitions_for_job(job_name).start})")
    return key


def missing_upstream(
    job_name: str,
    partition_key: str,
    *,
    config: AppConfig | None = None,
    defs: dg.Definitions | None = None,
    cadences: Cadences | None = None,
) -> list[MissingPartition]:
    """Upstream partitions a run of ``job_name`` for ``partition_key`` needs and cannot find
    (``cadences``: those of ``config``, when the caller has built them already)."""
    config = config or load_config(check_artifacts_dir=False)
    defs = defs or _defs()
    cad: Cadences = cadences or build_cadences(config)
    job = config.job(job_name)
    role = job_role(job)
    if role == "regime":
        return []  # the regime job's own assets are its upstream; it has no cross-job input
    up_key = upstream_key(cad, role, partition_key)
    io = _io_manager(defs)
    as_of = as_of_for_key(cad.regime, up_key)
    return [
        MissingPartition(asset, up_key, cad.regime_job.name)
        for asset in SCAN_UPSTREAM
        if asset in JOB_ASSETS["regime"] and not io.exists(asset, as_of)
    ]


def ensure_upstream(
    instance: dg.DagsterInstance,
    job_name: str,
    partition_key: str,
    *,
    config: AppConfig | None = None,
    defs: dg.Definitions | None = None,
    log: Callable[[str], None] | None = None,
) -> list[tuple[str, str]]:
    """Materialise the missing upstream partitions of ``job_name``/``partition_key`` first.

    Runs the producing job (``regime_refresh``) in process on ``instance`` for each missing
    partition and returns ``[(dotted job, partition_key), ...]`` of the runs it made (empty when
    nothing was missing). Raises :class:`UpstreamRunFailed` (naming the partition) if such a run fails.
    """
    defs = defs or _defs()
    missing = missing_upstream(job_name, partition_key, config=config, defs=defs)
    runs: list[tuple[str, str]] = []
    for job, key in sorted({(m.job, m.partition_key) for m in missing}):
        assets = ", ".join(sorted(m.asset for m in missing if (m.job, m.partition_key) == (job, key)))
        if log:
            log(f"materialising missing upstream {assets} partition {key} (job {job}) before {job_name} {partition_key}")
        result = defs.resolve_job_def(job.replace(".", "_")).execute_in_process(
            partition_key=key, instance=instance, raise_on_error=False, tags={"cryptorun/trigger": "ensure_upstream"}
        )
        if not result.success:
            raise UpstreamRunFailed(f"materialising upstream {job} partition {key} failed (run {result.run_id})")
        runs.append((job, key))
    return runs
