"""How the assets read in the Dagster UI: owners, tags, column schemas, SPEC links, code references.

``annotate_assets(assets)`` is applied once in ``build_definitions``; it changes no computation,
only the catalog entries: every asset gets an owner team, ``cadence`` / ``layer`` / ``artifact``
tags (filterable in the asset graph and catalog), the column schema of its dagster-pandera type
as ``dagster/column_schema`` (the UI's Columns panel), the SPEC section it implements, and a
reference to the Python source that defines it.
"""

from __future__ import annotations

from typing import Iterable

import dagster as dg

from cryptorun_core import asset_keys as keys

#: asset → (owner, layer, SPEC section)
CATALOG: dict[str, tuple[str, str, str]] = {
    keys.UNIVERSE_RANKING: ("team:market-data", "input", "SPEC §2 Universe"),
    keys.HOT_SNAPSHOT: ("team:market-data", "input", "SPEC §1 point in time, §3 microstructure"),
    keys.WARM_SNAPSHOT: ("team:market-data", "input", "SPEC §1 point in time, §3 microstructure"),
    keys.REGIME_INDICATORS: ("team:quant-research", "model", "SPEC §6 Regime"),
    keys.REGIME_WEIGHTS: ("team:quant-research", "model", "SPEC §6 Regime, §9 regime.json"),
    keys.HOT_SIGNALS: ("team:trading-signals", "output", "SPEC §4 factors, §5 VADR, §7 gates, §9 signals.csv"),
    keys.HOT_PREMOVE: ("team:trading-signals", "output", "SPEC §8 Premove, §9 premove.csv"),
    keys.HOT_EXPLAIN: ("team:trading-signals", "output", "SPEC §7 gates, §9 explain.json"),
    keys.WARM_SIGNALS: ("team:trading-signals", "output", "SPEC §7 gates (warm), §9 warm_signals.csv"),
}
#: the files a user opens (SPEC §9) vs pipeline-internal tables under {artifacts_dir}/.pipeline
SPEC_ARTIFACTS = {keys.REGIME_WEIGHTS, keys.HOT_SIGNALS, keys.HOT_PREMOVE, keys.HOT_EXPLAIN, keys.WARM_SIGNALS}


def _cadence(spec_partitions) -> str | None:
    if not isinstance(spec_partitions, dg.TimeWindowPartitionsDefinition):
        return None
    window = spec_partitions.time_window_for_partition_key(spec_partitions.get_first_partition_key())
    minutes = int((window.end - window.start).total_seconds() // 60)
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def _column_schemas(assets_def: dg.AssetsDefinition) -> dict[dg.AssetKey, dg.TableSchema]:
    """asset key → the TableSchema of its output's dagster-pandera type (tables only)."""
    out: dict[dg.AssetKey, dg.TableSchema] = {}
    for output_name, key in assets_def.keys_by_output_name.items():
        try:
            dagster_type = assets_def.op.output_def_named(output_name).dagster_type
        except Exception:  # noqa: BLE001 - not an op-backed asset
            continue
        schema = (dagster_type.metadata or {}).get("schema")
        value = getattr(schema, "schema", None)
        if isinstance(value, dg.TableSchema):
            out[key] = value
    return out


def annotate_assets(assets: Iterable[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    annotated = []
    for assets_def in assets:
        schemas = _column_schemas(assets_def)

        def annotate(spec: dg.AssetSpec, schemas=schemas) -> dg.AssetSpec:
            name = spec.key.path[-1]
            owner, layer, spec_ref = CATALOG.get(name, ("team:cryptorun", "other", "SPEC"))
            tags = {"layer": layer, "artifact": "spec" if name in SPEC_ARTIFACTS else "internal"}
            cadence = _cadence(spec.partitions_def)
            if cadence:
                tags["cadence"] = cadence
            metadata = {"spec": dg.MetadataValue.text(spec_ref)}
            if spec.key in schemas and "dagster/column_schema" not in (spec.metadata or {}):
                metadata["dagster/column_schema"] = dg.MetadataValue.table_schema(schemas[spec.key])
            return spec.replace_attributes(owners=[*spec.owners, *([owner] if owner not in spec.owners else [])]).merge_attributes(
                tags=tags, metadata=metadata
            )

        annotated.append(dg.map_asset_specs(annotate, [assets_def])[0])
    return list(dg.with_source_code_references(annotated))
