"""The IO manager that materialises the SPEC §9 artifact set, one folder per partition.

Layout (``as_of`` = the partition's window END, folder name ``YYYY-MM-DDTHH-MM-SSZ``)::

    {artifacts_dir}/{as_of}/signals.csv        hot_signals        (scan.hot)
    {artifacts_dir}/{as_of}/premove.csv        hot_premove        (scan.hot)
    {artifacts_dir}/{as_of}/explain.json       hot_explain        (scan.hot)
    {artifacts_dir}/{as_of}/warm_signals.csv   warm_signals       (scan.warm)
    {artifacts_dir}/{as_of}/regime.json        regime_weights     (regime.refresh)

    {cache_dir}/{as_of}/universe.parquet             universe_ranking   (pipeline-internal)
    {cache_dir}/{as_of}/regime_indicators.parquet    regime_indicators  (pipeline-internal)
    {cache_dir}/{as_of}/snapshots/scan_hot/          hot_market_snapshot  (MarketSnapshot.write_parquet)
    {cache_dir}/{as_of}/snapshots/scan_warm/         warm_market_snapshot

``cache_dir`` defaults to ``{artifacts_dir}/.pipeline`` so the as_of folders hold exactly the
SPEC §9 files (the hidden folder also sorts before every as_of folder).

Every file is written atomically (temporary file + rename; all the files of one output are
flushed to disk together, :func:`cryptorun_core.artifacts.write_files`) and a rerun
of a partition rewrites only its own files. Multi-partition runs (single-run backfills) pass a
:class:`PartitionedValues` mapping partition key → value and get one folder per key; loading a
range of upstream partitions returns the same mapping.

What a step writes is kept in memory for the rest of the run, so the steps (and checks) that
follow get exactly what they would read from the files without reading them: a market snapshot
or a parquet table as the object itself (their parquet round trip is lossless; a table is handed
out as a copy, as a read would give a new one), a CSV or JSON file as its bytes (parsed on load).
A partition's as-of time is computed from its key (:func:`cryptorun_pipelines.partitions.as_of_for_key`).

Dry run (``dry_run=True``): nothing is written; the values are kept in memory all the same (so
downstream steps and checks read exactly what would have been written) and the path and size
are logged and attached as metadata.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, PrivateAttr

from cryptorun_core.config import DEFAULT_CONFIG_PATH
from cryptorun_core.market.snapshot import MarketSnapshot
from cryptorun_core.artifacts import write_files
from cryptorun_pipelines.partitions import as_of_for_key

UTC = timezone.utc


class PartitionedValues(dict):
    """Values of a multi-partition step: ``{partition_key: value}`` (one artifact folder each)."""


@dataclass(frozen=True)
class ArtifactSpec:
    """Where and how one asset is stored."""

    filename: str  # file name inside the as_of folder (a folder for snapshots)
    kind: str  # 'csv' | 'json' | 'parquet' | 'snapshot'
    location: str  # 'artifacts' (SPEC §9) | 'cache' (pipeline-internal)
    csv_kind: Optional[str] = None  # the artifacts.csv_bytes kind for CSV files


ARTIFACT_LAYOUT: dict[str, ArtifactSpec] = {
    "universe_ranking": ArtifactSpec("universe.parquet", "parquet", "cache"),
    "regime_indicators": ArtifactSpec("regime_indicators.parquet", "parquet", "cache"),
    "regime_weights": ArtifactSpec("regime.json", "json", "artifacts"),
    "hot_market_snapshot": ArtifactSpec("snapshots/scan_hot", "snapshot", "cache"),
    "warm_market_snapshot": ArtifactSpec("snapshots/scan_warm", "snapshot", "cache"),
    "hot_signals": ArtifactSpec("signals.csv", "csv", "artifacts", "signals"),
    "hot_premove": ArtifactSpec("premove.csv", "csv", "artifacts", "premove"),
    "hot_explain": ArtifactSpec("explain.json", "json", "artifacts"),
    "warm_signals": ArtifactSpec("warm_signals.csv", "csv", "artifacts", "warm_signals"),
}

#: The SPEC §9 files (the only ones the as_of folders ever hold).
SPEC_FILES = tuple(s.filename for s in ARTIFACT_LAYOUT.values() if s.location == "artifacts")


class MissingUpstreamPartitionError(Exception):
    """An upstream partition this step reads was never materialised (or its files are gone)."""

    def __init__(self, asset: str, partition_key: str, job: str | None, path: str):
        self.asset = asset
        self.partition_key = partition_key
        self.job = job
        self.path = path
        run = (
            f"run `cryptorun schedule run {job} --partition {partition_key}` (or `dagster job execute -m "
            f"cryptorun_pipelines.definitions -j {job.replace('.', '_')} --tags "
            f"'{{\"dagster/partition\": \"{partition_key}\"}}'`) first"
            if job
            else "materialise it first"
        )
        super().__init__(f"{asset} partition {partition_key} is missing (no {path}): {run}")


def _project_path(raw: str) -> Path:
    """A relative directory is relative to the project root, as in load_config."""
    path = Path(raw).expanduser()
    return path if path.is_absolute() else (DEFAULT_CONFIG_PATH.parent.parent / path).resolve()


def _spec(asset_key: dg.AssetKey) -> ArtifactSpec:
    name = asset_key.path[-1]
    try:
        return ARTIFACT_LAYOUT[name]
    except KeyError:
        raise dg.DagsterInvariantViolationError(f"ArtifactIOManager has no artifact layout for asset {asset_key.to_user_string()}") from None


def _as_of(partitions_def: dg.PartitionsDefinition, partition_key: str) -> datetime:
    if not isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        raise dg.DagsterInvariantViolationError("ArtifactIOManager stores time-window partitioned assets only")
    return as_of_for_key(partitions_def, partition_key)


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return sink.getvalue()


def _serialize(spec: ArtifactSpec, value: Any) -> bytes:
    from cryptorun_core import artifacts

    if spec.kind == "csv":
        return artifacts.csv_bytes(value, spec.csv_kind)
    if spec.kind == "json":
        return artifacts.json_bytes(value)
    if spec.kind == "parquet":
        return _parquet_bytes(value)
    raise ValueError(spec.kind)


def _kept(spec: ArtifactSpec, value: Any, data: bytes | None) -> Any:
    """What the rest of the run is handed for a file of ``spec`` written from ``value`` (as ``data``).

    Parquet tables are written without their index, so the kept frame gets the index a read gives."""
    if spec.kind == "snapshot":
        return value
    if spec.kind == "parquet":
        return value.reset_index(drop=True) if not _default_index(value) else value
    return data


def _default_index(frame: pd.DataFrame) -> bool:
    index = frame.index
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and index.name is None


def _from_kept(spec: ArtifactSpec, kept: Any) -> Any:
    """The value of a kept file (see :func:`_kept`), as reading the file would give it."""
    if spec.kind == "snapshot":
        return kept
    if spec.kind == "parquet":
        return kept.copy()  # a reader gets a frame of its own
    return _deserialize(spec, kept)


def _deserialize(spec: ArtifactSpec, data: bytes) -> Any:
    if spec.kind == "csv":
        return pd.read_csv(io.BytesIO(data), keep_default_na=False, na_values=[""])
    if spec.kind == "json":
        return json.loads(data)
    if spec.kind == "parquet":
        return pq.read_table(io.BytesIO(data)).to_pandas()
    raise ValueError(spec.kind)


class ArtifactIOManager(dg.ConfigurableIOManager):
    """Writes/reads the SPEC §9 artifact set per partition under ``artifacts_dir`` (dry run: writes nothing)."""

    artifacts_dir: str = Field(description="Root of the as_of folders (config global.artifacts_dir, env CRYPTORUN_ARTIFACTS_DIR).")
    cache_dir: Optional[str] = Field(
        default=None, description="Pipeline-internal tables and snapshots (default {artifacts_dir}/.pipeline)."
    )
    dry_run: bool = Field(default=False, description="Compute everything, log what would be written, write nothing.")
    producers: dict[str, str] = Field(
        default_factory=dict, description="asset name → dotted job that materialises it (for missing-upstream messages)."
    )
    upstream_wait_s: int = Field(
        default=900,
        description="An upstream partition that closed less than this many seconds ago and is missing is probably "
        "still being computed by its own scheduled run (e.g. regime.refresh and scan.hot both tick at 12:00): "
        "the step is retried instead of failing. 0 disables waiting.",
    )
    upstream_retry_delay_s: int = Field(default=20, description="Seconds between those retries.")
    snapshot_retention_hours: int = Field(
        default=48,
        description="Market snapshots whose as_of is more than this many hours before the one just written are "
        "pruned (config global.snapshot_retention_hours; 0 keeps them all). SPEC §9 artifacts are never pruned.",
    )
    snapshot_min_age_s: int = Field(
        default=3600, description="A snapshot folder modified more recently than this is never pruned (a run may still read it)."
    )

    _buffer: dict = PrivateAttr(default_factory=dict)

    # -- paths ------------------------------------------------------------------------------

    def _root(self, spec: ArtifactSpec) -> Path:
        artifacts_dir = _project_path(self.artifacts_dir)
        if spec.location == "artifacts":
            return artifacts_dir
        return _project_path(self.cache_dir) if self.cache_dir else artifacts_dir / ".pipeline"

    def path_for(self, asset_name: str, as_of: datetime) -> Path:
        from cryptorun_core import artifacts

        spec = ARTIFACT_LAYOUT[asset_name]
        return Path(artifacts.safe_join(str(self._root(spec)), artifacts.as_of_folder(as_of), *spec.filename.split("/")))

    def exists(self, asset_name: str, as_of: datetime) -> bool:
        path = self.path_for(asset_name, as_of)
        if ARTIFACT_LAYOUT[asset_name].kind == "snapshot":
            return (path / "meta.json").is_file()
        return path.is_file()

    # -- output -----------------------------------------------------------------------------

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        spec = _spec(context.asset_key)
        name = context.asset_key.path[-1]
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
            raise dg.DagsterInvariantViolationError(
                f"{name} ran for {len(keys)} partitions but returned one value; return PartitionedValues"
            )
        pdef = context.asset_partitions_def
        written, total = self._write(spec, {self.path_for(name, _as_of(pdef, key)): values[key] for key in keys})
        if spec.kind == "snapshot" and not self.dry_run:
            newest = max(_as_of(pdef, key) for key in keys)
            pruned = self.prune_snapshots(spec, newest)
            if pruned:
                context.add_output_metadata({"pruned_snapshots": len(pruned)})
        if self.dry_run:
            # a dry run says what it would have written; a real write is recorded in the
            # materialisation metadata below (artifact_paths) — no extra event-log commit per output
            shown = written if len(written) <= 3 else written[:2] + [f"... ({len(written)} partitions) ...", written[-1]]
            context.log.info("dry run: would write " + f"{name}: " + ", ".join(shown))
        meta: dict[str, Any] = {
            "dry_run": self.dry_run,
            "artifact_paths": dg.MetadataValue.json(written if len(written) <= 20 else written[:10] + ["..."] + written[-10:]),
            "n_partitions": len(keys),
        }
        if len(written) == 1 and not self.dry_run:
            meta["path"] = dg.MetadataValue.path(written[0])
        if total:
            meta["bytes"] = total
        context.add_output_metadata(meta)

    def _write(self, spec: ArtifactSpec, values: dict[Path, Any]) -> tuple[list[str], int]:
        """Write ``{path: value}`` (nothing in a dry run; the files together, :func:`write_files`) and
        keep each value for the rest of the run; return the paths written and the files' total bytes."""
        written: list[str] = []
        files: list[tuple[Path, bytes]] = []
        kept: dict[str, Any] = {}
        for path, value in values.items():
            if spec.kind == "snapshot":
                if not self.dry_run:
                    value.write_parquet(path)
                kept[str(path)] = _kept(spec, value, None)
                written.append(str(path) + "/")
                continue
            data = _serialize(spec, value)
            files.append((path, data))
            kept[str(path)] = _kept(spec, value, data)
            written.append(str(path))
        if not self.dry_run:
            write_files(files)
        self._buffer.update(kept)
        return written, sum(len(data) for _, data in files)

    def prune_snapshots(self, spec: ArtifactSpec, newest: datetime, *, now: float | None = None) -> list[Path]:
        """Remove this kind of snapshot from as_of folders older than ``newest`` − retention.

        Only folders named like an as_of time are considered, only the snapshot sub-folder of
        ``spec`` is removed, and one touched within ``snapshot_min_age_s`` is kept (a backfill may
        have just written it and be about to read it).
        """
        import re
        import shutil
        import time
        from datetime import timedelta

        from cryptorun_core import artifacts

        if self.snapshot_retention_hours <= 0:
            return []
        root = self._root(spec)
        if not root.is_dir():
            return []
        cutoff = artifacts.as_of_folder(newest - timedelta(hours=self.snapshot_retention_hours))
        now = time.time() if now is None else now
        as_of_name = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$")
        removed: list[Path] = []
        for folder in sorted(root.iterdir()):
            if not (folder.is_dir() and as_of_name.match(folder.name) and folder.name < cutoff):
                continue
            target = folder.joinpath(*spec.filename.split("/"))
            if not target.is_dir() or now - target.stat().st_mtime < self.snapshot_min_age_s:
                continue
            shutil.rmtree(target, ignore_errors=True)
            removed.append(target)
        return removed

    # -- input ------------------------------------------------------------------------------

    def _load_one(self, context: dg.InputContext, name: str, spec: ArtifactSpec, key: str, as_of: datetime) -> Any:
        path = self.path_for(name, as_of)
        kept = self._buffer.get(str(path))
        if kept is not None:  # written earlier in this run
            return _from_kept(spec, kept)
        present = (path / "meta.json").is_file() if spec.kind == "snapshot" else path.is_file()
        if present:
            if spec.kind == "snapshot":
                return MarketSnapshot.read_parquet(path)
            return _deserialize(spec, path.read_bytes())
        age_s = (datetime.now(UTC) - as_of).total_seconds()
        err = MissingUpstreamPartitionError(name, key, self.producers.get(name), str(path))
        if self.upstream_wait_s > 0 and 0 <= age_s < self.upstream_wait_s and not self.dry_run:
            retries = max(1, math.ceil(self.upstream_wait_s / max(1, self.upstream_retry_delay_s)))
            context.log.warning(f"{err} — it closed {age_s:.0f}s ago, waiting {self.upstream_retry_delay_s}s for its run")
            raise dg.RetryRequested(max_retries=retries, seconds_to_wait=self.upstream_retry_delay_s) from err
        context.log.error(str(err))
        raise err

    def load_input(self, context: dg.InputContext) -> Any:
        spec = _spec(context.asset_key)
        name = context.asset_key.path[-1]
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else []
        if not keys:
            raise dg.DagsterInvariantViolationError(f"no partition of {name} maps to this step")
        pdef = context.asset_partitions_def
        loaded = {k: self._load_one(context, name, spec, k, _as_of(pdef, k)) for k in keys}
        if len(keys) == 1:
            return loaded[keys[0]]
        return PartitionedValues(loaded)

