"""The IO manager that stores every output in the SPEC §9 layout, one as_of folder per partition.

Where each asset's output goes is the artifact registry (:data:`cryptorun_core.artifacts.ARTIFACTS`):
the SPEC §9 files in ``{artifacts_dir}/{as_of}/``, pipeline-internal tables and snapshots under
``{artifacts_dir}/.pipeline/{as_of}/`` (``as_of`` = the partition's window END).

- **Whole sets.** A job that writes one file (regime.json, warm_signals.csv) replaces it with one
  rename. The three files of a hot cycle are committed together once the step has produced all of
  them (:func:`cryptorun_core.artifact_sets.commit_set`): a reader sees the previous set or the
  new one, never a mix, whatever happens in between.
- **In-run hand-off.** What a step writes is kept in memory for the rest of the run, so the steps
  (and checks) that follow get exactly what they would read from the files without reading them.
- **Missing regime windows** a scan reads are computed on demand (:class:`RegimeWindowResource`),
  written as the regime job would write them and recorded as materialisations; one whose own run
  is queued or running is waited for.
- **Dry run** (``dry_run=True``): nothing is written; the values are kept in memory all the same
  and the path and size are logged and attached as metadata. It needs the in-process executor.
"""


import math
import re
import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Optional

import dagster as dg
from pydantic import Field, PrivateAttr

from cryptorun_core.artifact_sets import commit_set
from cryptorun_core.artifacts import BY_ASSET, ROLE_ASSETS, Artifact, artifact_path, artifact_paths, write_files
from cryptorun_core.market.snapshot import MarketSnapshot
from cryptorun_core.timefmt import UTC, as_of_folder, iso_z
from cryptorun_pipelines.io_managers.serialization import PartitionedValues, deserialize, from_kept, kept, serialize_many
from cryptorun_pipelines.partitions import as_of_for_key, build_cadences
from cryptorun_pipelines.resources.config import CryptoRunConfigResource
from cryptorun_pipelines.resources.regime_window import WINDOW_ASSETS, RegimeWindowResource


AS_OF_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$")

__all__ = ["ArtifactIOManager", "MissingUpstreamPartitionError", "PartitionedValues"]


def _set_members(role: str) -> tuple[str, ...]:
    """The SPEC §9 files a job of ``role`` commits together (its set), by asset."""
    return tuple(a for a in ROLE_ASSETS[role] if BY_ASSET[a].spec_file)


class MissingUpstreamPartitionError(Exception):
    """An upstream partition this step reads was never materialised (or its files are gone)."""

    def __init__(self, asset: str, partition_key: str, job: str | None, path: str, why: str = ""):
        self.asset, self.partition_key, self.job, self.path = asset, partition_key, job, path
        run = (
            f"run `cryptorun schedule run {job} --partition {partition_key}` (or `dagster job execute -m "
            f"cryptorun_pipelines.definitions -j {job.replace('.', '_')} --tags "
            f"'{{\"dagster/partition\": \"{partition_key}\"}}'`) first"
            if job
            else "materialise it first"
        )
        super().__init__(f"{asset} partition {partition_key} is missing (no {path}){why}: {run}")


def _spec(asset_key: dg.AssetKey) -> Artifact:
    name = asset_key.path[-1]
    try:
        return BY_ASSET[name]
    except KeyError:
        raise dg.DagsterInvariantViolationError(f"ArtifactIOManager has no artifact layout for asset {asset_key.to_user_string()}") from None


def _as_of(partitions_def: dg.PartitionsDefinition, partition_key: str) -> datetime:
    if not isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        raise dg.DagsterInvariantViolationError("ArtifactIOManager stores time-window partitioned assets only")
    return as_of_for_key(partitions_def, partition_key)


