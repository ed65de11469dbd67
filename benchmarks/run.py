"""Run the CryptoRun benchmarks and print one table (medians of repetitions, ratios to baselines).

    python -m benchmarks.run            # full: engine sizes up to 5,000 symbols (< 10 min)
    python -m benchmarks.run --quick    # fewer repetitions, engine sizes up to 2,000
    python -m benchmarks.run --sections floor,engine --live-scale 10
    python -m benchmarks.run --storage both --sections floor,cycles,backfill   # SQLite and Postgres side by side

Sections: floor (1), cycles (2), engine (3), backfill (4), live (5), charts (6); cycles always measures the
floor first (its ratios need it). ``--storage`` (sqlite, postgres or both) picks the instance
storage of floor, cycles and backfill: SQLite is deploy/local, Postgres deploy/production
(benchmarks/storage.py starts a throwaway server when none is given). Results go to ``benchmarks/results/<UTC time>/`` (results.json,
results.md) and ``benchmarks/results/latest.md``; that folder is git-ignored.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone

from benchmarks.common import RESULTS_DIR, Row, dump_json, fmt_seconds, fmt_value, machine_description, machine_lines

ORDER = ("floor", "cycles", "engine", "backfill", "live", "charts")


def table(rows: list[Row]) -> str:
    head = ["section", "metric", "median", "min–max (n)", "ratio", "baseline", "target", "verdict"]
    body = []
    for r in rows:
        body.append([
            r.section, r.metric,
            fmt_value(r.value, r.unit) if r.value is not None else "—",
            r.spread,
            f"{r.ratio:.2f}×" if r.ratio is not None else "",
            r.baseline, r.target,
            r.verdict.upper() if r.verdict in ("MISS",) else r.verdict,
        ])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    widths = [min(w, 70) for w in widths]

    def line(cells: list[str]) -> str:
        return " | ".join(c[:w].ljust(w) for c, w in zip(cells, widths))

    out = [line(head), "-+-".join("-" * w for w in widths)]
    for r, b in zip(rows, body):
        out.append(line(b))
        if r.detail:
            out.append(" " * (widths[0] + 3) + "↳ " + r.detail)
    return "\n".join(out)


def markdown(rows: list[Row], machine: dict, args: argparse.Namespace, elapsed: float) -> str:
    lines = [f"# CryptoRun benchmarks — {datetime.now(timezone.utc):%Y-%m-%d %H:%M}Z ({'quick' if args.quick else 'full'}, "
             f"{fmt_seconds(elapsed)})", ""]
    lines += [f"- {m}" for m in machine_lines(machine)]
    lines += ["", "| section | metric | median | min–max (n) | ratio | baseline | target | verdict | detail |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r.section, r.metric.strip(), fmt_value(r.value, r.unit) if r.value is not None else "—", r.spread,
                 f"{r.ratio:.2f}×" if r.ratio is not None else "", r.baseline, r.target,
                 f"**{r.verdict.upper()}**" if r.verdict == "MISS" else r.verdict, r.detail]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions; engine sizes up to 2,000 symbols")
    p.add_argument("--sections", default=",".join(ORDER), help=f"comma-separated subset of {','.join(ORDER)}")
    p.add_argument("--live-scale", type=float, default=20.0, help="divide the venues' rate-limit delays by this (default 20)")
    p.add_argument("--sizes", default=None, help="engine universe sizes, e.g. 30,100,500")
    p.add_argument("--storage", choices=["sqlite", "postgres", "both"], default="sqlite",
                   help="instance storage of the floor, cycles and backfill sections (default sqlite)")
    a = p.parse_args(argv)
    wanted = [s.strip() for s in a.sections.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in ORDER]
    if unknown:
        p.error(f"unknown section(s) {unknown}; known: {', '.join(ORDER)}")

    started = time.perf_counter()
    machine = machine_description()
    print("CryptoRun benchmarks", "(quick)" if a.quick else "(full)", flush=True)
    for m in machine_lines(machine):
        print("  " + m, flush=True)
    rows: list[Row] = []

    from benchmarks import floor as floor_mod
    from benchmarks import storage as storage_mod

    storages = ["sqlite", "postgres"] if a.storage == "both" else [a.storage]
    import atexit

    atexit.register(storage_mod.stop_server)  # a throwaway server never outlives the run
    floors = {s: floor_mod.Floor() for s in storages}
    reps_floor = 3 if a.quick else 4
    reps_cycles = 2 if a.quick else 3

    def section(name: str, fn) -> None:
        t = time.perf_counter()
        print(f"[{time.perf_counter() - started:6.1f}s] {name} …", flush=True)
        try:
            new = fn()
        except Exception as exc:  # noqa: BLE001 - a section never kills the run
            from benchmarks.common import short_reason

            new = [Row.unavailable(name, name, short_reason(exc))]
        rows.extend(new)
        print(f"[{time.perf_counter() - started:6.1f}s] {name} done in {fmt_seconds(time.perf_counter() - t)}", flush=True)
        dump_json(RESULTS_DIR / "partial.json", {"machine": machine, "rows": [r.to_dict() for r in rows]})

    if "floor" in wanted or "cycles" in wanted:
        for i, st in enumerate(storages):
            section(f"floor ({st})", lambda st=st, i=i: floor_mod.run(reps_floor, floors[st], st, interpreter=i == 0))
    import importlib

    def mod(name: str):
        return importlib.import_module(f"benchmarks.{name}")  # inside section(): a broken module is one row

    sizes = [int(x) for x in a.sizes.split(",")] if a.sizes else None
    if "cycles" in wanted:
        for st in storages:
            section(f"cycles ({st})", lambda st=st: mod("cycles").run(reps_cycles, floors[st], st))
        if len(storages) > 1:
            section("cycles (Postgres vs SQLite)", lambda: mod("cycles").compare_hot(rows))
    if "engine" in wanted:
        section("engine", lambda: mod("engine_scaling").run(a.quick, sizes))
    if "backfill" in wanted:
        section("backfill", lambda: mod("backfill").run(a.quick, storages))
    if "live" in wanted:
        section("live", lambda: mod("live").run(a.quick, scale=a.live_scale))
    if "charts" in wanted:
        section("charts", lambda: mod("charts").run(a.quick))

    storage_mod.stop_server()
    elapsed = time.perf_counter() - started
    machine["loadavg_end"] = machine_description()["loadavg_1_5_15"]
    print()
    print(table(rows))
    misses = [r for r in rows if r.verdict == "MISS"]
    unavailable = [r for r in rows if r.verdict == "unavailable"]
    print(f"\n{len(misses)} target(s) missed, {len(unavailable)} unavailable; total {fmt_seconds(elapsed)}")

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS_DIR / stamp
    dump_json(out / "results.json", {"machine": machine, "quick": a.quick, "storage": a.storage, "elapsed_s": elapsed, "live_scale": a.live_scale,
                                     "rows": [r.to_dict() for r in rows]})
    md = markdown(rows, machine, a, elapsed)
    (out / "results.md").write_text(md)
    (RESULTS_DIR / "latest.md").write_text(md)
    print(f"results: {out}/results.json, {out}/results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
