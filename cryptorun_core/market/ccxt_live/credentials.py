"""API credentials of the ccxt source: read from the environment, and kept out of every message.

Values are stripped on read (``export KEY="$(cat key.txt)"`` and secret files leave a trailing
newline; the venue would be sent the newline and the bare value would escape redaction). A venue's
error text may echo a credential in any form it handled: verbatim, URL-encoded, upper- or
lower-cased, base64, or only its first characters. :class:`Redactor` replaces each of those
with ``***`` in every detail, health record and log line the source writes.
"""

from __future__ import annotations

import base64
import os
from typing import Iterable, Mapping
from urllib.parse import quote, quote_plus

#: Venues whose ccxt client switches to private endpoints as soon as it holds credentials
#: (coinbase's load_markets then also calls the private fee summary): keys are not handed over.
NO_CREDENTIALS_VENUES = frozenset({"coinbase"})
#: ccxt's credential attributes
CREDENTIAL_FIELDS = ("apiKey", "secret", "password")
#: shortest credential that is redacted (shorter values would blank ordinary words)
MIN_SECRET_CHARS = 4
#: an echoed prefix this long (or the whole form, if shorter) is redacted
MIN_PREFIX_CHARS = 6
REDACTED = "***"


def credentials_from_env(venue: str, api_key_env: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """ccxt credential fields of ``venue`` read from the env vars named in ``api_key_env``.

    Keys of ``api_key_env``: ``<venue>`` or ``<venue>.apiKey`` (the key), ``<venue>.secret``,
    ``<venue>.password``; values are environment variable *names*. Values are stripped of
    surrounding whitespace; a blank value counts as unset. Nothing here is ever logged.
    """
    environ = os.environ if environ is None else environ
    fields = {venue: "apiKey", f"{venue}.apiKey": "apiKey", f"{venue}.secret": "secret", f"{venue}.password": "password"}
    out: dict[str, str] = {}
    for key, field_name in fields.items():
        env_name = api_key_env.get(key)
        value = (environ.get(env_name) or "").strip() if env_name else ""
        if value:
            out[field_name] = value
    return out


def echo_forms(secret: str) -> set[str]:
    """The spellings of ``secret`` a venue may echo (case is handled by :class:`Redactor`)."""
    forms = {secret, secret.strip()}
    for value in list(forms):
        raw = value.encode("utf-8")
        forms |= {quote(value, safe=""), quote(value), quote_plus(value)}
        for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            text = encoded.decode("ascii")
            forms |= {text, text.rstrip("=")}
    return {f for f in forms if len(f) >= MIN_SECRET_CHARS}


class Redactor:
    """Replaces every echo form of the registered secrets (case-insensitively, and any prefix of
    at least :data:`MIN_PREFIX_CHARS` characters of a form) with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._forms: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        forms = set(self._forms)
        for secret in secrets:
            if isinstance(secret, str) and len(secret.strip()) >= MIN_SECRET_CHARS:
                forms |= echo_forms(secret)
        self._forms = sorted(forms, key=lambda f: (-len(f), f))  # longest first: a whole form beats its prefix

    def __call__(self, text: str) -> str:
        for form in self._forms:
            text = _redact_prefixes(text, form)
        return text


def _redact_prefixes(text: str, form: str) -> str:
    """``text`` with each run that starts like ``form`` (case-insensitively, at least
    ``min(len(form), MIN_PREFIX_CHARS)`` characters, as far as it keeps matching) replaced."""
    head = form[:MIN_PREFIX_CHARS].lower()
    folded, wanted = text.lower(), form.lower()
    if len(folded) != len(text):  # case folding changed lengths (rare scripts): whole forms only
        return text.replace(form, REDACTED)
    out, pos = [], 0
    start = folded.find(head)
    while start >= 0:
        end = start + len(head)
        while end - start < len(wanted) and end < len(folded) and folded[end] == wanted[end - start]:
            end += 1
        out += [text[pos:start], REDACTED]
        pos = end
        start = folded.find(head, pos)
    out.append(text[pos:])
    return "".join(out)
