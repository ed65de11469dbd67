"""``cryptorun schedule run``: what it says about where its steps run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cryptorun_pipelines.cli import instance as cli_instance
from cryptorun_pipelines.cli.main import main
from tests.pipeline_support import small_config_dict, write_config


@pytest.mark.parametrize("executor", ["celery", "multiprocess"])
def test_a_run_under_another_executor_says_its_steps_run_in_this_process(tmp_path: Path, monkeypatch, capsys, executor):
    # `schedule run` executes in the CLI process whatever executor.type says: a user who chose
    # Celery must not take a passing run for a working Celery deployment
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv(cli_instance.PROFILE_ENV, "")
    for name in ("CRYPTORUN_CONFIG", "CRYPTORUN_ARTIFACTS_DIR", "CRYPTORUN_MARKET_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    raw = small_config_dict(tmp_path / "artifacts")
    raw["executor"]["type"] = executor
    config = write_config(tmp_path / "config" / "scheduler.yaml", raw)
    code = main(["--config", str(config), "--no-color", "schedule", "run", "scan.hot", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0, out
    line = f"executor.type {executor}: for launched runs; this one runs in this process"
    assert line in out and len(line) <= 80


def test_a_failed_run_does_not_claim_the_missing_regime_window_was_written(tmp_path: Path, monkeypatch, capsys):
    # the window is computed inside the scan's run: a run that fails first has written nothing
    from cryptorun_pipelines.cli.commands import schedule_run

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv(cli_instance.PROFILE_ENV, "")
    for name in ("CRYPTORUN_CONFIG", "CRYPTORUN_ARTIFACTS_DIR", "CRYPTORUN_MARKET_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    config = write_config(tmp_path / "config" / "scheduler.yaml", small_config_dict(tmp_path / "artifacts"))
    monkeypatch.setattr(schedule_run, "execute", lambda ctx, defs, job, key, **kw: schedule_run.RunOutcome(
        job.name, key, "run-1", False, 0.1, False, error="the database went away"))
    code = main(["--config", str(config), "--no-color", "schedule", "run", "scan.hot", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code != 0 and payload["success"] is False
    assert payload["upstream"] and not any(up["written"] for up in payload["upstream"])
    assert not (tmp_path / "artifacts").exists() or not any((tmp_path / "artifacts").rglob("regime.json"))


class StorageDown(Exception):
    """What the instance raises once its database is gone (dagster-postgres: too many retries)."""


def test_a_run_that_loses_its_instance_mid_step_names_the_cause_and_the_step(tmp_path: Path, monkeypatch, capsys):
    # the step's own failure event cannot be stored either, so the run has no step failure: it said
    # "the run failed before any step ran", after a step had started, and never named the database
    import dagster as dg

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv(cli_instance.PROFILE_ENV, "")
    for name in ("CRYPTORUN_CONFIG", "CRYPTORUN_ARTIFACTS_DIR", "CRYPTORUN_MARKET_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    config = write_config(tmp_path / "config" / "scheduler.yaml", small_config_dict(tmp_path / "artifacts"))
    store = dg.DagsterInstance.handle_new_event

    def database_gone_after_the_step_started(self, event, **kwargs):
        if event.dagster_event is not None and event.dagster_event.event_type_value in ("STEP_OUTPUT", "STEP_FAILURE"):
            raise StorageDown("too many retries for DB connection")
        return store(self, event, **kwargs)

    monkeypatch.setattr(dg.DagsterInstance, "handle_new_event", database_gone_after_the_step_started)
    code = main(["--config", str(config), "--no-color", "schedule", "run", "regime.refresh"])
    err = capsys.readouterr().err
    assert code == 1
    assert "failed at step regime_window: " in err and "StorageDown: too many retries for DB connection" in err, err
    assert "before any step ran" not in err
