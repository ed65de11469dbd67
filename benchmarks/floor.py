"""Section 1 — the framework floor: a trivial one-asset job through both execution paths.

* subprocess: ``dagster job execute -m benchmarks.floor_defs -j floor_job`` against a temp SQLite
  ``DAGSTER_HOME`` (one untimed run first creates the storage, as a long-lived home has it; then
  ``reps`` timed runs, fork → exit wall time: interpreter start, imports, definitions load, run
  storage, one step). The child's CPU time (user + sys) is recorded too.
* in-process: ``dagster.materialize([floor_value], instance=...)`` on a SQLite instance in a temp
  ``DAGSTER_HOME``, with the quiet console logger the ``cryptorun`` CLI uses (one untimed warm-up).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass

from benchmarks.common import (
    Row, Stat, child_env, exe, quiet_stderr, repeat, require_ok, run_timed, short_reason, temp_env,
)

SECTION = "1 floor"
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
FLOOR_CMD = ["job", "execute", "-m", "benchmarks.floor_defs", "-j", "floor_job"]


@dataclass
class Floor:
    subprocess: Stat | None = None
    subprocess_cpu: Stat | None = None
    inprocess: Stat | None = None


def subprocess_floor(reps: int, floor: Floor, storage: str = "sqlite") -> list[Row]:
    from benchmarks.storage import label, storage_home

    home, storage_env = storage_home(storage)
    env = child_env(DAGSTER_HOME=str(home), **storage_env)
    try:
        require_ok(run_timed([exe("dagster"), *FLOOR_CMD], env), "dagster job execute floor_job (warm-up)")
        runs = [require_ok(run_timed([exe("dagster"), *FLOOR_CMD], env), "dagster job execute floor_job") for _ in range(reps)]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    floor.subprocess = Stat([r.seconds for r in runs])
    floor.subprocess_cpu = Stat([r.cpu_s for r in runs])
    row = Row.of_stat(SECTION, f"`dagster job execute` floor_job (subprocess, {label(storage)})", floor.subprocess,
                      baseline="subprocess floor", ratio=1.0,
                      extra={"cpu": floor.subprocess_cpu.to_dict(), "maxrss_mib": [r.maxrss_mib for r in runs]})
    row.detail = f"CPU {floor.subprocess_cpu.median:.2f} s; peak RSS {max(r.maxrss_mib for r in runs):.0f} MiB"
    return [row.judge(None)]


def inprocess_floor(reps: int, floor: Floor, storage: str = "sqlite") -> list[Row]:
    import dagster as dg

    from benchmarks.floor_defs import floor_value
    from benchmarks.storage import in_process_env, label, storage_home

    home, storage_env = storage_home(storage)
    try:
        with temp_env(DAGSTER_HOME=str(home), **in_process_env(storage_env)), quiet_stderr():
            instance = dg.DagsterInstance.get()

            def once() -> None:
                result = dg.materialize([floor_value], instance=instance, run_config=QUIET_RUN_CONFIG)
                assert result.success

            floor.inprocess = repeat(once, reps, warmup=1)
            instance.dispose()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    row = Row.of_stat(SECTION, f"in-process `materialize` floor_value ({label(storage)} DAGSTER_HOME)", floor.inprocess,
                      baseline="in-process floor", ratio=1.0)
    return [row.judge(None)]


def interpreter_floor(reps: int) -> list[Row]:
    """For reading the subprocess numbers: bare interpreter start and `import dagster`."""
    bare = Stat([require_ok(run_timed([sys.executable, "-c", "pass"], child_env()), "python").seconds for _ in range(reps)])
    imp = Stat([require_ok(run_timed([sys.executable, "-c", "import dagster"], child_env()), "import dagster").seconds
                for _ in range(reps)])
    return [
        Row.of_stat(SECTION, "  python -c pass (interpreter start)", bare).judge(None),
        Row.of_stat(SECTION, "  python -c 'import dagster'", imp).judge(None),
    ]


def run(reps: int, floor: Floor, storage: str = "sqlite", interpreter: bool = True) -> list[Row]:
    rows: list[Row] = []
    for fn, name in ((subprocess_floor, "`dagster job execute` floor_job"), (inprocess_floor, "in-process materialize floor")):
        try:
            rows += fn(reps, floor, storage)
        except Exception as exc:  # noqa: BLE001
            rows.append(Row.unavailable(SECTION, name, short_reason(exc)))
    if not interpreter:
        return rows
    try:
        rows += interpreter_floor(3)
    except Exception as exc:  # noqa: BLE001
        rows.append(Row.unavailable(SECTION, "interpreter start", short_reason(exc)))
    return rows
