"""The sensor that announces new scan entries: ``scan_entry_notifications``.

Each tick (every ``notifications.sensor_interval_s``) it reads the RUN_SUCCESS events recorded
since its cursor (the storage id of the last one it looked at), queues the entries of every
announced scan run in the ledger, then delivers what is due within ``tick_budget_s``. It runs in
the daemon, apart from the runs: a scan never waits for a webhook, and a delivery failure never
fails a scan. The tick's outcome (sent / retrying / given up / not announced, secrets redacted)
is its skip message and its log lines, in the sensor's tick history in the UI.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping

import dagster as dg

from cryptorun_core.config import AppConfig
from cryptorun_pipelines.notifications.announce import queue_run, scan_jobs
from cryptorun_pipelines.notifications.delivery import post_json
from cryptorun_pipelines.notifications.dispatch import Post, dispatch
from cryptorun_pipelines.notifications.ledger import Ledger, ledger_path
from cryptorun_pipelines.notifications.targets import redact, resolve_targets
from cryptorun_pipelines.partitions import Cadences

SENSOR_NAME = "scan_entry_notifications"
#: RUN_SUCCESS events read per tick (the next tick continues where this one stopped)
EVENTS_PER_TICK = 100


def _latest_success_id(instance: dg.DagsterInstance) -> int:
    records = instance.fetch_run_status_changes(dg.DagsterEventType.RUN_SUCCESS, limit=1).records
    return records[0].storage_id if records else -1


def evaluate(
    instance: dg.DagsterInstance,
    cursor: str | None,
    config: AppConfig,
    cadences: Cadences,
    log: logging.Logger,
    *,
    environ: Mapping[str, str] = os.environ,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    post: Post = post_json,
) -> tuple[str, str]:
    """One tick: (the new cursor, the tick's one-paragraph summary)."""
    n = config.notifications
    targets, problems = resolve_targets(n, environ)
    secrets = [s for t in targets for s in t.secrets]

    def note(level: int, text: str) -> str:
        text = redact(text, secrets)
        log.log(level, text)
        return text

    for problem in problems:
        note(logging.WARNING, problem)
    if cursor is None or not cursor.lstrip("-").isdigit():
        # first tick (or a cursor set by hand to something else): announce what finishes from now on,
        # not the instance's history
        latest = _latest_success_id(instance)
        return str(latest), note(logging.INFO, "started: announcing the entries of scans that succeed from now on")
    last = int(cursor)
    ledger = Ledger(ledger_path(config.global_.artifacts_dir))
    jobs = scan_jobs(cadences)
    records = instance.fetch_run_status_changes(
        dg.RunStatusChangeRecordsFilter(event_type=dg.DagsterEventType.RUN_SUCCESS, after_storage_id=last),
        limit=EVENTS_PER_TICK, ascending=True,
    ).records
    summary: list[str] = []
    for record in records:
        last = max(last, record.storage_id)
        run = instance.get_run_by_id(record.event_log_entry.run_id)
        scan = jobs.get(run.job_name) if run is not None else None
        if scan is None:
            continue
        if not targets:
            summary.append(note(logging.INFO, f"run {run.run_id[:8]} ({scan.job.name}): no notification target is active"))
            continue
        result = queue_run(run, scan, config, ledger, [t.name for t in targets], clock())
        for text in result.notes:
            summary.append(note(logging.INFO, text))
        if not result.notes or result.entries:
            summary.append(note(logging.INFO, f"run {run.run_id[:8]} ({scan.job.name}): {result.entries} entr"
                                f"{'y' if result.entries == 1 else 'ies'}, {result.new} new deliver{'y' if result.new == 1 else 'ies'} queued"))
    if targets:
        done = dispatch(ledger, targets, n, clock=clock, monotonic=monotonic, post=post)
        for line in done.retrying:
            summary.append(note(logging.WARNING, f"delivery failed, will retry — {line}"))
        for line in done.given_up:
            summary.append(note(logging.ERROR, f"delivery failed — {line}"))
        if done.sent:
            summary.append(note(logging.INFO, "sent " + ", ".join(f"{k} {v}" for k, v in sorted(done.sent.items()))))
        if done.deferred:
            summary.append(note(logging.INFO, f"{done.deferred} due deliver{'y' if done.deferred == 1 else 'ies'} left for the next tick"))
    if not summary:
        summary.append("no new scan run" + ("" if targets else "; no notification target is active"))
    return str(last), redact("; ".join(problems + summary), secrets)


def build_notification_sensor(config: AppConfig, cadences: Cadences, *, dry_run: bool = False) -> dg.SensorDefinition:
    """The sensor of ``config``'s scan jobs (RUNNING by default; without an active target it only
    moves its cursor). Definitions built with ``dry_run`` write no artifacts: it announces nothing."""
    n = config.notifications

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=n.sensor_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Sends one message per new entry of a successful scan run (generic webhook, Slack, Discord, "
        "Telegram; docs/notifications.md). Never part of a run: a failed delivery is retried on later ticks.",
    )
    def scan_entry_notifications(context: dg.SensorEvaluationContext):
        if dry_run:
            return dg.SkipReason("this code location is a dry run (it writes no artifacts): nothing is announced")
        cursor, summary = evaluate(context.instance, context.cursor, config, cadences, context.log)
        return dg.SensorResult(skip_reason=dg.SkipReason(summary), cursor=cursor)

    return scan_entry_notifications
