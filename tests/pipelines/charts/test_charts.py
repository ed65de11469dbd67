"""Charts and badge tables attached to materialisations (cryptorun_pipelines.charts)."""

from __future__ import annotations

import base64
import json
import re
import struct

import dagster as dg
import pandas as pd

from cryptorun_core.timefmt import as_of_folder
from cryptorun_pipelines.charts import badge_table, hot_scan_chart_metadata, regime_chart_metadata
from cryptorun_pipelines.charts import render
from cryptorun_pipelines.charts.regime import previous_keys, recent_regimes, regime_chart_png
from cryptorun_pipelines.charts.signals import GATES, gate_breakdown, gate_chart_png, score_chart_png

REGIME_PDEF = dg.TimeWindowPartitionsDefinition(cron_schedule="0 */4 * * *", start="2026-11-01-00:00", fmt="%Y-%m-%d-%H:%M", timezone="UTC")
DATA_URI = re.compile(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", png[16:24])


def png_from_md(md: str) -> bytes:
    match = DATA_URI.search(md)
    assert match, f"no embedded PNG in {md[:80]!r}"
    return base64.b64decode(match.group(1))


def regime(key: str, label: str = "normal", vol: float = 0.6, pct: float = 55.0, thrust: float = 0.5) -> dict:
    end = REGIME_PDEF.time_window_for_partition_key(key).end
    return {
        "as_of": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "partition_key": key,
        "regime": label,
        "confidence": 0.6,
        "indicators": {"realized_vol_7d": vol, "pct_above_20ma": pct, "breadth_thrust": thrust},
        "votes": {"vol_vote": label, "ma_vote": label, "breadth_vote": label},
        "thresholds": {
            "realized_vol_7d": {"calm": 0.4, "volatile": 0.8},
            "pct_above_20ma": {"calm": 70.0, "volatile": 45.0},
            "breadth_thrust": {"calm": 0.6, "volatile": 0.4},
        },
    }


def evaluated_frame(n: int = 12) -> pd.DataFrame:
    rows = []
    for i in range(n):
        score = None if i == n - 1 else 90.0 - 5 * i
        passed = {g: True for g in GATES}
        if score is None:
            passed["history"] = False
        elif score < 75:
            passed["score"] = False
        if i == 1:
            passed["depth"] = False
        decision = "entry" if all(passed.values()) else "reject"
        first = next((g for g in GATES if not passed[g]), None)
        rows.append({
            "rank": i + 1, "symbol": f"S{i}/USD", "score": score, "decision": decision,
            "primary_reason": None if first is None else f"{first}_failed", "fresh": "●", "depth_badge": "✓",
            "venue": "kraken", "spread_bps": 3.0, "vadr": 1.9, **{f"gate_{g}": v for g, v in passed.items()},
        })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# regime history and chart
# ---------------------------------------------------------------------------------------------


def test_previous_keys_stop_at_the_partitions_start():
    assert previous_keys(REGIME_PDEF, "2026-11-01-08:00", 12) == ["2026-11-01-00:00", "2026-11-01-04:00"]
    assert previous_keys(REGIME_PDEF, "2026-11-20-08:00", 3) == ["2026-11-19-20:00", "2026-11-20-00:00", "2026-11-20-04:00"]


def test_recent_regimes_reads_previous_files_and_current_values(tmp_path):
    for key in ("2026-11-19-20:00", "2026-11-20-04:00"):  # 2026-11-20-00:00 was never materialised
        folder = tmp_path / as_of_folder(REGIME_PDEF.time_window_for_partition_key(key).end)
        folder.mkdir()
        (folder / "regime.json").write_text(json.dumps(regime(key, "calm")))
    unreadable = tmp_path / "2026-11-19T20-00-00Z"  # partition 2026-11-19-16:00: skipped too
    unreadable.mkdir()
    (unreadable / "regime.json").write_text("{not json")
    history = recent_regimes(tmp_path, REGIME_PDEF, {"2026-11-20-08:00": regime("2026-11-20-08:00", "volatile")}, n=4)
    assert [r["partition_key"] for r in history] == ["2026-11-19-20:00", "2026-11-20-04:00", "2026-11-20-08:00"]
    assert [r["regime"] for r in history] == ["calm", "calm", "volatile"]


def test_recent_regimes_of_a_backfill_prefers_the_values_in_memory(tmp_path):
    keys = ["2026-11-20-00:00", "2026-11-20-04:00", "2026-11-20-08:00"]
    folder = tmp_path / "2026-11-20T08-00-00Z"  # a stale file of 04:00 (a rerun replaces it)
    folder.mkdir()
    (folder / "regime.json").write_text(json.dumps(regime("2026-11-20-04:00", "calm")))
    current = {k: regime(k, "volatile") for k in keys}
    history = recent_regimes(tmp_path, REGIME_PDEF, current, n=12)
    assert [r["partition_key"] for r in history] == keys
    assert {r["regime"] for r in history} == {"volatile"}
    assert len(recent_regimes(tmp_path, REGIME_PDEF, current, n=1)) == 2  # the current one + 1 previous


def test_regime_chart_is_a_small_png_that_follows_its_data():
    history = [regime(k, label) for k, label in zip(previous_keys(REGIME_PDEF, "2026-11-20-08:00", 5) + ["2026-11-20-08:00"],
                                                      ["calm", "normal", "volatile", "normal", "calm", "volatile"])]
    renders = render.STATS.renders
    first = regime_chart_png(history)
    second = regime_chart_png(list(reversed(history)))
    assert png_size(first) == (640, 300) and png_size(second) == (640, 300)
    assert first != second
    assert first == regime_chart_png(history), "the same cycles draw the same picture"
    assert png_size(regime_chart_png(history[:1])) == (640, 300)  # a first cycle alone
    assert render.STATS.renders == renders + 4
    assert len(first) < 100_000


def test_regime_chart_skips_missing_indicator_values():
    history = [regime("2026-11-20-00:00"), regime("2026-11-20-04:00", vol=float("nan")), regime("2026-11-20-08:00", "calm")]
    assert png_size(regime_chart_png(history)) == (640, 300)


def test_chart_colours_land_in_the_image():
    from PIL import Image
    import io

    ev = evaluated_frame()
    img = Image.open(io.BytesIO(score_chart_png(ev, 75.0))).convert("RGB")
    colours = {c for _, c in img.getcolors(maxcolors=1 << 16)}
    assert render.rgb(render.ENTRY_COLOR) in colours and render.rgb(render.REJECT_COLOR) in colours


def test_nice_ticks_are_round_and_inside_the_range():
    assert render.nice_ticks(0.0, 100.0) == [0, 20, 40, 60, 80, 100]
    assert render.nice_ticks(0.25, 0.95, target=3) == [0.25, 0.5, 0.75]
    assert render.nice_ticks(1.0, 1.0) == [1.0]
    assert all(0.31 <= t <= 0.93 for t in render.nice_ticks(0.31, 0.93))


def test_regime_chart_metadata_embeds_the_png_and_a_history_table(tmp_path):
    out = regime_chart_metadata(tmp_path, REGIME_PDEF, {"2026-11-20-08:00": regime("2026-11-20-08:00", "volatile")})
    assert png_size(png_from_md(out["regime_chart"].value)) == (640, 300)
    assert "🔴 volatile" in out["regime_history"].value
    assert out["chart_render_ms"].value >= 0


def test_a_chart_that_fails_never_fails_the_materialisation(tmp_path):
    out = regime_chart_metadata(tmp_path, REGIME_PDEF, {})  # nothing to chart
    assert "chart_error" in out and "regime_chart" not in out


# ---------------------------------------------------------------------------------------------
# hot scan charts
# ---------------------------------------------------------------------------------------------


def test_gate_breakdown_from_flags_matches_explain_counts():
    ev = evaluated_frame()
    flags = gate_breakdown(ev)
    assert list(flags["gate"]) == list(GATES)
    by_gate = flags.set_index("gate")
    assert by_gate.loc["history", "first_failure"] == 1
    assert by_gate.loc["score", "first_failure"] == int((ev["score"] < 75).sum())
    assert by_gate.loc["depth", "any_failure"] == 1 and by_gate.loc["depth", "first_failure"] == 1  # S1 (score 85) fails only depth
    counts = {
        "rejections_first_failure": dict(zip(flags["gate"], flags["first_failure"])),
        "rejections_all_failures": dict(zip(flags["gate"], flags["any_failure"])),
    }
    pd.testing.assert_frame_equal(gate_breakdown(None, counts), flags, check_dtype=False)


def test_score_and_gate_charts_handle_missing_scores_and_empty_scans():
    ev = evaluated_frame()
    assert png_size(score_chart_png(ev, 75.0)) == (640, 300)
    assert png_size(score_chart_png(ev.iloc[0:0], 75.0)) == (640, 300)
    assert png_size(gate_chart_png(gate_breakdown(ev))) == (640, 300)
    assert png_size(gate_chart_png(gate_breakdown(ev.iloc[0:0]))) == (640, 300)


def test_hot_scan_chart_metadata_has_both_charts_and_a_badge_table():
    explain = {"thresholds": {"score_min": 80.0}}
    out = hot_scan_chart_metadata(evaluated_frame(), explain)
    for key in ("score_chart", "gate_rejections"):
        assert png_size(png_from_md(out[key].value)) == (640, 300)
    table = out["top_evaluated"].value
    assert table.splitlines()[0].startswith("| rank | symbol | score | decision |")
    assert "✅ entry" in table and "⛔ reject" in table and "● fresh" in table


# ---------------------------------------------------------------------------------------------
# badge tables
# ---------------------------------------------------------------------------------------------


def test_badge_table_formats_badges_numbers_and_overflow():
    frame = pd.DataFrame(
        {"symbol": ["A/USD", "B|X/USD", "C/USD"], "score": [80.04, 70.0, None], "regime": ["calm", "volatile", "normal"],
         "fresh": ["●", "○", "●"], "depth_usd": [150000.4, 2.0, 3.0], "state": ["PRIME", "QUIET", "WATCH"]}
    )
    md = badge_table(frame, ["symbol", "score", "regime", "fresh", "depth_usd", "state", "absent"], n=2)
    lines = md.splitlines()
    assert lines[0] == "| symbol | score | regime | fresh | depth_usd | state |"
    assert lines[2] == "| A/USD | 80.0 | 🟢 calm | ● fresh | $150,000 | 🔴 PRIME |"
    assert lines[3].startswith("| B\\|X/USD | 70.0 | 🔴 volatile | ○ stale |")
    assert "1 more rows" in md
    assert badge_table(frame.iloc[0:0], ["symbol"]) == "_no rows_"


# ---------------------------------------------------------------------------------------------
# on real materialisations
# ---------------------------------------------------------------------------------------------


def _latest_metadata(instance: dg.DagsterInstance, asset: str, partition: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    assert records, f"no materialisation of {asset} {partition}"
    return records[0].asset_materialization.metadata


def test_materialisations_carry_the_charts(materialized):

    meta = _latest_metadata(materialized.instance, "regime_weights", "2026-11-20-08:00")
    assert png_size(png_from_md(meta["regime_chart"].value)) == (640, 300)
    # the 08:00 chart found 04:00's regime.json on disk: two cycles
    assert meta["regime_history"].value.count("\n| 2026-11-20T") == 2
    hot = _latest_metadata(materialized.instance, "hot_signals", "2026-11-20-11:45")
    for key in ("score_chart", "gate_rejections"):
        assert png_size(png_from_md(hot[key].value)) == (640, 300)
    assert "| rank | symbol | score | decision |" in hot["top_evaluated"].value
    assert "chart_error" not in hot and "chart_error" not in meta
