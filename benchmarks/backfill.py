"""Section 4 — one year of 4h regime partitions as a single-run backfill, per instance storage.

The packaged config starts partitions on 2026-11-01, so a year of *closed* regime windows does not
exist yet; the worker copies ``config/scheduler.yaml`` with ``global.partitions_start`` one year
earlier (2025-11-01) into a temp folder (``CRYPTORUN_CONFIG``). The year is then the 2,190
partitions ``2025-11-01-00:00`` … ``2026-10-31-20:00``.

The worker (``python -m benchmarks.backfill --worker``, a fresh process, temp ``DAGSTER_HOME`` and
``CRYPTORUN_ARTIFACTS_DIR``, simulated market) builds the real definitions and measures:

1. single-partition runs of ``regime_refresh`` (``execute_in_process(partition_key=…)``; one
   untimed warm-up, then ``reps`` runs on different keys) → the per-partition cost of one run per
   partition, extrapolated × 2,190;
2. single-run backfills (``execute_in_process`` with tags ``dagster/asset_partition_range_start``
   / ``_end``, all three regime assets having ``BackfillPolicy.single_run()``): a small one of
   ``N0`` partitions, then one as large as the time budget allows (the whole year when the
   marginal cost per partition permits). When the largest is < 2,190 the year is extrapolated
   linearly from the marginal cost between the two backfills — the table says so;
3. the same two backfills of the Dagster floor of the same lineage (``backfill_floor_defs.py``) on
   the same instance;
4. the files those runs wrote, written again into a new folder by the IO manager's atomic batch
   write with nothing else (:func:`_files_alone`): the filesystem's share, which the Dagster floor
   (an IO manager that stores nothing) does not hold.

Storages (``--storage``): ``sqlite`` is the local profile as shipped, measured a second time with
``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1`` (one planned event per asset instead of one
per asset and partition; on SQLite it costs the failed/in-progress marks of a failed backfill's
partitions, see docs/orchestration.md); ``postgres`` is the production profile (pooled event log,
which always takes the one-event path and writes the per-partition rows itself, and
``DAGSTER_EVENT_BATCH_SIZE`` from its ``event_batch_size``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from benchmarks.common import Row, Stat, child_env, fmt_seconds, require_ok, run_timed

SECTION = "4 backfill"
YEAR_PARTITIONS = 2190
YEAR_START = datetime(2025, 11, 1, tzinfo=timezone.utc)
#: targets per storage: (seconds for the year or None, × the Dagster floor of the same lineage)
TARGETS = {"sqlite": (None, 1.2), "postgres": (30.0, 1.5)}
SUBSET_SWITCH_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def key_at(i: int) -> str:
    return (YEAR_START + timedelta(hours=4 * i)).strftime("%Y-%m-%d-%H:%M")


def _write_config(folder: Path) -> Path:
    import yaml

    from cryptorun_core.config import DEFAULT_CONFIG_PATH

    raw = yaml.safe_load(Path(DEFAULT_CONFIG_PATH).read_text())
    raw.setdefault("global", {})["partitions_start"] = YEAR_START.strftime("%Y-%m-%dT%H:%M:%SZ")
    raw.setdefault("market", {})["source"] = "simulated"
    (folder / "config").mkdir(parents=True, exist_ok=True)
    path = folder / "config" / "scheduler.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def worker(reps: int, n0: int, budget_s: float, max_partitions: int, floor_partitions: int = 300,
           storage: str = "sqlite") -> dict:
    from benchmarks.common import quiet_stderr, temp_env
    from benchmarks.storage import storage_home

    tmp = Path(tempfile.mkdtemp(prefix="bench_backfill_"))
    home, storage_env = storage_home(storage, tmp)
    artifacts = tmp / "artifacts"
    cfg_path = _write_config(tmp)
    out: dict = {"year_partitions": YEAR_PARTITIONS, "storage": storage}
    try:
        with temp_env(DAGSTER_HOME=str(home), CRYPTORUN_ARTIFACTS_DIR=str(artifacts), CRYPTORUN_CONFIG=str(cfg_path),
                      CRYPTORUN_MARKET_SOURCE="simulated", **storage_env), quiet_stderr():
            import dagster as dg

            from cryptorun_core.config import load_config
            from cryptorun_pipelines.build import build_definitions

            config = load_config()
            defs = build_definitions(config)
            job = defs.resolve_job_def("regime_refresh")
            instance = dg.DagsterInstance.get()

            def single(i: int) -> float:
                t = time.perf_counter()
                res = job.execute_in_process(partition_key=key_at(i), instance=instance, run_config=QUIET_RUN_CONFIG)
                assert res.success
                return time.perf_counter() - t

            single(YEAR_PARTITIONS - 1)  # warm-up (imports, schema compilation, storage creation)
            out["single"] = [single(i) for i in range(1000, 1000 + reps)]
            per_single = statistics.median(out["single"])

            def backfill(first: int, n: int) -> float:
                t = time.perf_counter()
                res = job.execute_in_process(
                    instance=instance, run_config=QUIET_RUN_CONFIG,
                    tags={RANGE_START_TAG: key_at(first), RANGE_END_TAG: key_at(first + n - 1)},
                )
                assert res.success
                return time.perf_counter() - t

            t0 = backfill(0, n0)
            out["small"] = {"n": n0, "seconds": t0}
            # marginal cost per partition inside one run: the fixed part is at most one single run
            marginal = max((t0 - per_single) / max(n0 - 1, 1), 1e-4)
            n1 = int(min(max_partitions, YEAR_PARTITIONS, max(n0 * 2, budget_s / marginal)))
            t1 = backfill(n0, n1)  # a disjoint range: nothing is cached from the small one
            out["large"] = {"n": n1, "seconds": t1}
            if n1 >= YEAR_PARTITIONS:
                out["year_s"] = t1
                out["year_measured"] = True
            else:
                slope = (t1 - t0) / (n1 - n0) if n1 > n0 else t1 / n1
                out["year_s"] = t1 + (YEAR_PARTITIONS - n1) * slope
                out["year_measured"] = False
                out["slope_s"] = slope
            out["artifacts_regime_json"] = sum(1 for _ in artifacts.glob("*/regime.json"))
            out["files"] = _files_alone(artifacts, tmp / "rewritten")
            out["floor"] = _framework_floor(instance, n0, min(n1, floor_partitions))
            out["event_batch_size"] = os.environ.get("DAGSTER_EVENT_BATCH_SIZE")
            instance.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _files_alone(artifacts: Path, target: Path) -> dict:
    """Every file the runs above wrote (each partition's universe.parquet, regime_indicators.parquet
    and regime.json), written again into a new folder the way the IO manager writes them — one
    atomic batch per kind of file (:func:`cryptorun_core.artifacts.write_files`) — with no Dagster
    and no computation: what the filesystem alone charges for a backfill's files."""
    from cryptorun_core.artifacts import write_files

    batches: dict[str, list[tuple[Path, bytes]]] = {}
    for path in sorted(artifacts.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            batches.setdefault(path.name, []).append((target / path.relative_to(artifacts), path.read_bytes()))
    t = time.perf_counter()
    for files in batches.values():
        write_files(files)
    seconds = time.perf_counter() - t
    partitions = len(batches.get("regime.json", ()))
    return {"seconds": seconds, "files": sum(len(f) for f in batches.values()), "partitions": partitions,
            "year_s": seconds / max(partitions, 1) * YEAR_PARTITIONS}


def _framework_floor(instance, n0: int, n1: int) -> dict:
    """The same two single-run backfills (``n0``, then ``n1`` disjoint partitions) of the no-op
    three-asset lineage (:mod:`benchmarks.backfill_floor_defs`) on the same instance; the year is
    extrapolated from the marginal cost between them, exactly as for the real backfill."""
    from benchmarks.backfill_floor_defs import build_floor_job

    defs, name = build_floor_job(YEAR_START)
    job = defs.resolve_job_def(name)

    def backfill(first: int, n: int) -> float:
        t = time.perf_counter()
        res = job.execute_in_process(instance=instance, run_config=QUIET_RUN_CONFIG,
                                     tags={RANGE_START_TAG: key_at(first), RANGE_END_TAG: key_at(first + n - 1)})
        assert res.success
        return time.perf_counter() - t

    backfill(YEAR_PARTITIONS - 1, 1)  # warm-up: the floor job's first run compiles its plan
    t0 = backfill(0, n0)
    t1 = backfill(n0, n1)
    slope = (t1 - t0) / (n1 - n0) if n1 > n0 else t1 / n1
    return {"small": {"n": n0, "seconds": t0}, "large": {"n": n1, "seconds": t1}, "slope_s": slope,
            "year_s": t1 + (YEAR_PARTITIONS - n1) * slope if n1 < YEAR_PARTITIONS else t1}


def _variants(storages: list[str]) -> list[tuple[str, bool]]:
    """(storage, subset switch) pairs: SQLite as shipped and with the switch; Postgres as shipped."""
    out: list[tuple[str, bool]] = []
    for storage in storages:
        out += [("sqlite", False), ("sqlite", True)] if storage == "sqlite" else [(storage, False)]
    return out


def run(quick: bool, storages: list[str] | None = None) -> list[Row]:
    rows: list[Row] = []
    for storage, switch in _variants(storages or ["sqlite"]):
        rows += _run_one(quick, storage, switch)
    return rows


def _run_one(quick: bool, storage: str, switch: bool) -> list[Row]:
    from benchmarks.common import short_reason
    from benchmarks.storage import label, server_env

    name = label(storage) + (f", {SUBSET_SWITCH_ENV}=1" if switch else "")
    metric = f"one-year regime backfill (2,190 × 4h partitions, single run, {name})"
    target_s, target_x = TARGETS[storage]
    target = ", ".join(([f"≤ {target_s:.0f} s"] if target_s else []) + ([f"≤ {target_x}× floor"] if not switch else []))
    reps = 3
    floor_partitions = YEAR_PARTITIONS if storage == "postgres" else 300
    cmd = [sys.executable, "-m", "benchmarks.backfill", "--worker", "--reps", str(reps), "--n0", "6",
           # Postgres: the whole year whenever it fits in 2 min (its target is about the year itself)
           "--budget", "120" if storage == "postgres" else ("40" if quick else "75"), "--max-partitions", str(YEAR_PARTITIONS),
           "--floor-partitions", str(floor_partitions), "--storage", storage]
    try:
        env = child_env(**({SUBSET_SWITCH_ENV: "1"} if switch else {}), **server_env(storage))
        if not switch:
            env.pop(SUBSET_SWITCH_ENV, None)
        res = require_ok(run_timed(cmd, env, timeout=900), "backfill worker")
        data = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("{")][-1])
    except Exception as exc:  # noqa: BLE001
        return [Row.unavailable(SECTION, metric, short_reason(exc), target)]
    single = Stat(data["single"])
    per_single = single.median
    year = data["year_s"]
    large = data["large"]
    how = "measured" if data["year_measured"] else (
        f"extrapolated from a {large['n']}-partition single-run backfill ({fmt_seconds(large['seconds'])}) at "
        f"{fmt_seconds(data['slope_s'])}/partition")
    floor = data.get("floor")
    over_floor = year / floor["year_s"] if floor else None
    verdicts = []
    if target_s:
        verdicts.append(year <= target_s)
    if not switch and over_floor is not None:
        verdicts.append(over_floor <= target_x)
    extrapolated_single = per_single * YEAR_PARTITIONS
    rows = [
        Row(SECTION, metric, year, "s", ratio=year / extrapolated_single, baseline="× 2,190 single-partition runs",
            target=target, detail=how + (f"; {over_floor:.2f}× the Dagster floor" if over_floor else ""),
            extra=data).judge(all(verdicts) if verdicts else None),
        Row(SECTION, "  per partition inside the backfill", year / YEAR_PARTITIONS, "s",
            detail=f"small backfill: {data['small']['n']} partitions in {fmt_seconds(data['small']['seconds'])}").judge(None),
        Row.of_stat(SECTION, "  single-partition regime_refresh run (in-process)", single,
                    detail=f"× 2,190 = {fmt_seconds(extrapolated_single)} extrapolated").judge(None),
    ]
    if floor:
        floor_how = ("measured" if floor["large"]["n"] >= YEAR_PARTITIONS else
                     f"year extrapolated from {floor['large']['n']} partitions in {fmt_seconds(floor['large']['seconds'])}")
        rows += [
            Row(SECTION, f"  Dagster floor: the same lineage (one 3-output step), no-op body and IO manager ({name})",
                floor["year_s"], "s", detail=f"{floor_how} ({fmt_seconds(floor['slope_s'])}/partition)").judge(None),
            Row(SECTION, "  one-year backfill over the Dagster floor", over_floor, "x",
                baseline="× Dagster floor of the same lineage",
                detail=f"CryptoRun's own cost {fmt_seconds(year - floor['year_s'])} for the year "
                       f"({fmt_seconds((year - floor['year_s']) / YEAR_PARTITIONS)}/partition)").judge(None),
        ]
    files = data.get("files")
    if floor and files and files["partitions"]:
        both = floor["year_s"] + files["year_s"]
        rows += [
            Row(SECTION, "  artifact files alone: the backfill's files written again with the IO manager's atomic batch write",
                files["year_s"], "s",
                detail=f"{files['files']:,} files of {files['partitions']:,} partitions in {fmt_seconds(files['seconds'])}, "
                       "scaled to the year; no Dagster, no computation").judge(None),
            Row(SECTION, "  one-year backfill over the Dagster floor + the files alone", year / both, "x",
                baseline="× (Dagster floor + artifact files)",
                detail=f"what is left for computing, checking and describing the partitions: {fmt_seconds(year - both)} "
                       f"({fmt_seconds((year - both) / YEAR_PARTITIONS)}/partition)").judge(None),
        ]
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--worker", action="store_true", required=True)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--n0", type=int, default=6)
    p.add_argument("--budget", type=float, default=120.0)
    p.add_argument("--max-partitions", type=int, default=YEAR_PARTITIONS)
    p.add_argument("--floor-partitions", type=int, default=300)
    p.add_argument("--storage", default="sqlite")
    a = p.parse_args()
    print(json.dumps(worker(a.reps, a.n0, a.budget, a.max_partitions, a.floor_partitions, a.storage)))


if __name__ == "__main__":
    main()
