"""Targets come from the config's variable names and the environment's values; a secret is never
part of a message, a repr or a problem sentence."""

from __future__ import annotations

from cryptorun_core.config import changed, packaged_config
from cryptorun_pipelines.notifications.targets import redact, resolve_targets

N = packaged_config().notifications
HOOK = "https://example.invalid/hook/T0/B0/sekret"


def _enabled(*names: str):
    return changed(N, targets={name: {"enabled": True} for name in names})


def test_nothing_is_active_by_default():
    assert resolve_targets(N, {}) == ([], [])


def test_cryptorun_webhook_url_alone_enables_the_generic_webhook():
    targets, problems = resolve_targets(N, {"CRYPTORUN_WEBHOOK_URL": HOOK})
    assert [(t.name, t.url) for t in targets] == [("webhook", HOOK)] and problems == []
    assert "sekret" not in repr(targets[0])


def test_an_enabled_target_without_its_variable_is_a_problem_naming_the_variable():
    targets, problems = resolve_targets(_enabled("slack", "discord", "telegram"), {"CRYPTORUN_DISCORD_WEBHOOK_URL": "not a url"})
    assert targets == []
    assert problems == [
        "slack is enabled but $CRYPTORUN_SLACK_WEBHOOK_URL is not set",
        "discord: $CRYPTORUN_DISCORD_WEBHOOK_URL is not an http:// or https:// URL",
        "telegram is enabled but $CRYPTORUN_TELEGRAM_BOT_TOKEN and $CRYPTORUN_TELEGRAM_CHAT_ID are not set",
    ]


def test_telegram_posts_to_the_bot_api_with_token_and_chat_id_as_secrets():
    env = {"CRYPTORUN_TELEGRAM_BOT_TOKEN": "123:ABC", "CRYPTORUN_TELEGRAM_CHAT_ID": "-100777"}
    (tg,), _ = resolve_targets(_enabled("telegram"), env)
    assert tg.url == "https://api.telegram.org/bot123:ABC/sendMessage"
    assert tg.chat_id == "-100777"
    assert tg.redact(f"POST {tg.url} chat -100777") == "POST https://api.telegram.org/bot***/sendMessage chat ***"


def test_redact_also_hides_the_url_quoted_form():
    assert redact("x https%3A%2F%2Fexample.invalid%2Fhook%2FT0%2FB0%2Fsekret y", [HOOK]) == "x *** y"


def test_a_value_too_short_to_be_a_secret_is_not_redacted_everywhere():
    assert redact("chat 7 got 7 entries", ["7"]) == "chat 7 got 7 entries"
