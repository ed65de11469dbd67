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

from cryptorun_pipelines.charts.render import REGIME_COLORS, chart, png_bytes, timed_render

#: How many previous regime partitions the chart looks back (4h cadence: 12 = two days).
HISTORY_CYCLES = 12

INDICATOR_LABELS = {
    "realized_vol_7d": "realized vol 7d",
    "pct_above_20ma": "% above 20MA",
    "breadth_thrust": "breadth thrust",
}
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
    from cryptorun_core.artifacts import as_of_folder

    if not current:
        return []
    latest = max(current, key=lambda k: partitions_def.time_window_for_partition_key(k).start)
    root = Path(artifacts_dir)
    out: list[dict] = []
    for key in previous_keys(partitions_def, latest, n):
        if key in current:
            out.append(dict(current[key]))
            continue
        end = partitions_def.time_window_for_partition_key(key).end
        path = root / as_of_folder(end) / "regime.json"
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


def _build_regime(n: int, thresholds: tuple):
    def build(fig) -> dict:
        x = list(range(n))
        grid = fig.add_gridspec(4, 1, height_ratios=[0.35, 1, 1, 1], hspace=0.12, left=0.14, right=0.985, top=0.92, bottom=0.13)
        strip = fig.add_subplot(grid[0])
        cells = [strip.axvspan(i - 0.5, i + 0.5, color="#bdbdbd", alpha=0.85, lw=0) for i in x]
        letters = [strip.text(i, 0.5, "", ha="center", va="center", color="white", fontsize=7, fontweight="bold") for i in x]
        strip.set_xlim(-0.5, n - 0.5)
        strip.set_ylim(0, 1)
        strip.set_yticks([])
        strip.tick_params(bottom=False, labelbottom=False)
        strip.set_ylabel("regime", fontsize=7, rotation=0, ha="right", va="center")
        title = strip.set_title("", fontsize=8)
        panels = []
        for row, (name, calm, volatile) in enumerate(thresholds, start=1):
            ax = fig.add_subplot(grid[row], sharex=strip)
            big = 1e9
            if calm < volatile:  # low values are calm (realized vol)
                ax.axhspan(-big, calm, color=REGIME_COLORS["calm"], alpha=0.12, lw=0)
                ax.axhspan(volatile, big, color=REGIME_COLORS["volatile"], alpha=0.12, lw=0)
            else:  # high values are calm (% above 20MA, breadth thrust)
                ax.axhspan(calm, big, color=REGIME_COLORS["calm"], alpha=0.12, lw=0)
                ax.axhspan(-big, volatile, color=REGIME_COLORS["volatile"], alpha=0.12, lw=0)
            for level in (calm, volatile):
                ax.axhline(level, color="#616161", lw=0.6, ls="--")
            (line,) = ax.plot(x, [0.0] * n, color="#424242", lw=1.0, zorder=2)
            dots = ax.scatter(x, [0.0] * n, s=14, zorder=3)
            ax.set_ylabel(INDICATOR_LABELS[name], fontsize=7, rotation=0, ha="right", va="center")
            ax.tick_params(labelsize=6, length=2)
            ax.tick_params(axis="x", labelbottom=row == len(thresholds))
            ax.grid(axis="x", color="#eeeeee", lw=0.5)
            panels.append({"ax": ax, "line": line, "dots": dots, "name": name, "calm": calm, "volatile": volatile})
        step = max(1, (n + 7) // 8)
        ticks = x[::step]
        panels[-1]["ax"].set_xticks(ticks)
        panels[-1]["ax"].set_xticklabels([""] * len(ticks), fontsize=6)
        return {"cells": cells, "letters": letters, "title": title, "panels": panels, "ticks": ticks}

    return build


def regime_chart_png(history: Sequence[Mapping[str, Any]]) -> bytes:
    """PNG (640x300) of the indicators over ``history`` (oldest first): one panel per indicator
    with the calm vote band shaded green and the volatile band red (thresholds of the newest
    cycle), points coloured by the cycle's regime label, and a label strip on top (C / N / V)."""
    if not history:
        raise ValueError("no regime cycles to chart")
    n = len(history)
    thresholds = _thresholds(history)
    labels = [str(r.get("regime")) for r in history]
    colors = [REGIME_COLORS.get(lb, "#bdbdbd") for lb in labels]
    with timed_render("regime"), chart("regime", (n, thresholds), _build_regime(n, thresholds)) as (fig, a):
        for cell, letter, label, color in zip(a["cells"], a["letters"], labels, colors):
            cell.set_color(color)
            letter.set_text(label[:1].upper())
        last = history[-1]
        a["title"].set_text(
            f"regime over the last {n} cycle{'s' if n != 1 else ''}: now {last.get('regime')} "
            f"(confidence {float(last.get('confidence', float('nan'))):.2f}); green / red bands = calm / volatile votes"
        )
        for p in a["panels"]:
            values = [float((r.get("indicators") or {}).get(p["name"], float("nan"))) for r in history]
            p["line"].set_ydata(values)
            p["dots"].set_offsets(list(zip(range(n), values)))
            p["dots"].set_facecolor(colors)
            finite = [v for v in values if v == v] + [p["calm"], p["volatile"]]
            lo, hi = min(finite), max(finite)
            pad = (hi - lo) * 0.15 or 0.1
            p["ax"].set_ylim(lo - pad, hi + pad)
        a["panels"][-1]["ax"].set_xticklabels([_cycle_label(history[i]) for i in a["ticks"]])
        return png_bytes(fig)
