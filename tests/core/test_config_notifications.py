"""The ``notifications:`` section: each bad value fails at load naming its key, and a secret pasted
where an environment variable's name belongs is refused without being echoed."""

from __future__ import annotations

import copy

import pytest
import yaml

from cryptorun_core.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    packaged_config,
    parse_config,
)

SECRET = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())


def _with(raw: dict, path: str, value) -> dict:
    out = copy.deepcopy(raw)
    node = out
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return out


_DELETE = object()


def test_the_packaged_section_enables_nothing_and_names_the_documented_variables():
    n = packaged_config().notifications
    assert not any(t.enabled for t in (n.targets.webhook, n.targets.slack, n.targets.discord, n.targets.telegram))
    assert n.targets.webhook.url_env == "CRYPTORUN_WEBHOOK_URL"
    assert n.backfills is False


@pytest.mark.parametrize(
    "path, value, key, words",
    [
        ("notifications.targets.slack.url_env", SECRET, "notifications.targets.slack.url_env", "NAME of an environment variable"),
        ("notifications.targets.telegram.token_env", "123456:ABC-token", "notifications.targets.telegram.token_env", "NAME"),
        ("notifications.targets.slack.url", SECRET, "notifications.targets.slack.url", "unknown key"),
        ("notifications.ui_base_url", "localhost:3000", "notifications.ui_base_url", "http:// or https://"),
        ("notifications.timeout_s", 0, "notifications.timeout_s", "greater than 0"),
        ("notifications.timeout_s", 30, "notifications.timeout_s", "tick_budget_s"),
        ("notifications.sensor_interval_s", 1, "notifications.sensor_interval_s", "greater than or equal to 5"),
        ("notifications.retry.max_attempts", 0, "notifications.retry.max_attempts", "greater than or equal to 1"),
        ("notifications.retry.backoff_max_s", 1, "notifications.retry.backoff_max_s", "at least backoff_base_s"),
        ("notifications.backfills", "sometimes", "notifications.backfills", "boolean"),
        ("notifications.retry", _DELETE, "notifications.retry", "required key is missing"),
    ],
)
def test_a_bad_notifications_value_names_its_key(raw, path, value, key, words):
    with pytest.raises(ConfigError) as info:
        parse_config(_with(raw, path, value))
    assert info.value.key == key
    assert words in info.value.message
    assert "SECRET" not in str(info.value) and "ABC-token" not in str(info.value)
