"""Markdown tables with badges for materialisation metadata (the UI renders markdown)."""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

# Glyphs every common font has (the CLI's ● ○ ✓ ✗) or words: emoji (🟢 ✅ ⛔) render as empty boxes
# where no emoji font is installed, as in Debian's Chromium.
#: the only non-ASCII glyphs a badge uses
BADGE_GLYPHS = ("●", "○", "✓", "✗")
REGIME_BADGES = {"calm": "calm", "normal": "normal", "volatile": "volatile"}
DECISION_BADGES = {"entry": "✓ entry", "reject": "✗ reject"}
FRESH_BADGES = {"●": "● fresh", "○": "○ stale"}
DEPTH_BADGES = {"✓": "✓", "✗": "✗"}
STATE_BADGES = {"QUIET": "QUIET", "WATCH": "WATCH", "PREPARE": "PREPARE", "PRIME": "PRIME", "EXECUTE": "EXECUTE"}
RISK_BADGES = {"LOW": "LOW", "MEDIUM": "MEDIUM", "HIGH": "HIGH"}

_BADGES = {
    "regime": REGIME_BADGES,
    "decision": DECISION_BADGES,
    "fresh": FRESH_BADGES,
    "depth_badge": DEPTH_BADGES,
    "state": STATE_BADGES,
    "execution_risk": RISK_BADGES,
}
_DECIMALS = {"score": 1, "momentum_core": 1, "premove_score": 1, "spread_bps": 1, "vadr": 2, "vadr_min": 2,
             "technical": 1, "volume": 1, "quality": 1, "compression": 1, "volume_build": 2, "book_imbalance": 2}


def plural(n: int, noun: str) -> str:
    """``1 cycle``, ``2 cycles``, ``1 entry``, ``3 entries``."""
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {noun[:-1]}ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou" else f"{n} {noun}s"


def _cell(column: str, value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if column in _BADGES:
        return _BADGES[column].get(str(value), str(value))
    if column == "depth_usd":
        return f"${float(value):,.0f}"
    if column == "primary_reason":
        return f"`{value}`"
    if column in _DECIMALS:
        return f"{float(value):.{_DECIMALS[column]}f}"
    return str(value).replace("|", "\\|")


def badge_table(
    frame: pd.DataFrame | None, columns: Sequence[str], n: int = 10, empty: str = "_no rows_", *,
    headers: Mapping[str, str] | None = None, more_note: bool = True,
) -> str:
    """The first ``n`` rows of ``columns`` (those present) as a markdown table, values as badges.
    ``headers`` renames column headings; ``more_note`` adds "… and N more rows" under a cut table."""
    if frame is None or not len(frame):
        return empty
    cols = [c for c in columns if c in frame.columns]
    names = [(headers or {}).get(c, c) for c in cols]
    lines = ["| " + " | ".join(names) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.head(n)[cols].itertuples(index=False, name=None):
        lines.append("| " + " | ".join(_cell(c, v) for c, v in zip(cols, row)) + " |")
    more = len(frame) - n
    if more > 0 and more_note:
        lines.append(f"\n_… and {more} more rows_")
    return "\n".join(lines)
