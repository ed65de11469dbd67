"""``cryptorun schedule status``: state words that are true (a schedule that is on ticks only with the daemon)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from cryptorun_pipelines.cli import instance as cli_instance
from cryptorun_pipelines.cli.commands.schedule_status import render_status
from cryptorun_pipelines.cli.main import main
from cryptorun_pipelines.cli.render import Style


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(path))
    monkeypatch.setenv(cli_instance.PROFILE_ENV, "")
    monkeypatch.setenv("CRYPTORUN_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setenv("CRYPTORUN_MARKET_SOURCE", "simulated")
    monkeypatch.delenv("CRYPTORUN_CONFIG", raising=False)
    return path


def status(capsys: pytest.CaptureFixture) -> dict:
    assert main(["schedule", "status", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def heartbeat(home: Path) -> None:
    from dagster._daemon.types import DaemonHeartbeat

    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_daemon_heartbeat(DaemonHeartbeat(time.time(), "SCHEDULER", "test-daemon", []))


def test_a_schedule_that_is_on_does_not_tick_while_the_daemon_is_stopped(home: Path, capsys) -> None:
    payload = status(capsys)
    assert payload["daemon"]["running"] is False
    for job in payload["jobs"]:  # on by default (enabled jobs), but nothing ticks them
        assert job["schedule_state"] == "running"
        assert job["status"] == "enabled · on, daemon stopped" and job["ticking"] is False
    lines = render_status(payload["jobs"], Style(colour=False))
    assert lines[0].startswith("scan.hot        enabled · on, daemon stopped")
    assert not any("· running" in line for line in lines)
    assert lines[0].endswith("no tick due") and not any("next tick" in line for line in lines)  # nothing will tick


def test_with_the_daemon_running_the_schedules_tick(home: Path, capsys) -> None:
    status(capsys)  # initialises the instance
    heartbeat(home)
    payload = status(capsys)
    assert payload["daemon"]["running"] is True
    assert {j["status"] for j in payload["jobs"]} == {"enabled · running"}
    assert all(j["ticking"] for j in payload["jobs"])


def test_a_failed_last_run_says_why(home: Path, capsys) -> None:
    status(capsys)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.create_run_for_job(dg.GraphDefinition(name="regime_refresh").to_job(), tags={})
        instance.report_run_failed(run, "Run worker process 4242 on somewhere is gone (killed or crashed); marked "
                                        "failed by `cryptorun schedule status`.")
    payload = status(capsys)
    regime = next(j for j in payload["jobs"] if j["name"] == "regime.refresh")
    assert regime["last_run"]["status"] == "FAILURE"
    assert regime["last_run"]["failure"].startswith("Run worker process 4242 on somewhere is gone")
    lines = render_status([regime], Style(colour=False))
    assert all(len(line) <= 80 for line in lines)
    text = " ".join(" ".join(lines).split())
    assert "failed Run worker process 4242 on somewhere is gone (killed or crashed); marked failed by" in text


def test_a_run_that_failed_before_its_steps_shows_its_error(home: Path, capsys) -> None:
    # Dagster's RUN_FAILURE message of such a run is only "An exception was thrown during execution."
    from dagster._core.events import JobFailureData
    from dagster._utils.error import serializable_error_info_from_exc_info

    from cryptorun_pipelines.executors import CeleryWorkersUnavailable

    status(capsys)
    try:
        raise CeleryWorkersUnavailable("no Celery worker consumes queue 'dagster' on the broker redis://redis:6379/0")
    except CeleryWorkersUnavailable:
        error = serializable_error_info_from_exc_info(sys.exc_info())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.create_run_for_job(dg.GraphDefinition(name="scan_hot").to_job(), tags={})
        instance.report_run_failed(run, 'Execution of run for "scan_hot" failed. An exception was thrown during execution.',
                                   JobFailureData(error=error))
    hot = next(j for j in status(capsys)["jobs"] if j["name"] == "scan.hot")
    assert hot["last_run"]["failure"] == ("cryptorun_pipelines.executors.CeleryWorkersUnavailable: no Celery worker "
                                          "consumes queue 'dagster' on the broker redis://redis:6379/0")


def test_a_backfill_run_shows_its_range(home: Path, capsys) -> None:
    status(capsys)
    tags = {"dagster/asset_partition_range_start": "2026-11-15-00:00", "dagster/asset_partition_range_end": "2026-11-19-20:00"}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.create_run_for_job(dg.GraphDefinition(name="regime_refresh").to_job(), tags=tags)
        instance.report_run_failed(run, "stopped")
    regime = next(j for j in status(capsys)["jobs"] if j["name"] == "regime.refresh")
    assert regime["last_run"]["partition"] == "2026-11-15-00:00…2026-11-19-20:00"


def test_a_regime_window_a_scan_computed_is_shown_under_regime_refresh(home: Path, capsys) -> None:
    """A fresh install's first hot scan writes its regime window itself: `status` must not leave
    regime.refresh at "last run none yet" as if nothing had ever been written."""
    assert main(["schedule", "run", "scan.hot", "--partition", "2026-11-20-11:45", "--json"]) == 0
    capsys.readouterr()
    payload = status(capsys)
    regime = next(j for j in payload["jobs"] if j["name"] == "regime.refresh")
    assert regime["last_run"] is None
    made = regime["written_on_demand"]
    assert made["partition"] == "2026-11-20-08:00" and made["job"] == "scan_hot"
    lines = render_status([regime], Style(colour=False))
    assert any(line.startswith("  written    partition 2026-11-20-08:00 by scan_hot run") for line in lines), lines
    assert all(j["written_on_demand"] is None for j in payload["jobs"] if j["name"] != "regime.refresh")
