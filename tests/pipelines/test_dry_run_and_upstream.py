"""A scan whose regime window nobody computed computes it itself (in memory in a dry run), waits
for it while its own run is coming, and dry runs write nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
import yaml

from cryptorun_core.config import DEFAULT_CONFIG_PATH
from cryptorun_pipelines.upstream import missing_upstream

from .conftest import failure_text, make_pipeline

pytestmark = pytest.mark.usefixtures("clean_env")

DRY_RUN_CONFIG = yaml.safe_load((DEFAULT_CONFIG_PATH.parent / "dry_run.yaml").read_text())
HOT, WARM, REGIME = "2026-11-20-11:45", "2026-11-20-10:00", "2026-11-20-08:00"  # all read the regime window 08:00
WINDOW_FILES = ("2026-11-20T12-00-00Z/regime.json", ".pipeline/2026-11-20T12-00-00Z/universe.parquet",
                ".pipeline/2026-11-20T12-00-00Z/regime_indicators.parquet")


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def logs(pipeline, result: dg.ExecuteInProcessResult) -> str:
    """Every message of the run's event log, the steps' own log lines included."""
    return "\n".join(r.user_message or "" for r in pipeline.instance.all_logs(result.run_id))


def test_dry_run_on_a_fresh_instance_computes_the_regime_window_in_memory_and_writes_nothing(pipeline):
    for job, key in (("scan_hot", HOT), ("scan_warm", WARM), ("regime_refresh", REGIME)):
        result = pipeline.run(job, key, run_config=DRY_RUN_CONFIG)
        assert result.success, failure_text(result)
        assert all(e.passed for e in result.get_asset_check_evaluations())
        if job != "regime_refresh":
            said = "regime window 2026-11-20-08:00 (as of 2026-11-20T12:00:00Z) was missing: computed in memory (dry run)"
            assert said in logs(pipeline, result), job
            # the window computed on demand is not recorded as materialised: nothing was written
            assert pipeline.instance.get_materialized_partitions(dg.AssetKey("universe_ranking")) == set()
    assert all_files(pipeline.artifacts) == []
    mat = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    meta = mat["regime_weights"].step_materialization_data.materialization.metadata
    assert meta["dry_run"].value is True
    assert meta["artifact_paths"].value == [str(pipeline.artifacts / "2026-11-20T12-00-00Z" / "regime.json")]


def test_scan_computes_the_missing_regime_window_exactly_as_the_regime_job(tmp_path):
    by_scan = make_pipeline(tmp_path / "scan")
    assert {(m.asset, m.partition_key) for m in missing_upstream("scan.hot", HOT, by_scan.config)} == {
        ("universe_ranking", REGIME), ("regime_weights", REGIME)}
    result = by_scan.run("scan_hot", HOT)
    assert result.success, failure_text(result)
    assert "was missing: computed and written by this run" in logs(by_scan, result)
    assert missing_upstream("scan.hot", HOT, by_scan.config) == []
    for asset in ("universe_ranking", "regime_indicators", "regime_weights"):
        assert by_scan.instance.get_materialized_partitions(dg.AssetKey(asset)) == {REGIME}, asset
    by_regime = make_pipeline(tmp_path / "regime")
    assert by_regime.run("regime_refresh", REGIME).success
    for name in WINDOW_FILES:
        assert (by_scan.artifacts / name).read_bytes() == (by_regime.artifacts / name).read_bytes(), name
    # the warm scan of the same window reads it, it does not compute it again
    warm = by_scan.run("scan_warm", WARM)
    assert warm.success and "was missing" not in logs(by_scan, warm)


def _running_regime_run(pipeline, key: str) -> str:
    job = pipeline.defs.resolve_job_def("regime_refresh")
    run = pipeline.instance.create_run_for_job(job, tags={"dagster/partition": key}, status=dg.DagsterRunStatus.STARTED)
    return run.run_id


def test_a_window_whose_run_is_in_progress_is_waited_for(tmp_path, monkeypatch):
    """hot at 12:00 and regime.refresh at 12:00 tick together: the scan retries while the regime run
    is queued or running, and computes the window itself once the wait is over."""
    from cryptorun_pipelines.io_managers.artifacts import ArtifactIOManager

    pipeline = make_pipeline(tmp_path, instance=dg.DagsterInstance.ephemeral())
    run_id = _running_regime_run(pipeline, REGIME)
    waits: list[int] = []
    original = ArtifactIOManager._wait_for_producer

    def spy(self, instance, log, key, as_of, attempt):
        waits.append(attempt)
        return original(self, instance, log, key, as_of, attempt)

    monkeypatch.setattr(ArtifactIOManager, "_wait_for_producer", spy)
    fast = {"resources": {"io_manager": {"config": {"upstream_wait_s": 2, "upstream_retry_delay_s": 1}}}}
    result = pipeline.run("scan_hot", HOT, run_config=fast)
    assert result.success, failure_text(result)
    text = logs(pipeline, result)
    assert f"regime window {REGIME} is not written yet and its run {run_id} is in progress" in text
    assert f"regime window {REGIME}: waited 2s for its run, computing it now" in text
    assert waits[:3] == [0, 1, 2]


def test_a_window_that_just_closed_is_waited_for_while_the_regime_schedule_is_on(pipeline):
    """The scheduler creates the 12:00 scan and regime runs one after the other: a scan that looks
    before the regime run exists waits for it while the window closed within the grace."""
    import logging

    from cryptorun_pipelines.resources.regime_window import RegimeWindowResource

    class Schedule(RegimeWindowResource):
        on: bool = True

        def schedule_running(self, instance) -> bool:
            return self.on

    io = _io_manager(pipeline)
    market = io.upstream.market_source
    closed = datetime.now(timezone.utc) - timedelta(seconds=30)
    key = (closed - timedelta(hours=4)).strftime("%Y-%m-%d-%H:%M")
    log = logging.getLogger("test")
    waiting = io.model_copy(update={"upstream": Schedule(market_source=market, on=True)})
    with pytest.raises(dg.RetryRequested):
        waiting._wait_for_producer(pipeline.instance, log, key, closed, attempt=0)
    waiting._wait_for_producer(pipeline.instance, log, key, closed - timedelta(seconds=waiting.upstream_grace_s), attempt=0)
    off = io.model_copy(update={"upstream": Schedule(market_source=market, on=False)})
    off._wait_for_producer(pipeline.instance, log, key, closed, attempt=0)  # nobody is coming: compute now


def _io_manager(pipeline, **fields):
    """The pipeline's IO manager and its resources as plain objects."""
    from cryptorun_pipelines.io_managers.artifacts import ArtifactIOManager
    from cryptorun_pipelines.resources import CryptoRunConfigResource, MarketSourceResource, RegimeWindowResource

    config = CryptoRunConfigResource.of(pipeline.config, str(pipeline.config_path), at_launch=False)
    upstream = RegimeWindowResource(market_source=MarketSourceResource(config=config))
    return ArtifactIOManager(config=config, **{"upstream": upstream, **fields})


def pipeline_regime_pdef(pipeline):
    from cryptorun_pipelines.partitions import build_cadences

    return build_cadences(pipeline.config).regime


def test_without_an_upstream_resource_a_missing_window_names_the_command_to_run(pipeline):
    from cryptorun_pipelines.io_managers.artifacts import MissingUpstreamPartitionError

    io = _io_manager(pipeline, upstream=None)
    context = dg.build_input_context(asset_key="regime_weights", asset_partitions_def=pipeline_regime_pdef(pipeline),
                                     asset_partition_key_range=dg.PartitionKeyRange(REGIME, REGIME))
    with pytest.raises(MissingUpstreamPartitionError) as err:
        io.load_input(context)
    assert "cryptorun schedule run regime.refresh --partition 2026-11-20-08:00" in str(err.value)
    assert '-j regime_refresh --tags \'{"dagster/partition": "2026-11-20-08:00"}\'' in str(err.value)
