"""``cryptorun notify test``: send a sample entry to every active target and report each one.

Nothing is written to the ledger (the sample is not an entry of any scan). Exit 0 when every
active target accepted the sample, 1 when one did not, 2 when no target is active or one is
enabled without its environment variables.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from cryptorun_pipelines.cli.context import Context
from cryptorun_pipelines.cli.errors import EXIT_JOB_FAILED, EXIT_OK, EXIT_USAGE
from cryptorun_pipelines.notifications.delivery import Outcome, post_json, retry_delay
from cryptorun_pipelines.notifications.message import sample_entry
from cryptorun_pipelines.notifications.targets import Target, redact, resolve_targets


def send_sample(target: Target, ctx: Context, attempts: int, sleep: Callable[[float], None] = time.sleep) -> tuple[Outcome, int]:
    """Up to ``attempts`` tries, waiting between them as the sensor would (backoff / Retry-After)."""
    n = ctx.config.notifications
    entry = sample_entry(n.ui_base_url)
    outcome = Outcome(False, "not attempted")
    for attempt in range(1, attempts + 1):
        outcome = post_json(target, target.body(entry), timeout_s=n.timeout_s, headers=target.headers(entry))
        if outcome.ok or not outcome.retryable or attempt == attempts:
            return outcome, attempt
        sleep(retry_delay(attempt, outcome, n.retry))
    return outcome, attempts


def run_notify_test(ctx: Context, *, attempts: int) -> int:
    targets, problems = resolve_targets(ctx.config.notifications, os.environ)
    secrets = [s for t in targets for s in t.secrets]
    results = []
    for problem in problems:
        results.append({"target": problem.split(" ", 1)[0].rstrip(":"), "ok": False, "detail": problem, "attempts": 0})
    for target in targets:
        outcome, tries = send_sample(target, ctx, attempts)
        results.append({"target": target.name, "ok": outcome.ok, "detail": outcome.detail, "attempts": tries})
    results = [{**r, "detail": redact(r["detail"], secrets)} for r in results]
    if ctx.json:
        ctx.emit_json({"targets": results, "ok": bool(results) and all(r["ok"] for r in results)})
    elif not results:
        ctx.print("no notification target is active: enable one under notifications.targets in the config, "
                  "or set $" + ctx.config.notifications.targets.webhook.url_env + " (docs/notifications.md)")
    else:
        for r in results:
            word = "sent" if r["ok"] else "FAILED"
            tries = f" after {r['attempts']} attempts" if r["attempts"] > 1 else ""
            ctx.print(f"{r['target']:<9} {word}{tries}: {r['detail']}")
    if not results or problems:
        return EXIT_USAGE
    return EXIT_OK if all(r["ok"] for r in results) else EXIT_JOB_FAILED
