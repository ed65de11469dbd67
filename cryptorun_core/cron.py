"""Strict five-field cron expressions (minute hour day-of-month month day-of-week).

croniter, which Dagster schedules with, is lenient where a typo changes the cadence silently:
``*/61`` runs hourly, ``30-10`` wraps around, ``5/10`` means ``5-59/10``, and ``L``, ``W``, ``#``
and ``?`` are extensions other cron readers do not share. :func:`check_cron` accepts the portable
grammar only, so a schedule means what it says:

    field := item ("," item)*
    item  := ("*" | value | value "-" value) ["/" step]     (a step needs "*" or a range)
    value := a number in the field's range, or a name (jan-dec, sun-sat) for month and weekday

A range runs upward (``10-30``); a step is at least 1 and at most the width of its range (a larger
one names a single value); day-of-week 7 is Sunday; a day-of-month that no listed month has
(``31 2``) never fires and is refused.
"""

from __future__ import annotations

import re

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names mapped to numbers)
FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {name: i + 1 for i, name in enumerate(MONTHS)}),
    ("day of week", 0, 7, {name: i for i, name in enumerate(WEEKDAYS)}),
)
# the longest month of each number (February 29: a leap year exists)
MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_ITEM = re.compile(r"^(?P<base>\*|[0-9a-zA-Z]+(?:-[0-9a-zA-Z]+)?)(?:/(?P<step>[0-9]+))?$")


def _value(text: str, field: tuple) -> int:
    name, lo, hi, names = field
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ValueError(f"{name} '{text}' is not a number" + (f" or a name ({', '.join(names)})" if names else ""))
    value = int(text)
    if not lo <= value <= hi:
        raise ValueError(f"{name} {value} is outside {lo}-{hi}")
    return value


def _expand(text: str, field: tuple) -> set[int]:
    """The values of one field; ValueError naming the field and the item at fault."""
    name, lo, hi, _ = field
    values: set[int] = set()
    for item in text.split(","):
        m = _ITEM.match(item)
        if not m:
            raise ValueError(f"{name} item '{item}' is not '*', N, N-M or one of them with /STEP")
        base, step_text = m.group("base"), m.group("step")
        if base == "*":
            first, last = lo, hi
        elif "-" in base:
            start, end = base.split("-")
            first, last = _value(start, field), _value(end, field)
            if first >= last:
                raise ValueError(f"{name} range '{base}' must run upward (first below last)")
        else:
            first = last = _value(base, field)
            if step_text is not None:
                raise ValueError(f"{name} step '{item}' needs '*' or a range (write {base}-{hi}/{step_text})")
        step = 1
        if step_text is not None:
            step = int(step_text)
            width = last - first
            if not 1 <= step <= width:
                raise ValueError(f"{name} step {step} in '{item}' is outside 1-{width} (a larger step names one value)")
        values.update(range(first, last + 1, step))
    return values


def check_cron(expression: str) -> None:
    """Raise ValueError (saying which field is wrong and why) unless ``expression`` is a strict
    five-field cron expression that fires."""
    parts = expression.split()
    if len(parts) != 5:
        raise ValueError(f"has {len(parts)} fields, not 5 (minute hour day-of-month month day-of-week)")
    expanded = [_expand(part, field) for part, field in zip(parts, FIELDS)]
    days, months = expanded[2], expanded[3]
    if parts[2] != "*" and parts[4] == "*" and not any(d <= MONTH_DAYS[m - 1] for d in days for m in months):
        raise ValueError(f"day of month '{parts[2]}' never occurs in month '{parts[3]}', so it never fires")
