"""A cycle's artifact set appears whole (SPEC §9): never half a set, never two runs' files mixed.

A job whose cycle writes several files (scan.hot: ``signals.csv``, ``premove.csv``,
``explain.json``) cannot replace them with one rename each: a crash or a full disk between two
renames would leave a new ``signals.csv`` beside an old ``explain.json``. So the files of one run
live in a folder of their own and the as_of folder reaches them through one pointer::

    {as_of}/signals.csv        -> .sets/hot/current/signals.csv   (relative links, made once)
    {as_of}/.sets/hot/current  -> 20261120T120012-3f2a…           (switched by one rename)
    {as_of}/.sets/hot/20261120T120012-3f2a…/signals.csv, premove.csv, explain.json

:func:`commit_set` writes the new run's folder completely (``<token>.partial``, each file
flushed to disk, then renamed to ``<token>``), then replaces ``current`` with one ``rename`` —
the only step that changes what a reader sees — and removes the previous run's folder (under a
lock, so two runs of one partition committing at once take turns). Until that rename a reader sees the previous set (or none),
after it the new set; a kill at any point leaves one of the two. Folders written before this
layout (plain files) are taken over without a moment of mixed state: their files are first
hard-linked into a set of their own, so turning the plain files into links changes no content.

A job that writes one file (regime.json, warm_signals.csv) needs none of this: a rename replaces
it whole (:func:`cryptorun_core.artifacts.write_files`).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Mapping

from cryptorun_core.artifacts import create_file, fsync_dir, test_pause, write_bytes
from cryptorun_core.timefmt import utcnow

SETS_DIR = ".sets"
CURRENT = "current"
LOCK = ".lock"
PARTIAL = ".partial"
STALE_PARTIAL_S = 3600
#: Test hook (crash-safety tests only): ``"<step>:<seconds>"`` makes :func:`commit_set` stop at that
#: step (``staged`` the new folder is written, ``linked`` the names point at ``current``,
#: ``swapped`` the pointer is switched) so a test can kill the process there.
PAUSE_ENV = "CRYPTORUN_TEST_PAUSE_IN_SET"


def _pause(step: str) -> None:
    seconds = test_pause(PAUSE_ENV, step)
    if seconds > 0:
        sys.stderr.write(f"cryptorun test hook: paused at {step}\n")
        sys.stderr.flush()
        time.sleep(seconds)


def _token() -> str:
    return f"{utcnow():%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def _link(target: str, path: Path) -> None:
    """Make ``path`` a symbolic link to ``target``, replacing whatever is there with one rename."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.link")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_folder(folder: Path, files: Mapping[str, bytes]) -> None:
    folder.mkdir(parents=True)
    for name, data in files.items():
        with create_file(folder / name) as fh:
            write_bytes(fh, data, name)
            fh.flush()
            os.fsync(fh.fileno())
    fsync_dir(folder)


def _adopt_plain_files(folder: Path, sets: Path, names: list[str]) -> None:
    """Before the first commit into a folder holding plain files of these names (an older layout,
    or a copy restored by hand): hard-link them into a set of their own and point ``current`` at it,
    so the names keep their content when they become links."""
    plain = [n for n in names if (folder / n).is_file() and not (folder / n).is_symlink()]
    if not plain or (sets / CURRENT).is_symlink():
        return
    legacy = sets / f"adopted-{_token()}"
    legacy.mkdir(parents=True)
    for name in plain:
        os.link(folder / name, legacy / name)
    fsync_dir(legacy)
    _link(legacy.name, sets / CURRENT)
    fsync_dir(sets)


def commit_set(folder: str | os.PathLike[str], role: str, files: Mapping[str, bytes]) -> Path:
    """Make ``files`` (name → bytes) the visible set of ``role`` in ``folder`` at once; returns the
    run folder that now holds them. A failure before the switch leaves the previous set visible
    and removes the new folder. The new folder is written as ``<token>.partial`` and renamed when
    complete, under the set's lock, just before the switch."""
    folder = Path(folder)
    sets = folder / SETS_DIR / role
    sets.mkdir(parents=True, exist_ok=True)
    token = _token()
    staging = sets / f"{token}{PARTIAL}"  # another writer's clean-up leaves a folder being written alone
    try:
        _write_folder(staging, files)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _pause("staged")
    with _locked(sets):  # two runs of one partition committing at once take turns
        new = sets / token
        os.rename(staging, new)
        names = sorted(files)
        _adopt_plain_files(folder, sets, names)
        for name in names:
            target = os.path.join(SETS_DIR, role, CURRENT, name)
            path = folder / name
            if not (path.is_symlink() and os.readlink(path) == target):
                _link(target, path)
        fsync_dir(folder)
        _pause("linked")
        _link(new.name, sets / CURRENT)  # the switch
        fsync_dir(sets)
        _pause("swapped")
        _clean(sets, keep=new.name)
    return new


def _clean(sets: Path, keep: str) -> None:
    """Remove every run folder but ``keep``, links left by killed writers, and folders a killed
    writer was writing (``…{PARTIAL}`` untouched for an hour; a live writer's are newer)."""
    for old in sets.iterdir():
        if old.is_symlink():
            if old.name != CURRENT:
                old.unlink(missing_ok=True)
        elif old.is_dir() and old.name != keep:
            if old.name.endswith(PARTIAL) and time.time() - old.stat().st_mtime < STALE_PARTIAL_S:
                continue
            shutil.rmtree(old, ignore_errors=True)


@contextmanager
def _locked(sets: Path):
    fd = os.open(sets / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
