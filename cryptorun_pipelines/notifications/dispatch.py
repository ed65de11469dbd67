"""Deliver what the ledger holds, within one sensor tick's time budget.

Each due delivery gets one attempt per tick; a failure is recorded with its next attempt time
(backoff, or the service's ``Retry-After``) and the tick moves on — no tick ever sleeps. A target
that failed once in a tick gets no further attempts in that tick (an unreachable endpoint costs
one timeout per tick, not one per entry), and no attempt starts unless a whole timeout still fits
in the budget: a tick never runs much longer than ``tick_budget_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptorun_core.config import NotificationsConfig
from cryptorun_pipelines.notifications.delivery import (
    Outcome,
    now_iso,
    post_json,
    retry_delay,
)
from cryptorun_pipelines.notifications.ledger import (
    FAILED,
    PENDING,
    SENT,
    Delivery,
    Ledger,
)
from cryptorun_pipelines.notifications.targets import Target

Post = Callable[..., Outcome]


@dataclass
class Dispatched:
    sent: dict[str, int] = field(default_factory=dict)
    retrying: list[str] = field(default_factory=list)  # one line per failed attempt that will be retried
    given_up: list[str] = field(default_factory=list)
    deferred: int = 0  # due but not attempted this tick (budget, or its target failed this tick)

    @property
    def failures(self) -> list[str]:
        return self.retrying + self.given_up


def dispatch(
    ledger: Ledger,
    targets: list[Target],
    config: NotificationsConfig,
    *,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    post: Post = post_json,
) -> Dispatched:
    out = Dispatched()
    by_name = {t.name: t for t in targets}
    started = monotonic()
    failed_this_tick: set[str] = set()
    for delivery in ledger.due(list(by_name), clock()):
        target = by_name[delivery.target]
        if delivery.target in failed_this_tick or monotonic() - started + config.timeout_s > config.tick_budget_s:
            out.deferred += 1
            continue
        outcome = post(target, target.body(delivery.entry), timeout_s=config.timeout_s, headers=target.headers(delivery.entry))
        now = clock()
        if outcome.ok:
            ledger.record(delivery, status=SENT, now=now)
            out.sent[target.name] = out.sent.get(target.name, 0) + 1
            continue
        failed_this_tick.add(target.name)
        _failed(ledger, delivery, outcome, config, now, out)
    return out


def _failed(ledger: Ledger, delivery: Delivery, outcome: Outcome, config: NotificationsConfig, now: float, out: Dispatched) -> None:
    attempt = delivery.attempts + 1
    what = f"{delivery.target}: {delivery.entry.symbol} ({delivery.entry.job} {delivery.entry.partition}) attempt {attempt}: {outcome.detail}"
    if outcome.retryable and attempt < config.retry.max_attempts:
        at = now + retry_delay(attempt, outcome, config.retry)
        ledger.record(delivery, status=PENDING, now=now, next_attempt_at=at, error=outcome.detail)
        out.retrying.append(f"{what}; next attempt at {now_iso(at)}")
    else:
        ledger.record(delivery, status=FAILED, now=now, error=outcome.detail)
        why = "not retryable" if not outcome.retryable else f"{attempt} attempts"
        out.given_up.append(f"{what}; given up ({why})")
