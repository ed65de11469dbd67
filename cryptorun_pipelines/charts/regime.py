"""The regime chart: the three SPEC §6 indicators over the recent cycles, their vote bands shaded,
and the regime label of each cycle.

Recent cycles = the ``regime.json`` files of the previous ``n`` regime partitions found in
``artifacts_dir`` (missing ones are skipped), plus the current cycle(s) passed in memory (a
single-run backfill has not written its own files yet when the chart is drawn).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

from cryptorun_pipelines.charts.render import (
    GRID_COLOR, LABEL_PX, REGIME_COLORS, TITLE_PX, Canvas, Frame, nice_ticks, rgb, timed_render,
)
from cryptorun_pipelines.partitions import as_of_for_key, parse_key

#: How many previous regime partitions the chart looks back (4h cadence: 12 = two days).
HISTORY_CYCLES = 12

INDICATOR_LABELS = {
    "realized_vol_7d": "realized vol 7d",
    "pct_above_20ma": "% above 20MA",
    "breadth_thrust": "breadth thrust",
}
UNKNOWN_COLOR, THRESHOLD_COLOR, LINE_COLOR = "#bdbdbd", "#616161", "#424242"
#: SPEC §6 defaults, used when a regime.json has no thresholds block.
DEFAULT_THRESHOLDS = {
    "realized_vol_7d": {"calm": 0.40, "volatile": 0.80},
    "pct_above_20ma": {"calm": 70.0, "volatile": 45.0},
    "breadth_thrust": {"calm": 0.60, "volatile": 0.40},
}


def previous_keys(partitions_def, current_key: str, n: int) -> list[str]:
    """Up to ``n`` partition keys before ``current_key`` (never before the partitions' start), oldest first."""
    window = partitions_def.time_window_for_partition_key(current_key)
    step = window.end - window.start
    first = partitions_def.start
    keys: list[str] = []
    for i in range(1, n + 1):
        start = window.start - i * step
        if start < first:
            break
        keys.append(start.strftime(partitions_def.fmt))
    return keys[::-1]


def recent_regimes(
    artifacts_dir: str | Path,
    partitions_def,
    current: Mapping[str, Mapping[str, Any]],
    n: int = HISTORY_CYCLES,
) -> list[dict]:
    """The current cycle and the ``n`` regime partitions before it, oldest first.

    ``current`` maps partition key → regime.json dict computed in this step (several in a
    single-run backfill); the current cycle is its latest key. A previous partition is taken from
    ``current`` when this step computed it, else from ``{artifacts_dir}/{as_of}/regime.json``, and
    skipped when neither has it (never materialised, or a dry run).
    """
    from cryptorun_core.timefmt import as_of_folder

    if not current:
        return []
    latest = max(current, key=parse_key)  # (a backfill's thousands of keys: Dagster's window lookup walks the cron)
    root = Path(artifacts_dir)
    out: list[dict] = []
    for key in previous_keys(partitions_def, latest, n):
        if key in current:
            out.append(dict(current[key]))
            continue
        path = root / as_of_folder(as_of_for_key(partitions_def, key)) / "regime.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "indicators" in data:
            out.append(data)
    out.append(dict(current[latest]))
    return out


def _cycle_label(regime: Mapping[str, Any]) -> str:
    raw = str(regime.get("as_of") or regime.get("timestamp") or "")
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return t.strftime("%m-%d\n%H:%M")
    except ValueError:
        return raw[-9:]


def _thresholds(history: Sequence[Mapping[str, Any]]) -> tuple:
    thr = history[-1].get("thresholds") or {}
    return tuple(
        (name, float((thr.get(name) or DEFAULT_THRESHOLDS[name])["calm"]), float((thr.get(name) or DEFAULT_THRESHOLDS[name])["volatile"]))
        for name in INDICATOR_LABELS
    )


def _panel_frames(rows: int, left: float, right: float, top: float, bottom: float, strip_ratio: float, gap: float) -> list[Frame]:
    """Pixel boxes of the label strip and the ``rows`` indicator panels, stacked top to bottom."""
    unit = (bottom - top - gap * rows) / (strip_ratio + rows)
    frames = [Frame(left, top, right, top + unit * strip_ratio)]
    y = frames[0].bottom
    for _ in range(rows):
        frames.append(Frame(left, y + gap, right, y + gap + unit))
        y = frames[-1].bottom
    return frames


def regime_chart_png(history: Sequence[Mapping[str, Any]]) -> bytes:
    """PNG (640x300) of the indicators over ``history`` (oldest first): one panel per indicator
    with the calm vote band shaded green and the volatile band red (thresholds of the newest
    cycle), points coloured by the cycle's regime label, and a label strip on top (C / N / V)."""
    if not history:
        raise ValueError("no regime cycles to chart")
    n = len(history)
    thresholds = _thresholds(history)
    labels = [str(r.get("regime")) for r in history]
    colors = [REGIME_COLORS.get(lb, UNKNOWN_COLOR) for lb in labels]
    last = history[-1]
    with timed_render("regime"):
        canvas = Canvas()
        xlim = (-0.5, n - 0.5)
        strip, *panels = _panel_frames(len(thresholds), 112, 630, 24, 262, strip_ratio=0.35, gap=7)
        strip.xlim = xlim
        canvas.text(
            (strip.left + strip.right) / 2, 6,
            f"regime over the last {n} cycle{'s' if n != 1 else ''}: now {last.get('regime')} "
            f"(confidence {float(last.get('confidence', float('nan'))):.2f}); green / red bands = calm / volatile votes",
            TITLE_PX, anchor="ma",
        )
        for i, (label, colour) in enumerate(zip(labels, colors)):
            canvas.rect(strip.x(i - 0.5), strip.top, strip.x(i + 0.5), strip.bottom, rgb(colour, 0.85))
            canvas.text(strip.x(i), (strip.top + strip.bottom) / 2, label[:1].upper(), LABEL_PX, "#ffffff", anchor="mm")
        canvas.box(strip)
        canvas.text(strip.left - 8, (strip.top + strip.bottom) / 2, "regime", LABEL_PX, anchor="rm")
        step = max(1, (n + 7) // 8)
        ticks = list(range(0, n, step))
        for row, (frame, (name, calm, volatile)) in enumerate(zip(panels, thresholds), start=1):
            values = [float((r.get("indicators") or {}).get(name, float("nan"))) for r in history]
            finite = [v for v in values if v == v] + [calm, volatile]
            lo, hi = min(finite), max(finite)
            pad = (hi - lo) * 0.15 or 0.1
            frame.xlim, frame.ylim = xlim, (lo - pad, hi + pad)
            _bands(canvas, frame, calm, volatile)
            for level in (calm, volatile):
                canvas.dashed(frame.left, frame.y(level), frame.right, frame.y(level), THRESHOLD_COLOR)
            canvas.xticks(frame, ticks, [_cycle_label(history[i]) for i in ticks], grid=GRID_COLOR,
                          show_labels=row == len(thresholds))
            _polyline(canvas, frame, values)
            for i, (value, colour) in enumerate(zip(values, colors)):
                if value == value:
                    canvas.dot(frame.x(i), frame.y(value), 2.5, colour)
            widest = canvas.yticks(frame, nice_ticks(*frame.ylim, target=3))
            canvas.box(frame)
            canvas.text(frame.left - widest - 10, (frame.top + frame.bottom) / 2, INDICATOR_LABELS[name], LABEL_PX, anchor="rm")
        return canvas.png()


def _bands(canvas: Canvas, frame: Frame, calm: float, volatile: float) -> None:
    """The calm (green) and volatile (red) vote bands of one indicator, clipped to its panel."""
    if calm < volatile:  # low values are calm (realized vol)
        spans = ((frame.ylim[0], calm, "calm"), (volatile, frame.ylim[1], "volatile"))
    else:  # high values are calm (% above 20MA, breadth thrust)
        spans = ((calm, frame.ylim[1], "calm"), (frame.ylim[0], volatile, "volatile"))
    for lo, hi, label in spans:
        if hi > lo:
            canvas.rect(frame.left, frame.clip_y(frame.y(hi)), frame.right, frame.clip_y(frame.y(lo)), rgb(REGIME_COLORS[label], 0.12))


def _polyline(canvas: Canvas, frame: Frame, values: Sequence[float]) -> None:
    """The indicator's line, broken where a cycle has no value."""
    run: list[tuple[float, float]] = []
    for i, value in enumerate(list(values) + [float("nan")]):
        if value == value:
            run.append((frame.x(i), frame.y(value)))
        else:
            canvas.line(run, LINE_COLOR)
            run = []
