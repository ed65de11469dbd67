"""The CryptoRun experience in the real Dagster web UI, driven by Chromium.

1. the asset graph shows every asset of the lineage by its whole name (edges cross-checked over GraphQL);
2. a scan_hot run for one partition launched from the job page succeeds and writes its files;
3. a week of regime partitions backfilled from the job page completes as ONE run (single-run policy);
4. a regime materialisation shows its chart (an ``img`` with a non-zero natural width).

The hot scan's upstream regime partition is pre-materialised in-process on the same DAGSTER_HOME
before the browser starts (conftest ``dagster_server``); everything else goes through the UI.
"""

from __future__ import annotations

import re
import time

import pytest

from .conftest import (
    BACKFILL_FIRST,
    BACKFILL_LAST,
    HOT_AS_OF_FOLDER,
    HOT_KEY,
    LOCATION,
    UPSTREAM_REGIME_KEY,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(300)]

LINEAGE = (
    "universe_ranking",
    "regime_indicators",
    "regime_weights",
    "hot_snapshot",
    "warm_snapshot",
    "hot_signals",
    "hot_premove",
    "hot_explain",
    "warm_signals",
)
EDGES = {
    ("universe_ranking", "regime_indicators"),
    ("regime_indicators", "regime_weights"),
    ("universe_ranking", "hot_snapshot"),
    ("regime_weights", "hot_snapshot"),  # whatever the market source (tests/pipelines/assets/test_market.py)
    ("universe_ranking", "warm_snapshot"),
    *((up, out) for up in ("hot_snapshot", "universe_ranking", "regime_weights") for out in ("hot_signals", "hot_premove", "hot_explain")),
    *((up, "warm_signals") for up in ("warm_snapshot", "universe_ranking", "regime_weights")),
}
#: the asset groups of the graph (signal_evaluation, in "evaluation", reads past cycles' files and
#: depends on no asset: nothing a scan reads may come from it)
GROUPS = ("universe", "market", "regime", "signals", "evaluation")
RUN_TIMEOUT_S = 150
BACKFILL_TIMEOUT_S = 200


def shows_name(texts: list[str], name: str) -> bool:
    """``name`` is among the node labels in full (a middle-truncated ``hot_mark…_snapshot`` is not a
    name a user can read)."""
    return any(text.strip() == name for text in texts)


def open_materialize_dialog(ui, job: str):
    """Job page → "Materialize all…" (→ "Confirm" when upstream partitions are reported missing) → the
    partition dialog."""
    page = ui.page
    ui.goto(f"/locations/{LOCATION}/jobs/{job}")
    page.get_by_role("button", name="Materialize all").first.click()
    dialog = page.get_by_role("dialog")
    confirm = page.get_by_role("button", name="Confirm", exact=True)
    selection = dialog.get_by_text("Partition selection", exact=True)
    confirm.or_(selection).first.wait_for(timeout=60_000)
    if confirm.is_visible():
        ui.shot("missing-upstream-warning")
        confirm.click()
    selection.wait_for(timeout=60_000)
    return dialog


def select_partitions(ui, dialog, text: str, expect_count: int) -> None:
    field = dialog.locator("input[type=text]").first
    field.click()
    field.fill(text)
    field.press("Enter")
    count = dialog.get_by_text(re.compile(rf"^{expect_count} partitions?$"))
    count.wait_for(timeout=30_000)
    ui.shot("partitions-selected")


def wait_for(fn, timeout_s: float, what: str, interval_s: float = 2.0):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


RUNS_QUERY = """query ($filter: RunsFilter) { runsOrError(filter: $filter) { ... on Runs { results {
  runId status jobName tags { key value } } } } }"""


def runs_of(server, job: str, partition: str | None = None) -> list[dict]:
    tags = [{"key": "dagster/partition", "value": partition}] if partition else []
    data = server.graphql(RUNS_QUERY, {"filter": {"pipelineName": job, "tags": tags}})
    return data["runsOrError"]["results"]


def test_asset_graph_shows_the_lineage(ui):
    page, server = ui.page, ui.server
    page.set_viewport_size({"width": 1600, "height": 1200})
    ui.goto("/asset-groups")
    for group in GROUPS:
        page.get_by_text(group, exact=True).first.wait_for()
    ui.shot("lineage-groups")
    # expand every group (the graph's "expand all groups" shortcut, ⌥E), then zoom out a notch
    # (ctrl + wheel) so the whole expanded graph fits the viewport
    page.mouse.click(1000, 1100)
    page.keyboard.press("Alt+KeyE")
    page.get_by_text(re.compile(r"^universe_ra")).first.wait_for()
    page.mouse.move(1000, 650)
    page.keyboard.down("Control")
    page.mouse.wheel(0, 40)
    page.keyboard.up("Control")

    def shown_labels() -> list[str]:
        """Node labels whose box lies inside the graph area (below the toolbar, inside the window)."""
        boxes = page.locator("[class*='assetName']").evaluate_all(
            "els => els.map(e => { const r = e.getBoundingClientRect();"
            " return [e.innerText, r.top, r.bottom, r.left, r.right, r.width > 0 && r.height > 0]; })"
        )
        return [t for t, top, bottom, left, right, ok in boxes if ok and top > 100 and bottom < 1200 and left > 0 and right < 1600]

    deadline = time.monotonic() + 30
    while True:
        missing = [n for n in LINEAGE if not shows_name(shown_labels(), n)]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    ui.shot("lineage-expanded")
    ui.doc_shot("lineage")
    assert not missing, f"asset nodes not visible in the graph: {missing} (visible labels: {shown_labels()})"

    # edges: the same server's GraphQL API
    nodes = server.graphql("{ assetNodes { assetKey { path } dependencyKeys { path } groupName description } }")["assetNodes"]
    edges = {(dep["path"][-1], n["assetKey"]["path"][-1]) for n in nodes for dep in n["dependencyKeys"]}
    assert edges == EDGES, f"edges differ: missing {EDGES - edges}, extra {edges - EDGES}"
    groups = {n["assetKey"]["path"][-1]: n["groupName"] for n in nodes}
    assert set(groups.values()) == set(GROUPS)
    assert all(n["description"] for n in nodes), "every asset has a description"


