"""deploy/production/dagster.yaml: credentials from the environment only, the same queue and run
monitoring as the local profile, and the instance it opens on a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml
from sqlalchemy.pool import NullPool

from cryptorun_pipelines.cli.instance import InstanceError, profile_file, prepare_instance
from cryptorun_pipelines.storage.pooled_postgres import PooledPostgresEventLogStorage
from tests.deploy.production_support import PG_ENV_VARS, PROCESS_ENV_VARS, pg_env, production_home

PROFILE = profile_file("production")


def _raw(name: str) -> dict:
    return yaml.safe_load(profile_file(name).read_text())


@pytest.fixture
def production_env(postgres_db, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = pg_env(postgres_db)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in PROCESS_ENV_VARS:  # what opening the instance sets must not leak into other tests
        monkeypatch.delenv(name, raising=False)
    return env


def test_every_credential_comes_from_the_environment() -> None:
    raw = _raw("production")
    storages = ("run_storage", "event_log_storage", "schedule_storage")
    assert "storage" not in raw  # the three storages are given one by one, so the event log can be ours
    for key in storages:
        db = dict(raw[key]["config"]["postgres_db"])  # a copy: the YAML alias shares one mapping
        assert db.pop("scheme") == "postgresql+psycopg2"  # plain postgresql:// means psycopg 3, not installed
        assert 0 < db.pop("params")["connect_timeout"] <= 30  # a server that never answers must not hang a command
        assert db == {field: {"env": var} for field, var in
                      zip(("hostname", "port", "username", "password", "db_name"), PG_ENV_VARS)}, key
        assert "postgres_url" not in raw[key]["config"]
    assert raw["event_log_storage"]["module"] == PooledPostgresEventLogStorage.__module__
    assert raw["event_log_storage"]["class"] == PooledPostgresEventLogStorage.__name__
    assert raw["event_log_storage"]["config"]["event_batch_size"] >= 2190  # one INSERT per output of a year's backfill


def test_queue_limits_launcher_and_monitoring_are_the_local_ones() -> None:
    local, production = _raw("local"), _raw("production")
    for key in ("run_launcher", "run_monitoring", "run_coordinator", "concurrency", "telemetry", "nux"):
        assert production[key] == local[key], key


def test_the_instance_is_postgres_with_the_pooled_event_log(tmp_path: Path, production_env) -> None:
    import os

    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres.run_storage import PostgresRunStorage
    from dagster_postgres.schedule_storage import PostgresScheduleStorage

    home = production_home(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        events = instance.event_log_storage
        assert isinstance(events, PooledPostgresEventLogStorage)
        assert not isinstance(events._engine.pool, NullPool)
        assert events.supports_partition_subset_in_asset_materialization_planned_events
        assert production_env["DAGSTER_PG_DB"] in instance.run_storage.postgres_url
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.run_monitoring_enabled and instance.run_launcher.supports_check_run_worker_health
        assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == "5000"
    assert not list(home.glob("**/*.db"))  # nothing of the history lands in the folder


def test_an_operators_batch_size_wins(tmp_path: Path, production_env, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "100")
    with dg.DagsterInstance.from_config(str(production_home(tmp_path / "home"))):
        assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == "100"


def test_cryptorun_initialises_a_production_home(tmp_path: Path, production_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CRYPTORUN_PROFILE", "production")
    setup = prepare_instance()
    assert setup.installed and setup.initialised and setup.profile == "production"
    assert (setup.home / "dagster.yaml").read_bytes() == PROFILE.read_bytes()
    again = prepare_instance()  # the marker is found: nothing is done twice
    assert not again.installed and not again.initialised


@pytest.mark.parametrize("missing", ["DAGSTER_PG_HOST", "DAGSTER_PG_PASSWORD"])
def test_a_missing_credential_is_named(tmp_path: Path, missing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in dict.fromkeys(PG_ENV_VARS, "x").items():
        monkeypatch.setenv(name, "5432" if name == "DAGSTER_PG_PORT" else value)
    monkeypatch.delenv(missing)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CRYPTORUN_PROFILE", "production")
    with pytest.raises(InstanceError) as err:
        prepare_instance()
    assert missing in err.value.message and "dagster.yaml" in err.value.message


def test_an_unreachable_server_is_named(tmp_path: Path, postgres_db, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name, value in pg_env(postgres_db).items():
        monkeypatch.setenv(name, str(port) if name == "DAGSTER_PG_PORT" else value)
    for name in PROCESS_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CRYPTORUN_PROFILE", "production")
    with pytest.raises(InstanceError) as err:
        prepare_instance()
    message = err.value.message
    assert "the Dagster instance cannot be opened" in message and f'port {port} failed: Connection refused' in message, message


def test_a_server_that_never_answers_fails_within_the_connect_timeout(tmp_path: Path, postgres_db,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # a frozen server or a firewall dropping packets: the TCP handshake completes (the listen
    # backlog), then nothing; without connect_timeout every command, the daemon and run monitoring hang
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # never accepted, never answered
    try:
        for name, value in pg_env(postgres_db).items():
            monkeypatch.setenv(name, str(listener.getsockname()[1]) if name == "DAGSTER_PG_PORT" else value)
        for name in PROCESS_ENV_VARS:
            monkeypatch.delenv(name, raising=False)
        home = tmp_path / "home"
        home.mkdir()
        profile = PROFILE.read_text()
        assert "connect_timeout: 10" in profile
        (home / "dagster.yaml").write_text(profile.replace("connect_timeout: 10", "connect_timeout: 1"))  # the test's patience
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        with pytest.raises(InstanceError) as err:
            prepare_instance()
        assert "the Dagster instance cannot be opened" in err.value.message and "timeout expired" in err.value.message
    finally:
        listener.close()
