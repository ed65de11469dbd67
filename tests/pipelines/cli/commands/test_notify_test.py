"""``cryptorun notify test``: a sample to every active target, one line per target, exit codes;
retries as the sensor would; no secret on the terminal."""

from __future__ import annotations

import json

import pytest
import yaml

from cryptorun_core.config import DEFAULT_CONFIG_PATH
from cryptorun_pipelines.cli.main import main
from tests.pipelines.notifications.loopback import LoopbackServer, Reply, refused_url

ENV = ("CRYPTORUN_WEBHOOK_URL", "CRYPTORUN_SLACK_WEBHOOK_URL", "CRYPTORUN_DISCORD_WEBHOOK_URL",
       "CRYPTORUN_TELEGRAM_BOT_TOKEN", "CRYPTORUN_TELEGRAM_CHAT_ID")


@pytest.fixture
def server():
    srv = LoopbackServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def cli(tmp_path, monkeypatch, server):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CRYPTORUN_CONFIG", str(DEFAULT_CONFIG_PATH))  # restored after --config exports its own
    monkeypatch.setenv("CRYPTORUN_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    overlay = tmp_path / "notify.yaml"
    overlay.write_text(yaml.safe_dump({
        "extends": str(DEFAULT_CONFIG_PATH),
        "notifications": {
            "retry": {"backoff_base_s": 0, "backoff_max_s": 0},
            "targets": {"slack": {"enabled": True}, "discord": {"enabled": True},
                        "telegram": {"enabled": True, "api_url": server.url("/tg")}}},
    }))

    def run(*args: str) -> int:
        return main(["--config", str(overlay), "notify", "test", *args])

    return run


def _all_targets(monkeypatch, server) -> None:
    monkeypatch.setenv("CRYPTORUN_WEBHOOK_URL", server.url("/generic/s3cret"))
    monkeypatch.setenv("CRYPTORUN_SLACK_WEBHOOK_URL", server.url("/slack/s3cret"))
    monkeypatch.setenv("CRYPTORUN_DISCORD_WEBHOOK_URL", server.url("/discord/s3cret"))
    monkeypatch.setenv("CRYPTORUN_TELEGRAM_BOT_TOKEN", "42:s3cret")
    monkeypatch.setenv("CRYPTORUN_TELEGRAM_CHAT_ID", "-100s3cret")


def test_a_sample_reaches_every_target_in_its_own_format(cli, server, monkeypatch, capsys):
    _all_targets(monkeypatch, server)
    assert cli() == 0
    out = capsys.readouterr().out
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["webhook", "sent:"], ["slack", "sent:"], ["discord", "sent:"], ["telegram", "sent:"]]
    assert server.to("/generic/s3cret")[0].json["event"] == "cryptorun.test"
    assert "blocks" in server.to("/slack/s3cret")[0].json
    assert "embeds" in server.to("/discord/s3cret")[0].json
    tg = server.to("/tg/bot42:s3cret/sendMessage")[0].json
    assert tg["chat_id"] == "-100s3cret" and "TEST/USD" in tg["text"]
    assert "s3cret" not in out


def test_a_failing_target_is_reported_and_exits_1_without_its_secret(cli, server, monkeypatch, capsys):
    _all_targets(monkeypatch, server)
    monkeypatch.setenv("CRYPTORUN_DISCORD_WEBHOOK_URL", refused_url("/discord/s3cret"))
    server.script("/slack/s3cret", Reply(500, body=b"slack is down"))
    assert cli("--json") == 1
    report = json.loads(capsys.readouterr().out)
    by_target = {r["target"]: r for r in report["targets"]}
    assert (by_target["discord"]["ok"], by_target["discord"]["detail"]) == (False, "connection refused")
    assert (by_target["slack"]["ok"], by_target["slack"]["detail"]) == (False, "HTTP 500: slack is down")
    assert by_target["webhook"]["ok"] and by_target["telegram"]["ok"] and report["ok"] is False
    assert "s3cret" not in json.dumps(report)


def test_attempts_retry_after_a_429_as_the_sensor_would(cli, server, monkeypatch, capsys):
    _all_targets(monkeypatch, server)
    server.script("/generic/s3cret", Reply(429, {"Retry-After": "0"}), Reply(200))
    assert cli("--attempts", "2") == 0
    assert "webhook   sent after 2 attempts: HTTP 200" in capsys.readouterr().out
    assert len(server.to("/generic/s3cret")) == 2


def test_an_enabled_target_without_its_variables_is_a_usage_error_naming_them(cli, server, monkeypatch, capsys):
    monkeypatch.setenv("CRYPTORUN_WEBHOOK_URL", server.url("/generic/s3cret"))
    assert cli() == 2
    out = capsys.readouterr().out
    assert "slack FAILED: slack is enabled but $CRYPTORUN_SLACK_WEBHOOK_URL is not set" in " ".join(out.split())
    assert "webhook   sent" in out  # the usable targets are still tried


def test_no_active_target_says_how_to_enable_one(tmp_path, monkeypatch, capsys):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CRYPTORUN_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setenv("CRYPTORUN_CONFIG", str(DEFAULT_CONFIG_PATH))
    assert main(["notify", "test"]) == 2
    assert "set $CRYPTORUN_WEBHOOK_URL" in capsys.readouterr().out
