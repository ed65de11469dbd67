"""A cycle's files appear as one set (SPEC §9): previous set or new set, never a mix."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cryptorun_core import artifact_sets, artifacts
from cryptorun_core.artifact_sets import commit_set

OLD = {"signals.csv": b"old signals\n", "premove.csv": b"old premove\n", "explain.json": b"{\"old\": 1}\n"}
NEW = {"signals.csv": b"new signals\n", "premove.csv": b"new premove\n", "explain.json": b"{\"new\": 2}\n"}


def visible(folder: Path) -> dict[str, bytes]:
    return {n: (folder / n).read_bytes() for n in OLD if (folder / n).is_file()}


def test_a_commit_replaces_the_whole_set_and_leaves_one_run_folder(tmp_path):
    commit_set(tmp_path, "hot", OLD)
    assert visible(tmp_path) == OLD
    commit_set(tmp_path, "hot", NEW)
    assert visible(tmp_path) == NEW
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sets", "explain.json", "premove.csv", "signals.csv"]
    runs = [p for p in (tmp_path / ".sets" / "hot").iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(runs) == 1 and os.readlink(tmp_path / ".sets" / "hot" / "current") == runs[0].name
    assert all(os.readlink(tmp_path / n) == f".sets/hot/current/{n}" for n in OLD)  # relative: the folder can move


def test_plain_files_of_an_older_layout_are_adopted_without_a_mixed_moment(tmp_path, monkeypatch):
    for name, data in OLD.items():
        (tmp_path / name).write_bytes(data)
    seen = []
    original = artifact_sets._link

    def spy(target, path):
        original(target, path)
        seen.append(visible(tmp_path))  # after every single rename of the commit

    monkeypatch.setattr(artifact_sets, "_link", spy)
    commit_set(tmp_path, "hot", NEW)
    assert seen and all(v in (OLD, NEW) for v in seen), seen
    assert visible(tmp_path) == NEW


@pytest.mark.parametrize("failing_file", [1, 2, 3])
def test_a_full_disk_while_writing_leaves_the_previous_set_and_no_debris(tmp_path, monkeypatch, failing_file):
    commit_set(tmp_path, "hot", OLD)
    calls = {"n": 0}
    original = artifacts.write_bytes

    def full_disk(fh, data, name):
        calls["n"] += 1
        if calls["n"] == failing_file:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(fh, data, name)

    monkeypatch.setattr(artifact_sets, "write_bytes", full_disk)
    with pytest.raises(OSError, match="No space left"):
        commit_set(tmp_path, "hot", NEW)
    assert visible(tmp_path) == OLD
    runs = [p for p in (tmp_path / ".sets" / "hot").iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(runs) == 1  # the half-written run folder was removed


def test_files_are_created_with_the_process_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        commit_set(tmp_path / "set", "hot", NEW)
        artifacts.atomic_write(tmp_path / "one" / "regime.json", b"{}\n")
        artifacts.write_files([(tmp_path / "two" / "warm_signals.csv", b"x\n")])
        os.umask(0o027)
        artifacts.atomic_write(tmp_path / "three" / "regime.json", b"{}\n")
    finally:
        os.umask(previous)
    for path in (tmp_path / "set" / "signals.csv", tmp_path / "one" / "regime.json", tmp_path / "two" / "warm_signals.csv"):
        assert (path.stat().st_mode & 0o777) == 0o644, path  # mkstemp would give 0o600
    assert ((tmp_path / "three" / "regime.json").stat().st_mode & 0o777) == 0o640


def test_a_reader_holding_the_old_file_keeps_reading_it_whole(tmp_path):
    """Replacing by rename: an open reader keeps the old content; a copy over the file would change
    (or truncate) what it reads."""
    target = tmp_path / "regime.json"
    artifacts.atomic_write(target, b"A" * 10_000)
    with open(target, "rb") as reader:
        artifacts.atomic_write(target, b"B" * 10)
        assert reader.read() == b"A" * 10_000
    assert target.read_bytes() == b"B" * 10
    with open(target, "rb") as reader:  # the batch writer of the IO manager renames too
        artifacts.write_files([(target, b"C" * 10)])
        assert reader.read() == b"B" * 10
    commit_set(tmp_path / "set", "hot", OLD)
    with open(tmp_path / "set" / "signals.csv", "rb") as reader:
        commit_set(tmp_path / "set", "hot", NEW)
        assert reader.read() == OLD["signals.csv"]


def _commit_many(folder: str, writer: str, n: int) -> None:
    for i in range(n):
        commit_set(folder, "hot", {name: f"{writer} {i} {name}\n".encode() for name in OLD})


def test_two_writers_committing_at_once_leave_one_whole_set(tmp_path):
    """Two runs of one partition at once take turns at the switch: the last set stays whole and
    its run folder is never removed by the other writer."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_commit_many, args=(str(tmp_path), w, 25)) for w in ("a", "b")]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=120)
        assert w.exitcode == 0
    final = visible(tmp_path)
    assert set(final) == set(OLD)
    owners = {data.split()[0] + data.split()[1] for data in (v.decode() for v in final.values())}
    assert len(owners) == 1, final  # the three files of one commit
    runs = [p for p in (tmp_path / ".sets" / "hot").iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(runs) == 1
