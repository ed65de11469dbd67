"""DAGSTER_HOME: initialised once under a lock, problems reported in one line with exit 2."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli_helpers import CliEnv, make_env  # noqa: E402

from cryptorun_pipelines.cli import instance, instance_setup  # noqa: E402
from cryptorun_pipelines.cli.main import main  # noqa: E402

DATABASES = instance_setup.SQLITE_DATABASES


def heads(db: Path) -> list[str]:
    with sqlite3.connect(db) as con:
        return [r[0] for r in con.execute("SELECT version_num FROM alembic_version")]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME path (not created) for in-process calls; the environment is restored after."""
    path = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(path))
    monkeypatch.setenv(instance.PROFILE_ENV, "")
    monkeypatch.setenv("CRYPTORUN_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setenv("CRYPTORUN_MARKET_SOURCE", "simulated")
    monkeypatch.delenv("CRYPTORUN_CONFIG", raising=False)
    return path


def status_in_process(capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(["schedule", "status", "--json"])
    err = capsys.readouterr().err
    return code, err


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {text!r}"
    return lines[0]


# -- initialised once, under a lock ---------------------------------------------------------------


def test_dagster_home_default_is_created_with_the_local_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv(instance.PROFILE_ENV, "")
    monkeypatch.setattr(instance, "default_dagster_home", lambda: tmp_path / ".dagster_home")
    home = instance.use_dagster_home()
    assert home == (tmp_path / ".dagster_home").resolve()
    assert (home / "dagster.yaml").read_bytes() == instance.profile_file("local").read_bytes()
    assert os.environ["DAGSTER_HOME"] == str(home)  # exported for the children
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "elsewhere"))
    assert instance.dagster_home() == (tmp_path / "elsewhere").resolve()


@pytest.mark.e2e
@pytest.mark.timeout(1800)
def test_eight_concurrent_first_uses_leave_a_working_instance_ten_times_over(tmp_path: Path) -> None:
    """Today two of them race creating the SQLite schema: alembic_version gets two heads and every
    later command fails with "more than one head present"."""
    for attempt in range(10):
        env = make_env(tmp_path / f"attempt{attempt}")
        shutil.rmtree(env.home)  # first use of a home that does not exist yet
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: env.run("schedule", "status", "--json"), range(8)))
        failed = [r.stderr for r in results if r.returncode != 0]
        assert not failed, f"attempt {attempt}: {failed}"
        for rel in DATABASES:
            assert len(heads(env.home / rel)) == 1, f"attempt {attempt}: {rel} has {heads(env.home / rel)}"
        after = env.run("schedule", "status", "--json")
        assert after.returncode == 0, f"attempt {attempt}: {after.stderr}"


