"""The four message formats say symbol, venue, score, VADR, spread, depth, regime and the badges,
and link to the run; text from the data is escaped for each service."""

from __future__ import annotations

import json

import pytest

from cryptorun_pipelines.notifications.formats import (
    discord_body,
    entry_id,
    slack_body,
    telegram_body,
    webhook_body,
)
from cryptorun_pipelines.notifications.message import Entry

ENTRY = Entry(
    job="scan.hot", partition="2026-11-20-11:45", as_of="2026-11-20T12:00:00Z", symbol="SOL/USD", venue="kraken",
    score=81.26, vadr=2.1, spread_bps=3.4, depth_usd=412345.0, regime="volatile",
    badges={"fresh": "●", "depth": "✓", "sources": "3", "tier": "tier1", "premove": "PRIME"},
    run_id="abc-123", run_url="http://ui.example:3000/runs/abc-123",
)
FACTS = ("SOL/USD", "kraken", "81.3", "2.10", "3.4 bps", "$412,345", "volatile", "[Fresh ●]", "[Depth ✓]",
         "[Sources 3]", "[tier1]", "[Premove PRIME]")


def _text(body) -> str:
    return json.dumps(body, ensure_ascii=False)


@pytest.mark.parametrize("build", [webhook_body, slack_body, discord_body, lambda e: telegram_body(e, "42")],
                         ids=["webhook", "slack", "discord", "telegram"])
def test_every_format_says_every_fact_and_links_the_run(build):
    text = _text(build(ENTRY))
    missing = [f for f in FACTS if f not in text]
    assert not missing, missing
    assert "http://ui.example:3000/runs/abc-123" in text


def test_the_generic_webhook_has_each_fact_as_a_field_and_a_stable_id():
    body = webhook_body(ENTRY)
    assert body["event"] == "cryptorun.entry"
    assert {k: body[k] for k in ("symbol", "venue", "score", "vadr", "spread_bps", "depth_usd", "regime", "job", "partition")} == {
        "symbol": "SOL/USD", "venue": "kraken", "score": 81.26, "vadr": 2.1, "spread_bps": 3.4, "depth_usd": 412345.0,
        "regime": "volatile", "job": "scan.hot", "partition": "2026-11-20-11:45"}
    assert body["badges"]["premove"] == "PRIME"
    assert body["id"] == entry_id(ENTRY) == webhook_body(Entry(**{**ENTRY.to_dict(), "run_id": "other"}))["id"]


def test_slack_uses_blocks_with_a_fallback_text_and_escapes_markup():
    evil = Entry(**{**ENTRY.to_dict(), "symbol": "<!channel>&X"})
    body = slack_body(evil)
    assert body["text"].startswith("Entry &lt;!channel&gt;&amp;X")
    assert [b["type"] for b in body["blocks"]] == ["section", "section", "context", "section"]
    assert "<!channel>" not in _text(body["blocks"])
    assert "<http://ui.example:3000/runs/abc-123|Open the run in Dagster>" in _text(body)


def test_discord_sends_an_embed_that_pings_nobody():
    body = discord_body(Entry(**{**ENTRY.to_dict(), "symbol": "@everyone"}))
    assert body["allowed_mentions"] == {"parse": []}
    (embed,) = body["embeds"]
    assert embed["url"] == ENTRY.run_url and embed["color"] == 0xE74C3C  # volatile: red
    assert {f["name"] for f in embed["fields"]} >= {"Score", "VADR", "Spread", "Depth ±2%", "Regime", "Venue"}


def test_telegram_is_html_with_the_chat_id_and_escaped_text():
    body = telegram_body(Entry(**{**ENTRY.to_dict(), "symbol": "<b>X</b>"}), "-100123")
    assert body["chat_id"] == "-100123" and body["parse_mode"] == "HTML"
    assert "&lt;b&gt;X&lt;/b&gt;" in body["text"]
    assert '<a href="http://ui.example:3000/runs/abc-123">run</a>' in body["text"]


def test_missing_numbers_are_a_dash_not_nan():
    body = webhook_body(Entry(**{**ENTRY.to_dict(), "vadr": None, "depth_usd": None}))
    assert "VADR –" in body["text"] and "Depth ±2% –" in body["text"] and "nan" not in body["text"].lower()
