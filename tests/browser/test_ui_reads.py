"""What a user reads in the Dagster UI (issue #18): the hot scan's top table, its badges, the charts'
titles, the checks' states, the job descriptions and the lineage's node labels.

One hot partition is materialised in-process on the server's instance before the pages open
(its upstream regime partition is the conftest's pre-materialised one); every assertion is on the
text the page shows."""

from __future__ import annotations

import json
import re

import pytest

from .conftest import HOT_AS_OF_FOLDER, HOT_KEY, LOCATION, UPSTREAM_REGIME_KEY

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def hot_run(dagster_server):
    import dagster as dg

    from cryptorun_core.config import load_config
    from cryptorun_pipelines.build import build_definitions

    env = dagster_server.env
    saved = {}
    import os

    for k in ("CRYPTORUN_CONFIG", "CRYPTORUN_ARTIFACTS_DIR"):
        saved[k] = os.environ.get(k)
        os.environ[k] = env[k]
    try:
        config = load_config(dagster_server.config_path)
        defs = build_definitions(config, config_path=dagster_server.config_path)
        with dg.DagsterInstance.from_config(str(dagster_server.home)) as instance:
            result = defs.resolve_job_def("scan_hot").execute_in_process(
                partition_key=HOT_KEY, instance=instance, raise_on_error=False, tags={"cryptorun/trigger": "browser-test-setup"},
            )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert result.success
    return result


def open_markdown(ui, asset: str, partition: str, label: str):
    """The asset's events for ``partition`` → the metadata row ``label`` → its "[Show Markdown]" dialog."""
    page = ui.page
    ui.goto(f"/assets/{asset}?view=events&partition={partition}")
    row = page.locator("tr", has_text=label).first
    row.wait_for(timeout=60_000)
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for(timeout=30_000)
    return dialog


#: True when ``glyph`` draws in the element's font differently from a code point no font has (the
#: empty box a missing glyph shows as) and draws something at all
GLYPH_DRAWS = r"""([el, glyph]) => {
  const font = getComputedStyle(el).fontFamily;
  const draw = (text) => {
    const c = document.createElement('canvas'); c.width = 48; c.height = 48;
    const g = c.getContext('2d'); g.font = `32px ${font}`; g.fillStyle = '#000'; g.fillText(text, 4, 38);
    return Array.from(g.getImageData(0, 0, 48, 48).data);
  };
  const mine = draw(glyph), missing = draw('\u{10FFFD}');
  return mine.some(v => v > 0) && mine.join() !== missing.join();
}"""


def cells(row) -> list[str]:
    return [t.strip() for t in row.locator("th, td").all_inner_texts()]


def test_top_table_reads_as_the_ten_best_scores_with_visible_badges(ui, hot_run):
    """The table says what it is (top 10 by score, # = score rank, the ADV rank labelled), has 10
    rows, its first row is the best score, and its badges are glyphs the page's font draws."""
    page, server = ui.page, ui.server
    explain = json.loads((server.artifacts / HOT_AS_OF_FOLDER / "explain.json").read_text())
    scored = [s for s in explain["symbols"] if s.get("score") is not None]
    top = max(s["score"] for s in scored)
    best = {s["symbol"]: s for s in scored if s["score"] == top}

    dialog = open_markdown(ui, "hot_signals", HOT_KEY, "top_evaluated")
    table = dialog.locator("table").first
    table.wait_for(timeout=30_000)
    ui.shot("top-evaluated")
    ui.doc_shot("top-evaluated", dialog)
    title = dialog.locator("strong").first.inner_text()
    assert title == f"Top 10 of {len(explain['symbols'])} evaluated symbols by score", title
    headings = cells(table.locator("thead tr").first)
    assert headings[:4] == ["#", "symbol", "score", "decision"] and headings[-1] == "ADV rank", headings
    rows = table.locator("tbody tr")
    assert rows.count() == 10 and "more rows" not in dialog.inner_text()
    first = cells(rows.first)
    assert first[0] == "1" and first[1] in best and first[2] == f"{top:.1f}", first
    assert first[-1] == str(best[first[1]]["rank"]), first
    decisions = {cells(rows.nth(i))[3] for i in range(10)}
    assert decisions <= {"✓ entry", "✗ reject"} and decisions, decisions
    fresh = {cells(rows.nth(i))[headings.index("fresh")] for i in range(10)}
    assert fresh <= {"● fresh", "○ stale"} and fresh, fresh
    cell = rows.first.locator("td").nth(3)
    for glyph in ("✓", "✗", "●", "○"):
        assert page.evaluate(GLYPH_DRAWS, [cell.element_handle(), glyph]), f"{glyph} draws as an empty box"