def test_first_use_installs_the_profile_and_later_uses_skip_the_work(
    home: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, err = status_in_process(capsys)
    assert code == 0, err
    assert (home / "dagster.yaml").read_bytes() == instance.profile_file("local").read_bytes()
    for rel in DATABASES:
        assert heads(home / rel) == [instance_setup._alembic_head()]
    marker = instance_setup._read_marker(home)
    assert marker["profile"] == "local" and sorted(marker["sqlite_databases"]) == sorted(DATABASES)

    # initialised: the next command neither takes the lock nor opens the storages to set them up
    import dagster

    def no_lock(*_a, **_k):
        raise AssertionError("took the initialisation lock")

    monkeypatch.setattr(instance_setup, "_locked", no_lock)
    monkeypatch.setattr(dagster.DagsterInstance, "from_config", no_lock)
    setup = instance.prepare_instance()
    assert (setup.installed, setup.initialised, setup.notice) == (False, False, None)


def test_duplicate_alembic_heads_left_by_an_earlier_race_are_repaired(
    home: Path, capsys: pytest.CaptureFixture
) -> None:
    instance.prepare_instance()
    db = home / "history" / "runs.db"
    with sqlite3.connect(db) as con:  # what the race leaves: the head and the last pre-2.0 stamp
        con.execute("INSERT INTO alembic_version VALUES ('5771160a95ad')")
    assert len(heads(db)) == 2
    code, err = status_in_process(capsys)
    assert code == 0, err
    assert heads(db) == [instance_setup._alembic_head()]


def test_a_schema_from_an_older_dagster_is_upgraded_under_the_lock(home: Path) -> None:
    instance.prepare_instance()
    marker = instance_setup._read_marker(home)
    marker["dagster_version"] = "1.12.0"  # as if an older Dagster had initialised it
    (home / instance_setup.MARKER_FILE).write_text(__import__("json").dumps(marker))
    with sqlite3.connect(home / "history" / "runs.db") as con:
        con.execute("UPDATE alembic_version SET version_num = '5771160a95ad'")
    setup = instance.prepare_instance()
    assert setup.initialised and setup.upgraded
    assert heads(home / "history" / "runs.db") == [instance_setup._alembic_head()]
    assert instance_setup._read_marker(home)["dagster_version"] != "1.12.0"


# -- DAGSTER_HOME problems: exit 2, one line naming DAGSTER_HOME and what is wrong ---------------------


def test_dagster_home_that_is_a_file(home: Path, capsys: pytest.CaptureFixture) -> None:
    home.parent.mkdir(parents=True, exist_ok=True)
    home.write_text("not a folder")
    code, err = status_in_process(capsys)
    assert code == 2
    assert one_line(err) == f"cryptorun: error: DAGSTER_HOME {home} is a file, not a folder"


def test_dagster_home_that_cannot_be_created(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    target = tmp_path / "blocker" / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(target))
    monkeypatch.setenv(instance.PROFILE_ENV, "")
    code, err = status_in_process(capsys)
    assert code == 2
    line = one_line(err)
    assert f"DAGSTER_HOME {target} cannot be created" in line and "Not a directory" in line


@pytest.mark.parametrize("rel", ["history/runs.db", "history/runs/index.db", "schedules/schedules.db"])
def test_corrupt_database(home: Path, capsys: pytest.CaptureFixture, rel: str) -> None:
    instance.prepare_instance()
    (home / rel).write_bytes(b"this is not a SQLite database" * 200)
    for f in (home / rel).parent.glob((home / rel).name + "-*"):  # its WAL files
        f.unlink()
    code, err = status_in_process(capsys)
    assert code == 2
    line = one_line(err)
    assert line.startswith(f"cryptorun: error: DAGSTER_HOME {home}: {rel} is not a usable SQLite database")
    assert "file is not a database" in line


def test_corrupt_database_of_a_home_never_initialised_by_cryptorun(home: Path, capsys: pytest.CaptureFixture) -> None:
    (home / "history").mkdir(parents=True)
    (home / "history" / "runs.db").write_bytes(b"\x00garbage" * 500)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    code, err = status_in_process(capsys)
    assert code == 2
    assert f"DAGSTER_HOME {home}: history/runs.db is not a usable SQLite database" in one_line(err)


def test_invalid_dagster_yaml(home: Path, capsys: pytest.CaptureFixture) -> None:
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("run_monitoring:\n  enabled: maybe-not\n")
    code, err = status_in_process(capsys)
    assert code == 2
    line = one_line(err)
    assert line.startswith(f"cryptorun: error: DAGSTER_HOME {home}: dagster.yaml is invalid")


def _without_dac_override(argv: list[str]) -> list[str]:
    """root ignores file modes: drop the capabilities that let it, so a read-only folder is read-only."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to test a read-only DAGSTER_HOME as root"
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", *argv]


def _run_restricted(env: CliEnv, *args: str) -> subprocess.CompletedProcess:
    from _cli_helpers import cryptorun_executable

    return subprocess.run(_without_dac_override([cryptorun_executable(), *args]), env=env.env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.e2e
def test_read_only_fresh_dagster_home(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    env.home.chmod(0o555)
    try:
        res = _run_restricted(env, "schedule", "status")
    finally:
        env.home.chmod(0o755)
    assert res.returncode == 2, res.stdout + res.stderr
    line = one_line(res.stderr)
    assert f"DAGSTER_HOME {env.home} is not writable" in line and "Permission denied" in line
    assert not (env.home / "dagster.yaml").exists()


@pytest.mark.e2e
def test_unwritable_initialised_dagster_home(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    assert env.run("schedule", "status").returncode == 0
    modes = {}
    for p in [env.home, *env.home.rglob("*")]:
        modes[p] = p.stat().st_mode
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        res = _run_restricted(env, "schedule", "status")
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"DAGSTER_HOME {env.home} is not writable" in one_line(res.stderr)


# -- profiles: installed into a fresh home, never over an existing dagster.yaml -----------------------


def test_an_existing_dagster_yaml_is_used_as_it_is_and_said_so(home: Path) -> None:
    home.mkdir(parents=True)
    own = "# my own instance\ntelemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(own)
    setup = instance.prepare_instance()
    assert (home / "dagster.yaml").read_text() == own  # never overwritten
    assert setup.notice == (f"DAGSTER_HOME {home}/dagster.yaml differs from profile 'local' "
                            f"({instance.profile_file('local')}): using it as it is")


def test_an_explicit_profile_that_differs_from_the_existing_dagster_yaml_is_refused(
    home: Path, capsys: pytest.CaptureFixture
) -> None:
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    code = main(["schedule", "status", "--profile", "local"])
    line = one_line(capsys.readouterr().err)
    assert code == 2
    assert line.startswith(f"cryptorun: error: DAGSTER_HOME {home} already has a dagster.yaml that differs from "
                           "profile 'local'")
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
    # the same profile as installed is fine
    (home / "dagster.yaml").write_bytes(instance.profile_file("local").read_bytes())
    assert main(["schedule", "status", "--json", "--profile", "local"]) == 0


def test_an_unknown_profile_is_a_usage_error(home: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["schedule", "status", "--profile", "staging"])
    line = one_line(capsys.readouterr().err)
    assert code == 2 and "unknown profile 'staging'" in line and "local" in line
    assert not home.exists()  # nothing created
