"""Bytes of each kind of stored output, and what the rest of a run is handed instead of a re-read."""

from __future__ import annotations

import io
import json
from typing import Any, Sequence

import numpy as np
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
        layout = _layout(frame)
        if layout is None:
            out[i] = serialize(spec, frame)
        else:
            alike.setdefault(layout, []).append(i)
    for members in alike.values():
        frames = [values[i] for i in members]
        whole = pd.concat(frames, ignore_index=True)
        kinds = _object_kinds(whole, [len(f) for f in frames])
        if kinds is None:  # a column holds objects that are not strings: each table converts on its own
            for i in members:
                out[i] = serialize(spec, values[i])
            continue
        same_schema: dict[tuple, list[int]] = {}
        for position, kind in enumerate(kinds):
            same_schema.setdefault(kind, []).append(position)
        for positions in same_schema.values():
            part = whole if len(positions) == len(frames) else pd.concat([frames[p] for p in positions], ignore_index=True)
            table = pa.Table.from_pandas(part, preserve_index=False)
            offset = 0
            for p in positions:
                sink = io.BytesIO()
                pq.write_table(table.slice(offset, len(frames[p])), sink)
                out[members[p]] = sink.getvalue()
                offset += len(frames[p])
    return out


def _layout(frame: pd.DataFrame) -> tuple | None:
    """Column names and dtypes of ``frame``; None for a frame whose conversion cannot be shared
    (attributes, duplicate or non-string names)."""
    if frame.attrs or not frame.columns.is_unique or not all(isinstance(c, str) for c in frame.columns):
        return None
    return tuple(frame.columns), tuple(frame.dtypes)


def _object_kinds(whole: pd.DataFrame, lengths: Sequence[int]) -> list[tuple] | None:
    """Per table of the concatenation ``whole`` (table t: its next ``lengths[t]`` rows), what else
    decides its Arrow schema: for each object column, whether the table's values are strings or all
    missing (pandas' ``infer_dtype``: "string" / "empty"). None when some object column holds other
    objects (that table's schema is its own)."""
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    per_column = []
    for name, dtype in whole.dtypes.items():
        if dtype != object:
            continue
        values = whole[name].to_numpy()
        if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
            return None
        present = np.concatenate([[0], np.cumsum(~pd.isna(values))])[bounds]
        per_column.append(np.where(np.diff(present) > 0, "string", "empty"))
    return [tuple(kinds) for kinds in zip(*per_column)] if per_column else [()] * len(lengths)


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
