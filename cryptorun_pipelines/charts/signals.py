"""Hot-scan charts: the score of every evaluated symbol against the score gate (entries
highlighted), and the gate-rejection breakdown (SPEC §7)."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from cryptorun_pipelines.charts.render import ENTRY_COLOR, NA_COLOR, REJECT_COLOR, chart, png_bytes, timed_render

#: SPEC §7 gate order.
GATES = ("history", "freshness", "score", "vadr", "spread", "depth", "fatigue")


def _build_scores(n: int):
    def build(fig) -> dict:
        ax = fig.add_axes((0.07, 0.27, 0.915, 0.63))
        x = list(range(n))
        bars = ax.bar(x, [0.0] * n, color=REJECT_COLOR, width=0.8)
        gate = ax.axhline(75.0, color="#c62828", lw=1.0, ls="--")
        gate_text = ax.text(n - 0.4, 76.5, "", color="#c62828", fontsize=7, ha="right")
        ax.set_ylim(0, 100)
        ax.set_xlim(-0.6, max(n, 1) - 0.4)
        ax.set_ylabel("score", fontsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels([""] * n, rotation=90, fontsize=6)
        ax.tick_params(axis="y", labelsize=6, length=2)
        ax.grid(axis="y", color="#eeeeee", lw=0.5)
        ax.set_axisbelow(True)
        title = ax.set_title("", fontsize=8)
        return {"ax": ax, "bars": list(bars), "gate": gate, "gate_text": gate_text, "title": title}

    return build


def score_chart_png(evaluated: pd.DataFrame, score_min: float = 75.0, title: str | None = None) -> bytes:
    """PNG (640x300): one bar per evaluated symbol, score descending; entries green, rejections grey,
    symbols with no score (e.g. too little history) as a light stub; the score gate as a red line."""
    cols = ["symbol", "score", "decision"]
    frame = evaluated[cols].copy() if len(evaluated) else pd.DataFrame(columns=cols)
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    frame = frame.sort_values(["score", "symbol"], ascending=[False, True], na_position="last")
    n = len(frame)
    with timed_render("scores"), chart("scores", n, _build_scores(n)) as (fig, a):
        for bar, score, decision in zip(a["bars"], frame["score"], frame["decision"]):
            bar.set_height(score if score == score else 2.0)
            bar.set_color(ENTRY_COLOR if decision == "entry" else (NA_COLOR if score != score else REJECT_COLOR))
        a["ax"].set_xticklabels([str(s).replace("/USD", "") for s in frame["symbol"]])
        a["gate"].set_ydata([score_min, score_min])
        a["gate_text"].set_y(score_min + 1.5)
        a["gate_text"].set_text(f"score gate {score_min:g}")
        entries = int((frame["decision"] == "entry").sum())
        a["title"].set_text(
            title or f"{n} evaluated, {entries} entr{'y' if entries == 1 else 'ies'} (green: entry, grey: rejected)"
        )
        return png_bytes(fig)


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


def _build_gates(gates: tuple[str, ...]):
    def build(fig) -> dict:
        ax = fig.add_axes((0.13, 0.14, 0.84, 0.74))
        y = list(range(len(gates)))[::-1]
        anyf = ax.barh(y, [0] * len(gates), color="#ffcdd2", height=0.75, label="failed (any)")
        first = ax.barh(y, [0] * len(gates), color="#c62828", height=0.45, label="first failure (primary_reason)")
        texts = [ax.text(0, yi, "", va="center", fontsize=7) for yi in y]
        ax.set_yticks(y)
        ax.set_yticklabels(gates, fontsize=7)
        ax.set_xlabel("symbols", fontsize=7)
        ax.tick_params(axis="x", labelsize=6, length=2)
        ax.legend(fontsize=7, loc="lower right", frameon=False)
        title = ax.set_title("", fontsize=8)
        return {"ax": ax, "any": list(anyf), "first": list(first), "texts": texts, "title": title}

    return build


def gate_chart_png(breakdown: pd.DataFrame, title: str | None = None) -> bytes:
    """PNG (640x300): horizontal bars per gate in SPEC §7 order — dark: rejections whose first
    failure was this gate (primary_reason), light: every symbol failing it."""
    gates = tuple(str(g) for g in breakdown["gate"])
    with timed_render("gates"), chart("gates", gates, _build_gates(gates)) as (fig, a):
        for bar_any, bar_first, text, first, anyf in zip(
            a["any"], a["first"], a["texts"], breakdown["first_failure"], breakdown["any_failure"]
        ):
            bar_any.set_width(int(anyf))
            bar_first.set_width(int(first))
            text.set_x(int(anyf))
            text.set_text(f" {int(first)}/{int(anyf)}" if anyf else "")
        top = int(breakdown["any_failure"].max()) if len(breakdown) else 0
        a["ax"].set_xlim(0, max(1, top) * 1.15)
        rejected = int(breakdown["first_failure"].sum())
        a["title"].set_text(title or f"gate rejections: {rejected} rejected (first failure / any failure per gate)")
        return png_bytes(fig)