class ArtifactIOManager(dg.ConfigurableIOManager):
    """Writes/reads the SPEC §9 artifact set per partition under the config's ``artifacts_dir``."""

    config: CryptoRunConfigResource
    dry_run: bool = Field(default=False, description="Compute everything, log what would be written, write nothing.")
    upstream: Optional[RegimeWindowResource] = Field(
        default=None, description="Computes a missing regime window a scan reads (None: the scan fails naming it)."
    )
    upstream_wait_s: int = Field(
        default=900,
        description="How long a scan waits for the queued or running regime run of a window it needs (e.g. the 12:00 "
        "scan and regime runs tick together) before computing the window itself.",
    )
    upstream_grace_s: int = Field(
        default=120,
        description="A window that closed less than this long ago while the regime schedule is on is waited for even "
        "before its run appears (the scheduler creates the two runs one after the other).",
    )
    upstream_retry_delay_s: int = Field(default=20, description="Seconds between those waits.")
    snapshot_min_age_s: int = Field(
        default=3600, description="A snapshot folder modified more recently than this is never pruned (a run may still read it)."
    )

    _buffer: dict = PrivateAttr(default_factory=dict)
    _pending: dict = PrivateAttr(default_factory=dict)

    # -- paths ------------------------------------------------------------------------------

    @property
    def artifacts_dir(self) -> Path:
        return Path(self.config.load().global_.artifacts_dir)

    def path_for(self, asset_name: str, as_of: datetime) -> Path:
        return artifact_path(self.artifacts_dir, asset_name, as_of)

    def exists(self, asset_name: str, as_of: datetime) -> bool:
        path = self.path_for(asset_name, as_of)
        if BY_ASSET[asset_name].kind == "snapshot":
            return (path / "meta.json").is_file()
        return path.is_file()

    # -- output -----------------------------------------------------------------------------

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        spec = _spec(context.asset_key)
        name = spec.asset
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else []
        if not keys:
            raise dg.DagsterInvariantViolationError(f"{name} must be materialised for a partition (its as_of time)")
        if isinstance(obj, PartitionedValues):
            values = obj
            missing = sorted(set(keys) - set(values))
            if missing:
                raise dg.DagsterInvariantViolationError(f"{name}: no value for partitions {missing[:5]}")
        elif len(keys) == 1:
            values = {keys[0]: obj}
        else:
            raise dg.DagsterInvariantViolationError(f"{name} ran for {len(keys)} partitions but returned one value; return PartitionedValues")
        pdef = context.asset_partitions_def
        as_ofs = [_as_of(pdef, key) for key in keys]
        paths = dict(zip(keys, artifact_paths(self.artifacts_dir, name, as_ofs)))
        written, total = self._write(spec, {paths[k]: values[k] for k in keys}, keys)
        if spec.kind == "snapshot" and not self.dry_run:
            pruned = self.prune_snapshots(spec, max(as_ofs))
            if pruned:
                context.log.info(f"pruned {len(pruned)} market snapshot folder(s) older than the retention")
        if self.dry_run:
            shown = written if len(written) <= 3 else written[:2] + [f"... ({len(written)} partitions) ...", written[-1]]
            context.log.info(f"dry run: would write {name}: " + ", ".join(shown))
        if len(keys) > 1:
            # a range's metadata would be copied onto every partition: each partition's own path is
            # added by the asset; the run-wide totals go to the run's log
            context.log.info(f"{name}: {'would write' if self.dry_run else 'wrote'} {len(keys)} partitions, {total:,} bytes")
            context.add_output_metadata({"dry_run": self.dry_run})
            return
        meta: dict[str, Any] = {"dry_run": self.dry_run, "artifact_paths": dg.MetadataValue.json(written)}
        if not self.dry_run:
            meta["path"] = dg.MetadataValue.path(written[0])
        if total:
            meta["bytes"] = total
        context.add_output_metadata(meta)

    def _write(self, spec: Artifact, values: dict[Path, Any], keys: list[str]) -> tuple[list[str], int]:
        """Write ``{path: value}`` (nothing in a dry run) and keep each value for the rest of the run;
        return the paths written and the files' total bytes. Members of a multi-file set wait until
        their set is complete and are then committed together."""
        written: list[str] = []
        files: list[tuple[Path, bytes]] = []
        if spec.kind == "snapshot":
            for path, value in values.items():
                if not self.dry_run:
                    value.write_parquet(path)
                self._buffer[str(path)] = kept(spec, value, None)
                written.append(str(path) + "/")
        else:
            for (path, value), data in zip(values.items(), serialize_many(spec, list(values.values()))):
                files.append((path, data))
                self._buffer[str(path)] = kept(spec, value, data)
                written.append(str(path))
        if not self.dry_run:
            members = _set_members(spec.role) if spec.spec_file else ()
            if len(members) > 1:
                for (path, data), key in zip(files, keys):
                    self._stage_member(spec, key, path, data, members)
            else:
                write_files(files)
        return written, sum(len(data) for _, data in files)

    def _stage_member(self, spec: Artifact, key: str, path: Path, data: bytes, members: tuple[str, ...]) -> None:
        pending = self._pending.setdefault((spec.role, key), {})
        pending[spec.asset] = (path, data)
        if set(pending) == set(members):
            del self._pending[(spec.role, key)]
            folder = path.parent
            commit_set(folder, spec.role, {p.name: d for p, d in pending.values()})

    def prune_snapshots(self, spec: Artifact, newest: datetime, *, now: float | None = None) -> list[Path]:
        """Remove this kind of snapshot from as_of folders older than ``newest`` − retention.

        Only folders named like an as_of time are considered, only the snapshot sub-folder of
        ``spec`` is removed, and one touched within ``snapshot_min_age_s`` is kept (a backfill may
        have just written it and be about to read it). SPEC §9 files are never pruned.
        """
        hours = self.config.load().global_.snapshot_retention_hours
        if hours <= 0:
            return []
        root = self.path_for(spec.asset, newest).parent.parent.parent  # .pipeline/{as_of}/snapshots/<job>
        if not root.is_dir():
            return []
        cutoff = as_of_folder(newest - timedelta(hours=hours))
        now = time.time() if now is None else now
        removed: list[Path] = []
        for folder in sorted(root.iterdir()):
            if not (folder.is_dir() and AS_OF_NAME.match(folder.name) and folder.name < cutoff):
                continue
            target = folder.joinpath(*spec.filename.split("/"))
            if not target.is_dir() or now - target.stat().st_mtime < self.snapshot_min_age_s:
                continue
            shutil.rmtree(target, ignore_errors=True)
            removed.append(target)
        return removed

    # -- input ------------------------------------------------------------------------------

    def load_input(self, context: dg.InputContext) -> Any:
        spec = _spec(context.asset_key)
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else []
        if not keys:
            raise dg.DagsterInvariantViolationError(f"no partition of {spec.asset} maps to this step")
        pdef = context.asset_partitions_def
        loaded = {k: self._load_one(context, spec, k, _as_of(pdef, k)) for k in keys}
        return loaded[keys[0]] if len(keys) == 1 else PartitionedValues(loaded)

    def _load_one(self, context: dg.InputContext, spec: Artifact, key: str, as_of: datetime) -> Any:
        path = self.path_for(spec.asset, as_of)
        held = self._buffer.get(str(path))
        if held is not None:  # written (or computed on demand) earlier in this run
            return from_kept(spec, held)
        if spec.kind == "snapshot" and (path / "meta.json").is_file():
            return MarketSnapshot.read_parquet(path)
        if spec.kind != "snapshot" and path.is_file():
            return deserialize(spec, path.read_bytes())
        if self.upstream is not None and spec.asset in WINDOW_ASSETS:
            return self._regime_window(context, key, as_of)[spec.asset]
        raise MissingUpstreamPartitionError(spec.asset, key, self._producer(spec), str(path))

    def _producer(self, spec: Artifact) -> str | None:
        cadences = build_cadences(self.config.load())
        jobs = {"regime": cadences.regime_job, "hot": cadences.hot_job, "warm": cadences.warm_job}
        job = jobs.get(spec.role)
        return job.name if job is not None else None

    def _regime_window(self, context: dg.InputContext, key: str, as_of: datetime) -> dict[str, Any]:
        """The regime window ``key`` a scan needs and nobody wrote: waited for while its own run is
        coming, else computed now, written and recorded (kept in memory only in a dry run)."""
        assert self.upstream is not None
        if not self.dry_run:
            self._wait_for_producer(context.instance, context.log, key, as_of, context.step_context.previous_attempt_count)
        values = self.upstream.compute(key)
        verb = "computed in memory (dry run)" if self.dry_run else "computed and written"
        context.log.info(
            f"regime window {key} (as of {iso_z(as_of)}) was missing: {verb} by this run, as regime.refresh computes it"
        )
        for asset, value in values.items():
            self._write(BY_ASSET[asset], {self.path_for(asset, as_of): value}, [key])
        if not self.dry_run:
            run = context.step_context.dagster_run
            for asset in values:
                context.instance.report_runless_asset_event(
                    dg.AssetMaterialization(
                        asset_key=asset, partition=key,
                        description=f"Computed on demand by run {run.run_id} of {run.job_name}: the scan needed it "
                        "and no regime.refresh run had produced it.",
                        metadata={"computed_by_run": run.run_id, "path": dg.MetadataValue.path(str(self.path_for(asset, as_of)))},
                    )
                )
        return values

    def _wait_for_producer(self, instance: dg.DagsterInstance, log, key: str, as_of: datetime, attempt: int) -> None:
        """Raise RetryRequested while the window's own run is queued or running (or, just after its
        tick with the regime schedule on, about to be), for at most ``upstream_wait_s``."""
        assert self.upstream is not None
        producer = self.upstream.producing_run(instance, key)
        age_s = (datetime.now(UTC) - as_of).total_seconds()
        coming = producer is None and 0 <= age_s < self.upstream_grace_s and self.upstream.schedule_running(instance)
        if producer is None and not coming:
            return
        retries = max(1, math.ceil(self.upstream_wait_s / max(1, self.upstream_retry_delay_s)))
        if attempt >= retries:
            log.warning(f"regime window {key}: waited {self.upstream_wait_s}s for its run, computing it now")
            return
        why = f"its run {producer} is in progress" if producer else "the regime schedule's run for it is due"
        log.warning(f"regime window {key} is not written yet and {why}: waiting {self.upstream_retry_delay_s}s")
        raise dg.RetryRequested(max_retries=retries + 1, seconds_to_wait=self.upstream_retry_delay_s)
