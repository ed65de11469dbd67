"""Initialise a ``DAGSTER_HOME`` once, under a lock, before any command touches it.

Dagster's SQLite storages create their schema the first time a process opens them
(``SqliteRunStorage.from_local``, ``SqliteScheduleStorage.from_local``, the event log's
``_initdb``): each checks ``alembic_version``, finds none, runs ``create_all`` and stamps the
head. Two processes doing that at once on a fresh home race: one fails with "table … already
exists", or both stamp and leave ``alembic_version`` with two rows, after which every process
fails with "more than one head present". So every ``cryptorun`` command first takes an exclusive
``fcntl`` lock in the folder, and the first one installs the profile's ``dagster.yaml``, opens the
instance (creating every storage), upgrades the schema when an older Dagster created it, and
writes a marker. Later commands find the marker (same Dagster version, same ``dagster.yaml``,
each SQLite database answering with one alembic head) and skip all of that in a few milliseconds.

Problems with the folder end as an :class:`InstanceError` (exit 2, one line naming DAGSTER_HOME):
not a folder, not writable, a database that is not SQLite, an invalid ``dagster.yaml``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

from cryptorun_pipelines.cli.instance import InstanceError, profile_file

LOCK_FILE = "cryptorun_instance.lock"
MARKER_FILE = "cryptorun_instance.json"
#: how long a command waits for another one that is initialising the same home
LOCK_TIMEOUT_S = 300.0
#: the SQLite databases of Dagster's default storage layout (``storage: sqlite``), relative to the home
SQLITE_DATABASES = ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")

SQLITE_URL_PREFIX = "sqlite:///"

_READ_ONLY_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}
_CORRUPT_WORDS = ("file is not a database", "database disk image is malformed", "file is encrypted")
_READ_ONLY_WORDS = ("readonly database", "read-only", "unable to open database file", "permission denied")


@dataclass
class InstanceSetup:
    """What :func:`ensure_instance` found and did."""

    home: Path
    profile: str
    installed: bool = False  # the profile's dagster.yaml was copied into the home now
    initialised: bool = False  # the storages were opened (created, upgraded) under the lock now
    upgraded: bool = False  # ``DagsterInstance.upgrade()`` ran
    repaired: list[str] = field(default_factory=list)  # databases whose duplicate alembic heads were removed
    notice: str | None = None  # dagster.yaml differs from the profile (used as it is)


# ---------------------------------------------------------------------------------------------
# the folder
# ---------------------------------------------------------------------------------------------


def _not_writable(home: Path, exc: OSError | None = None) -> InstanceError:
    why = f" ({exc.strerror}: {exc.filename})" if exc is not None and exc.strerror else ""
    return InstanceError(f"DAGSTER_HOME {home} is not writable{why}")


def _open_lock(home: Path) -> int:
    """The lock file's descriptor; opening it for writing doubles as the check that the home is writable."""
    path = home / LOCK_FILE
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno in _READ_ONLY_ERRNOS:
            raise _not_writable(home, exc) from None
        raise InstanceError(f"DAGSTER_HOME {home}: cannot open {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _locked(fd: int, home: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise InstanceError(
                    f"DAGSTER_HOME {home}: another cryptorun command has held {LOCK_FILE} for over "
                    f"{timeout_s:.0f}s while initialising it"
                ) from None
            time.sleep(0.05)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------------
# the SQLite databases
# ---------------------------------------------------------------------------------------------


def _alembic_head() -> str:
    """The schema revision this Dagster writes (all its SQLite storages share one alembic history)."""
    from alembic.script import ScriptDirectory
    from dagster._core.storage.runs.sqlite import sqlite_run_storage
    from dagster._core.storage.sql import get_alembic_config

    return ScriptDirectory.from_config(get_alembic_config(sqlite_run_storage.__file__)).get_current_head()


def _corrupt(home: Path, path: Path, exc: Exception) -> InstanceError:
    rel = path.relative_to(home) if path.is_relative_to(home) else path
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return InstanceError(
        f"DAGSTER_HOME {home}: {rel} is not a usable SQLite database ({first}); move it away to start "
        "with an empty history"
    )


