"""Profile what misses a target (pyinstrument; falls back to cProfile when it is not installed).

    python -m benchmarks.profile engine --n 30          # rank_universe + compute_regime + run_scan
    python -m benchmarks.profile engine --n 2000 --reps 1
    python -m benchmarks.profile job scan.hot           # one in-process Dagster run (after a warm-up)
    python -m benchmarks.profile backfill --n 6         # a 6-partition single-run regime backfill
    python -m benchmarks.profile backfill --n 300 --storage postgres

Writes ``benchmarks/results/profiles/<target>.txt`` and prints it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS_DIR, make_dagster_home, quiet_stderr, temp_env

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class _Prof:
    def __init__(self) -> None:
        try:
            from pyinstrument import Profiler

            self.p = Profiler(interval=0.001)
            self.kind = "pyinstrument"
        except ImportError:  # pragma: no cover
            import cProfile

            self.p = cProfile.Profile()
            self.kind = "cprofile"

    def __enter__(self) -> "_Prof":
        self.t = time.perf_counter()
        self.c = time.process_time()
        self.p.enable() if self.kind == "cprofile" else self.p.start()
        return self

    def __exit__(self, *exc) -> None:
        self.p.disable() if self.kind == "cprofile" else self.p.stop()
        self.wall = time.perf_counter() - self.t
        self.cpu = time.process_time() - self.c

    def text(self) -> str:
        head = f"wall {self.wall:.3f} s, CPU {self.cpu:.3f} s\n"
        if self.kind == "pyinstrument":
            return head + self.p.output_text(unicode=True, color=False)
        import io
        import pstats

        buf = io.StringIO()
        pstats.Stats(self.p, stream=buf).sort_stats("cumulative").print_stats(40)
        return head + buf.getvalue()


def profile_engine(n: int, reps: int) -> str:
    from cryptorun_core.config import load_config
    from cryptorun_core.engine import run_scan
    from cryptorun_core.regime import compute_regime
    from cryptorun_core.universe import rank_universe

    from benchmarks.synth import build_snapshot

    config = load_config(check_artifacts_dir=False)
    job = config.job("scan.hot")
    snap = build_snapshot(n)

    def cycle() -> None:
        ranking = rank_universe(snap, config, hot_size=n, warm_size=0)
        regime = compute_regime(snap, ranking, config)
        run_scan(snap, ranking, {**regime.to_dict(), "partition_key": "x"}, config, job)

    if n <= 500:
        cycle()
    with _Prof() as p:
        for _ in range(reps):
            cycle()
    return p.text()


def _dagster_env():
    tmp = Path(tempfile.mkdtemp(prefix="bench_profile_"))
    home = make_dagster_home(tmp)
    return tmp, {"DAGSTER_HOME": str(home), "CRYPTORUN_ARTIFACTS_DIR": str(tmp / "artifacts"),
                 "CRYPTORUN_MARKET_SOURCE": "simulated"}


def profile_job(job: str, reps: int) -> str:
    from benchmarks.cycles import PARTITIONS

    tmp, env = _dagster_env()
    try:
        with temp_env(**env), quiet_stderr():
            import dagster as dg

            from cryptorun_core.config import load_config
            from cryptorun_pipelines.build import build_definitions

            defs = build_definitions(cfg := load_config())
            inst = dg.DagsterInstance.get()
            jd = defs.resolve_job_def(cfg.job(job).dagster_name)
            if job != "regime.refresh":
                defs.resolve_job_def("regime_refresh").execute_in_process(
                    partition_key=PARTITIONS["regime.refresh"], instance=inst, run_config=QUIET)
            jd.execute_in_process(partition_key=PARTITIONS[job], instance=inst, run_config=QUIET)
            with _Prof() as p:
                for _ in range(reps):
                    jd.execute_in_process(partition_key=PARTITIONS[job], instance=inst, run_config=QUIET)
        return p.text()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def profile_backfill(n: int, storage: str = "sqlite") -> str:
    from benchmarks.backfill import RANGE_END_TAG, RANGE_START_TAG, _write_config, key_at
    from benchmarks.storage import storage_home

    tmp, env = _dagster_env()
    home, storage_env = storage_home(storage, tmp)
    env.update(DAGSTER_HOME=str(home), **storage_env)
    env["CRYPTORUN_CONFIG"] = str(_write_config(tmp))
    try:
        with temp_env(**env), quiet_stderr():
            import dagster as dg

            from cryptorun_core.config import load_config
            from cryptorun_pipelines.build import build_definitions

            defs = build_definitions(load_config())
            inst = dg.DagsterInstance.get()
            jd = defs.resolve_job_def("regime_refresh")
            jd.execute_in_process(partition_key=key_at(2000), instance=inst, run_config=QUIET)
            with _Prof() as p:
                jd.execute_in_process(instance=inst, run_config=QUIET,
                                      tags={RANGE_START_TAG: key_at(0), RANGE_END_TAG: key_at(n - 1)})
        return p.text()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    sub = p.add_subparsers(dest="target", required=True)
    e = sub.add_parser("engine")
    e.add_argument("--n", type=int, default=30)
    e.add_argument("--reps", type=int, default=3)
    j = sub.add_parser("job")
    j.add_argument("job", choices=["scan.hot", "scan.warm", "regime.refresh"])
    j.add_argument("--reps", type=int, default=2)
    b = sub.add_parser("backfill")
    b.add_argument("--n", type=int, default=6)
    b.add_argument("--storage", choices=["sqlite", "postgres"], default="sqlite")
    a = p.parse_args()
    if a.target == "engine":
        text, name = profile_engine(a.n, a.reps), f"engine_{a.n}"
    elif a.target == "job":
        text, name = profile_job(a.job, a.reps), f"job_{a.job}"
    else:
        text, name = profile_backfill(a.n, a.storage), f"backfill_{a.n}_{a.storage}"
    out = RESULTS_DIR / "profiles" / f"{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"written {out}")


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    main()
