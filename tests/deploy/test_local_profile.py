"""deploy/local/dagster.yaml: the instance it makes, and the queue limits against the real run tags."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._utils.tags import TagConcurrencyLimitsCounter

from cryptorun_core.config import CONFIG_PATH_ENV, KNOWN_VENUES, MARKET_SOURCE_ENV, load_config
from cryptorun_pipelines.cli.instance import profile_file
from cryptorun_pipelines.cli.local_launcher import LocalRunLauncher
from cryptorun_pipelines.run_tags import JOB_TAG, VENUE_TAG_PREFIX, job_run_tags

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _packaged_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (CONFIG_PATH_ENV, MARKET_SOURCE_ENV):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def local_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(profile_file("local"), home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def test_local_profile_is_the_file_in_deploy() -> None:
    assert profile_file("local") == REPO / "deploy" / "local" / "dagster.yaml"


def test_local_profile_makes_a_monitored_queued_sqlite_instance(local_instance: dg.DagsterInstance) -> None:
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

    inst = local_instance
    assert isinstance(inst.run_storage, SqliteRunStorage)
    assert str(Path(inst.root_directory)) in inst.run_storage._conn_string
    assert isinstance(inst.run_launcher, LocalRunLauncher) and inst.run_launcher.supports_check_run_worker_health
    assert isinstance(inst.run_coordinator, QueuedRunCoordinator)
    assert inst.run_monitoring_enabled
    # a dead worker is found within a minute or two; the launcher cannot resume, so it fails the run
    assert 0 < inst.run_monitoring_poll_interval_seconds <= 60
    assert inst.run_monitoring_max_resume_run_attempts == 0
    assert 0 < inst.run_monitoring_start_timeout_seconds <= 300
    assert inst.run_monitoring_max_runtime_seconds >= 3600  # a year-long backfill takes minutes, not hours
    assert inst.telemetry_enabled is False



def _limits(instance: dg.DagsterInstance) -> list[dict]:
    return list(instance.get_concurrency_config().run_queue_config.tag_concurrency_limits)


def _tags(source: str, job: str, venues: list[str] | None = None) -> dict[str, str]:
    config = load_config(REPO / "config" / "scheduler.yaml")
    market = config.market.model_copy(update={"source": source})
    cfg = config.job(job)
    if venues is not None:
        cfg = cfg.model_copy(update={"config": cfg.config.model_copy(update={"venues": tuple(venues)})})
    return job_run_tags(cfg, market)


def _blocked(instance: dg.DagsterInstance, running: list[dict[str, str]], candidate: dict[str, str]) -> bool:
    from dagster._core.utils import make_new_run_id

    runs = [dg.DagsterRun(job_name="j", run_id=make_new_run_id(), tags=t) for t in running]
    counter = TagConcurrencyLimitsCounter(_limits(instance), runs)
    return counter.is_blocked(dg.DagsterRun(job_name="j", run_id=make_new_run_id(), tags=candidate))


def test_one_regime_refresh_at_a_time(local_instance: dg.DagsterInstance) -> None:
    regime = _tags("simulated", "regime.refresh")
    assert _blocked(local_instance, [regime], regime)  # a backfill and the 4-hourly tick never overlap
    assert not _blocked(local_instance, [regime], _tags("simulated", "scan.hot"))
    assert not _blocked(local_instance, [_tags("simulated", "scan.hot")], regime)


def test_one_live_run_per_venue(local_instance: dg.DagsterInstance) -> None:
    hot, warm = _tags("ccxt", "scan.hot"), _tags("ccxt", "scan.warm")
    assert {k for k in hot if k.startswith(VENUE_TAG_PREFIX)} == {VENUE_TAG_PREFIX + v for v in KNOWN_VENUES}
    assert _blocked(local_instance, [hot], warm)  # both call kraken, okx and coinbase
    assert _blocked(local_instance, [hot], _tags("ccxt", "scan.warm", ["okx"]))
    assert not _blocked(local_instance, [_tags("ccxt", "scan.hot", ["kraken"])], _tags("ccxt", "scan.warm", ["okx"]))
    # simulated and replayed markets call no venue: no venue tag, no venue limit
    assert not _blocked(local_instance, [_tags("simulated", "scan.hot")], _tags("simulated", "scan.warm"))
    assert not any(k.startswith(VENUE_TAG_PREFIX) for k in _tags("replay", "scan.hot"))


def test_every_known_venue_has_a_limit(local_instance: dg.DagsterInstance) -> None:
    limited = {limit["key"] for limit in _limits(local_instance)}
    assert {VENUE_TAG_PREFIX + v for v in KNOWN_VENUES} <= limited
    assert JOB_TAG in limited


def test_runs_carry_few_cryptorun_tags() -> None:
    """Issue #18: the tags people filter by and the limit tags; the job's settings are metadata."""
    from cryptorun_pipelines.build import build_definitions

    config = load_config(REPO / "config" / "scheduler.yaml")
    defs = build_definitions(config)
    for job in config.jobs:
        tags = {k: v for k, v in defs.resolve_job_def(job.dagster_name).tags.items() if k.startswith("cryptorun/")}
        assert tags == {JOB_TAG: job.name}
