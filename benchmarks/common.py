"""Shared helpers: timing statistics, result rows, machine description, subprocess environment."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent  # repository root
RESULTS_DIR = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent

# The same instance settings the `cryptorun` CLI installs into a fresh DAGSTER_HOME (the local
# profile, deploy/local/dagster.yaml): every DAGSTER_HOME of the benchmark gets it, so the floor
# and the cycles pay for the same instance (SQLite storage, no telemetry).
DAGSTER_YAML = (ROOT / "deploy" / "local" / "dagster.yaml").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------
# statistics
# ------------------------------------------------------------------------------------------


@dataclass
class Stat:
    """Repetitions of one measurement (seconds unless ``unit`` says otherwise)."""

    samples: list[float]
    unit: str = "s"

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def lo(self) -> float:
        return min(self.samples) if self.samples else float("nan")

    @property
    def hi(self) -> float:
        return max(self.samples) if self.samples else float("nan")

    def to_dict(self) -> dict:
        return {"median": self.median, "min": self.lo, "max": self.hi, "n": len(self.samples), "unit": self.unit,
                "samples": self.samples}


def repeat(fn: Callable[[], Any], reps: int, warmup: int = 0) -> Stat:
    """Time ``fn`` ``reps`` times (after ``warmup`` untimed calls); wall clock."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return Stat(out)


def fmt_seconds(s: float) -> str:
    if s != s:  # NaN
        return "—"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def fmt_value(v: float, unit: str) -> str:
    if v is None or v != v:
        return "—"
    if unit == "s":
        return fmt_seconds(v)
    if unit == "x":
        return f"{v:.2f}×"
    if unit == "MiB":
        return f"{v:,.0f} MiB"
    if unit == "count":
        return f"{v:,.0f}"
    return f"{v:.3g} {unit}"


# ------------------------------------------------------------------------------------------
# result rows
# ------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table."""

    section: str
    metric: str
    value: float | None = None
    unit: str = "s"
    spread: str = ""  # "min–max (n=5)"
    ratio: float | None = None  # against the section's baseline
    baseline: str = ""
    target: str = ""
    verdict: str = ""  # "ok" | "MISS" | "info" | "unavailable"
    detail: str = ""
    extra: dict = field(default_factory=dict)

    @staticmethod
    def of_stat(section: str, metric: str, stat: Stat, **kw) -> "Row":
        spread = f"{fmt_value(stat.lo, stat.unit)}–{fmt_value(stat.hi, stat.unit)} (n={len(stat.samples)})"
        return Row(section, metric, stat.median, stat.unit, spread, extra={"samples": stat.samples, **kw.pop("extra", {})}, **kw)

    @staticmethod
    def unavailable(section: str, metric: str, reason: str, target: str = "") -> "Row":
        return Row(section, metric, None, "", verdict="unavailable", target=target, detail=f"unavailable: {reason}")

    def judge(self, ok: bool | None) -> "Row":
        self.verdict = "info" if ok is None else ("ok" if ok else "MISS")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Send fd 2 to /dev/null (Dagster's console logger of in-process runs) for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def short_reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().replace("\n", " ")
    return text[:300]


def guarded(section: str, metric: str, target: str = "") -> Callable:
    """Decorator: run a measurement; on any exception return one 'unavailable' row instead."""

    def wrap(fn: Callable[..., list[Row]]) -> Callable[..., list[Row]]:
        def inner(*a, **kw) -> list[Row]:
            try:
                return fn(*a, **kw)
            except Exception as exc:  # noqa: BLE001 - a benchmark row must never crash the run
                if os.environ.get("BENCH_DEBUG"):
                    traceback.print_exc()
                return [Row.unavailable(section, metric, short_reason(exc), target)]

        inner.__name__ = fn.__name__
        return inner

    return wrap


# ------------------------------------------------------------------------------------------
# machine
# ------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _meminfo_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _version(mod: str) -> str:
    try:
        from importlib.metadata import version

        return version(mod)
    except Exception:  # noqa: BLE001
        return "not installed"


def machine_description() -> dict:
    total = _meminfo_kib("MemTotal")
    avail = _meminfo_kib("MemAvailable")
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "cpu_model": _cpu_model(),
        "mem_total_gib": round(total / 2**20, 1) if total else None,
        "mem_available_gib": round(avail / 2**20, 1) if avail else None,
        "loadavg_1_5_15": [round(x, 2) for x in load],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "dagster": _version("dagster"),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "ccxt": _version("ccxt"),
        "pyinstrument": _version("pyinstrument"),
        "executable": sys.executable,
    }


def machine_lines(m: dict) -> list[str]:
    return [
        f"cpu: {m['cpu_count']} × {m['cpu_model']} (affinity {m['cpu_affinity']}); "
        f"memory {m['mem_total_gib']} GiB ({m['mem_available_gib']} GiB available); load {m['loadavg_1_5_15']}",
        f"python {m['python']}, dagster {m['dagster']}, numpy {m['numpy']}, pandas {m['pandas']}, ccxt {m['ccxt']}; {m['platform']}",
    ]


# ------------------------------------------------------------------------------------------
# temp DAGSTER_HOME / artifacts, subprocess env
# ------------------------------------------------------------------------------------------


def make_dagster_home(parent: Path | str | None = None) -> Path:
    home = Path(tempfile.mkdtemp(prefix="bench_dagster_home_", dir=parent))
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    return home


@contextmanager
def temp_env(**env: str | None) -> Iterator[None]:
    """Set (or unset, for None) environment variables for the duration of the block."""
    old = {k: os.environ.get(k) for k in env}
    try:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env.setdefault("NO_COLOR", "1")
    env.update(extra)
    return env


@dataclass
class ProcResult:
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    maxrss_mib: float
    cpu_s: float = float("nan")  # user + system CPU of the child (robust against a noisy machine)


def run_timed(cmd: Sequence[str], env: dict[str, str], timeout: float = 600, cwd: Path | None = None) -> ProcResult:
    """Run ``cmd`` and return its wall time (fork to exit) and peak RSS (ru_maxrss of the child)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), env=env, cwd=str(cwd or ROOT), stdout=out, stderr=err)
        deadline = t0 + timeout
        rusage = None
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ProcResult(seconds, proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                          rusage.ru_maxrss / 1024 if rusage else float("nan"),
                          (rusage.ru_utime + rusage.ru_stime) if rusage else float("nan"))


def require_ok(res: ProcResult, what: str) -> ProcResult:
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or res.stdout.strip().splitlines() or ["(no output)"])[-3:]
        raise RuntimeError(f"{what} exited {res.returncode}: {' | '.join(tail)[:400]}")
    return res


def exe(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"executable '{name}' not found next to {sys.executable} or on PATH")
    return found


def peak_rss_mib() -> dict[str, float]:
    """This process's peak RSS: ru_maxrss and /proc/self/status VmHWM, in MiB."""
    import resource

    out = {"ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmHWM:", "VmRSS:")):
                out[line.split(":")[0] + "_mib"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


def dump_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
