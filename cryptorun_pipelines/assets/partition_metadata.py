"""Each partition's own materialisation metadata in a multi-partition (single-run backfill) step.

``context.add_asset_metadata(..., partition_key=k)`` is the public way, but Dagster 1.13 lists the
step's whole partition range and copies the step's whole metadata accumulator on every call: a
year of regime partitions (3 × 2,190 calls) spends seconds there, growing with the square of the
range. :func:`add_partition_metadata` checks every (asset, partition) once against the step and
stores them all in one copy of the same accumulator, so each partition's materialisation gets
exactly what the public call would have given it (a test compares the two).
"""

from typing import Any, Mapping

import dagster as dg
from dagster._core.execution.context.metadata_logging import AssetMetadataHandle, OutputMetadataAccumulator


def add_partition_metadata(context: dg.AssetExecutionContext, metadata: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
    """Add ``metadata[(asset, partition_key)]`` to that asset partition's materialisation, for every
    pair (later pairs merge over earlier ones, as repeated ``add_asset_metadata`` calls do)."""
    step = getattr(context.op_execution_context, "_step_execution_context", None)
    accumulator = getattr(step, "_metadata_accumulator", None)
    if not isinstance(accumulator, OutputMetadataAccumulator):  # not the Dagster this was read from: the public path
        for (asset, key), values in metadata.items():
            context.add_asset_metadata(values, asset_key=asset, partition_key=key)
        return
    assets = set(context.assets_def.keys)
    targeted = set(context.partition_keys)
    merged = dict(accumulator.per_output_metadata)
    for (asset, key), values in metadata.items():
        asset_key = dg.AssetKey.from_coercible(asset)
        if asset_key not in assets:
            raise dg.DagsterInvariantViolationError(
                f"Attempted to add metadata for asset key '{asset_key}' that is not being materialized.")
        if key not in targeted:
            raise dg.DagsterInvariantViolationError(
                f"Attempted to add metadata for partition key '{key}' that is not being targeted.")
        handle = AssetMetadataHandle(asset_key=asset_key, partition_key=key)
        merged[handle] = {**merged.get(handle, {}), **values}
    step._metadata_accumulator = OutputMetadataAccumulator(per_output_metadata=merged)
