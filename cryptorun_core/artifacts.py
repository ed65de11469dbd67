"""SPEC §9 artifact formatting and writing (used by the pipeline's IO manager).

Rounding (:data:`ROUNDING`, applied by :func:`format_frame` and :func:`round_named`):

- scores, 1 decimal: score, momentum_core, technical, volume, quality (and their ``*_raw``),
  premove_score, compression;
- basis points, 1 decimal: spread_bps;
- USD, whole dollars (written as integers): depth_usd, bid_depth_usd, ask_depth_usd, adv_usd,
  depth_min_usd;
- VADR, 2 decimals: vadr, vadr_min;
- ratios, 3 decimals: volume_build, book_imbalance, volume_surge, r_24h, accel;
- seconds, 1 decimal: ttl_remaining_s, book_age_s; bar lag 2 decimals.

Columns not listed are written as they are. ``timestamp`` values that are datetimes are written
``YYYY-MM-DDTHH:MM:SSZ``. Missing numbers are written as empty CSV fields / JSON ``null``.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import stat
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from cryptorun_core import asset_keys as keys
from cryptorun_core.timefmt import as_of_folder, iso_z

SIGNALS_COLUMNS = ("timestamp", "symbol", "score", "momentum_core", "vadr", "spread_bps", "depth_usd", "regime", "fresh", "venue", "sources")
WARM_SIGNALS_COLUMNS = SIGNALS_COLUMNS + ("cached", "ttl_remaining_s")
PREMOVE_COLUMNS = (
    "timestamp", "symbol", "venue", "premove_score", "state", "compression", "volume_build", "book_imbalance",
    "gates_passed", "execution_risk", "spread_bps", "depth_usd",
)
#: signal evaluation (issue #17; uses data after T): one row per evaluated symbol of a past cycle
EVALUATION_COLUMNS = ("as_of", "job", "segment", "symbol", "venue", "tier", "regime", "score", "decision", "score_gate",
                      "primary_reason", "fwd_1h", "fwd_4h", "fwd_24h")
EVALUATION_SUMMARY_COLUMNS = ("job", "grouping", "group", "horizon", "count", "mean", "median", "hit_rate", "spearman_score")
COLUMNS = {"signals": SIGNALS_COLUMNS, "warm_signals": WARM_SIGNALS_COLUMNS, "premove": PREMOVE_COLUMNS,
           "evaluation": EVALUATION_COLUMNS, "evaluation_summary": EVALUATION_SUMMARY_COLUMNS}

# --------------------------------------------------------------------------------------------
# the registry: every file a cycle writes, once
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    """One stored output: the asset that materialises it, the kind of job that writes it, and where
    and how it is stored (``location`` ``artifacts``: a SPEC §9 file in ``{artifacts_dir}/{as_of}/``;
    ``cache``: pipeline-internal, under ``{artifacts_dir}/.pipeline/{as_of}/``)."""

    asset: str
    role: str  # 'regime' | 'hot' | 'warm'
    filename: str  # inside the as_of folder (a folder for snapshots)
    kind: str  # 'csv' | 'json' | 'parquet' | 'snapshot'
    location: str  # 'artifacts' | 'cache'
    csv_kind: str | None = None  # the csv_bytes kind (its SPEC §9 columns)

    @property
    def spec_file(self) -> bool:
        return self.location == "artifacts"


ARTIFACTS: tuple[Artifact, ...] = (
    Artifact(keys.UNIVERSE_RANKING, "regime", "universe.parquet", "parquet", "cache"),
    Artifact(keys.REGIME_INDICATORS, "regime", "regime_indicators.parquet", "parquet", "cache"),
    Artifact(keys.REGIME_WEIGHTS, "regime", "regime.json", "json", "artifacts"),
    Artifact(keys.HOT_SNAPSHOT, "hot", "snapshots/scan_hot", "snapshot", "cache"),
    Artifact(keys.HOT_SIGNALS, "hot", "signals.csv", "csv", "artifacts", "signals"),
    Artifact(keys.HOT_PREMOVE, "hot", "premove.csv", "csv", "artifacts", "premove"),
    Artifact(keys.HOT_EXPLAIN, "hot", "explain.json", "json", "artifacts"),
    Artifact(keys.WARM_SNAPSHOT, "warm", "snapshots/scan_warm", "snapshot", "cache"),
    Artifact(keys.WARM_SIGNALS, "warm", "warm_signals.csv", "csv", "artifacts", "warm_signals"),
    # signal evaluation: uses data after T; the folder {artifacts_dir}/evaluation/<day or range>/ holding
    # EVALUATION_FILES, never read by a scan
    Artifact(keys.SIGNAL_EVALUATION, "evaluation", "evaluation", "folder", "evaluation"),
)
BY_ASSET: dict[str, Artifact] = {a.asset: a for a in ARTIFACTS}
#: the assets each kind of job materialises, in the order they are computed
ROLE_ASSETS: dict[str, tuple[str, ...]] = {
    role: tuple(a.asset for a in ARTIFACTS if a.role == role) for role in ("regime", "hot", "warm")
}
#: the SPEC §9 files (the only ones the as_of folders ever hold)
SPEC_FILES: tuple[str, ...] = tuple(a.filename for a in ARTIFACTS if a.spec_file)
PIPELINE_DIR = ".pipeline"
EVALUATION_DIR = "evaluation"


#: the files of one evaluation folder (csv kinds in COLUMNS)
EVALUATION_FILES: dict[str, str] = {
    "rows": "evaluation.csv", "summary": "evaluation_summary.csv", "report": "evaluation.json", "chart": "evaluation.png",
}


def evaluation_dir(artifacts_dir: str | os.PathLike[str], label: str) -> Path:
    """Folder of one evaluation: ``{artifacts_dir}/evaluation/<label>`` (a day ``YYYY-MM-DD`` of the
    partitioned asset, or ``<from>_<to>`` of ``cryptorun evaluate``)."""
    return safe_join(artifacts_dir, EVALUATION_DIR, label)


def artifact_path(artifacts_dir: str | os.PathLike[str], asset: str, as_of: Any) -> Path:
    """Where ``asset``'s output for the cycle at ``as_of`` is stored (SPEC §9 layout), refusing
    (ValueError) a folder on the way — the as_of folder, ``.pipeline`` — that leads outside
    ``artifacts_dir``. A SPEC file's own name is not resolved: it may be the link of its set
    (:mod:`cryptorun_core.artifact_sets`)."""
    return artifact_paths(artifacts_dir, asset, [as_of])[0]


def artifact_paths(artifacts_dir: str | os.PathLike[str], asset: str, as_ofs: Sequence[Any]) -> list[Path]:
    """:func:`artifact_path` of every ``as_ofs``, for a range of thousands of partitions too:
    ``artifacts_dir`` and the folders all paths share are resolved once, and each partition's own
    part is followed link by link only where a link is (``Path.resolve`` walks the whole path from
    ``/`` for each)."""
    spec = BY_ASSET[asset]
    if spec.location == EVALUATION_DIR:  # ``as_of`` is the evaluation's label (a day, or <from>_<to>)
        return [evaluation_dir(artifacts_dir, str(a)) for a in as_ofs]
    base = Path(artifacts_dir).resolve()
    parts = spec.filename.split("/")
    if spec.spec_file:
        shared, own, name = base, lambda a: [as_of_folder(a)], parts[-1]
    else:
        shared = _resolve_below(base, base, [PIPELINE_DIR])
        own, name = (lambda a: [as_of_folder(a), *parts]), None
    out = []
    for a in as_ofs:
        path = _resolve_below(base, shared, own(a))
        out.append(path / name if name else path)
    return out


def _resolve_below(base: Path, resolved: Path, parts: Sequence[str]) -> Path:
    """``(resolved / parts).resolve()`` for a ``resolved`` folder inside ``base``, refusing (ValueError)
    a result outside ``base`` as :func:`safe_join` does."""
    path = resolved
    for i, part in enumerate(parts):
        if part in ("", ".", "..") or "/" in part or "\x00" in part:
            return safe_join(base, *resolved.relative_to(base).parts, *parts)
        path = path / part
        try:
            link = stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:  # nothing below exists (as for Path.resolve): nothing below can be a link
            path = path.joinpath(*parts[i + 1:])
            break
        if link:
            return safe_join(base, *resolved.relative_to(base).parts, *parts)
    if path != base and base not in path.parents:
        raise ValueError(f"path {path} resolves outside {base}")
    return path


_SCORES = ("score", "momentum_core", "technical", "volume", "quality", "technical_raw", "volume_raw", "quality_raw",
           "premove_score", "compression")
ROUNDING: dict[str, int] = {
    **{c: 1 for c in _SCORES},
    "spread_bps": 1,
    **{c: 0 for c in ("depth_usd", "bid_depth_usd", "ask_depth_usd", "adv_usd", "depth_min_usd")},
    "vadr": 2,
    "vadr_min": 2,
    **{c: 3 for c in ("volume_build", "book_imbalance", "volume_surge", "r_24h", "accel")},
    "ttl_remaining_s": 1,
    "book_age_s": 1,
    "bar_lag_bars": 2,
}
WHOLE = {c for c, d in ROUNDING.items() if d == 0}


def round_named(name: str, value: Any) -> Any:
    """Round one value by column/key name (None for NaN); unknown names are returned unchanged."""
    if name not in ROUNDING or value is None or isinstance(value, bool):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError):
        return value
    if not math.isfinite(f):
        return None
    d = ROUNDING[name]
    return int(round(f)) if d == 0 else round(f, d)


def format_frame(frame: pd.DataFrame, kind: str | None = None) -> pd.DataFrame:
    """A copy of ``frame`` rounded per :data:`ROUNDING`, SPEC columns first for ``kind``."""
    out = frame.copy()
    for col in out.columns:
        if col in ROUNDING and (pd.api.types.is_numeric_dtype(out[col]) or out[col].dtype == object):
            vals = pd.to_numeric(out[col], errors="coerce").astype(float)
            if col in WHOLE:
                out[col] = vals.round(0).astype("Int64")
            else:
                out[col] = vals.round(ROUNDING[col])
    if "timestamp" in out.columns and len(out) and not pd.api.types.is_string_dtype(out["timestamp"]):
        out["timestamp"] = [iso_z(t) for t in out["timestamp"]]
    if kind is not None:
        if kind not in COLUMNS:
            raise ValueError(f"unknown artifact kind '{kind}' (known: {sorted(COLUMNS)})")
        first = list(COLUMNS[kind])
        missing = [c for c in first if c not in out.columns]
        if missing:
            raise ValueError(f"{kind} table lacks SPEC column(s) {missing}")
        out = out[first + [c for c in out.columns if c not in first]]
    return out.reset_index(drop=True)


def csv_bytes(frame: pd.DataFrame, kind: str) -> bytes:
    """Deterministic CSV bytes (UTF-8, ``\\n`` line ends, final newline; header even when empty)."""
    out = format_frame(frame, kind)
    text = out.to_csv(index=False, lineterminator="\n", na_rep="")
    return text.encode("utf-8")


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types: NaN/NaT → None, numpy scalars → Python, timestamps → ISO ``…Z``."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = [to_jsonable(v) for v in obj]
        return sorted(items, key=lambda x: json.dumps(x, sort_keys=True)) if isinstance(obj, (set, frozenset)) else items
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if obj is pd.NaT:
        return None
    if isinstance(obj, (pd.Timestamp, datetime)):
        return iso_z(obj)
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, pd.DataFrame):
        return [to_jsonable(r) for r in obj.to_dict("records")]
    try:
        if pd.isna(obj):
            return None
    except (TypeError, ValueError):
        pass
    return str(obj)


def json_bytes(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, indent 2, UTF-8 (ensure_ascii False), NaN → null, final newline."""
    text = json.dumps(to_jsonable(obj), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


#: Test hook (crash-safety tests only): ``"<file name>:<seconds>"`` makes :func:`atomic_write` of a
#: file with that name stop for that long after writing half of its bytes to the temporary file,
#: so a test can ``kill -9`` the process mid-write. Unset (the default) it costs one dict lookup.
PAUSE_ENV = "CRYPTORUN_TEST_PAUSE_IN_WRITE"


def test_pause(env: str, name: str) -> float:
    """Seconds to pause at ``name`` when the test hook ``env`` (``"<name>:<seconds>"``) asks for it."""
    spec = os.environ.get(env)
    if not spec or ":" not in spec:
        return 0.0
    wanted, _, seconds = spec.rpartition(":")
    try:
        return float(seconds) if wanted == name else 0.0
    except ValueError:
        return 0.0


def create_file(path: Path):
    """A new file at ``path`` opened for binary writing, created with the process umask applied to
    0o666 like any other file (``tempfile.mkstemp`` would make it 0600, locking other readers out)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    return os.fdopen(fd, "wb")


def write_bytes(fh, data: bytes, name: str) -> None:
    """``fh.write(data)``, honouring the crash-safety test hook (:data:`PAUSE_ENV`) for a file ``name``:
    half the bytes, flushed, then a pause long enough to be killed."""
    pause = test_pause(PAUSE_ENV, name)
    if pause > 0:
        fh.write(data[: len(data) // 2])
        fh.flush()
        time.sleep(pause)
        data = data[len(data) // 2:]
    fh.write(data)


def fsync_dir(path: Path) -> None:
    """Make the entries of folder ``path`` (a rename, a new file) durable; best effort."""
    try:
        dfd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _temp_name(target: Path) -> str:
    """A hidden temporary file's name next to ``target`` (``.<name>.<random>.tmp``): no reader
    takes it for the file itself."""
    return str(target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp")


def _stage(target: Path, data: bytes, durable: bool) -> str:
    """``data`` in a new hidden temporary file next to ``target`` (folder created if needed), fsync'ed
    when ``durable``; returns its name. The file is removed when writing fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(target)
    try:
        with create_file(Path(tmp)) as fh:
            write_bytes(fh, data, target.name)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, ``os.replace``.

    The temporary file is a hidden dot-file (``.<name>.<random>.tmp``) next to the target, so a
    reader listing the folder never mistakes it for an artifact; one left behind by a killed
    process is ignored by every reader and replaced by the next complete write of the target.
    """
    target = Path(path)
    tmp = _stage(target, data, durable=True)
    try:
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)  # make the rename itself durable
    return target


def replace_via(path: Path, write: Callable[[str], None]) -> None:
    """``write(tmp)`` fills a hidden temporary file next to ``path`` (reserved first with the umask's
    mode; ``tempfile.mkstemp`` would make it 0600), which then replaces ``path`` in one rename: a
    reader sees the old file or the new one. Not fsync'ed (pipeline caches, not artifacts); the
    temporary file is removed when anything fails."""
    tmp = _temp_name(path)
    create_file(Path(tmp)).close()
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_files(files: Sequence[tuple[Path, bytes]]) -> None:
    """Write every ``(path, data)`` atomically with one flush to disk for the whole batch.

    :func:`atomic_write` pays two fsyncs (≈1.5 ms each) per file; a regime backfill writes three
    files for each of thousands of partitions. Here every file goes to its hidden temporary file
    first, one ``os.sync()`` puts all of them on disk before any becomes visible (a crash, even a
    power loss, never exposes a half-written artifact), each is renamed over its target (a reader
    sees the old file or the new), and a second ``os.sync()`` makes the renames durable. A failure
    before the renames removes the batch's temporary files and leaves every target untouched.
    """
    if not files:
        return
    staged: list[tuple[str, Path]] = []
    renamed = 0
    try:
        for path, data in files:
            staged.append((_stage(Path(path), data, durable=False), Path(path)))
        os.sync()
        for tmp, path in staged:
            os.replace(tmp, path)
            renamed += 1
    except BaseException:
        for tmp, _ in staged[renamed:]:
            Path(tmp).unlink(missing_ok=True)
        raise
    os.sync()


def safe_join(root: str | os.PathLike[str], *parts: str) -> Path:
    """``root/part/...`` resolved, refusing (ValueError) anything that resolves outside ``root``."""
    base = Path(root).resolve()
    for p in parts:
        if p is None or str(p) == "" or "\x00" in str(p):
            raise ValueError(f"refusing empty or invalid path part {p!r}")
        if Path(p).is_absolute():
            raise ValueError(f"refusing absolute path part {p!r} under {base}")
    candidate = base.joinpath(*parts).resolve()
    if candidate != base and base not in candidate.parents:
        raise ValueError(f"path {candidate} resolves outside {base}")
    return candidate
