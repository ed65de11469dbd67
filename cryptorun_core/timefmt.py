"""Time in CryptoRun: every instant is UTC, and each text form of one is declared here once.

Two ISO 8601 forms are written on purpose:

- :func:`iso_z` — whole seconds, ``2021-05-01T00:00:00Z``: CSV timestamps, explain.json, messages.
- :func:`iso_z_exact` — ``Timestamp.isoformat`` with ``Z`` (sub-second digits kept when present,
  ``2021-05-01T00:00:00.250000Z``): regime.json (SPEC §9), whose ``as_of``/``next_refresh`` round-trip.

:func:`as_of_folder` is the file-name-safe form naming a cycle's artifact folder. A naive input
means UTC everywhere.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pandas as pd

UTC = timezone.utc
#: :func:`iso_z`'s format
ISO_SECONDS = "%Y-%m-%dT%H:%M:%SZ"
#: :func:`iso_minutes`' format (the times in messages: partition windows, cycle times)
ISO_MINUTES = "%Y-%m-%dT%H:%MZ"
#: :func:`as_of_folder`'s format (file-name safe, sorts in time order)
FOLDER_FORMAT = "%Y-%m-%dT%H-%M-%SZ"


def utc_timestamp(ts: Any) -> pd.Timestamp:
    """``ts`` as a UTC ``pandas.Timestamp`` (naive means UTC)."""
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def to_utc(ts: Any) -> datetime:
    """``ts`` as an aware UTC ``datetime`` (naive means UTC)."""
    return utc_timestamp(ts).to_pydatetime()


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_z(ts: Any) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` of any timestamp (whole seconds)."""
    return utc_timestamp(ts).strftime(ISO_SECONDS)


def iso_minutes(ts: Any) -> str:
    """``YYYY-MM-DDTHH:MMZ`` of any timestamp (the times a message names)."""
    return utc_timestamp(ts).strftime(ISO_MINUTES)


def iso_z_exact(ts: Any) -> str:
    """ISO 8601 UTC with a trailing ``Z`` keeping sub-second digits (regime.json)."""
    return pd.Timestamp(to_utc(ts)).isoformat().replace("+00:00", "Z")


def as_of_folder(as_of: Any) -> str:
    """Folder name of a cycle: ``YYYY-MM-DDTHH-MM-SSZ``."""
    return utc_timestamp(as_of).strftime(FOLDER_FORMAT)
