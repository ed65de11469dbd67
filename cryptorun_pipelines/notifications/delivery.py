"""One HTTP POST of a JSON body (stdlib urllib), and how long to wait before the next attempt.

:func:`post_json` never raises: every outcome (2xx, an HTTP error, a timeout, a refused or
unreachable host) comes back as an :class:`Outcome` whose ``detail`` is one line with the
target's secrets redacted. Redirects are not followed (a webhook that moved should be
reconfigured, and following one would re-send the body to an address nobody configured).
The wait after a failure is exponential (``backoff_base_s * 2^(n-1)``, at most ``backoff_max_s``)
unless the service said how long to wait (a 429's ``Retry-After`` header, or the ``retry_after``
Discord and Telegram put in the body), which is honoured up to ``retry_after_max_s``.
"""

from __future__ import annotations

import email.utils
import json
import math
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptorun_core.config import NotificationRetryConfig
from cryptorun_core.timefmt import iso_z
from cryptorun_pipelines.notifications.targets import Target

USER_AGENT = "cryptorun-notify/1"
MAX_RESPONSE_BYTES = 64 * 1024
#: statuses worth another attempt (the others — 400, 401, 403, 404 — will not get better by waiting)
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str  # one line, secrets redacted: "HTTP 200", "HTTP 500: …", "timed out after 5 s"
    status: int | None = None
    retryable: bool = False
    retry_after_s: float | None = None  # what the service asked for


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _body_retry_after(text: str) -> float | None:
    """Discord (``retry_after``) and Telegram (``parameters.retry_after``) say it in the body."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for value in (data.get("retry_after"), (data.get("parameters") or {}).get("retry_after")):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return float(value)
    return None


def _read(resp: Any, deadline: float) -> bytes:
    """At most MAX_RESPONSE_BYTES of the response, stopping at ``deadline`` (a server that trickles
    bytes cannot hold a sensor tick past its budget)."""
    chunks, size = [], 0
    while size < MAX_RESPONSE_BYTES and time.monotonic() < deadline:
        chunk = resp.read(min(8192, MAX_RESPONSE_BYTES - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def post_json(target: Target, body: dict[str, Any], *, timeout_s: float, headers: dict[str, str] | None = None) -> Outcome:
    """POST ``body`` to ``target``; never raises."""
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(
        target.url, data=data, method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT, **(headers or {})},
    )
    deadline = time.monotonic() + timeout_s
    try:
        with _OPENER.open(request, timeout=timeout_s) as resp:
            _read(resp, deadline)
            return Outcome(True, f"HTTP {resp.status}", status=resp.status)
    except urllib.error.HTTPError as exc:
        text = ""
        try:
            text = _read(exc, deadline).decode("utf-8", "replace")
        except (OSError, ValueError):
            pass
        retry_after = parse_retry_after(exc.headers.get("Retry-After") if exc.headers else None)
        if retry_after is None and exc.code == 429:
            retry_after = _body_retry_after(text)
        detail = f"HTTP {exc.code}" + (f": {_one_line(text)}" if text.strip() else "")
        if 300 <= exc.code < 400:
            detail += " (redirects are not followed: configure the final URL)"
        return Outcome(False, target.redact(detail), status=exc.code, retryable=exc.code in RETRYABLE_STATUS,
                       retry_after_s=retry_after)
    except TimeoutError:
        return Outcome(False, f"timed out after {timeout_s:g} s", retryable=True)
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return Outcome(False, f"timed out after {timeout_s:g} s", retryable=True)
        if isinstance(reason, ConnectionRefusedError):
            return Outcome(False, "connection refused", retryable=True)
        return Outcome(False, target.redact(_one_line(f"unreachable: {reason}")), retryable=True)
    except (ConnectionError, OSError, ValueError) as exc:  # reset mid-response, a malformed URL …
        return Outcome(False, target.redact(_one_line(f"{type(exc).__name__}: {exc}")), retryable=not isinstance(exc, ValueError))


def retry_delay(attempt: int, outcome: Outcome, policy: NotificationRetryConfig) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    if outcome.retry_after_s is not None:
        return min(outcome.retry_after_s, policy.retry_after_max_s)
    return min(policy.backoff_base_s * 2 ** (attempt - 1), policy.backoff_max_s)


def now_iso(ts: float) -> str:
    return iso_z(datetime.fromtimestamp(ts, UTC))
