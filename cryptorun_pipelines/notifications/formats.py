"""One message format per target: the body each service expects for one :class:`Entry`.

Every formatter returns the JSON body only; where it is sent (and the secret in that address) is
:mod:`cryptorun_pipelines.notifications.targets`' business. Text that comes from the data
(symbols, venues) is escaped for each service's markup, and Discord is told to ping nobody.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Callable
from typing import Any

from cryptorun_pipelines.charts.tables import REGIME_BADGES
from cryptorun_pipelines.notifications.message import Entry

TEST_JOB = "notify.test"
#: Discord embed colour per regime (the regime badge's colour)
DISCORD_COLOURS = {"calm": 0x2ECC71, "normal": 0x3498DB, "volatile": 0xE74C3C}


def entry_id(entry: Entry) -> str:
    """Stable id of what is announced once (symbol, job, partition): receivers may dedupe on it."""
    return hashlib.sha256("|".join(entry.key).encode("utf-8")).hexdigest()[:24]


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def facts(entry: Entry) -> list[tuple[str, str]]:
    """(label, value) of the numbers every format shows, formatted as the artifacts round them."""
    return [
        ("Score", _num(entry.score, ".1f")),
        ("VADR", _num(entry.vadr, ".2f")),
        ("Spread", f"{_num(entry.spread_bps, '.1f')} bps"),
        ("Depth ±2%", "–" if entry.depth_usd is None else f"${entry.depth_usd:,.0f}"),
        ("Regime", REGIME_BADGES.get(entry.regime, entry.regime or "–")),
        ("Venue", entry.venue or "–"),
    ]


def badge_line(entry: Entry) -> str:
    """``[Fresh ●] [Depth ✓] [Sources 3] [tier1] [Premove PRIME]``."""
    b = entry.badges
    parts = []
    for key, label in (("fresh", "Fresh"), ("depth", "Depth"), ("sources", "Sources")):
        if b.get(key):
            parts.append(f"[{label} {b[key]}]")
    if b.get("tier"):
        parts.append(f"[{b['tier']}]")
    if b.get("premove"):
        parts.append(f"[Premove {b['premove']}]")
    return " ".join(parts)


def title(entry: Entry) -> str:
    prefix = "TEST — " if entry.job == TEST_JOB else ""
    return f"{prefix}Entry {entry.symbol} on {entry.venue} ({entry.job} {entry.partition})"


def plain_text(entry: Entry) -> str:
    numbers = " · ".join(f"{label} {value}" for label, value in facts(entry)[:5])
    return f"{title(entry)}\n{numbers}\n{badge_line(entry)}\nT {entry.as_of} · run {entry.run_url}"


def webhook_body(entry: Entry) -> dict[str, Any]:
    """Generic JSON: every fact as a field, plus ``text`` for receivers that only show text."""
    return {
        "event": "cryptorun.test" if entry.job == TEST_JOB else "cryptorun.entry",
        "id": entry_id(entry),
        **{k: v for k, v in entry.to_dict().items()},
        "text": plain_text(entry),
    }


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(entry: Entry) -> dict[str, Any]:
    """Slack incoming webhook: Block Kit, with ``text`` as the notification fallback."""
    esc = _slack_escape
    fields = [{"type": "mrkdwn", "text": f"*{esc(label)}*\n{esc(value)}"} for label, value in facts(entry)]
    return {
        "text": esc(title(entry)),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{esc(title(entry))}*"}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": esc(f"{badge_line(entry)} · T {entry.as_of}")},
            ]},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"<{entry.run_url}|Open the run in Dagster>"}},
        ],
    }


def discord_body(entry: Entry) -> dict[str, Any]:
    """Discord webhook: one embed linking to the run; mentions disabled (data never pings anyone)."""
    return {
        "username": "CryptoRun",
        "allowed_mentions": {"parse": []},
        "embeds": [
            {
                "title": title(entry)[:256],
                "url": entry.run_url,
                **({"description": badge_line(entry)} if badge_line(entry) else {}),  # Discord refuses an empty one
                "color": DISCORD_COLOURS.get(entry.regime, 0x95A5A6),
                "fields": [{"name": label, "value": value, "inline": True} for label, value in facts(entry)],
                "footer": {"text": f"T {entry.as_of}"},
            }
        ],
    }


def telegram_text(entry: Entry) -> str:
    esc = html.escape
    lines = [f"<b>{esc(title(entry))}</b>"]
    lines += [f"{esc(label)}: {esc(value)}" for label, value in facts(entry)]
    lines.append(esc(badge_line(entry)))
    lines.append(f'T {esc(entry.as_of)} · <a href="{esc(entry.run_url, quote=True)}">run</a>')
    return "\n".join(lines)


def telegram_body(entry: Entry, chat_id: str) -> dict[str, Any]:
    """Bot API ``sendMessage`` (HTML parse mode)."""
    return {"chat_id": chat_id, "text": telegram_text(entry), "parse_mode": "HTML", "disable_web_page_preview": True}


FORMATTERS: dict[str, Callable[..., dict[str, Any]]] = {
    "webhook": webhook_body,
    "slack": slack_body,
    "discord": discord_body,
    "telegram": telegram_body,
}
