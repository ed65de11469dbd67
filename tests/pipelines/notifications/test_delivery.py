"""One POST against a real loopback server: 200, 429 with Retry-After, 500, a timeout, a refused
connection, a redirect; the wait before the next attempt; secrets never in an outcome."""

from __future__ import annotations

import email.utils
import json

import pytest

from cryptorun_core.config import packaged_config
from cryptorun_pipelines.notifications.delivery import (
    Outcome,
    parse_retry_after,
    post_json,
    retry_delay,
)
from cryptorun_pipelines.notifications.targets import Target
from tests.pipelines.notifications.loopback import Reply, refused_url

SECRET_PATH = "/hook/T0/B0/sekret-token"


def _target(url: str) -> Target:
    return Target("webhook", url, secrets=(url,))


def test_a_2xx_is_a_delivery_and_the_body_arrives_as_json(server):
    server.script(SECRET_PATH, Reply(204, body=b""))
    outcome = post_json(_target(server.url(SECRET_PATH)), {"symbol": "BTC/USD", "note": "ü"}, timeout_s=5,
                        headers={"Idempotency-Key": "abc"})
    assert outcome == Outcome(True, "HTTP 204", status=204)
    (received,) = server.to(SECRET_PATH)
    assert received.json == {"symbol": "BTC/USD", "note": "ü"}
    assert received.headers["Content-Type"].startswith("application/json")
    assert received.headers["Idempotency-Key"] == "abc"


def test_429_is_retryable_and_carries_retry_after_seconds(server):
    server.script(SECRET_PATH, Reply(429, {"Retry-After": "7"}, b"slow down"))
    outcome = post_json(_target(server.url(SECRET_PATH)), {}, timeout_s=5)
    assert (outcome.ok, outcome.status, outcome.retryable, outcome.retry_after_s) == (False, 429, True, 7.0)
    assert outcome.detail == "HTTP 429: slow down"


def test_429_without_header_takes_retry_after_from_a_discord_or_telegram_body(server):
    server.script("/d", Reply(429, body=json.dumps({"retry_after": 1.5}).encode()))
    server.script("/t", Reply(429, body=json.dumps({"ok": False, "parameters": {"retry_after": 12}}).encode()))
    assert post_json(_target(server.url("/d")), {}, timeout_s=5).retry_after_s == 1.5
    assert post_json(_target(server.url("/t")), {}, timeout_s=5).retry_after_s == 12.0


def test_retry_after_as_an_http_date():
    when = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(when, now=1_000_000) == 30.0
    assert parse_retry_after("garbage") is None and parse_retry_after(None) is None


def test_500_is_retryable_400_is_not(server):
    server.script("/500", Reply(500, body=b"boom"))
    server.script("/400", Reply(400, body=b"invalid_payload"))
    e500 = post_json(_target(server.url("/500")), {}, timeout_s=5)
    e400 = post_json(_target(server.url("/400")), {}, timeout_s=5)
    assert (e500.ok, e500.retryable, e500.detail) == (False, True, "HTTP 500: boom")
    assert (e400.ok, e400.retryable, e400.detail) == (False, False, "HTTP 400: invalid_payload")


def test_a_server_that_does_not_answer_in_time_is_a_retryable_timeout(server):
    server.script(SECRET_PATH, Reply(200, delay_s=30))
    outcome = post_json(_target(server.url(SECRET_PATH)), {}, timeout_s=0.3)
    assert (outcome.ok, outcome.retryable, outcome.detail) == (False, True, "timed out after 0.3 s")


def test_a_refused_connection_is_retryable_and_never_raises():
    url = refused_url(SECRET_PATH)
    outcome = post_json(_target(url), {}, timeout_s=2)
    assert (outcome.ok, outcome.retryable, outcome.detail) == (False, True, "connection refused")


def test_a_redirect_is_not_followed(server):
    server.script("/moved", Reply(302, {"Location": server.url("/elsewhere")}, b""))
    outcome = post_json(_target(server.url("/moved")), {"x": 1}, timeout_s=5)
    assert not outcome.ok and not outcome.retryable and "not followed" in outcome.detail
    assert server.to("/elsewhere") == []


def test_an_error_body_echoing_the_secret_url_is_redacted(server):
    url = server.url(SECRET_PATH)
    server.script(SECRET_PATH, Reply(404, body=f"no such hook {url}".encode()))
    outcome = post_json(_target(url), {}, timeout_s=5)
    assert "sekret-token" not in outcome.detail and "***" in outcome.detail


@pytest.mark.parametrize(
    "attempt, retry_after, expected",
    [(1, None, 30.0), (2, None, 60.0), (3, None, 120.0), (10, None, 900.0), (1, 7.0, 7.0), (1, 99999.0, 3600.0)],
)
def test_backoff_doubles_up_to_its_cap_and_retry_after_wins_up_to_its_cap(attempt, retry_after, expected):
    policy = packaged_config().notifications.retry  # base 30 s, max 900 s, Retry-After at most 3600 s
    outcome = Outcome(False, "x", retryable=True, retry_after_s=retry_after)
    assert retry_delay(attempt, outcome, policy) == expected
