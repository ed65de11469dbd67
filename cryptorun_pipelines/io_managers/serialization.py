"""Bytes of each kind of stored output, and what the rest of a run is handed instead of a re-read."""

from __future__ import annotations

import io
import json
from typing import Any, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cryptorun_core import artifacts
from cryptorun_core.artifacts import Artifact


class PartitionedValues(dict):
    """Values of a multi-partition step: ``{partition_key: value}`` (one artifact folder each)."""


def serialize(spec: Artifact, value: Any) -> bytes:
    if spec.kind == "csv":
        return artifacts.csv_bytes(value, spec.csv_kind)
    if spec.kind == "json":
        return artifacts.json_bytes(value)
    if spec.kind == "parquet":
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(value, preserve_index=False), sink)
        return sink.getvalue()
    raise ValueError(spec.kind)


def serialize_many(spec: Artifact, values: Sequence[Any]) -> list[bytes]:
    """``[serialize(spec, v) for v in values]`` — the same bytes — for the thousands of tables of a
    single-run backfill: tables whose columns convert to the same Arrow schema are converted in one
    ``Table.from_pandas`` (most of a small table's cost) and written slice by slice."""
    if spec.kind != "parquet" or len(values) < 2:
        return [serialize(spec, v) for v in values]
    out: list[bytes | None] = [None] * len(values)
    alike: dict[tuple, list[int]] = {}
    for i, frame in enumerate(values):
        signature = _arrow_signature(frame)
        if signature is None:
            out[i] = serialize(spec, frame)
        else:
            alike.setdefault(signature, []).append(i)
    for members in alike.values():
        frames = [values[i] for i in members]
        table = pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False)
        offset = 0
        for i, frame in zip(members, frames):
            sink = io.BytesIO()
            pq.write_table(table.slice(offset, len(frame)), sink)
            out[i] = sink.getvalue()
            offset += len(frame)
    return out


def _arrow_signature(frame: pd.DataFrame) -> tuple | None:
    """What decides the Arrow schema ``Table.from_pandas`` gives ``frame`` (column names and dtypes;
    for an object column, whether its values are strings or all missing); None for a frame whose
    conversion cannot be shared (other objects in a column, attributes, duplicate names)."""
    if frame.attrs or not frame.columns.is_unique or not all(isinstance(c, str) for c in frame.columns):
        return None
    kinds = []
    for name, dtype in frame.dtypes.items():
        if dtype == object:
            kind = pd.api.types.infer_dtype(frame[name].to_numpy(), skipna=True)
            if kind not in ("string", "empty"):
                return None
            kinds.append(kind)
        else:
            kinds.append(dtype)
    return tuple(frame.columns), tuple(kinds)


def deserialize(spec: Artifact, data: bytes) -> Any:
    if spec.kind == "csv":
        return pd.read_csv(io.BytesIO(data), keep_default_na=False, na_values=[""])
    if spec.kind == "json":
        return json.loads(data)
    if spec.kind == "parquet":
        return pq.read_table(io.BytesIO(data)).to_pandas()
    raise ValueError(spec.kind)


def _default_index(frame: pd.DataFrame) -> bool:
    index = frame.index
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and index.name is None


def kept(spec: Artifact, value: Any, data: bytes | None) -> Any:
    """What the rest of the run is handed for a file of ``spec`` written from ``value`` (as ``data``):
    a snapshot or a table as the object itself (their parquet round trip is lossless; a table gets
    the index a read gives), a CSV or JSON file as its bytes (parsed on load)."""
    if spec.kind == "snapshot":
        return value
    if spec.kind == "parquet":
        return value.reset_index(drop=True) if not _default_index(value) else value
    return data


def from_kept(spec: Artifact, value: Any) -> Any:
    """The value of a kept file (see :func:`kept`), as reading the file would give it."""
    if spec.kind == "snapshot":
        return value
    if spec.kind == "parquet":
        return value.copy()  # a reader gets a frame of its own
    return deserialize(spec, value)
