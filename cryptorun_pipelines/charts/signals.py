"""Hot-scan charts: the score of every evaluated symbol against the score gate (entries
highlighted), and the gate-rejection breakdown (SPEC §7)."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from cryptorun_pipelines.charts.render import (
    ENTRY_COLOR, GRID_COLOR, LABEL_PX, NA_COLOR, REJECT_COLOR, TICK_PX, TITLE_PX, Canvas, Frame, nice_ticks, timed_render,
)

#: SPEC §7 gate order.
GATES = ("history", "freshness", "score", "vadr", "spread", "depth", "fatigue")
GATE_COLOR = "#c62828"
ANY_FAILURE_COLOR, FIRST_FAILURE_COLOR = "#ffcdd2", "#c62828"


def score_chart_png(evaluated: pd.DataFrame, score_min: float = 75.0, title: str | None = None) -> bytes:
    """PNG (640x300): one bar per evaluated symbol, score descending; entries green, rejections grey,
    symbols with no score (e.g. too little history) as a light stub; the score gate as a red line."""
    cols = ["symbol", "score", "decision"]
    frame = evaluated[cols].copy() if len(evaluated) else pd.DataFrame(columns=cols)
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    frame = frame.sort_values(["score", "symbol"], ascending=[False, True], na_position="last")
    n = len(frame)
    entries = int((frame["decision"] == "entry").sum())
    with timed_render("scores"):
        canvas = Canvas()
        # the plot box leaves room for the upright symbol names below it
        plot = Frame(48, 24, 632, 212, xlim=(-0.6, max(n, 1) - 0.4), ylim=(0.0, 100.0))
        canvas.yticks(plot, nice_ticks(0.0, 100.0), grid=GRID_COLOR)
        half = 0.4
        for i, (score, decision) in enumerate(zip(frame["score"], frame["decision"])):
            height = score if score == score else 2.0
            colour = ENTRY_COLOR if decision == "entry" else (NA_COLOR if score != score else REJECT_COLOR)
            top = plot.clip_y(plot.y(min(max(height, 0.0), 100.0)))
            canvas.rect(plot.x(i - half), top, plot.x(i + half), plot.bottom, colour)
        gate_y = plot.y(score_min)
        if plot.top <= gate_y <= plot.bottom:
            canvas.dashed(plot.left, gate_y, plot.right, gate_y, GATE_COLOR)
            canvas.text(plot.x(n - 0.4) - 2, plot.clip_y(plot.y(score_min + 1.5)), f"score gate {score_min:g}", TICK_PX,
                        GATE_COLOR, anchor="rd")
        canvas.box(plot)
        canvas.xticks(plot, list(range(n)), [str(s).replace("/USD", "") for s in frame["symbol"]], vertical=True)
        canvas.text_vertical(12, (plot.top + plot.bottom) / 2, "score", LABEL_PX, anchor="lm")
        canvas.text((plot.left + plot.right) / 2, 6, title or (
            f"{n} evaluated, {entries} entr{'y' if entries == 1 else 'ies'} (green: entry, grey: rejected)"
        ), TITLE_PX, anchor="ma")
        return canvas.png()


def gate_breakdown(evaluated: pd.DataFrame | None = None, counts: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Per gate: rejections where it was the first failure and where it failed at all.

    From explain.json ``counts`` when given (``rejections_first_failure`` / ``rejections_all_failures``),
    else from the evaluated table's ``gate_*`` flags and ``primary_reason``."""
    if counts and "rejections_first_failure" in counts:
        first = counts.get("rejections_first_failure") or {}
        every = counts.get("rejections_all_failures") or {}
        rows = [(g, int(first.get(g, 0)), int(every.get(g, 0))) for g in GATES]
    else:
        ev = evaluated if evaluated is not None else pd.DataFrame()
        rows = []
        for g in GATES:
            col = f"gate_{g}"
            if col not in ev.columns:
                rows.append((g, 0, 0))
                continue
            failed = ~ev[col].astype(bool)
            # first failure: this gate failed and every gate before it passed
            before = [f"gate_{b}" for b in GATES[: GATES.index(g)] if f"gate_{b}" in ev.columns]
            first = failed & (ev[before].astype(bool).all(axis=1) if before else True)
            rows.append((g, int(first.sum()), int(failed.sum())))
    return pd.DataFrame(rows, columns=["gate", "first_failure", "any_failure"])


def gate_chart_png(breakdown: pd.DataFrame, title: str | None = None) -> bytes:
    """PNG (640x300): horizontal bars per gate in SPEC §7 order — dark: rejections whose first
    failure was this gate (primary_reason), light: every symbol failing it."""
    gates = [str(g) for g in breakdown["gate"]]
    firsts = [int(v) for v in breakdown["first_failure"]]
    anys = [int(v) for v in breakdown["any_failure"]]
    top = max(anys, default=0)
    rejected = sum(firsts)
    with timed_render("gates"):
        canvas = Canvas()
        n = len(gates)
        plot = Frame(84, 24, 622, 252, xlim=(0.0, max(1, top) * 1.15), ylim=(-0.5, max(n, 1) - 0.5))
        canvas.xticks(plot, [t for t in nice_ticks(0.0, plot.xlim[1]) if t == int(t)])
        for i, (gate, first, anyf) in enumerate(zip(gates, firsts, anys)):
            y = n - 1 - i  # first gate on top
            if anyf:
                canvas.rect(plot.left, plot.y(y + 0.375), plot.x(anyf), plot.y(y - 0.375), ANY_FAILURE_COLOR)
            if first:
                canvas.rect(plot.left, plot.y(y + 0.225), plot.x(first), plot.y(y - 0.225), FIRST_FAILURE_COLOR)
            if anyf:
                canvas.text(plot.x(anyf) + 3, plot.y(y), f"{first}/{anyf}", TICK_PX, anchor="lm")
        canvas.yticks(plot, [n - 1 - i for i in range(n)], gates, LABEL_PX)
        canvas.box(plot)
        canvas.legend(plot.right - 4, plot.bottom - 4, [(ANY_FAILURE_COLOR, "failed (any)"),
                                                          (FIRST_FAILURE_COLOR, "first failure (primary_reason)")])
        canvas.text((plot.left + plot.right) / 2, plot.bottom + 18, "symbols", LABEL_PX, anchor="ma")
        canvas.text((plot.left + plot.right) / 2, 6,
                    title or f"gate rejections: {rejected} rejected (first failure / any failure per gate)", TITLE_PX, anchor="ma")
        return canvas.png()
