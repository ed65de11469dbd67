"""The configured targets, with their secrets read from the environment at the moment of sending.

``config/scheduler.yaml`` names environment variables, never values. A target is active when it
is ``enabled``; the generic webhook is also active whenever its URL variable is set (so
``CRYPTORUN_WEBHOOK_URL=… cryptorun schedule start`` is all it takes). A secret is never printed:
:meth:`Target.redact` replaces it in every line that could reach a log or a terminal.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptorun_core.config import NotificationsConfig
from cryptorun_pipelines.notifications.formats import FORMATTERS, entry_id
from cryptorun_pipelines.notifications.message import Entry

TARGET_NAMES = ("webhook", "slack", "discord", "telegram")
REDACTED = "***"
_URL = re.compile(r"^https?://[^\s/]+", re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    """One active target: where to POST (a secret) and how to format the body."""

    name: str
    url: str
    secrets: tuple[str, ...]
    chat_id: str = ""  # telegram only

    def body(self, entry: Entry) -> dict[str, Any]:
        if self.name == "telegram":
            return FORMATTERS["telegram"](entry, self.chat_id)
        return FORMATTERS[self.name](entry)

    def headers(self, entry: Entry) -> dict[str, str]:
        """The generic webhook carries the entry id as an idempotency key (a retried POST whose first
        try did arrive can be recognised by the receiver)."""
        return {"Idempotency-Key": entry_id(entry)} if self.name == "webhook" else {}

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def __repr__(self) -> str:  # never the URL
        return f"Target({self.name})"


#: shorter values (a one-digit chat id) are no secret worth garbling every number of a line for
MIN_SECRET_LEN = 4


def redact(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    """``text`` with every secret (also in its URL-quoted form) replaced by ``***``."""
    for secret in sorted((s for s in secrets if len(s) >= MIN_SECRET_LEN), key=len, reverse=True):
        for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret)}:
            text = text.replace(form, REDACTED)
    return text


def resolve_targets(config: NotificationsConfig, environ: Mapping[str, str]) -> tuple[list[Target], list[str]]:
    """The active targets and one sentence per active target that cannot be used (a variable unset
    or not a URL; the sentence names the variable, never its value)."""
    targets: list[Target] = []
    problems: list[str] = []
    t = config.targets
    for name, cfg in (("webhook", t.webhook), ("slack", t.slack), ("discord", t.discord)):
        url = environ.get(cfg.url_env, "").strip()
        if not (cfg.enabled or (name == "webhook" and url)):
            continue
        if not url:
            problems.append(f"{name} is enabled but ${cfg.url_env} is not set")
        elif not _URL.match(url):
            problems.append(f"{name}: ${cfg.url_env} is not an http:// or https:// URL")
        else:
            targets.append(Target(name, url, secrets=(url,)))
    tg = t.telegram
    if tg.enabled:
        token = environ.get(tg.token_env, "").strip()
        chat = environ.get(tg.chat_id_env, "").strip()
        missing = [f"${v}" for v, value in ((tg.token_env, token), (tg.chat_id_env, chat)) if not value]
        if missing:
            problems.append(f"telegram is enabled but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set")
        else:
            url = f"{tg.api_url}/bot{token}/sendMessage"
            targets.append(Target("telegram", url, secrets=(token, chat), chat_id=chat))
    return targets, problems
