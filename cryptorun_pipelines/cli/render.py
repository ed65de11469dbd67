"""Terminal rendering for the ``cryptorun`` command: colour policy, 80-column tables, badges.

Everything here is pure (strings in, strings out) so it is unit-tested in-process. Colour is
used only when the output stream is a terminal and ``NO_COLOR`` is unset
(https://no-color.org); otherwise no ANSI escape code is ever emitted.
"""

from __future__ import annotations

import os
import re
import shutil
import textwrap
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Iterable, Sequence

from cryptorun_core.timefmt import UTC, utcnow

WIDTH = 80
ELLIPSIS = "…"
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")

_CODES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}


def colour_enabled(stream: IO[str] | None, environ: dict[str, str] | None = None) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (to anything) or TERM=dumb."""
    env = os.environ if environ is None else environ
    if "NO_COLOR" in env:
        return False
    if env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):
        return False


@dataclass(frozen=True)
class Style:
    """Applies ANSI styles when ``colour`` is on; the identity otherwise."""

    colour: bool = False

    def __call__(self, text: str, *styles: str) -> str:
        if not self.colour or not styles or not text:
            return text
        codes = ";".join(_CODES[s] for s in styles if s in _CODES)
        return f"\x1b[{codes}m{text}\x1b[0m" if codes else text

    def status(self, text: str) -> str:
        """Colour a status word by meaning (ok/green, degraded/yellow, down or failure/red)."""
        low = text.lower()
        if low in ("ok", "success", "running", "entry", "enabled", "calm"):
            return self(text, "green")
        if low in ("degraded", "started", "queued", "starting", "stopped", "normal", "not started"):
            return self(text, "yellow")
        if low in ("down", "failure", "failed", "canceled", "disabled", "reject", "volatile"):
            return self(text, "red")
        return text


PLAIN = Style(False)


def strip_ansi(text: str) -> str:
    return _ANSI_RE.sub("", text)


def char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal (ANSI codes take none; wide CJK glyphs take two)."""
    return sum(char_width(c) for c in strip_ansi(text))


def truncate(text: str, width: int) -> str:
    """Cut plain ``text`` to at most ``width`` columns, marking the cut with an ellipsis."""
    if width <= 0:
        return ""
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = char_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + ELLIPSIS


def pad(text: str, width: int, align: str = "<") -> str:
    """Pad (styled) ``text`` to ``width`` columns, measuring without ANSI codes."""
    gap = max(0, width - display_width(text))
    return (" " * gap + text) if align == ">" else (text + " " * gap)


@dataclass(frozen=True)
class Column:
    title: str
    min_width: int = 0
    max_width: int | None = None
    align: str = "<"
    flex: bool = False  # absorbs (or gives back) the remaining width
    wrap: bool = False  # wrap long cells onto continuation lines instead of truncating


def table(
    columns: Sequence[Column],
    rows: Iterable[Sequence[Any]],
    *,
    style: Style = PLAIN,
    width: int = WIDTH,
    gap: int = 2,
    stylers: Sequence[Any] | None = None,
) -> list[str]:
    """Lay ``rows`` out under ``columns`` in at most ``width`` columns.

    Cells are plain strings (styling is applied after layout through ``stylers``: one callable or
    None per column, so widths never count escape codes). Fixed columns take the width of their
    longest cell (bounded by min/max); flex columns share what is left and are truncated with an
    ellipsis. Returns the lines, header first.
    """
    rows = [["" if c is None else str(c) for c in row] for row in rows]
    n = len(columns)
    natural = []
    for i, col in enumerate(columns):
        w = max([display_width(col.title)] + [display_width(r[i]) for r in rows])
        w = max(w, col.min_width)
        if col.max_width is not None:
            w = min(w, col.max_width)
        natural.append(w)
    budget = width - gap * (n - 1)
    widths = list(natural)
    flex = [i for i, c in enumerate(columns) if c.flex]
    fixed_total = sum(w for i, w in enumerate(widths) if i not in flex)
    if flex:
        remaining = max(budget - fixed_total, len(flex))
        share = remaining // len(flex)
        for k, i in enumerate(flex):
            give = share + (remaining - share * len(flex) if k == len(flex) - 1 else 0)
            widths[i] = max(min(natural[i], give), max(1, min(columns[i].min_width, give)))
    # still too wide (no flex column, or flex at its minimum): shrink the widest columns
    while sum(widths) > budget and max(widths) > 1:
        widest = max(range(n), key=lambda i: widths[i])
        widths[widest] -= 1

    def render(cells: Sequence[str], header: bool) -> list[str]:
        pieces: list[list[str]] = []
        for i, (cell, col) in enumerate(zip(cells, columns)):
            if col.wrap and not header and display_width(cell) > widths[i]:
                pieces.append(textwrap.wrap(cell, widths[i], break_long_words=True) or [""])
            else:
                pieces.append([truncate(cell, widths[i])])
        lines = []
        for k in range(max(len(p) for p in pieces)):
            parts = []
            for i, col in enumerate(columns):
                text = pieces[i][k] if k < len(pieces[i]) else ""
                if header:
                    text = style(text, "bold")
                elif stylers and i < len(stylers) and stylers[i] is not None and text:
                    text = stylers[i](text)
                last = i == n - 1
                parts.append(text if (last and col.align == "<") else pad(text, widths[i], col.align))
            lines.append((" " * gap).join(parts).rstrip())
        return lines

    out = render([c.title for c in columns], True)
    for r in rows:
        out.extend(render(r, False))
    return out


