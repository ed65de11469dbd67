"""Section 3 — engine scaling without Dagster.

Each universe size runs in a fresh subprocess (``python -m benchmarks.engine_scaling --worker N``)
so its peak RSS (``ru_maxrss`` and ``VmHWM``) is its own. The worker builds a synthetic snapshot
(:mod:`benchmarks.synth`: N symbols × 3 venues × 720 hourly bars, 100-level books), then times
one engine cycle = ``rank_universe`` (hot_size = N, so every eligible symbol is in the hot
segment) + ``compute_regime`` + ``run_scan`` with the ``scan.hot`` job — after one untimed warm-up
cycle — and finally the bare-numpy floor (:func:`benchmarks.synth.numpy_floor`) on the same data.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time

from benchmarks.common import Row, Stat, child_env, fmt_seconds, require_ok, run_timed

SECTION = "3 engine"
TARGET_30 = 0.050
TARGET_2000_S = 2.0
TARGET_2000_RSS_MIB = 1024.0


def reps_for(n: int, quick: bool) -> int:
    if n <= 100:
        return 5 if quick else 7
    if n <= 500:
        return 3 if quick else 5
    return 3


def warmup_for(n: int) -> int:
    """One untimed warm-up cycle (lazy imports, pandera schema compilation) where it is cheap."""
    return 1 if n <= 500 else 0


def budget_for(n: int, quick: bool) -> float:
    """Seconds of timed cycles per size: a repetition that would overrun it is not started (n ≥ 1)."""
    if n <= 100:
        return 20.0
    if n <= 500:
        return 30.0 if quick else 45.0
    return 60.0 if quick else (80.0 if n <= 2000 else 110.0)


# ------------------------------------------------------------------------------------------
# worker (fresh process per size)
# ------------------------------------------------------------------------------------------


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0) so the engine's peak excludes the builder's transients."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def worker(n: int, reps: int, warmup: int, profile: str | None, budget_s: float) -> dict:
    from benchmarks.common import peak_rss_mib

    rss_start = peak_rss_mib()
    from cryptorun_core.config import load_config
    from cryptorun_core.engine import run_scan
    from cryptorun_core.regime import compute_regime
    from cryptorun_core.universe import rank_universe

    from benchmarks.synth import build_snapshot, numpy_floor

    config = load_config(check_artifacts_dir=False)
    job = config.job("scan.hot")
    rss_imports = peak_rss_mib()
    t0 = time.perf_counter()
    snap = build_snapshot(n)
    build_s = time.perf_counter() - t0
    gc.collect()
    rss_snapshot = peak_rss_mib()
    hwm_reset = _reset_peak_rss()

    def cycle() -> dict:
        out = {}
        cpu0 = time.process_time()
        t = time.perf_counter()
        ranking = rank_universe(snap, config, hot_size=n, warm_size=0)
        out["rank_universe"] = time.perf_counter() - t
        t = time.perf_counter()
        regime = compute_regime(snap, ranking, config)
        out["compute_regime"] = time.perf_counter() - t
        t = time.perf_counter()
        result = run_scan(snap, ranking, {**regime.to_dict(), "partition_key": "2026-11-20-11:45"}, config, job)
        out["run_scan"] = time.perf_counter() - t
        out["total"] = out["rank_universe"] + out["compute_regime"] + out["run_scan"]
        out["cpu"] = time.process_time() - cpu0
        out["evaluated"] = int(result.explain["counts"]["evaluated"])
        out["entries"] = int(result.explain["counts"]["entries"])
        return out

    for _ in range(warmup):
        cycle()
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    runs = []
    started = time.perf_counter()
    while len(runs) < reps:
        runs.append(cycle())
        # a slow size stops once another repetition would overrun its time budget (n shows in the table)
        elapsed = time.perf_counter() - started
        if elapsed + runs[-1]["total"] > budget_s:
            break
    if profiler:
        profiler.stop()
        with open(profile, "w") as fh:
            fh.write(profiler.output_text(unicode=True, color=False, show_all=False))
    rss_engine = peak_rss_mib()

    floor_runs = []
    for _ in range(5):
        t = time.perf_counter()
        numpy_floor(snap, 3, 720)
        floor_runs.append(time.perf_counter() - t)
    return {
        "n_symbols": n,
        "bars_rows": len(snap.bars),
        "book_rows": len(snap.books),
        "build_s": build_s,
        "runs": runs,
        "numpy_floor": floor_runs,
        "rss": {"start": rss_start, "imports": rss_imports, "snapshot": rss_snapshot, "engine_peak": rss_engine,
                "final": peak_rss_mib(), "hwm_reset_after_build": hwm_reset},
    }


# ------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------


def measure(n: int, quick: bool, profile: str | None = None, timeout: float = 420) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.engine_scaling", "--worker", str(n), "--reps", str(reps_for(n, quick)),
           "--warmup", str(warmup_for(n)), "--budget", str(budget_for(n, quick))]
    if profile:
        cmd += ["--profile", profile]
    res = require_ok(run_timed(cmd, child_env(), timeout=timeout), f"engine worker n={n}")
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("{")][-1]
    data = json.loads(line)
    data["process_s"] = res.seconds
    data["process_maxrss_mib"] = res.maxrss_mib
    return data


def rows_for(results: list[dict], failures: dict[int, str]) -> list[Row]:
    rows: list[Row] = []
    base_per_symbol = None
    for data in results:
        n = data["n_symbols"]
        totals = Stat([r["total"] for r in data["runs"]])
        parts = {k: statistics.median(r[k] for r in data["runs"]) for k in ("rank_universe", "compute_regime", "run_scan")}
        floor = Stat(data["numpy_floor"])
        rss = data["rss"]
        # engine peak: VmHWM reset after the snapshot was built (snapshot resident + engine transients);
        # without the reset, ru_maxrss (which also holds the synthetic builder's own transients)
        peak = rss["engine_peak"].get("VmHWM_mib") if rss.get("hwm_reset_after_build") else rss["engine_peak"]["ru_maxrss_mib"]
        cpu = statistics.median(r["cpu"] for r in data["runs"])
        per_symbol = totals.median / n
        if base_per_symbol is None:
            base_per_symbol = per_symbol
        target = ""
        ok = None
        if n == 30:
            target, ok = f"≤ {fmt_seconds(TARGET_30)}", totals.median <= TARGET_30
        elif n == 2000:
            target, ok = f"≤ {fmt_seconds(TARGET_2000_S)}", totals.median <= TARGET_2000_S
        row = Row.of_stat(SECTION, f"cycle N={n:,} (rank+regime+scan)", totals, target=target,
                          ratio=totals.median / floor.median, baseline="× numpy floor",
                          extra={"parts": parts, "rss": data["rss"], "floor": floor.to_dict(), "build_s": data["build_s"],
                                 "evaluated": data["runs"][0]["evaluated"], "entries": data["runs"][0]["entries"]})
        row.detail = (f"rank {fmt_seconds(parts['rank_universe'])}, regime {fmt_seconds(parts['compute_regime'])}, "
                      f"scan {fmt_seconds(parts['run_scan'])}; numpy floor {fmt_seconds(floor.median)}; "
                      f"{data['runs'][0]['evaluated']} evaluated; CPU {fmt_seconds(cpu)}")
        rows.append(row.judge(ok))
        rows.append(Row(SECTION, f"  time per symbol N={n:,}", per_symbol, "s", ratio=per_symbol / base_per_symbol,
                        baseline="× per-symbol at smallest N",
                        target="flat (no super-linear growth)" if n == max(d["n_symbols"] for d in results) else "",
                        detail=f"{per_symbol * 1e3:.2f} ms/symbol").judge(None))
        rss_target = f"≤ {TARGET_2000_RSS_MIB:,.0f} MiB" if n == 2000 else ""
        rows.append(Row(SECTION, f"  peak RSS N={n:,}", peak, "MiB", target=rss_target,
                        detail=(f"VmHWM during cycles; after imports {rss['imports']['VmRSS_mib']:.0f} MiB, snapshot "
                                f"resident {rss['snapshot']['VmRSS_mib']:.0f} MiB ({data['bars_rows']:,} bar rows, "
                                f"{data['book_rows']:,} book rows); whole process ru_maxrss "
                                f"{rss['final']['ru_maxrss_mib']:.0f} MiB")).judge(peak <= TARGET_2000_RSS_MIB if n == 2000 else None))
    if len(results) >= 2:
        ns = [d["n_symbols"] for d in results]
        per = [statistics.median(r["total"] for r in d["runs"]) / d["n_symbols"] for d in results]
        per_cpu = [statistics.median(r["cpu"] for r in d["runs"]) / d["n_symbols"] for d in results]
        # super-linear growth: per-symbol cost at the largest size vs the 500-symbol size (fixed costs
        # amortised), judged on CPU time (wall time on a shared box swings by more than the effect)
        ref_i = ns.index(500) if 500 in ns else 0
        growth = per_cpu[-1] / per_cpu[ref_i]
        rows.append(Row(SECTION, f"per-symbol growth N={ns[ref_i]:,}→{ns[-1]:,} (CPU)", growth, "x",
                        target="≤ 1.5× (flat)",
                        detail=(f"CPU per symbol {per_cpu[ref_i] * 1e3:.1f} → {per_cpu[-1] * 1e3:.1f} ms; wall per symbol "
                                f"{per[ref_i] * 1e3:.1f} → {per[-1] * 1e3:.1f} ms ({per[-1] / per[ref_i]:.2f}×); "
                                "> 1.5 = super-linear")).judge(growth <= 1.5))
    for n, reason in failures.items():
        rows.append(Row.unavailable(SECTION, f"cycle N={n:,}", reason))
    return rows


def run(quick: bool, sizes: list[int] | None = None) -> list[Row]:
    from benchmarks.common import short_reason

    sizes = sizes or ([30, 100, 500, 2000] if quick else [30, 100, 500, 2000, 5000])
    results, failures = [], {}
    for n in sizes:
        try:
            results.append(measure(n, quick))
        except Exception as exc:  # noqa: BLE001
            failures[n] = short_reason(exc)
    return rows_for(results, failures)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--worker", type=int, required=True)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--profile", default=None)
    p.add_argument("--budget", type=float, default=120.0, help="seconds of timed cycles before stopping at >= 2 reps")
    a = p.parse_args()
    print(json.dumps(worker(a.worker, a.reps, a.warmup, a.profile, a.budget)))


if __name__ == "__main__":
    main()