def test_launch_hot_scan_for_a_partition(ui):
    page, server = ui.page, ui.server
    dialog = open_materialize_dialog(ui, "scan_hot")
    select_partitions(ui, dialog, HOT_KEY, 1)
    dialog.get_by_role("button", name="Launch 1 run").click()
    dialog.wait_for(state="hidden", timeout=60_000)
    ui.shot("launched")

    run = wait_for(lambda: (runs_of(server, "scan_hot", HOT_KEY) or [None])[0], 60, f"a scan_hot run for {HOT_KEY}")
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags.get("dagster/from_ui") == "true", tags
    done = wait_for(
        lambda: next((r for r in runs_of(server, "scan_hot", HOT_KEY) if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")), None),
        RUN_TIMEOUT_S,
        f"scan_hot run {run['runId']} to finish",
    )
    ui.goto(f"/runs/{done['runId']}")
    page.get_by_text(re.compile(r"^(Success|Failure)$")).first.wait_for(timeout=60_000)
    ui.shot("run-page")
    assert done["status"] == "SUCCESS", f"run {done['runId']} ended {done['status']}"

    folder = server.artifacts / HOT_AS_OF_FOLDER
    for name in ("signals.csv", "premove.csv", "explain.json"):
        assert (folder / name).is_file(), f"{folder / name} missing (have {sorted(p.name for p in folder.glob('*'))})"
    assert (folder / "regime.json").is_file()  # the pre-materialised upstream (regime 08:00, T 12:00)


def test_backfill_a_week_of_regimes_as_one_run(ui):
    page, server = ui.page, ui.server
    health = """{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"""

    def backfill_daemon_up():
        statuses = server.graphql(health)["instance"]["daemonHealth"]["allDaemonStatuses"]
        return any(s["daemonType"] == "BACKFILL" and s["healthy"] for s in statuses)

    wait_for(backfill_daemon_up, 90, "the backfill daemon to report healthy")

    dialog = open_materialize_dialog(ui, "regime_refresh")
    select_partitions(ui, dialog, f"[{BACKFILL_FIRST}...{BACKFILL_LAST}]", 42)
    dialog.get_by_role("button", name="Launch backfill").click()
    dialog.wait_for(state="hidden", timeout=60_000)
    ui.shot("backfill-launched")

    query = "{ partitionBackfillsOrError { ... on PartitionBackfills { results { id status numPartitions runs { runId status } } } } }"

    def finished():
        for b in server.graphql(query)["partitionBackfillsOrError"]["results"]:
            if b["numPartitions"] == 42 and b["status"] not in ("REQUESTED",):
                return b
        return None

    backfill = wait_for(finished, BACKFILL_TIMEOUT_S, "the 42-partition backfill to finish", interval_s=3)
    ui.goto(f"/runs/b/{backfill['id']}")
    page.get_by_text(backfill["id"]).first.wait_for(timeout=60_000)
    ui.shot("backfill-page")
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill
    assert len(backfill["runs"]) == 1 and backfill["runs"][0]["status"] == "SUCCESS", (
        f"expected one successful run (BackfillPolicy.single_run), got {backfill['runs']}"
    )
    written = sorted(p.parent.name for p in server.artifacts.glob("*/regime.json"))
    week = [p for p in written if "2026-11-13T04-00-00Z" <= p <= "2026-11-20T00-00-00Z"]
    assert len(week) == 42, f"regime.json of the week: {week}"


def test_regime_materialisation_shows_its_chart(ui):
    page, server = ui.page, ui.server
    # the newest regime materialisation: the backfill's last partition when it ran, else the upstream one
    key = BACKFILL_LAST if (server.artifacts / "2026-11-20T00-00-00Z" / "regime.json").exists() else UPSTREAM_REGIME_KEY
    ui.goto(f"/assets/regime_weights?view=events&partition={key}")
    row = page.locator("tr", has_text="regime_chart").first
    row.wait_for(timeout=60_000)
    ui.shot("regime-events")
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    img = dialog.locator("img[alt='regime chart']")
    img.wait_for(timeout=30_000)
    page.wait_for_function(
        "el => el.complete && el.naturalWidth > 0", arg=img.element_handle(), timeout=30_000
    )
    width, height = img.evaluate("el => [el.naturalWidth, el.naturalHeight]")
    ui.shot("regime-chart")
    ui.doc_shot("regime-chart")
    assert (width, height) == (640, 300), (width, height)