def _alembic_rows(home: Path, path: Path) -> list[str] | None:
    """The revisions stamped in ``path`` (None: no such file, or no schema yet)."""
    if not path.is_file():
        return None
    try:
        uri = f"file:{quote(str(path))}?mode=rw"  # never creates the file
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as con:
            return [row[0] for row in con.execute("SELECT version_num FROM alembic_version")]
    except sqlite3.DatabaseError as exc:
        text = str(exc).lower()
        if "no such table" in text:
            return None
        if any(w in text for w in _CORRUPT_WORDS):
            raise _corrupt(home, path, exc) from None
        if any(w in text for w in _READ_ONLY_WORDS):
            raise _not_writable(home) from None
        raise


def _repair_heads(home: Path, path: Path, rows: list[str], head: str) -> bool:
    """Keep only ``head`` when a concurrent first use stamped it twice (the schema is the current one)."""
    if len(rows) < 2 or head not in rows:
        return False
    with contextlib.closing(sqlite3.connect(str(path), timeout=30)) as con, con:
        con.execute("DELETE FROM alembic_version WHERE version_num != ?", (head,))
    return True


# ---------------------------------------------------------------------------------------------
# the marker
# ---------------------------------------------------------------------------------------------


def _dagster_version() -> str:
    from dagster.version import __version__

    return __version__


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_marker(home: Path) -> dict | None:
    try:
        marker = json.loads((home / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _write_marker(home: Path, profile: str, sqlite_files: list[str]) -> None:
    marker = {
        "dagster_version": _dagster_version(),
        "dagster_yaml_sha256": _sha256(home / "dagster.yaml"),
        "profile": profile,
        "sqlite_databases": sqlite_files,
        "initialised_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    tmp = home / f".{MARKER_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, home / MARKER_FILE)


def _is_ready(home: Path) -> bool:
    """The marker matches this Dagster and this dagster.yaml, and every database has one head."""
    marker = _read_marker(home)
    if not marker or marker.get("dagster_version") != _dagster_version():
        return False
    cfg = home / "dagster.yaml"
    try:
        if _sha256(cfg) != marker.get("dagster_yaml_sha256"):
            return False
    except OSError:
        return False
    for rel in marker.get("sqlite_databases") or []:
        rows = _alembic_rows(home, home / rel)
        if rows is None or len(rows) != 1:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# the profile
# ---------------------------------------------------------------------------------------------


def _install_profile(home: Path, profile: str) -> bool:
    cfg = home / "dagster.yaml"
    if cfg.exists():
        return False
    tmp = home / f".dagster.yaml.{os.getpid()}.tmp"
    tmp.write_bytes(profile_file(profile).read_bytes())
    os.replace(tmp, cfg)
    return True


def _compare_profile(home: Path, profile: str, explicit: bool) -> str | None:
    """None when dagster.yaml is the profile's; else a notice, or an error when the profile was asked for."""
    cfg = home / "dagster.yaml"
    try:
        source = profile_file(profile)
    except InstanceError:
        if explicit:
            raise
        return None  # no profile to compare with (not a checkout): the home's own dagster.yaml rules
    try:
        same = cfg.read_bytes() == source.read_bytes()
    except IsADirectoryError:
        raise InstanceError(f"DAGSTER_HOME {home}: dagster.yaml is a folder, not a file") from None
    except OSError as exc:
        raise InstanceError(f"DAGSTER_HOME {home}: cannot read dagster.yaml ({exc.strerror or exc})") from None
    if same:
        return None
    if explicit:
        raise InstanceError(
            f"DAGSTER_HOME {home} already has a dagster.yaml that differs from profile '{profile}' ({source}): "
            "move it away to install the profile, or leave out --profile to use it as it is"
        )
    return f"DAGSTER_HOME {home}/dagster.yaml differs from profile '{profile}' ({source}): using it as it is"


# ---------------------------------------------------------------------------------------------
# initialisation
# ---------------------------------------------------------------------------------------------


def _classify(home: Path, exc: BaseException) -> InstanceError:
    """One line naming DAGSTER_HOME for whatever opening the instance raised."""
    from dagster._core.errors import DagsterInvalidConfigError

    if isinstance(exc, InstanceError):
        return exc
    if isinstance(exc, OSError) and exc.errno in _READ_ONLY_ERRNOS:
        return _not_writable(home, exc)
    text = str(exc)
    first = (text.strip().splitlines() or [type(exc).__name__])[0]
    low = text.lower()
    if isinstance(exc, DagsterInvalidConfigError) and exc.errors:
        return InstanceError(f"DAGSTER_HOME {home}: dagster.yaml is invalid: {_config_error(exc.errors[0].message)}")
    if isinstance(exc, DagsterInvalidConfigError) or type(exc).__module__.startswith("yaml"):
        return InstanceError(f"DAGSTER_HOME {home}: dagster.yaml is invalid: {first}")
    if any(w in low for w in _CORRUPT_WORDS):
        for rel in SQLITE_DATABASES:  # name the file: SQLAlchemy's message names only the query
            try:
                _alembic_rows(home, home / rel)
            except InstanceError as named:
                return named
        return InstanceError(f"DAGSTER_HOME {home}: a SQLite database is corrupt ({first})")
    if any(w in low for w in _READ_ONLY_WORDS):
        return _not_writable(home)
    cause = exc.__cause__  # dagster-postgres' "too many retries" names neither server nor reason: its cause does
    why = (str(cause).strip().splitlines() or [""])[0] if cause is not None else ""
    return InstanceError(f"DAGSTER_HOME {home}: the Dagster instance cannot be opened: {type(exc).__name__}: {first}"
                         + (f" ({why})" if why else ""))


def _config_error(message: str) -> str:
    """One line for Dagster's first config error; an unset ``env:`` variable is named with its key."""
    import re

    unset = re.search(r'environment variable "([^"]+)" which is not set', message)
    where = re.search(r"at path root:(\S+)", message)
    if unset:
        return f"environment variable {unset.group(1)} is not set" + (f" ({where.group(1)})" if where else "")
    return (message.strip().splitlines() or ["invalid config"])[0]


@contextlib.contextmanager
def opening_instance(home: Path) -> Iterator[None]:
    """Report a failure to open the instance as an :class:`InstanceError` naming DAGSTER_HOME."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - every cause is classified into one line
        raise _classify(home, exc) from exc


def _sqlite_files(home: Path, instance) -> list[str]:
    """The instance's SQLite databases that exist, relative to the home when inside it."""
    paths: list[Path] = []
    for storage in (instance.run_storage, instance.schedule_storage):
        conn = getattr(storage, "_conn_string", "")
        if isinstance(conn, str) and conn.startswith(SQLITE_URL_PREFIX):  # dagster's create_db_conn_string
            paths.append(Path(conn[len(SQLITE_URL_PREFIX):]))
    events = instance.event_log_storage
    if hasattr(events, "path_for_shard") and type(events).__name__.startswith("Sqlite"):
        paths.append(Path(events.path_for_shard("index")))
    out = []
    for p in paths:
        if p.is_file():
            out.append(str(p.relative_to(home)) if p.is_relative_to(home) else str(p))
    return out


def _initialise(home: Path, setup: InstanceSetup) -> None:
    """Under the lock: repair duplicate heads, open every storage, upgrade an old schema, write the marker."""
    from dagster import DagsterInstance

    head = None
    for rel in SQLITE_DATABASES:
        rows = _alembic_rows(home, home / rel)
        if rows and len(rows) > 1:
            head = head or _alembic_head()
            if _repair_heads(home, home / rel, rows, head):
                setup.repaired.append(rel)
    with DagsterInstance.from_config(str(home)) as instance:
        behind = []
        for storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
            version = getattr(storage, "alembic_version", None)
            if version is None:
                continue
            db_rev, head_rev = version()
            if db_rev != head_rev:
                behind.append(type(storage).__name__)
        if behind:
            # Dagster prints its progress; stdout may be a --json document
            with contextlib.redirect_stdout(sys.stderr):
                instance.upgrade()
            setup.upgraded = True
        files = _sqlite_files(home, instance)
    _write_marker(home, setup.profile, files)
    setup.initialised = True


def ensure_instance(home: Path, profile: str, *, explicit: bool = False) -> InstanceSetup:
    """Install ``profile`` into a fresh ``home`` and initialise its storages once (see the module doc)."""
    setup = InstanceSetup(home=home, profile=profile)
    fd = _open_lock(home)
    try:
        if (home / "dagster.yaml").exists():
            setup.notice = _compare_profile(home, profile, explicit)
            with opening_instance(home):
                if _is_ready(home):
                    return setup
        with _locked(fd, home):
            try:
                setup.installed = _install_profile(home, profile)
            except OSError as exc:
                raise _classify(home, exc) from None
            if not setup.installed:
                setup.notice = _compare_profile(home, profile, explicit)
            if not _is_ready(home):  # another command may have finished it while we waited
                with opening_instance(home):
                    _initialise(home, setup)
    finally:
        os.close(fd)
    return setup
