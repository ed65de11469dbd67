"""The executor chosen by ``executor:`` in the config (cryptorun_pipelines.executors).

Fast tests: the executor each setting builds, the Celery URLs read from the environment the config
names. End to end (the real ``dagster job execute``, a temporary DAGSTER_HOME): a regime backfill of
12 partitions and a hot cycle under the multiprocess executor and on a real Celery worker (Redis
from the ``redis_url`` fixture, a prefork pool), both on the production profile (Postgres, the
pooled event log), write exactly the bytes the in-process executor writes on SQLite; a dry run
under a multi-process executor runs in one process and writes nothing; the Celery worker reads the
artifacts folder the run resolved, not its own environment's.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import pytest

from cryptorun_core.config import changed, packaged_config
from cryptorun_pipelines.executors import CeleryUrlMissing, build_executor, celery_config, inner_executor
from cryptorun_pipelines.run_tags import SETTINGS_TAGS

from tests.deploy.production_support import PG_ENV_VARS, PROCESS_ENV_VARS, pg_env, production_home
from tests.servers import PostgresDb

from .conftest import REPO, SPEC_REGIME, SPEC_SCAN_HOT, small_config_dict, write_config

BIN = Path(sys.executable).parent
MODULE = "cryptorun_pipelines.definitions"
#: 12 regime windows (4 h each) up to the one closing 2026-11-20T12:00Z, then the hot cycle at T 12:00 that reads it
BACKFILL = {"dagster/asset_partition_range_start": "2026-11-18-12:00", "dagster/asset_partition_range_end": "2026-11-20-08:00"}
HOT_KEY = "2026-11-20-11:45"


# -- what each setting builds ------------------------------------------------------------------


@pytest.mark.parametrize("kind,inner", [("in_process", "in_process"), ("multiprocess", "multiprocess"), ("celery", "celery")])
def test_each_type_builds_its_executor_under_the_check(kind, inner):
    settings = changed(packaged_config().executor, type=kind)
    executor = build_executor(settings)
    assert executor.name == f"cryptorun_{kind}"
    requirements = executor.get_requirements({})
    # every executor but in_process needs a job it can rebuild in another process and a persistent instance
    assert bool(requirements) == (inner != "in_process")


def test_celery_urls_come_from_the_variables_the_config_names():
    settings = changed(packaged_config().executor, type="celery", celery={"broker_url_env": "MY_BROKER", "backend_url_env": "MY_BACKEND"})
    assert celery_config(settings, {"MY_BROKER": "redis://h:1/2", "MY_BACKEND": "redis://h:1/3"}) == {
        "broker": "redis://h:1/2", "backend": "redis://h:1/3",
    }
    with pytest.raises(CeleryUrlMissing) as err:
        celery_config(settings, {"MY_BROKER": "redis://h:1/2"})
    assert str(err.value) == ("executor.celery.backend_url_env: the environment variable MY_BACKEND is not set (the Celery URL) "
                              "and the run's executor config gives no backend")


def test_a_url_or_limit_the_runs_executor_config_gives_wins_over_the_cryptorun_config():
    celery = changed(packaged_config().executor, type="celery", celery={"broker_url_env": "MY_BROKER", "backend_url_env": "MY_BACKEND"})
    given = {"broker": "redis://run:1/0", "backend": "redis://run:1/1"}
    assert celery_config(celery, {}, given) == given  # nothing in the environment: no error either
    assert celery_config(celery, {"MY_BROKER": "redis://env:1/0", "MY_BACKEND": "redis://env:1/1"}, {"broker": "redis://run:1/0"}) == {
        "broker": "redis://run:1/0", "backend": "redis://env:1/1"}
    # dagster-celery's own default backend (rpc://) would hide the environment's: the launchpad field has none
    backend = build_executor(celery).config_schema.config_type.fields["backend"]
    assert not backend.default_provided and not backend.is_required and "$MY_BACKEND" in backend.description

    multiprocess = changed(packaged_config().executor, type="multiprocess", multiprocess={"max_concurrent": 3})
    fill = inner_executor(multiprocess)[1]
    assert fill({"max_concurrent": None}) == {"max_concurrent": 3}
    assert fill({"max_concurrent": 1}) == {"max_concurrent": 1}


def test_every_job_gets_the_configured_executor(tmp_path):
    from cryptorun_pipelines.build import build_definitions

    raw = small_config_dict(tmp_path / "artifacts")
    raw["executor"]["type"] = "multiprocess"
    path = write_config(tmp_path / "scheduler.yaml", raw)
    from cryptorun_core.config import load_config

    defs = build_definitions(load_config(path), config_path=path)
    for name in ("scan_hot", "scan_warm", "regime_refresh", "evaluate_signals"):
        assert defs.resolve_job_def(name).executor_def.name == "cryptorun_multiprocess"
    # a materialisation launched from the asset graph runs Dagster's own job: the same checked executor
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == "cryptorun_multiprocess"


# -- end to end: the same bytes under every executor -------------------------------------------


def artifact_bytes(root: Path) -> dict[str, str]:
    """Every file a reader sees under ``root`` (set members through their links), by path: its sha256."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if ".sets" in rel.parts or not path.is_file():
            continue
        out[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def environment(root: Path, executor: str, postgres: PostgresDb | None = None, worker_wait_s: float | None = None,
                worker_lost_s: float | None = None, **extra: str) -> tuple[dict[str, str], Path]:
    """A config of the small simulated market with ``executor``, a fresh DAGSTER_HOME (SQLite, or the
    production profile on ``postgres``), and the environment of a shell that runs `dagster` with
    them (the venv's bin first on PATH)."""
    artifacts = root / "artifacts"
    raw = small_config_dict(artifacts)
    raw["executor"]["type"] = executor
    if worker_wait_s is not None:
        raw["executor"]["celery"]["worker_wait_s"] = worker_wait_s
    if worker_lost_s is not None:
        raw["executor"]["celery"]["worker_lost_s"] = worker_lost_s
    config = write_config(root / "config" / "scheduler.yaml", raw)
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    if postgres is None:
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    else:
        production_home(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTORUN_", "DAGSTER_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", CRYPTORUN_CONFIG=str(config), DAGSTER_HOME=str(home), **extra)
    if postgres is not None:
        env.update(pg_env(postgres))
    return env, artifacts


def dagster_execute(env: dict[str, str], job: str, tags: dict[str, str], *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "dagster"), "job", "execute", "-m", MODULE, "-j", job, "--tags", json.dumps(tags), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )


def backfill_then_hot_cycle(env: dict[str, str]) -> None:
    for job, tags in (("regime_refresh", BACKFILL), ("scan_hot", {"dagster/partition": HOT_KEY})):
        proc = dagster_execute(env, job, tags)
        assert proc.returncode == 0, f"{job}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"


@pytest.fixture(scope="module")
def in_process_bytes(tmp_path_factory) -> dict[str, str]:
    """What the in-process executor writes for the backfill and the hot cycle (the reference)."""
    env, artifacts = environment(tmp_path_factory.mktemp("in_process"), "in_process")
    backfill_then_hot_cycle(env)
    written = artifact_bytes(artifacts)
    hot = artifacts / "2026-11-20T12-00-00Z"
    assert {p.name for p in hot.iterdir() if not p.name.startswith(".")} == SPEC_REGIME | SPEC_SCAN_HOT
    assert sum(1 for k in written if k.endswith("/regime.json")) == 12
    return written


@pytest.mark.e2e
def test_multiprocess_on_the_production_profile_writes_the_bytes_of_in_process(tmp_path, postgres_db, in_process_bytes):
    env, artifacts = environment(tmp_path, "multiprocess", postgres_db)
    backfill_then_hot_cycle(env)
    assert artifact_bytes(artifacts) == in_process_bytes


@pytest.mark.e2e
def test_a_dry_run_under_multiprocess_runs_in_one_process_and_writes_nothing(tmp_path):
    env, artifacts = environment(tmp_path, "multiprocess")
    proc = dagster_execute(env, "scan_hot", {"dagster/partition": HOT_KEY}, "-c", "config/dry_run.yaml")
    logs = proc.stdout + proc.stderr
    assert proc.returncode == 0, logs[-4000:]
    assert "dry run: every step runs in this process" in logs
    assert "dry run: would write hot_signals" in logs and "Multiprocess executor" not in logs
    assert not artifacts.exists()


def _redis_db_url(base: str, db: int) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


@pytest.fixture
def celery_worker(tmp_path, redis_url, postgres_db, request):
    """A dagster-celery worker on its own Redis database, as compose.yaml runs it: the default
    (prefork) pool, the venv on PATH, the production profile's instance on Postgres and the config
    file, and nothing else of ours (no artifacts folder override: that comes with each run)."""
    db = 1 + int(hashlib.sha256(str(tmp_path).encode()).hexdigest(), 16) % 15
    url = _redis_db_url(redis_url, db)
    env, artifacts = environment(
        tmp_path / "celery", "celery", postgres_db, worker_lost_s=getattr(request, "param", None),
        CRYPTORUN_CELERY_BROKER_URL=url, CRYPTORUN_CELERY_BACKEND_URL=url,
    )
    worker_env = {k: v for k, v in env.items() if not k.startswith("CRYPTORUN_CELERY_")}
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [str(BIN / "celery"), "-A", "dagster_celery.app", "-b", url, "--result-backend", url, "worker",
         "-Q", "dagster", "--pool", "prefork", "--concurrency", "2", "-n", f"cryptorun-test-{db}@%h", "--without-gossip", "--without-mingle",
         "--loglevel", "INFO"],
        cwd=REPO, env=worker_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        yield env, artifacts, tmp_path / "worker.log", worker
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        log.close()


@pytest.mark.e2e
def test_celery_writes_the_bytes_of_in_process_and_reads_the_runs_settings(tmp_path, celery_worker, in_process_bytes, monkeypatch):
    env, config_artifacts, worker_log, _ = celery_worker
    # the launcher overrides the artifacts folder; the worker's environment does not: it must follow the run
    artifacts = tmp_path / "launched-artifacts"
    env = {**env, "CRYPTORUN_ARTIFACTS_DIR": str(artifacts)}
    try:
        backfill_then_hot_cycle(env)
    except (AssertionError, subprocess.TimeoutExpired) as exc:
        raise AssertionError(f"{exc}\n--- worker log ---\n{worker_log.read_text()[-4000:]}") from None
    assert artifact_bytes(artifacts) == in_process_bytes
    assert not config_artifacts.exists(), "a worker wrote into its own environment's artifacts folder"
    # every step ran as a Celery task on the worker
    for name in PG_ENV_VARS:  # the production profile's credentials
        monkeypatch.setenv(name, env[name])
    for name in PROCESS_ENV_VARS:  # the pooled event log exports these into this process: undone at teardown
        monkeypatch.setenv(name, os.environ.get(name, "0"))
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs()
    assert len(runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    assert all(r.tags[SETTINGS_TAGS["artifacts_dir"]] == str(artifacts) for r in runs)
    logs = worker_log.read_text()
    assert logs.count("execute_plan") >= 3 and "succeeded" in logs


@pytest.mark.e2e
def test_a_celery_run_without_a_worker_fails_at_its_start_naming_the_queue(tmp_path, redis_url):
    # dagster-celery alone submits the first step and waits for its result forever
    url = _redis_db_url(redis_url, 0)
    env, artifacts = environment(tmp_path, "celery", worker_wait_s=3,
                                 CRYPTORUN_CELERY_BROKER_URL=url, CRYPTORUN_CELERY_BACKEND_URL=url)
    proc = dagster_execute(env, "scan_hot", {"dagster/partition": HOT_KEY}, timeout=120)
    logs = proc.stdout + proc.stderr
    assert proc.returncode == 1, logs[-4000:]
    parts = urlsplit(url)
    assert f"waiting up to 3 s for a Celery worker consuming queue 'dagster' on the broker redis://{parts.netloc}/0" in logs
    assert (f"CeleryWorkersUnavailable: no Celery worker consumes queue 'dagster' on the broker redis://{parts.netloc}/0 "
            "(waited 3 s, executor.celery.worker_wait_s)") in logs, logs[-4000:]
    assert "Submitting celery task" not in logs and not artifacts.exists()


@pytest.mark.e2e
@pytest.mark.parametrize("celery_worker", [3], indirect=True)  # executor.celery.worker_lost_s
def test_a_celery_step_whose_worker_is_killed_fails_the_run_naming_the_worker(tmp_path, celery_worker):
    # dagster-celery polls the step's result, which a worker killed outright never writes: the run
    # waited for ever, and so did cancelling it
    env, artifacts, worker_log, worker = celery_worker
    run = subprocess.Popen(
        [str(BIN / "dagster"), "job", "execute", "-m", MODULE, "-j", "regime_refresh", "--tags", json.dumps(BACKFILL)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = []
        for line in run.stdout:
            lines.append(line)
            if "its Celery task is held by the worker cryptorun-test-" in line:
                os.killpg(worker.pid, signal.SIGKILL)  # the worker and its pool, in the middle of the step
                worker.wait()
                break
        assert worker.poll() is not None, "".join(lines)[-4000:] + worker_log.read_text()[-3000:]
        rest, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    logs = "".join(lines) + rest
    assert run.returncode == 1, logs[-4000:]
    assert "step regime_window: its Celery task is held by the worker cryptorun-test-" in logs
    assert "[regime_window]: cryptorun_pipelines.celery_watch.CeleryWorkerLost: the Celery worker cryptorun-test-" in logs, logs[-4000:]
    assert "that held the task of step 'regime_window' has not answered for" in logs
    assert "(executor.celery.worker_lost_s 3): it was stopped or killed, or its host is gone" in logs
    assert "worker_lost_s" not in worker_log.read_text()
    assert not any(artifacts.rglob("regime.json"))


def test_the_settings_tags_are_hidden_from_the_run_list():
    """Every step process needs them, nobody filters by them: the UI must not add three rows of
    tags to every run (issue #18)."""
    from dagster._core.storage.tags import TagType, get_tag_type

    assert {get_tag_type(tag) for tag in SETTINGS_TAGS.values()} == {TagType.HIDDEN}


def test_a_live_run_without_venue_tags_is_refused_and_every_other_run_passes():
    from cryptorun_pipelines.executors import venue_limit_problem

    problem = venue_limit_problem("scan_hot", {"cryptorun/job": "scan.hot"}, "ccxt")
    assert problem and problem.startswith("scan_hot: the run's config sets market_source ccxt") and "cryptorun/venue.*" in problem
    assert venue_limit_problem("scan_hot", {"cryptorun/job": "scan.hot", "cryptorun/venue.kraken": "live"}, "ccxt") is None
    for offline in ("simulated", "replay", None):
        assert venue_limit_problem("scan_hot", {"cryptorun/job": "scan.hot"}, offline) is None
    # Dagster's job for materialisations from the asset graph has none of the jobs' tags
    problem = venue_limit_problem("__ASSET_JOB", {"dagster/partition": "2026-11-20-08:00"}, "ccxt")
    assert problem and problem.startswith("a run launched from the asset graph (__ASSET_JOB) carries no cryptorun/venue.* tag")
    assert "launch the job of these assets" in problem
