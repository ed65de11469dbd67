"""The snapshot assets (cryptorun_pipelines/assets/market.py): one graph whatever the market source.

A multiprocess step or a Celery worker rebuilds the job from the code location in its own
environment; if the graph followed ``market.source``, a worker started without the launcher's
``CRYPTORUN_MARKET_SOURCE`` would run a hot snapshot step without the regime input (and a live
cycle would request every book).
"""

from __future__ import annotations

from cryptorun_core.config import load_config
from cryptorun_pipelines.build import build_definitions

from ..conftest import small_config_dict, write_config


def definitions_for(tmp_path, source: str):
    """The definitions of the small test config with ``market.source: source``."""
    raw = small_config_dict(tmp_path / source / "artifacts")
    raw["market"]["source"] = source
    path = write_config(tmp_path / source / "scheduler.yaml", raw)
    return build_definitions(load_config(path, check_artifacts_dir=False), config_path=path)


def asset_parents(tmp_path, source: str) -> dict[str, set[str]]:
    graph = definitions_for(tmp_path, source).resolve_asset_graph()
    return {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys} for k in graph.get_all_asset_keys()}


def hot_snapshot_inputs(tmp_path, source: str) -> list[str]:
    node = definitions_for(tmp_path, source).resolve_job_def("scan_hot").graph.node_named("hot_snapshot")
    return sorted(d.name for d in node.definition.input_defs)


def test_every_source_builds_the_same_graph_and_the_hot_snapshot_reads_the_regime(tmp_path):
    offline, live = asset_parents(tmp_path, "simulated"), asset_parents(tmp_path, "ccxt")
    assert offline == live
    assert offline["hot_snapshot"] == {"universe_ranking", "regime_weights"}
    assert offline["warm_snapshot"] == {"universe_ranking"}


def test_the_hot_snapshot_step_has_the_same_inputs_for_every_source(tmp_path):
    assert hot_snapshot_inputs(tmp_path, "simulated") == hot_snapshot_inputs(tmp_path, "ccxt") == ["regime_weights", "universe_ranking"]
