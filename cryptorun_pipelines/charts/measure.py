"""Measure what the charts cost a cycle: ``python -m cryptorun_pipelines.charts.measure``.

Runs the real ``regime_refresh`` and ``scan_hot`` jobs on the default config (simulated market,
temporary artifacts dir), each run in a FRESH process like a Dagster run worker. So the first
chart of every run pays for importing Pillow and loading its font, as it does in production. Each job runs with
the charts and with the chart functions stubbed out. The output shows the ``chart_render_ms`` the
materialisation reports next to the run's wall time, and the median difference.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

WORKER = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
job, key, charts = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
import cryptorun_pipelines.charts as c
if not charts:  # before the assets import them
    c.hot_scan_chart_metadata = lambda *a, **k: {}
    c.regime_chart_metadata = lambda *a, **k: {}
import dagster as dg
from cryptorun_core.config import load_config
from cryptorun_pipelines.build import build_definitions
defs = build_definitions(load_config(check_artifacts_dir=False))
start = time.perf_counter()
result = defs.resolve_job_def(job).execute_in_process(partition_key=key, instance=dg.DagsterInstance.ephemeral())
wall = time.perf_counter() - start
assert result.success, (job, key)
ms = 0.0
for event in result.all_events:
    if event.event_type_value == "ASSET_MATERIALIZATION":
        meta = event.event_specific_data.materialization.metadata
        if "chart_render_ms" in meta:
            ms = float(meta["chart_render_ms"].value)
print(json.dumps({"wall_s": wall, "chart_ms": ms}))
"""


def run(job: str, key: str, charts: bool, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", WORKER, job, key, "1" if charts else "0"],
        env=env, capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each job and mode (default 3)")
    parser.add_argument("--regime", default="2026-11-20-08:00", help="regime partition")
    parser.add_argument("--hot", default="2026-11-20-11:45", help="hot partition (reads the regime one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cryptorun-charts-") as tmp:
        env = {**os.environ, "CRYPTORUN_ARTIFACTS_DIR": tmp}
        run("regime_refresh", args.regime, False, env)  # the hot scan's upstream
        for job, key in (("regime_refresh", args.regime), ("scan_hot", args.hot)):
            walls: dict[bool, list[float]] = {True: [], False: []}
            charts_ms: list[float] = []
            for _ in range(args.repeat):
                for charts in (True, False):  # interleaved: machine load hits both modes alike
                    r = run(job, key, charts, env)
                    walls[charts].append(r["wall_s"])
                    if charts:
                        charts_ms.append(r["chart_ms"])
            with_c, without = statistics.median(walls[True]), statistics.median(walls[False])
            ms = statistics.median(charts_ms)
            print(
                f"{job:15s} {key}: run {without * 1000:6.0f} ms without charts, {with_c * 1000:6.0f} ms with "
                f"(median of {args.repeat}); chart_render_ms {ms:6.1f} = {100 * ms / 1000 / with_c:4.1f}% of the run "
                f"(all: {', '.join(f'{m:.0f}' for m in charts_ms)} ms)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