def fit(line: str, width: int = WIDTH) -> str:
    """Truncate a plain line to ``width`` columns."""
    return truncate(line, width)


def terminal_width(environ: dict[str, str] | None = None) -> int:
    """Columns of the terminal the command writes to (``COLUMNS`` first, as shutil reads it); 80 when
    not a terminal. Never below :data:`MIN_WIDTH`."""
    env = os.environ if environ is None else environ
    try:
        cols = int(env.get("COLUMNS", "0"))
    except ValueError:
        cols = 0
    if cols <= 0:
        cols = shutil.get_terminal_size((WIDTH, 24)).columns
    return max(MIN_WIDTH, cols)


#: the narrowest layout the tables are made for
MIN_WIDTH = 40
#: the forms of the badges of one symbol, widest first (each names every badge)
BADGE_FORMS = ("long", "short", "tight")


def badges(row: dict[str, Any], style: Style = PLAIN, form: str = "long") -> str:
    """The badges of one evaluated symbol, in one of :data:`BADGE_FORMS`:
    ``[Fresh ●] [Depth ✓] [Venue kraken] [Sources 3]`` (long), ``● fresh ✓ depth kraken 3 src``
    (short), ``● ✓ kraken 3`` (tight)."""
    fresh = _badge_value(row, ("fresh", "fresh_badge"), "?")
    depth = _badge_value(row, ("depth_badge", "depth_ok"), "?")
    if isinstance(depth, bool):
        depth = "✓" if depth else "✗"
    if isinstance(fresh, bool):
        fresh = "●" if fresh else "○"
    venue = _badge_value(row, ("venue",), "-") or "-"
    sources = _badge_value(row, ("sources", "n_sources"), "?")
    fresh_s = style(str(fresh), "green" if fresh == "●" else "yellow")
    depth_s = style(str(depth), "green" if depth == "✓" else "red")
    n = _int_text(sources)
    if form == "tight":
        return f"{fresh_s} {depth_s} {venue} {n}"
    if form == "short":
        return f"{fresh_s} {'fresh' if fresh == '●' else 'stale'} {depth_s} depth {venue} {n} src"
    return f"[Fresh {fresh_s}] [Depth {depth_s}] [Venue {venue}] [Sources {n}]"


def badge_form(rows: Sequence[dict[str, Any]], room: int) -> str:
    """The widest of :data:`BADGE_FORMS` whose badges fit ``room`` columns on every row (the
    tightest when none does: the table then wraps the cell rather than cut a badge off)."""
    for form in BADGE_FORMS:
        if all(display_width(badges(r, form=form)) <= room for r in rows):
            return form
    return BADGE_FORMS[-1]


def _badge_value(row: dict[str, Any], keys: Sequence[str], default: Any) -> Any:
    for key in keys:
        if key in row and row[key] is not None and not _is_nan(row[key]):
            return row[key]
    return default


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def _int_text(value: Any) -> str:
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return str(value)


def fmt_score(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if v != v else f"{v:.1f}"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt_time(value: datetime | float | None, *, seconds: bool = False, short: bool = False) -> str:
    """``2026-11-20 12:00Z`` (UTC); ``short``: ``11-20 12:00Z``."""
    if value is None:
        return "-"
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, tz=UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    fmt = "%Y-%m-%d %H:%M:%SZ" if seconds else "%Y-%m-%d %H:%MZ"
    return value.strftime(fmt[3:] if short else fmt)


def fmt_iso(value: Any) -> str:
    """:func:`fmt_time` of an ISO 8601 text (``…Z`` or an offset) read from an artifact; ``-`` when
    empty, the text itself when it is not ISO 8601."""
    if not value:
        return "-"
    try:
        return fmt_time(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return str(value)


def fmt_ago(then: datetime | float | None, now: datetime | None = None) -> str:
    if then is None:
        return "-"
    if isinstance(then, (int, float)):
        then = datetime.fromtimestamp(then, tz=UTC)
    now = now or utcnow()
    delta = (now - then).total_seconds()
    if delta < 0:
        return "in " + fmt_duration(-delta)
    return fmt_duration(delta) + " ago"


def rule(width: int = WIDTH, char: str = "─") -> str:
    return char * width
