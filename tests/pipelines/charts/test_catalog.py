"""How the tables read in the asset catalog: every column described, every constraint label whole."""

from __future__ import annotations

import dagster as dg
import pytest

from cryptorun_core.column_docs import COLUMN_DESCRIPTIONS, TABLE_CHECKS
from cryptorun_pipelines.assets.common import CONSTRAINT_LABEL_MAX

pytestmark = pytest.mark.usefixtures("clean_env")

TABLE_ASSETS = ("universe_ranking", "regime_indicators", "hot_signals", "hot_premove", "warm_signals")


def _specs(pipeline) -> dict[str, dg.AssetSpec]:
    graph = pipeline.defs.resolve_asset_graph()
    return {k.path[-1]: graph.get(k) for k in graph.get_all_asset_keys()}


@pytest.mark.parametrize("asset", TABLE_ASSETS)
def test_every_column_has_its_spec_description_and_every_label_fits_its_tag(pipeline, asset):
    node = _specs(pipeline)[asset]
    schema = node.metadata["dagster/column_schema"].schema
    assert schema.columns
    for col in schema.columns:
        assert col.description == COLUMN_DESCRIPTIONS[col.name], col.name
        assert "\n" not in col.description  # one line each
        for label in col.constraints.other:
            assert len(label) <= CONSTRAINT_LABEL_MAX, (col.name, label)
    for name in schema.constraints.other:
        assert name in TABLE_CHECKS and len(name) <= CONSTRAINT_LABEL_MAX


def test_table_checks_have_short_names_and_their_sentence_in_the_metadata(pipeline):
    node = _specs(pipeline)["hot_signals"]
    assert node.metadata["dagster/column_schema"].schema.constraints.other == ["score_descending"]
    assert node.metadata["table_checks"].value == f"- `score_descending`: {TABLE_CHECKS['score_descending']}"
    ranking = _specs(pipeline)["universe_ranking"]
    assert ranking.metadata["dagster/column_schema"].schema.constraints.other == ["ranking_consistent", "ranks_contiguous"]
