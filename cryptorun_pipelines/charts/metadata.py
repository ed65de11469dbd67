"""Dagster metadata entries built from the charts and tables: what the assets attach.

Charts decorate a materialisation; they never fail it. A rendering error becomes a ``chart_error``
text entry (and a warning in the run log) and the asset materialises as usual.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

import dagster as dg
import pandas as pd

from cryptorun_pipelines.charts.render import markdown_image
from cryptorun_pipelines.charts.tables import badge_table, plural

log = logging.getLogger(__name__)

EVALUATED_COLUMNS = ("score_rank", "symbol", "score", "decision", "primary_reason", "fresh", "depth_badge", "venue", "spread_bps",
                     "vadr", "vadr_min", "rank")
#: how the top_evaluated table heads its columns (``rank`` in the evaluated table is the universe's ADV rank)
EVALUATED_HEADERS = {"score_rank": "#", "rank": "ADV rank", "depth_badge": "depth"}
#: rows of the top_evaluated table
TOP_EVALUATED = 10
SIGNAL_COLUMNS = ("symbol", "score", "momentum_core", "vadr", "spread_bps", "depth_usd", "regime", "fresh", "depth_badge", "venue", "sources")
PREMOVE_COLUMNS = ("symbol", "venue", "premove_score", "state", "gates_passed", "execution_risk", "compression", "volume_build", "book_imbalance")
WARM_COLUMNS = SIGNAL_COLUMNS + ("cached", "ttl_remaining_s")


def _guard(what: str, build, logger=None) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        out = build()
    except Exception as exc:  # noqa: BLE001 - a chart must never fail the materialisation
        (logger or log).warning(f"could not render the {what}: {type(exc).__name__}: {exc}")
        return {"chart_error": dg.MetadataValue.text(f"{what}: {type(exc).__name__}: {exc}")}
    out["chart_render_ms"] = dg.MetadataValue.float(round((time.perf_counter() - start) * 1000.0, 1))
    return out


def regime_chart_metadata(
    artifacts_dir: str | Path, partitions_def, current: Mapping[str, Mapping[str, Any]], *, n: int | None = None, logger=None
) -> dict[str, Any]:
    """``regime_chart``: the indicators of the last cycles (see charts.regime), plus ``regime_history``
    (a table of the same cycles with badges) and ``chart_render_ms``."""
    from cryptorun_pipelines.charts.regime import HISTORY_CYCLES, recent_regimes, regime_chart_png

    def build() -> dict[str, Any]:
        history = recent_regimes(artifacts_dir, partitions_def, current, HISTORY_CYCLES if n is None else n)
        png = regime_chart_png(history)
        rows = pd.DataFrame(
            [
                {
                    "as_of": r.get("as_of"),
                    "regime": r.get("regime"),
                    "confidence": f"{float(r.get('confidence', float('nan'))):.2f}",
                    **{k: f"{float(v):.3g}" for k, v in (r.get("indicators") or {}).items()},
                    "votes": " / ".join(str(v)[:1].upper() for v in (r.get("votes") or {}).values()),
                }
                for r in reversed(history)
            ]
        )
        return {
            "regime_chart": dg.MetadataValue.md(
                markdown_image(png, "regime chart", f"{plural(len(history), 'cycle')}, newest right. Bands: SPEC §6 vote thresholds.",
                               title=f"Regime over the last {plural(len(history), 'cycle')}: now {history[-1].get('regime')}")
            ),
            "regime_history": dg.MetadataValue.md(
                badge_table(rows, ["as_of", "regime", "confidence", "realized_vol_7d", "pct_above_20ma", "breadth_thrust", "votes"], n=len(rows))
            ),
        }

    return _guard("regime chart", build, logger)


def hot_scan_chart_metadata(
    evaluated: pd.DataFrame | None, explain: Mapping[str, Any] | None, *, score_min: float | None = None, logger=None
) -> dict[str, Any]:
    """``score_chart`` (every evaluated symbol vs the score gate, entries highlighted),
    ``gate_rejections`` (chart of first / any failures per gate), ``top_evaluated`` (badge table)
    and ``chart_render_ms``."""
    from cryptorun_pipelines.charts.signals import gate_breakdown, gate_chart_png, score_chart_png

    def build() -> dict[str, Any]:
        ev = evaluated if evaluated is not None else pd.DataFrame(columns=["symbol", "score", "decision"])
        thr = score_min
        if thr is None:
            thr = float(((explain or {}).get("thresholds") or {}).get("score_min", 75.0))
        counts = (explain or {}).get("counts")
        breakdown = gate_breakdown(ev, counts if isinstance(counts, Mapping) else None)
        ranked = ev.sort_values(["score", "symbol"], ascending=[False, True], na_position="last") if "score" in ev.columns else ev
        ranked = ranked.assign(score_rank=range(1, len(ranked) + 1))
        entries = int((ev["decision"] == "entry").sum()) if "decision" in ev.columns else 0
        rejected = int(breakdown["first_failure"].sum())
        return {
            "score_chart": dg.MetadataValue.md(markdown_image(
                score_chart_png(ev, thr), "scores of every evaluated symbol",
                f"Green: entry, grey: rejected; dashed line: the score gate {thr:g}.",
                title=f"Scores of {plural(len(ev), 'evaluated symbol')}: {plural(entries, 'entry')}",
            )),
            "gate_rejections": dg.MetadataValue.md(markdown_image(
                gate_chart_png(breakdown), "gate rejection breakdown",
                "Per gate in SPEC §7 order: dark, the rejections it failed first (primary_reason); light, every symbol failing it.",
                title=f"Gate rejections: {plural(rejected, 'symbol')} rejected",
            )),
            "top_evaluated": dg.MetadataValue.md(top_evaluated_md(ranked)),
        }

    return _guard("hot scan charts", build, logger)


def top_evaluated_md(ranked: pd.DataFrame) -> str:
    """The :data:`TOP_EVALUATED` best-scored symbols of the cycle, with a line saying what the table
    is: ``#`` is the score rank, ``ADV rank`` the symbol's rank in the universe."""
    shown = min(TOP_EVALUATED, len(ranked))
    title = (f"**Top {shown} of {len(ranked)} evaluated symbols by score** "
             "(# = score rank, ADV rank = rank in the universe by dollar volume; explain.json lists every symbol)")
    table = badge_table(ranked, EVALUATED_COLUMNS, n=TOP_EVALUATED, headers=EVALUATED_HEADERS, more_note=False,
                        empty="_no symbol evaluated_")
    return f"{title}\n\n{table}"


def table_metadata(frame: pd.DataFrame | None, columns, n: int = 10, key: str = "top_rows") -> dict[str, Any]:
    """``{key}``: the first ``n`` rows of ``columns`` as a markdown table with badges."""
    return {key: dg.MetadataValue.md(badge_table(frame, columns, n=n))}
