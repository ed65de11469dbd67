"""The notification sensor in-process, on a real SQLite instance, against a loopback server: one
delivery per entry and target, none again after a rerun or a restart, silence for backfills and
dry runs, retries on later ticks with backoff or Retry-After, a bounded tick, no secret in a log."""

from __future__ import annotations

import csv
import logging

import dagster as dg
import pytest

from cryptorun_core.config import changed
from cryptorun_pipelines.notifications.delivery import Outcome
from cryptorun_pipelines.notifications.ledger import (
    FAILED,
    PENDING,
    SENT,
    Ledger,
    ledger_path,
)
from cryptorun_pipelines.notifications.sensor import SENSOR_NAME, evaluate
from cryptorun_pipelines.partitions import build_cadences
from cryptorun_pipelines.run_tags import BACKFILL_TAG, DRY_RUN_TAG
from tests.pipeline_support import make_pipeline
from tests.pipelines.notifications.loopback import Reply, refused_url

KEY = "2026-11-20-11:45"  # T 12:00
FOLDER = "2026-11-20T12-00-00Z"
OTHER_KEY = "2026-11-20-12:00"
HOOK = "/hook/T0/B0/sekret-hook-token"
LOG = logging.getLogger("test.notifications")


def _gates_open(raw: dict) -> None:
    """Gates lowered so that the simulated market's hot cycle has entries."""
    for tier in raw["universe"]["tiers"]:
        tier["vadr_min"] = 0.1
    for job in raw["jobs"]:
        if job["name"] in ("scan.hot", "scan.warm"):
            job["config"].update(score_min=0, vadr_use_percentile=False)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One instance and artifacts folder for the module (the first run computes the regime window
    the others reuse); each test starts its sensor at the newest run and with an empty ledger."""
    root = tmp_path_factory.mktemp("notify_sensor")
    (root / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "home")) as instance:
        yield make_pipeline(root, _gates_open, instance=instance)


@pytest.fixture
def env(shared):
    ledger_path(shared.artifacts).unlink(missing_ok=True)
    instance = shared.instance
    yield shared
    shared.instance = instance


class Sensor:
    """Ticks of the sensor of ``pipe`` with an injected clock and environment."""

    def __init__(self, pipe, environ: dict[str, str], config=None):
        self.pipe, self.environ = pipe, environ
        self.config = config or pipe.config
        self.cadences = build_cadences(self.config)
        self.cursor: str | None = None
        self.now = 1_800_000_000.0
        self.summaries: list[str] = []

    def tick(self, **kwargs) -> str:
        kwargs.setdefault("clock", lambda: self.now)
        self.cursor, summary = evaluate(self.pipe.instance, self.cursor, self.config, self.cadences, LOG,
                                        environ=self.environ, **kwargs)
        self.summaries.append(summary)
        return summary

    def started(self) -> Sensor:
        self.tick()
        return self


def _entries(pipe, folder: str = FOLDER) -> list[str]:
    with open(pipe.artifacts / folder / "signals.csv", newline="") as fh:
        return [row["symbol"] for row in csv.DictReader(fh)]


def _run(pipe, key: str = KEY, **kwargs) -> None:
    result = pipe.run("scan_hot", key, **kwargs)
    assert result.success


def _with_notifications(pipe, **changes):
    return pipe.config.model_copy(update={"notifications": changed(pipe.config.notifications, **changes)})


def test_each_entry_is_sent_once_per_target_and_a_rerun_sends_nothing_more(env, server):
    sensor = Sensor(env, {"CRYPTORUN_WEBHOOK_URL": server.url("/generic"), "CRYPTORUN_SLACK_WEBHOOK_URL": server.url("/slack")},
                    config=_with_notifications(env, targets={"slack": {"enabled": True}})).started()
    _run(env)
    symbols = _entries(env)
    assert symbols, "the lowered gates give the cycle entries"
    summary = sensor.tick()
    assert f"{len(symbols)} entries, {2 * len(symbols)} new deliveries queued" in summary
    assert sorted(r.json["symbol"] for r in server.to("/generic")) == sorted(symbols)
    assert len(server.to("/slack")) == len(symbols)
    (run_id,) = {r.json["run_id"] for r in server.to("/generic")}
    assert {r.json["run_url"] for r in server.to("/generic")} == {f"http://127.0.0.1:3000/runs/{run_id}"}

    _run(env)  # a rerun of the same partition: the same entries, a new run
    assert "0 new deliveries queued" in sensor.tick()
    sensor.tick()
    assert len(server.requests) == 2 * len(symbols)
    assert {r["status"] for r in Ledger(ledger_path(env.artifacts)).rows()} == {SENT}


def test_a_warm_scan_is_announced_as_scan_warm(env, server):
    sensor = Sensor(env, {"CRYPTORUN_WEBHOOK_URL": server.url("/generic")}).started()
    assert env.run("scan_warm", "2026-11-20-10:00").success  # T 12:00
    sensor.tick()
    with open(env.artifacts / FOLDER / "warm_signals.csv", newline="") as fh:
        symbols = sorted(row["symbol"] for row in csv.DictReader(fh))
    bodies = [r.json for r in server.requests]
    assert symbols and sorted(b["symbol"] for b in bodies) == symbols
    assert {(b["job"], b["partition"], b["as_of"]) for b in bodies} == {("scan.warm", "2026-11-20-10:00", "2026-11-20T12:00:00Z")}
    assert all("premove" not in b["badges"] for b in bodies)


def test_a_daemon_restart_or_a_reset_cursor_resends_nothing(env, server):
    sensor = Sensor(env, {"CRYPTORUN_WEBHOOK_URL": server.url("/generic")}).started()
    before_the_run = sensor.cursor
    _run(env)
    sensor.tick()
    sent = len(server.requests)
    assert sent == len(_entries(env))
    # restart: a new instance object on the same DAGSTER_HOME, the stored cursor, the same ledger
    restarted = Sensor(env, sensor.environ)
    env.instance = dg.DagsterInstance.from_ref(env.instance.get_ref())
    restarted.cursor = sensor.cursor
    restarted.tick()
    # a cursor moved back before the run (set by hand, or an older copy of the instance restored):
    # the run's success is read again, its entries are in the ledger
    restarted.cursor = before_the_run
    assert "0 new deliveries queued" in restarted.tick()
    assert len(server.requests) == sent


def test_a_first_tick_announces_nothing_that_succeeded_before_it(env, server):
    _run(env)
    sensor = Sensor(env, {"CRYPTORUN_WEBHOOK_URL": server.url("/generic")})
    assert "started" in sensor.tick()
    sensor.tick()
    assert server.requests == []
    sensor.cursor = "not-a-storage-id"  # a cursor set by hand: started again from the newest run
    assert "started" in sensor.tick()
    sensor.tick()
    assert server.requests == []


def test_backfills_and_dry_runs_send_nothing(env, server):
    sensor = Sensor(env, {"CRYPTORUN_WEBHOOK_URL": server.url("/generic")}).started()
    _run(env, tags={BACKFILL_TAG: "bfabc"})
    _run(env, OTHER_KEY, tags={DRY_RUN_TAG: "true"})
    _run(env, OTHER_KEY, run_config={"resources": {"io_manager": {"config": {"dry_run": True}}}})
    summary = sensor.tick()
    assert server.requests == []
    assert "not announced: part of backfill bfabc (notifications.backfills is false)" in summary
    assert summary.count("not announced: a dry run") == 2


def test_backfills_are_announced_when_the_config_asks(env, server):
    config = _with_notifications(env, backfills=True)
    sensor = Sensor(env, {"CRYPTORUN_WEBHOOK_URL": server.url("/generic")}, config=config).started()
    _run(env, tags={BACKFILL_TAG: "bfabc"})
    sensor.tick()
    assert len(server.requests) == len(_entries(env))


def test_a_failed_delivery_is_retried_on_a_later_tick_after_the_backoff(env, server):
    server.script("/generic", Reply(500, body=b"boom"), Reply(200))
    sensor = Sensor(env, {"CRYPTORUN_WEBHOOK_URL": server.url("/generic")}).started()
    _run(env)
    n = len(_entries(env))
    summary = sensor.tick()
    # one attempt: the target failed, so the rest of its deliveries wait for a later tick
    assert len(server.requests) == 1
    assert "delivery failed, will retry" in summary and "attempt 1: HTTP 500: boom" in summary
    assert n > 1 and f"{n - 1} due deliver" in summary
    sensor.now += 29  # backoff_base_s is 30: the failed one is not due yet, the others are
    sensor.tick()
    assert len(server.requests) == n
    sensor.now += 1
    sensor.tick()
    assert len(server.requests) == n + 1
    rows = Ledger(ledger_path(env.artifacts)).rows()
    assert {r["status"] for r in rows} == {SENT}
    assert max(r["attempts"] for r in rows) == 2
    assert len({r.json["symbol"] for r in server.requests}) == n


def test_429_defers_the_next_attempt_by_retry_after(env, server):
    server.script("/generic", Reply(429, {"Retry-After": "120"}), Reply(200))
    sensor = Sensor(env, {"CRYPTORUN_WEBHOOK_URL": server.url("/generic")}).started()
    _run(env)
    sensor.tick()
    failed = [r for r in Ledger(ledger_path(env.artifacts)).rows() if r["attempts"] == 1]
    assert len(failed) == 1 and failed[0]["status"] == PENDING
    assert failed[0]["next_attempt_at"] == sensor.now + 120
    sensor.now += 119
    sensor.tick()
    assert len([r for r in server.requests if r.json["symbol"] == failed[0]["symbol"]]) == 1
    sensor.now += 1
    sensor.tick()
    assert len([r for r in server.requests if r.json["symbol"] == failed[0]["symbol"]]) == 2


def test_a_delivery_is_given_up_after_max_attempts_and_the_tick_says_so(env, server):
    server.script("/generic", Reply(500))
    config = _with_notifications(env, retry={"max_attempts": 2})
    sensor = Sensor(env, {"CRYPTORUN_WEBHOOK_URL": server.url("/generic")}, config=config).started()
    _run(env)
    n = len(_entries(env))
    for _ in range(2 * n + 2):
        sensor.tick()
        sensor.now += 10_000
    assert len(server.requests) == 2 * n
    assert {r["status"] for r in Ledger(ledger_path(env.artifacts)).rows()} == {FAILED}
    assert any("given up (2 attempts)" in s for s in sensor.summaries)


def test_an_unreachable_endpoint_costs_one_attempt_per_tick(env):
    sensor = Sensor(env, {"CRYPTORUN_WEBHOOK_URL": refused_url()}).started()
    _run(env)
    attempts = []

    def post(target, body, **kwargs):
        from cryptorun_pipelines.notifications.delivery import post_json

        attempts.append(body["symbol"])
        return post_json(target, body, **kwargs)

    summary = sensor.tick(post=post)
    assert len(attempts) == 1 and "connection refused" in summary


def test_a_tick_starts_no_delivery_that_would_not_fit_its_budget(env, server):
    # tick_budget_s 20, timeout_s 5: a post that takes a whole timeout leaves room for four
    sensor = Sensor(env, {"CRYPTORUN_WEBHOOK_URL": server.url("/generic")}).started()
    _run(env)
    assert len(_entries(env)) > 4
    elapsed = [0.0]
    posted = []

    def slow_post(target, body, *, timeout_s, headers):
        elapsed[0] += timeout_s
        posted.append(body["symbol"])
        return Outcome(True, "HTTP 200", status=200)

    summary = sensor.tick(post=slow_post, monotonic=lambda: elapsed[0])
    assert len(posted) == 4
    assert f"{len(_entries(env)) - 4} due deliveries left for the next tick" in summary
    sensor.tick(post=slow_post, monotonic=lambda: elapsed[0])
    assert len(posted) == min(8, len(_entries(env)))


def test_secrets_never_reach_the_tick_log_the_summary_or_the_ledger(env, server, caplog):
    hook = server.url(HOOK)
    server.script(HOOK, Reply(404, body=f"unknown webhook {hook}".encode()))
    server.script("/botTG-SECRET-TOKEN/sendMessage", Reply(400, body=b'{"ok":false,"description":"chat -100999 not found"}'))
    config = _with_notifications(env, targets={"telegram": {"enabled": True, "api_url": server.url("")}})
    sensor = Sensor(env, {"CRYPTORUN_WEBHOOK_URL": hook, "CRYPTORUN_TELEGRAM_BOT_TOKEN": "TG-SECRET-TOKEN",
                          "CRYPTORUN_TELEGRAM_CHAT_ID": "-100999"}, config=config).started()
    _run(env)
    with caplog.at_level(logging.DEBUG):
        sensor.tick()
    assert len(server.requests) == 2  # one per target, both refused (not retryable)
    texts = [caplog.text, *sensor.summaries, repr(Ledger(ledger_path(env.artifacts)).rows())]
    for secret in ("sekret-hook-token", "TG-SECRET-TOKEN", "-100999"):
        assert not [t for t in texts if secret in t], secret
    assert "HTTP 404: unknown webhook ***" in sensor.summaries[-1]


def test_the_sensor_of_the_definitions_reports_in_its_tick_and_never_raises(env, server, monkeypatch):
    monkeypatch.setenv("CRYPTORUN_WEBHOOK_URL", refused_url())
    sensor_def = env.defs.resolve_sensor_def(SENSOR_NAME)
    assert sensor_def.default_status == dg.DefaultSensorStatus.RUNNING
    first = sensor_def(dg.build_sensor_context(instance=env.instance))
    _run(env)
    result = sensor_def(dg.build_sensor_context(instance=env.instance, cursor=first.cursor))
    assert isinstance(result, dg.SensorResult) and not result.run_requests
    assert "connection refused" in result.skip_reason.skip_message
    assert "127.0.0.1" not in result.skip_reason.skip_message  # the URL is the secret


def test_definitions_built_as_a_dry_run_announce_nothing(env, server, monkeypatch):
    from cryptorun_pipelines.build import build_definitions

    monkeypatch.setenv("CRYPTORUN_WEBHOOK_URL", server.url("/generic"))
    defs = build_definitions(env.config, config_path=env.config_path, dry_run=True)
    result = defs.resolve_sensor_def(SENSOR_NAME)(dg.build_sensor_context(instance=env.instance, cursor="-1"))
    assert isinstance(result, dg.SkipReason) and "dry run" in result.skip_message
    assert server.requests == []
