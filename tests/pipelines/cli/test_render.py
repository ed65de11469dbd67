"""In-process tests of the CLI's renderers, header, argument parsing and partition resolution."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cryptorun_core.config import load_config
from cryptorun_pipelines.cli.commands.schedule_list import render_list, schedule_words
from cryptorun_pipelines.cli.commands.schedule_run import ArtifactFile, RunOutcome, render_summary, render_top, top_rows
from cryptorun_pipelines.cli.commands.schedule_status import render_status
from cryptorun_pipelines.cli.dagster_state import ScheduleState
from cryptorun_pipelines.cli.errors import UsageError
from cryptorun_pipelines.cli.header import build_header, render_header
from cryptorun_pipelines.cli.main import build_parser
from cryptorun_pipelines.cli.progress import Progress, StepEvent, format_event
from cryptorun_pipelines.cli.render import (
    PLAIN,
    Column,
    Style,
    badges,
    colour_enabled,
    display_width,
    strip_ansi,
    table,
    truncate,
)
from cryptorun_pipelines.cli.timing import parse_time, resolve_partition

UTC = timezone.utc
COLOUR = Style(True)
LONG = "Top-30 USD pairs by ADV; momentum + premove with regime weights; strict gates, and then some more words."


def fits(lines: list[str], width: int = 80) -> bool:
    return all(display_width(line) <= width for line in lines)


def no_ansi(lines: list[str]) -> bool:
    return all("\x1b" not in line for line in lines)


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


# -- colour policy ---------------------------------------------------------------------------


def test_colour_only_on_a_terminal_without_no_color() -> None:
    assert colour_enabled(FakeTTY(), environ={}) is True
    assert colour_enabled(io.StringIO(), environ={}) is False
    assert colour_enabled(FakeTTY(), environ={"NO_COLOR": "1"}) is False
    assert colour_enabled(FakeTTY(), environ={"NO_COLOR": ""}) is False  # set, even empty
    assert colour_enabled(FakeTTY(), environ={"TERM": "dumb"}) is False
    assert PLAIN("x", "red") == "x"
    assert COLOUR("x", "red") == "\x1b[31mx\x1b[0m"
    assert strip_ansi(COLOUR("x", "red", "bold")) == "x"


# -- tables ----------------------------------------------------------------------------------


def test_table_fits_80_columns_and_truncates_or_wraps_flex_column() -> None:
    cols = [Column("NAME"), Column("TEXT", flex=True), Column("WHEN")]
    rows = [["scan.hot", LONG, "11-27 10:45Z"], ["regime.refresh", "short", "11-27 12:00Z"]]
    lines = table(cols, rows)
    assert fits(lines) and no_ansi(lines)
    assert lines[1].endswith("11-27 10:45Z") and "…" in lines[1]
    wrapped = table([Column("NAME"), Column("TEXT", flex=True, wrap=True), Column("WHEN")], rows)
    assert fits(wrapped) and len(wrapped) > 3
    assert "…" not in "".join(wrapped) and "momentum" in "".join(wrapped)  # wrapped, nothing cut
    coloured = table(cols, rows, style=COLOUR, stylers=[lambda t: COLOUR(t, "cyan"), None, None])
    assert fits(coloured)  # escape codes take no columns
    assert [strip_ansi(line) for line in coloured] == lines


def test_truncate_counts_display_columns() -> None:
    assert truncate("abcdef", 4) == "abc…"
    assert truncate("abc", 4) == "abc"
    assert display_width("[Fresh ●] [Depth ✓]") == 19


def test_badges() -> None:
    row = {"fresh": "●", "depth_badge": "✗", "venue": "kraken", "sources": 3}
    assert badges(row) == "[Fresh ●] [Depth ✗] [Venue kraken] [Sources 3]"
    assert strip_ansi(badges(row, COLOUR)) == badges(row)
    assert badges({"fresh": False, "depth_badge": True, "venue": None, "sources": 1.0}) == "[Fresh ○] [Depth ✓] [Venue -] [Sources 1]"
    assert badges(row, form="short") == "● fresh ✗ depth kraken 3 src"
    assert badges(row, form="tight") == "● ✗ kraken 3"


# -- list / status -----------------------------------------------------------------------------


def _job_rows() -> list[dict]:
    return [
        {"name": "scan.hot", "schedule": "*/15 * * * *", "status": schedule_words(True, ScheduleState("scan_hot_schedule", "running", "instance"), True)[0],
         "ticking": True, "description": LONG, "next_tick": "2026-11-27T10:45:00+00:00"},
        {"name": "regime.refresh", "schedule": "0 */4 * * *", "status": schedule_words(False, None, True)[0],
         "ticking": False, "description": "Regime.", "next_tick": None},
    ]


@pytest.mark.parametrize("style", [PLAIN, COLOUR])
def test_render_list_fits(style: Style) -> None:
    lines = render_list(_job_rows(), style)
    assert fits(lines)
    assert no_ansi(lines) == (style is PLAIN)
    plain = [strip_ansi(line) for line in lines]
    assert plain[0].split() == ["JOB", "NAME", "SCHEDULE", "STATUS", "DESCRIPTION", "NEXT", "TICK"]
    assert plain[1].startswith("scan.hot") and "enabled · running" in plain[1] and plain[1].endswith("11-27 10:45Z")
    assert any(line.startswith("regime.refresh") and "disabled" in line for line in plain)


def test_render_status_fits() -> None:
    rows = [
        {"name": "scan.hot", "status": "enabled · running", "ticking": True, "next_tick": "2026-11-27T10:45:00+00:00",
         "last_run": {"status": "SUCCESS", "partition": "2026-11-27-10:15", "duration_s": 4.2,
                      "started_at": "2026-11-27T10:30:05+00:00", "created_at": None, "dry_run": False},
         "latest_artifacts": "/very/long/" + "x" * 100 + "/2026-11-27T10-30-00Z"},
        {"name": "scan.warm", "status": "enabled · stopped", "ticking": False, "next_tick": None, "last_run": None, "latest_artifacts": None},
    ]
    now = datetime(2026, 11, 27, 10, 40, tzinfo=UTC)
    for style in (PLAIN, COLOUR):
        lines = render_status(rows, style, now=now)
        assert fits(lines)
    lines = render_status(rows, PLAIN, now=now)
    assert no_ansi(lines)
    assert "last run   SUCCESS  partition 2026-11-27-10:15  took 4.2s  9m55s ago" in lines[1]
    assert lines[4] == "  last run   none yet"


# -- header ------------------------------------------------------------------------------------


def _write(folder: Path, name: str, payload: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(payload))


def test_header_no_data(tmp_path: Path) -> None:
    header = build_header(tmp_path, ("kraken", "okx", "coinbase"))
    assert not header.has_data
    lines = render_header(header)
    assert len(lines) == 1 and "no data yet" in lines[0] and fits(lines)


def test_header_from_newest_artifacts(tmp_path: Path) -> None:
    _write(tmp_path / "2026-11-27T04-00-00Z", "regime.json", {"regime": "volatile", "confidence": 0.1, "as_of": "2026-11-27T04:00:00Z"})
    _write(tmp_path / "2026-11-27T08-00-00Z", "regime.json", {"regime": "normal", "confidence": 0.62, "as_of": "2026-11-27T08:00:00Z"})
    _write(tmp_path / "2026-11-27T10-30-00Z", "explain.json", {
        "as_of": "2026-11-27T10:30:00Z", "source": "ccxt",
        "venue_health": {
            "kraken": {"status": "ok", "last_latency_ms": 120.4, "avg_latency_ms": 110.0},
            "okx": {"status": "degraded", "last_latency_ms": 340.0, "avg_latency_ms": 300.0},
            "coinbase": {"status": "down", "last_latency_ms": None, "avg_latency_ms": 0.0},
        },
        "symbols": [{"symbol": "BTC/USD", "sources": 2}, {"symbol": "ETH/USD", "sources": 1}],
    })
    (tmp_path / ".pipeline" / "2026-11-28T00-00-00Z").mkdir(parents=True)  # not an as_of folder
    header = build_header(tmp_path, ("kraken", "okx", "coinbase"))
    assert (header.regime, header.confidence) == ("normal", 0.62)
    assert [(v.venue, v.status) for v in header.venues] == [("kraken", "ok"), ("okx", "degraded"), ("coinbase", "down")]
    assert header.sources == 2
    assert header.avg_latency_ms == pytest.approx((110 + 300) / 2)  # the down venue does not count
    lines = render_header(header)
    assert fits(lines) and no_ansi(lines)
    assert lines[0].startswith("Regime normal (confidence 0.62) as of 2026-11-27 08:00Z")
    assert "kraken ok 120ms" in lines[1] and "okx degraded 340ms" in lines[1] and "coinbase down" in lines[1]
    assert lines[2] == "     avg 205ms · sources 2/3"  # too long for one line: split, nothing cut
    coloured = render_header(header, COLOUR)
    assert fits(coloured) and [strip_ansi(line) for line in coloured] == lines


def test_header_offline_source(tmp_path: Path) -> None:
    _write(tmp_path / "2026-11-27T10-30-00Z", "explain.json", {
        "as_of": "2026-11-27T10:30:00Z", "source": "simulated", "venue_health": {},
        "regime": {"label": "calm", "confidence": 0.7, "as_of": "2026-11-27T08:00:00Z"},
        "symbols": [{"symbol": "BTC/USD", "sources": 3}],
    })
    header = build_header(tmp_path, ("kraken", "okx", "coinbase"))
    assert header.regime == "calm"  # no regime.json: the regime the scan used
    lines = render_header(header)
    assert "kraken ok · okx ok · coinbase ok" in lines[1] and "sources 3/3 (simulated)" in lines[1]


# -- run summary ---------------------------------------------------------------------------------


def _explain() -> dict:
    def sym(name: str, score: float, decision: str, reason: str | None, venue: str = "coinbase") -> dict:
        gates = [{"gate": "score", "passed": decision == "entry", "reason": reason, "detail": f"score {score} vs minimum 75."}]
        return {"symbol": name, "score": score, "fresh": "●", "depth_badge": "✓", "venue": venue, "sources": 3,
                "decision": decision, "primary_reason": reason, "gates": gates}

    return {
        "symbols": [sym("ETH/USD", 70.2, "reject", "score_below_threshold"), sym("BTC/USD", 82.4, "entry", None, "kraken"),
                    sym("VERYLONGNAME/USD", 60.0, "reject", "score_below_threshold")],
        "regime": {"label": "normal", "confidence": 0.62, "as_of": "2026-11-27T08:00:00Z", "partition_key": "2026-11-27-04:00"},
        "counts": {"evaluated": 3, "entries": 1, "primary_reasons": {"score_below_threshold": 2}},
    }


def _outcome(dry_run: bool = False) -> RunOutcome:
    return RunOutcome("scan.hot", "2026-11-27-10:15", "0123456789abcdef", True, 3.21, dry_run, values={"hot_explain": _explain()})


def test_top_rows_and_render_top() -> None:
    cfg = load_config(check_artifacts_dir=False)
    rows = top_rows(cfg.job("scan.hot"), _outcome(), 2)
    assert [r["symbol"] for r in rows] == ["BTC/USD", "ETH/USD"]
    lines = render_top(rows, PLAIN)
    assert fits(lines) and no_ansi(lines)
    assert "[Fresh ●] [Depth ✓] [Venue kraken] [Sources 3]" in lines[1] and lines[1].rstrip().endswith("entry")
    assert lines[2].rstrip().endswith("reject")
    assert lines[3].strip() == "↳ score_below_threshold: score 70.2 vs minimum 75."
    assert fits(render_top(rows, COLOUR))


LONG_ROWS = [
    {"rank": 10, "symbol": "RENDER/USD", "score": 81.25, "fresh": "●", "depth_badge": "✓", "venue": "coinbase", "sources": 3,
     "decision": "entry"},
    {"rank": 11, "symbol": "FARTCOIN/USD", "score": 70.2, "fresh": "○", "depth_badge": "✗", "venue": "coinbase", "sources": 2,
     "decision": "reject", "primary_reason": "score_below_threshold", "detail": "score 70.2 vs minimum 75."},
]


@pytest.mark.parametrize("columns", [80, 60, 132])
def test_render_top_fits_the_terminal_and_shows_every_badge(columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """At 80 columns the long badges of a 12-character symbol do not fit (`[Venue coinbase] [Sources …`
    was cut): a shorter form names every badge, and at 40 the cell wraps instead of cutting one."""
    monkeypatch.setenv("COLUMNS", str(columns))
    for style in (PLAIN, COLOUR):
        lines = render_top(LONG_ROWS, style)
        assert fits(lines, columns), [strip_ansi(line) for line in lines]
        text = " ".join(strip_ansi(line) for line in lines)
        assert "…" not in text.split("↳")[0]  # nothing cut before the reason line
        for glyph in ("●", "✓", "○", "✗"):
            assert glyph in text
        assert text.count("coinbase") == 2 and " 3" in text and " 2" in text
    if columns >= 132:
        assert "[Venue coinbase] [Sources 3]" in render_top(LONG_ROWS, PLAIN)[1]


def test_render_top_in_a_40_column_terminal_wraps_the_badges_within_the_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    lines = [strip_ansi(line) for line in render_top(LONG_ROWS, COLOUR)]
    assert fits(lines, 40)
    text = " ".join(lines)
    assert all(glyph in text for glyph in ("●", "✓", "○", "✗"))


def test_terminal_width_reads_columns_and_falls_back_to_80(monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptorun_pipelines.cli.render import terminal_width

    assert terminal_width({"COLUMNS": "100"}) == 100
    assert terminal_width({"COLUMNS": "10"}) == 40
    monkeypatch.delenv("COLUMNS", raising=False)
    assert terminal_width({}) >= 40


def test_list_says_a_schedule_does_not_tick_while_the_daemon_is_stopped() -> None:
    """`schedule list` said "enabled · running" for a schedule the stopped daemon never ticks."""
    on = ScheduleState("scan_hot_schedule", "running", "instance")
    words, ticking = schedule_words(True, on, False)
    assert (words, ticking) == ("enabled · on, daemon stopped", False)
    rows = [{"name": "scan.hot", "schedule": "*/15 * * * *", "status": words, "ticking": ticking, "description": "Hot.",
             "next_tick": "2026-11-27T10:45:00+00:00"}]
    lines = render_list(rows, PLAIN)
    assert fits(lines)
    assert "enabled · on," in lines[1] and lines[2].split()[:2] == ["daemon", "stopped"]
    assert not any("running" in line for line in lines)
    assert lines[1].rstrip().endswith("-")  # no next tick: nothing will tick it


@pytest.mark.parametrize("dry_run", [False, True])
def test_render_summary_fits(dry_run: bool) -> None:
    cfg = load_config(check_artifacts_dir=False)
    job = cfg.job("scan.hot")
    outcome = _outcome(dry_run)
    files = [ArtifactFile("hot_signals", "signals.csv", "/a/signals.csv", 1, "rows", 300, not dry_run),
             ArtifactFile("hot_explain", "explain.json", "/a/explain.json", 3, "symbols", 120_000, not dry_run)]
    regime = {"label": "normal", "confidence": 0.62, "as_of": "2026-11-27T08:00:00Z", "partition_key": "2026-11-27-04:00"}
    folder = "/tmp/" + "deep/" * 30 + "2026-11-27T10-30-00Z"
    upstream = [{"job": "regime.refresh", "partition": "2026-11-27-04:00", "computed_by": "this run", "written": True}]
    rows = top_rows(job, outcome, 10)
    for style in (PLAIN, COLOUR):
        lines = render_summary(job, outcome, files, regime, rows, folder, upstream, style)
        assert fits(lines), [line for line in lines if display_width(line) > 80]
    text = "\n".join(render_summary(job, outcome, files, regime, rows, folder, upstream, PLAIN))
    assert "\x1b" not in text
    assert "2026-11-27T10-30-00Z/" in text  # a long path is cut from the left, keeping the folder
    assert ("would have written" in text) == dry_run
    assert "regime     normal (confidence 0.62), as of 2026-11-27 08:00Z" in text
    assert "upstream   regime.refresh 2026-11-27-04:00 computed and written by this run" in text


def test_progress_rendering() -> None:
    p = Progress(label="scan.hot 2026-11-27-10:15", total=6, finished=["a"], running=["hot_scan"])
    assert p.line(3.4) == "scan.hot 2026-11-27-10:15  steps 1/6  3.4s  hot_scan"
    line = format_event(StepEvent("failed", "hot_scan", 2.0, "boom " * 40), PLAIN)
    assert display_width(line) <= 80 and "✗ failed" in line


# -- arguments and partitions ---------------------------------------------------------------------


def test_parser_accepts_global_options_anywhere() -> None:
    parser = build_parser()
    args = parser.parse_args(["--config", "a.yaml", "schedule", "run", "scan.hot", "--dry-run", "--top", "3"])
    assert (args.config, args.job, args.dry_run, args.top) == ("a.yaml", "scan.hot", True, 3)
    args = parser.parse_args(["schedule", "list", "--config", "b.yaml", "--json"])
    assert (args.config, args.json) == ("b.yaml", True)
    args = parser.parse_args(["schedule", "start"])
    assert (args.host, args.port) == ("127.0.0.1", 3000)


def test_parser_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for argv in (["schedule", "run", "scan.hot", "--partition", "x", "--as-of", "y"], ["schedule", "nope"],
                 ["schedule", "start", "--port", "70000"], ["schedule", "run", "scan.hot", "--top", "-1"]):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith("cryptorun: error: ")


def test_resolve_partition() -> None:
    from cryptorun_pipelines.partitions import build_cadences

    cad = build_cadences(load_config(check_artifacts_dir=False))
    now = datetime(2026, 11, 20, 12, 7, tzinfo=UTC)
    assert resolve_partition(cad.hot, key=None, as_of=None, now=now) == "2026-11-20-11:45"
    assert resolve_partition(cad.hot, key=None, as_of="2026-11-20T12:00Z", now=now) == "2026-11-20-11:45"
    assert resolve_partition(cad.hot, key=None, as_of="2026-11-20T11:59", now=now) == "2026-11-20-11:30"
    assert resolve_partition(cad.regime, key=None, as_of=None, now=now) == "2026-11-20-08:00"
    assert resolve_partition(cad.warm, key=None, as_of=None, now=now) == "2026-11-20-10:00"
    assert resolve_partition(cad.hot, key="2026-11-20-11:30", as_of=None, now=now) == "2026-11-20-11:30"
    for bad in ("2026-11-20-11:31", "2026-11-20-12:00", "2020-01-01-00:00", "yesterday"):
        with pytest.raises(UsageError):
            resolve_partition(cad.hot, key=bad, as_of=None, now=now)
    with pytest.raises(UsageError, match="future"):
        resolve_partition(cad.regime, key=None, as_of="2026-11-20T16:00Z", now=now)
    with pytest.raises(UsageError):
        parse_time("not a time")
    assert parse_time("2026-11-20T12-00-00Z") == datetime(2026, 11, 20, 12, tzinfo=UTC)


# -- start: schedule toggling through GraphQL ------------------------------------------------------


def test_set_schedules_turns_enabled_on_and_disabled_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptorun_pipelines.cli.commands import schedule_start

    states = {"scan_hot_schedule": "STOPPED", "scan_warm_schedule": "RUNNING", "regime_refresh_schedule": "RUNNING"}
    calls: list[tuple[str, str]] = []

    def fake_graphql(base_url: str, query: str, variables: dict | None = None, timeout: float = 30.0) -> dict:
        if "startSchedule" in query or "resetSchedule" in query:
            name = variables["selector"]["scheduleName"]
            assert variables["selector"]["repositoryLocationName"] == "cryptorun"
            op = "start" if "startSchedule" in query else "stop"
            calls.append((op, name))
            states[name] = "RUNNING" if op == "start" else "STOPPED"
            key = "startSchedule" if op == "start" else "resetSchedule"
            return {key: {"__typename": "ScheduleStateResult", "scheduleState": {"status": states[name]}}}
        nodes = [{"name": "__repository__", "location": {"name": "cryptorun"},
                  "schedules": [{"name": n, "pipelineName": n, "scheduleState": {"status": s}} for n, s in states.items()]},
                 {"name": "other", "location": {"name": "elsewhere"}, "schedules": []}]
        return {"repositoriesOrError": {"__typename": "RepositoryConnection", "nodes": nodes}}

    monkeypatch.setattr(schedule_start, "graphql", fake_graphql)
    wanted = {"scan_hot_schedule": True, "scan_warm_schedule": False, "regime_refresh_schedule": True}
    result = schedule_start.set_schedules("http://x", wanted)
    assert calls == [("start", "scan_hot_schedule"), ("stop", "scan_warm_schedule")]  # regime already running
    assert result == {"scan_hot_schedule": "RUNNING", "scan_warm_schedule": "STOPPED", "regime_refresh_schedule": "RUNNING"}
    with pytest.raises(Exception, match="not found"):
        schedule_start.set_schedules("http://x", {"nope_schedule": True})