def test_charts_have_a_title_a_reader_can_read(ui, hot_run):
    page = ui.page
    dialog = open_markdown(ui, "hot_signals", HOT_KEY, "score_chart")
    chart = dialog.locator("img[alt='scores of every evaluated symbol']")
    chart.wait_for(timeout=30_000)
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=chart.element_handle(), timeout=30_000)
    ui.doc_shot("score-chart", dialog)
    title = dialog.locator("strong").first.inner_text()
    assert re.fullmatch(r"Scores of 10 evaluated symbols: (\d+ entries|1 entry)", title), title
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    dialog = open_markdown(ui, "regime_weights", UPSTREAM_REGIME_KEY, "regime_chart")
    img = dialog.locator("img[alt='regime chart']")
    img.wait_for(timeout=30_000)
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=img.element_handle(), timeout=30_000)
    ui.shot("regime-chart")
    title = dialog.locator("strong").first.inner_text()
    assert re.fullmatch(r"Regime over the last 1 cycle: now (calm|normal|volatile)", title), title
    assert "1 cycle, newest right" in dialog.inner_text() and "1 cycles" not in dialog.inner_text()


def test_columns_are_described_and_checks_read_whole(ui, hot_run):
    """Every column's Description is SPEC's line; the table check is a short tag, not a cut sentence;
    the asset's SPEC check shows as passed."""
    from cryptorun_core.column_docs import COLUMN_DESCRIPTIONS

    page = ui.page
    ui.goto("/assets/hot_signals?view=overview")
    columns = page.locator("table", has_text="Column name").first
    columns.wait_for(timeout=60_000)
    ui.shot("hot-signals-columns")
    ui.doc_shot("columns")
    body = columns.locator("tbody tr")
    described = {}
    for i in range(body.count()):
        texts = cells(body.nth(i))
        described[texts[0]] = texts[-1]
    assert described["score"] == COLUMN_DESCRIPTIONS["score"] and described["fresh"] == COLUMN_DESCRIPTIONS["fresh"]
    assert all(described.values()), [c for c, d in described.items() if not d]
    tag = page.get_by_text("score_descending", exact=True).first
    tag.wait_for(timeout=30_000)
    assert "..." not in tag.inner_text()
    ui.goto("/assets/hot_signals?view=checks")
    check = page.get_by_text("signals_spec_columns", exact=True).first
    check.wait_for(timeout=60_000)
    page.get_by_text("Succeeded", exact=True).first.wait_for(timeout=60_000)
    ui.shot("hot-signals-checks")
    ui.doc_shot("checks")


def test_job_page_says_what_the_job_does_in_one_sentence_with_its_own_settings(ui):
    page = ui.page
    ui.goto(f"/locations/{LOCATION}/jobs/regime_refresh")
    page.get_by_text("Metadata", exact=True).first.wait_for(timeout=60_000)
    ui.shot("regime-job")
    ui.doc_shot("job")
    text = page.get_by_text(re.compile(r"^Ranks the universe by ADV")).first.inner_text()
    assert "[" not in text and text.count(". ") == 0, text
    info = page.locator("body").inner_text()
    assert "request_rate_per_s" in info
    for scan_only in ("score_min", "spread_multiplier", "premove"):
        assert scan_only not in info, scan_only
