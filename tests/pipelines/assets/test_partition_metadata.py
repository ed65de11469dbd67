"""add_partition_metadata gives every partition of a single-run backfill what add_asset_metadata gives it."""

from datetime import datetime

import dagster as dg
import pytest

from cryptorun_pipelines.assets.partition_metadata import add_partition_metadata

PDEF = dg.TimeWindowPartitionsDefinition(cron_schedule="0 */4 * * *", start=datetime(2026, 1, 1), fmt="%Y-%m-%d-%H:%M",
                                         timezone="UTC")
KEYS = PDEF.get_partition_keys()[:7]


class NullIO(dg.IOManager):
    def handle_output(self, context, obj):
        return None

    def load_input(self, context):
        return None


def _metadata(keys):
    out = {}
    for i, key in enumerate(keys):
        out["a", key] = {"n": i, "label": f"a-{key}", "payload": dg.MetadataValue.json({"i": i})}
        out["b", key] = {"x": float(i) / 3}
    return out


def _later(keys):
    return {("a", key): {"later": i * 2, "label": "replaced"} for i, key in enumerate(keys)}


def _run(add, extra=None):
    @dg.multi_asset(partitions_def=PDEF, backfill_policy=dg.BackfillPolicy.single_run(), can_subset=False,
                    outs={"a": dg.AssetOut(io_manager_key="null"), "b": dg.AssetOut(io_manager_key="null")})
    def window(context: dg.AssetExecutionContext):
        if extra is not None:
            add(context, extra)
        else:  # two additions: the second merges over the first
            add(context, _metadata(context.partition_keys))
            add(context, _later(context.partition_keys))
        yield dg.Output(None, output_name="a", metadata={"run_wide": 1})
        yield dg.Output(None, output_name="b")

    job = dg.define_asset_job("j", selection=[window])
    defs = dg.Definitions(assets=[window], jobs=[job], resources={"null": NullIO()})
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("j").execute_in_process(
        instance=instance, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": KEYS[0], "dagster/asset_partition_range_end": KEYS[-1]})
    return result, {(m.asset_key.to_user_string(), m.partition): dict(m.metadata) for m in result.asset_materializations_for_node("window")}


def _public(context, metadata):
    for (asset, key), values in metadata.items():
        context.add_asset_metadata(values, asset_key=asset, partition_key=key)


def test_same_materialisation_metadata_as_the_public_calls():
    _, public = _run(_public)
    _, bulk = _run(add_partition_metadata)
    assert len(bulk) == 2 * len(KEYS)
    assert bulk == public
    assert bulk["a", KEYS[3]]["later"] == dg.MetadataValue.int(6) and bulk["a", KEYS[3]]["run_wide"] == dg.MetadataValue.int(1)
    assert bulk["a", KEYS[3]]["label"] == dg.MetadataValue.text("replaced") and bulk["a", KEYS[3]]["n"] == dg.MetadataValue.int(3)


def test_the_one_pass_path_is_taken_on_this_dagster():
    """If Dagster renames what this relies on, the helper falls back to the public calls (correct,
    but quadratic again): this test says so."""
    seen = {}

    def spy(context, metadata):
        step = context.op_execution_context._step_execution_context
        before = step._metadata_accumulator
        add_partition_metadata(context, metadata)
        seen["replaced_once"] = step._metadata_accumulator is not before

    _run(spy)
    assert seen["replaced_once"]


@pytest.mark.parametrize("bad, message", [(("a", "2030-01-01-00:00"), "not being targeted"), (("c", KEYS[0]), "not being materialized")])
def test_an_asset_or_partition_outside_the_step_is_refused(bad, message):
    result, _ = _run(add_partition_metadata, {bad: {"n": 1}})
    assert not result.success
    assert message in str(result.all_events)
