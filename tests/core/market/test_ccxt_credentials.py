"""ccxt_live.credentials: credentials are stripped on read and every echo form is redacted."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

import pytest

from cryptorun_core.market.ccxt_live.credentials import Redactor, credentials_from_env

KEY_ENV = {"kraken": "K", "kraken.secret": "S", "kraken.password": "P"}


def test_values_are_stripped_and_blank_ones_are_unset():
    env = {"K": "abcd1234key\n", "S": "  s3cr3t\r\n", "P": " \n"}
    assert credentials_from_env("kraken", KEY_ENV, env) == {"apiKey": "abcd1234key", "secret": "s3cr3t"}


SECRET = "Zx9/q+Wm=Tr&Lk2pQ7vN"


@pytest.mark.parametrize("form", [
    SECRET, SECRET + "\n", quote(SECRET, safe=""), quote(SECRET), quote_plus(SECRET), SECRET.upper(), SECRET.lower(),
    base64.b64encode(SECRET.encode()).decode(), base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
    SECRET[:6], SECRET[:12] + "…", quote(SECRET, safe="")[:9],
])
def test_every_echo_form_is_redacted(form):
    redact = Redactor([SECRET + "\n"])  # registered as read, newline and all
    out = redact(f"venue said: <{form}> end")
    assert out.startswith("venue said: <***") and out.endswith("> end")
    assert SECRET[:6].lower() not in out.lower()


def test_text_without_a_secret_is_left_alone_and_short_values_are_not_redacted():
    redact = Redactor([SECRET, "abc", "", None])
    text = "EAPI:Invalid nonce (abc) Zx9/q is not the key"  # a 5-character overlap is no echo
    assert redact(text) == text
