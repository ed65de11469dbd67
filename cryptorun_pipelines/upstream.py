"""The regime window a scan partition reads, and whether it exists yet (for the CLI's messages).

A scan partition reads the universe ranking and regime weights of the latest regime window closed
at its T (``partitions.upstream_key``). When nobody has materialised that window, the scan run
computes it itself (:class:`cryptorun_pipelines.resources.RegimeWindowResource`, through the IO
manager): there is one implementation, in the run. :func:`missing_upstream` only tells the CLI in
advance which window a run is going to compute, so it can say so.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptorun_core.artifacts import artifact_path
from cryptorun_core.asset_keys import REGIME_WEIGHTS, UNIVERSE_RANKING
from cryptorun_core.config import AppConfig
from cryptorun_pipelines.jobs import job_role
from cryptorun_pipelines.partitions import Cadences, as_of_for_key, build_cadences, upstream_key

#: upstream assets read by each scan role (from the regime job's partitions)
SCAN_UPSTREAM = (UNIVERSE_RANKING, REGIME_WEIGHTS)


@dataclass(frozen=True)
class MissingPartition:
    asset: str
    partition_key: str
    job: str  # dotted config job that materialises it


def missing_upstream(job_name: str, partition_key: str, config: AppConfig, cadences: Cadences | None = None) -> list[MissingPartition]:
    """Upstream partitions a run of ``job_name`` for ``partition_key`` reads and cannot find on disk."""
    cad = cadences or build_cadences(config)
    role = job_role(config.job(job_name))
    if role == "regime":
        return []  # the regime job's own assets are its upstream; it has no cross-job input
    up_key = upstream_key(cad, role, partition_key)
    as_of = as_of_for_key(cad.regime, up_key)
    return [
        MissingPartition(asset, up_key, cad.regime_job.name)
        for asset in SCAN_UPSTREAM
        if not artifact_path(config.global_.artifacts_dir, asset, as_of).is_file()
    ]
