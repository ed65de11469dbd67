"""Signal-evaluation chart: mean forward return of entries and rejects (and score-gate passes and
failures) per horizon. Uses data after T: it describes the evaluation, never a signal."""

from __future__ import annotations

import pandas as pd

from cryptorun_pipelines.charts.render import (
    ENTRY_COLOR,
    GRID_COLOR,
    LABEL_PX,
    REJECT_COLOR,
    TICK_PX,
    TITLE_PX,
    Canvas,
    Frame,
    nice_ticks,
    timed_render,
)

PASS_COLOR, FAIL_COLOR = "#81c784", "#bdbdbd"
SERIES = (("decision", "entry", ENTRY_COLOR, "entries"), ("decision", "reject", REJECT_COLOR, "rejects"),
          ("score_gate", "pass", PASS_COLOR, "score gate passed"), ("score_gate", "fail", FAIL_COLOR, "score gate failed"))


def evaluation_chart_png(summary: pd.DataFrame, title: str | None = None) -> bytes:
    """PNG (640x300): per horizon, one bar per series (entries, rejects, score gate passed / failed) of
    the mean forward return in %, labelled with its count; a missing series leaves a gap."""
    horizons = list(dict.fromkeys(summary["horizon"])) if len(summary) else ["1h", "4h", "24h"]
    values: dict[tuple[str, str], tuple[float, int]] = {}
    for r in summary.itertuples(index=False):
        if r.grouping in ("decision", "score_gate") and r.mean is not None and r.mean == r.mean:
            values[(f"{r.grouping}:{r.group}", r.horizon)] = (100.0 * float(r.mean), int(r.count))
    means = [v[0] for v in values.values()] or [0.0]
    lo, hi = min(0.0, min(means)), max(0.0, max(means))
    pad = (hi - lo) * 0.15 or 1.0
    with timed_render("evaluation"):
        canvas = Canvas()
        plot = Frame(56, 28, 500, 262, xlim=(-0.5, len(horizons) - 0.5), ylim=(lo - pad, hi + pad))
        canvas.yticks(plot, nice_ticks(lo - pad, hi + pad), grid=GRID_COLOR)
        width = 0.8 / len(SERIES)
        for i, h in enumerate(horizons):
            for j, (grouping, group, colour, _label) in enumerate(SERIES):
                hit = values.get((f"{grouping}:{group}", h))
                if hit is None:
                    continue
                x0 = i - 0.4 + j * width
                canvas.rect(plot.x(x0), plot.y(max(hit[0], 0.0)), plot.x(x0 + width * 0.9), plot.y(min(hit[0], 0.0)), colour)
                canvas.text(plot.x(x0 + width * 0.45), plot.clip_y(plot.y(max(hit[0], 0.0)) - 2), f"n={hit[1]}", TICK_PX, anchor="md")
        canvas.dashed(plot.left, plot.y(0.0), plot.right, plot.y(0.0), "#616161")
        canvas.box(plot)
        canvas.xticks(plot, list(range(len(horizons))), [f"+{h}" for h in horizons])
        canvas.text_vertical(12, (plot.top + plot.bottom) / 2, "mean forward return %", LABEL_PX, anchor="lm")
        canvas.legend(636, plot.top + 4 * 19, [(c, label) for _, _, c, label in SERIES])
        canvas.text((plot.left + plot.right) / 2, 6, title or "forward returns after T (uses data after T)", TITLE_PX, anchor="ma")
        return canvas.png()
