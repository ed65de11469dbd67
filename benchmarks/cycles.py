"""Section 2 — the three cycles on the simulated market, through both execution paths.

Partitions: scan.hot ``2026-11-20-11:45``, scan.warm ``2026-11-20-10:00``, regime.refresh
``2026-11-20-08:00`` — all with T = 2026-11-20 12:00Z, the scans reading that regime window.

* subprocess: ``cryptorun schedule run JOB --partition KEY`` against a temp SQLite ``DAGSTER_HOME``
  and a temp ``CRYPTORUN_ARTIFACTS_DIR``. One untimed run per job first (it also materialises the
  missing upstream regime window, as the CLI does on a fresh instance — a scheduled cycle finds it
  already there), then ``reps`` timed reruns of the same partition. Ratio: median wall time against
  the ``dagster job execute`` floor (and child CPU time against the floor's CPU time).
* in-process: the real definitions (``build_definitions(load_config())`` with the temp env), the
  upstream regime window materialised once, then ``job.execute_in_process(partition_key=…,
  instance=…)`` per repetition with the CLI's quiet logger config. Ratio against in-process
  ``materialize`` of the floor asset.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from benchmarks.common import (
    Row, Stat, child_env, exe, fmt_seconds, quiet_stderr, repeat, require_ok, run_timed, short_reason,
    temp_env,
)
from benchmarks.floor import QUIET_RUN_CONFIG, Floor

SECTION = "2 cycles"
PARTITIONS = {"scan.hot": "2026-11-20-11:45", "scan.warm": "2026-11-20-10:00", "regime.refresh": "2026-11-20-08:00"}
HOT_TARGET = 1.3  # × the `dagster job execute` floor


def _subprocess_rows(reps: int, floor: Floor, storage: str) -> list[Row]:
    from benchmarks.storage import label, storage_home

    rows: list[Row] = []
    home, storage_env = storage_home(storage)
    artifacts = Path(tempfile.mkdtemp(prefix="bench_artifacts_"))
    env = child_env(DAGSTER_HOME=str(home), CRYPTORUN_ARTIFACTS_DIR=str(artifacts), CRYPTORUN_MARKET_SOURCE="simulated",
                    **storage_env)
    try:
        for job in ("regime.refresh", "scan.hot", "scan.warm"):
            metric = f"`cryptorun schedule run {job}` (subprocess, {label(storage)})"
            target = f"≤ {HOT_TARGET}× floor" if job == "scan.hot" else ""
            try:
                cmd = [exe("cryptorun"), "schedule", "run", job, "--partition", PARTITIONS[job], "--json"]
                first = require_ok(run_timed(cmd, env), f"cryptorun schedule run {job} (first run)")
                runs = [require_ok(run_timed(cmd, env), f"cryptorun schedule run {job}") for _ in range(reps)]
            except Exception as exc:  # noqa: BLE001
                rows.append(Row.unavailable(SECTION, metric, short_reason(exc), target))
                continue
            stat = Stat([r.seconds for r in runs])
            cpu = Stat([r.cpu_s for r in runs])
            ratio = stat.median / floor.subprocess.median if floor.subprocess else None
            cpu_ratio = cpu.median / floor.subprocess_cpu.median if floor.subprocess_cpu else None
            row = Row.of_stat(SECTION, metric, stat, ratio=ratio, baseline="× `dagster job execute` floor", target=target,
                              extra={"job": job, "storage": storage, "cpu": cpu.to_dict(), "cpu_ratio": cpu_ratio, "first_run_s": first.seconds,
                                     "maxrss_mib": max(r.maxrss_mib for r in runs)})
            row.detail = (f"CPU {cpu.median:.2f} s ({cpu_ratio:.2f}× floor CPU); first run in a fresh home "
                          f"{fmt_seconds(first.seconds)}" + (" (incl. upstream regime run)" if job != "regime.refresh" else "")
                          + f"; peak RSS {max(r.maxrss_mib for r in runs):.0f} MiB") if cpu_ratio else ""
            rows.append(row.judge(ratio <= HOT_TARGET if (job == "scan.hot" and ratio is not None) else None))
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(artifacts, ignore_errors=True)
    return rows


def _inprocess_rows(reps: int, floor: Floor, storage: str) -> list[Row]:
    import dagster as dg

    from benchmarks.storage import in_process_env, label, storage_home

    rows: list[Row] = []
    home, storage_env = storage_home(storage)
    artifacts = Path(tempfile.mkdtemp(prefix="bench_artifacts_"))
    try:
        with temp_env(DAGSTER_HOME=str(home), CRYPTORUN_ARTIFACTS_DIR=str(artifacts), CRYPTORUN_MARKET_SOURCE="simulated",
                      **in_process_env(storage_env)), quiet_stderr():
            from cryptorun_core.config import load_config
            from cryptorun_pipelines.build import build_definitions

            defs = build_definitions(cfg := load_config())
            instance = dg.DagsterInstance.get()
            for job in ("regime.refresh", "scan.hot", "scan.warm"):
                metric = f"in-process {job} (execute_in_process, {label(storage)})"
                try:
                    job_def = defs.resolve_job_def(cfg.job(job).dagster_name)

                    def once(job_def=job_def, key=PARTITIONS[job]) -> None:
                        res = job_def.execute_in_process(partition_key=key, instance=instance, run_config=QUIET_RUN_CONFIG,
                                                         raise_on_error=True)
                        assert res.success

                    stat = repeat(once, reps, warmup=1)
                except Exception as exc:  # noqa: BLE001
                    rows.append(Row.unavailable(SECTION, metric, short_reason(exc)))
                    continue
                ratio = stat.median / floor.inprocess.median if floor.inprocess else None
                rows.append(Row.of_stat(SECTION, metric, stat, ratio=ratio, baseline="× in-process floor",
                                        extra={"job": job, "storage": storage, "in_process": True}).judge(None))
            instance.dispose()
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(artifacts, ignore_errors=True)
    return rows


def run(reps: int, floor: Floor, storage: str = "sqlite") -> list[Row]:
    rows: list[Row] = []
    for fn, name in ((_subprocess_rows, "cryptorun schedule run"), (_inprocess_rows, "in-process cycles")):
        try:
            rows += fn(reps, floor, storage)
        except Exception as exc:  # noqa: BLE001
            rows.append(Row.unavailable(SECTION, name, short_reason(exc)))
    return rows


def compare_hot(rows: list[Row]) -> list[Row]:
    """The hot cycle on Postgres against SQLite, both measured in this run (target: no slower)."""
    def find(storage: str, in_process: bool) -> Row | None:
        for r in rows:
            extra = r.extra or {}
            if extra.get("job") == "scan.hot" and extra.get("storage") == storage and bool(extra.get("in_process")) == in_process:
                return r
        return None

    def median(storage: str, in_process: bool) -> float | None:
        row = find(storage, in_process)
        return row.value if row else None

    def cpu(storage: str) -> float | None:
        row = find(storage, False)
        return (row.extra.get("cpu") or {}).get("median") if row else None

    out = []
    for in_process, what in ((False, "`cryptorun schedule run scan.hot`"), (True, "in-process scan.hot")):
        pg, lite = median("postgres", in_process), median("sqlite", in_process)
        if pg is None or lite is None:
            continue
        out.append(Row(SECTION, f"{what}: Postgres over SQLite", pg / lite, "x", baseline="× the same cycle on SQLite",
                       target="≤ 1.00× (no slower)" if not in_process else "",
                       detail=f"Postgres {fmt_seconds(pg)}, SQLite {fmt_seconds(lite)}" + _cpu_detail(in_process, cpu))
                   .judge(pg <= lite if not in_process else None))
    return out


def _cpu_detail(in_process: bool, cpu) -> str:
    pg, lite = (None, None) if in_process else (cpu("postgres"), cpu("sqlite"))
    return f"; child CPU {pg:.2f} s vs {lite:.2f} s ({pg / lite:.2f}×)" if pg and lite else ""
