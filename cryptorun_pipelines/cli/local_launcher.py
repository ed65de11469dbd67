"""The run launcher of the local profile: Dagster's default one, plus a worker health check.

``run_monitoring`` only fails a run whose worker died when the instance's run launcher can check
worker health; ``DefaultRunLauncher`` cannot, so a killed run stayed STARTED. This launcher
launches exactly as the default one does (a subprocess of the code server) and answers the health
check from :mod:`cryptorun_pipelines.cli.run_health`: the monitoring daemon then marks a run
failed within ``run_monitoring.poll_interval_seconds`` of its worker's death, whether the run was
launched (UI, schedule, backfill) or executed by ``cryptorun schedule run``.
"""

from __future__ import annotations

from dagster import DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus


class LocalRunLauncher(DefaultRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        from cryptorun_pipelines.cli.run_health import check_run

        record = self._instance.get_run_record_by_id(run.run_id)
        if record is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "the run is not in the instance")
        health = check_run(self._instance, record)
        # only a worker known to be gone fails the run: the monitor fails every status but RUNNING
        status = WorkerStatus.FAILED if health.alive is False else WorkerStatus.RUNNING
        return CheckRunHealthResult(status, health.reason)
