"""SPEC §9 formatting: folder names, CSV column order and rounding, canonical JSON, atomic writes, safe joins."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from cryptorun_core import artifacts as A
from cryptorun_core import asset_keys as keys


def test_as_of_folder():
    assert A.as_of_folder(datetime(2026, 11, 10, 12, 15, tzinfo=timezone.utc)) == "2026-11-10T12-15-00Z"
    assert A.as_of_folder("2026-11-10T14:15:00+02:00") == "2026-11-10T12-15-00Z"
    assert A.as_of_folder(pd.Timestamp("2026-01-02 03:04:05")) == "2026-01-02T03-04-05Z"
    names = [A.as_of_folder(t) for t in pd.date_range("2026-11-09T23:00Z", periods=5, freq="45min")]
    assert names == sorted(names)


def _signals(n=2):
    return pd.DataFrame({
        "depth_badge": ["✓", "✗"][:n], "timestamp": ["2026-11-10T12:00:00Z"] * n, "symbol": ["A/USD", "B/USD"][:n],
        "score": [80.04, 76.96][:n], "momentum_core": [91.25, 70.0][:n], "vadr": [2.345, 1.9][:n],
        "spread_bps": [5.06, 12.0][:n], "depth_usd": [123456.7, 99999.4][:n], "regime": ["normal"] * n,
        "fresh": ["●", "○"][:n], "venue": ["kraken", "okx"][:n], "sources": [3, 2][:n],
    })


def test_csv_column_order_rounding_and_newline():
    data = A.csv_bytes(_signals(), "signals")
    text = data.decode("utf-8")
    lines = text.split("\n")
    assert lines[0] == "timestamp,symbol,score,momentum_core,vadr,spread_bps,depth_usd,regime,fresh,venue,sources,depth_badge"
    assert lines[1] == "2026-11-10T12:00:00Z,A/USD,80.0,91.2,2.35,5.1,123457,normal,●,kraken,3,✓"
    assert lines[2].startswith("2026-11-10T12:00:00Z,B/USD,77.0,70.0,1.9,12.0,99999,")
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert A.csv_bytes(_signals(), "signals") == data


def test_empty_table_keeps_header():
    empty = _signals().iloc[0:0]
    assert A.csv_bytes(empty, "signals").decode() == ",".join(A.SIGNALS_COLUMNS) + ",depth_badge\n"
    warm = empty.assign(cached=pd.Series([], dtype=bool), ttl_remaining_s=pd.Series([], dtype=float))
    assert A.csv_bytes(warm, "warm_signals").decode().startswith(",".join(A.WARM_SIGNALS_COLUMNS) + ",")


def test_premove_kind_and_ratios():
    frame = pd.DataFrame({c: [1.23456] for c in A.PREMOVE_COLUMNS}).assign(
        timestamp="2026-11-10T12:00:00Z", symbol="A/USD", venue="okx", state="WATCH", execution_risk="LOW", gates_passed=2)
    row = A.csv_bytes(frame, "premove").decode().split("\n")[1].split(",")
    rec = dict(zip(A.PREMOVE_COLUMNS, row))
    assert rec["premove_score"] == "1.2" and rec["compression"] == "1.2"
    assert rec["volume_build"] == "1.235" and rec["book_imbalance"] == "1.235"
    assert rec["depth_usd"] == "1" and rec["spread_bps"] == "1.2"


def test_missing_spec_column_is_an_error():
    with pytest.raises(ValueError, match="lacks"):
        A.csv_bytes(_signals().drop(columns=["venue"]), "signals")
    with pytest.raises(ValueError, match="unknown"):
        A.csv_bytes(_signals(), "nope")


def test_nan_is_empty_field_and_datetime_timestamp_is_iso():
    f = _signals(1).assign(vadr=np.nan, timestamp=pd.Timestamp("2026-11-10T12:00:00Z"))
    line = A.csv_bytes(f, "signals").decode().split("\n")[1]
    assert line.startswith("2026-11-10T12:00:00Z,A/USD,80.0,91.2,,")


def test_json_bytes_canonical():
    obj = {"b": 1, "a": {"y": float("nan"), "x": np.float64(1.5), "z": np.int64(3)}, "t": pd.Timestamp("2026-11-10T12:00Z"),
           "s": "●", "n": None, "arr": np.array([1.0, np.nan])}
    data = A.json_bytes(obj)
    text = data.decode("utf-8")
    assert text.endswith("}\n")
    assert "●" in text  # ensure_ascii False
    parsed = json.loads(text)
    assert parsed == {"a": {"x": 1.5, "y": None, "z": 3}, "arr": [1.0, None], "b": 1, "n": None, "s": "●", "t": "2026-11-10T12:00:00Z"}
    assert list(parsed) == sorted(parsed)
    assert '\n  "a": {\n    "x": 1.5,' in text  # indent 2, sorted
    assert A.json_bytes(dict(reversed(list(obj.items())))) == data


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "signals.csv"
    A.atomic_write(target, b"one\n")
    A.atomic_write(target, b"two\n")
    assert target.read_bytes() == b"two\n"
    assert sorted(os.listdir(target.parent)) == ["signals.csv"]


def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    A.atomic_write(target, b"old\n")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        A.atomic_write(target, b"new\n")
    assert target.read_bytes() == b"old\n"
    assert os.listdir(tmp_path) == ["x.json"]


def test_safe_join(tmp_path):
    assert A.safe_join(tmp_path, "2026-11-10T12-00-00Z", "signals.csv") == (tmp_path / "2026-11-10T12-00-00Z" / "signals.csv").resolve()
    for parts in (("..", "x"), ("a/../../x",), ("/etc/passwd",), ("",)):
        with pytest.raises(ValueError):
            A.safe_join(tmp_path, *parts)
    outside = tmp_path.parent / "elsewhere"
    outside.mkdir(exist_ok=True)
    (tmp_path / "link").symlink_to(outside)
    with pytest.raises(ValueError):
        A.safe_join(tmp_path, "link", "f.csv")


def test_write_files_is_all_or_nothing(tmp_path):
    from cryptorun_core.artifacts import write_files

    good = [(tmp_path / "a" / "x.json", b"1"), (tmp_path / "b" / "y.csv", b"2")]
    write_files(good)
    assert [p.read_bytes() for p, _ in good] == [b"1", b"2"]
    (tmp_path / "blocker").write_text("a file where a folder is needed")
    batch = [(tmp_path / "a" / "x.json", b"new"), (tmp_path / "blocker" / "z.json", b"3")]
    with pytest.raises(OSError):
        write_files(batch)
    assert (tmp_path / "a" / "x.json").read_bytes() == b"1"  # untouched: nothing was renamed
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]  # the staged temp file is gone
    write_files([])  # nothing to do


def _layout(root, outside):
    """A root with every kind of folder on the way: plain, missing, a link inside, links outside."""
    from datetime import timedelta

    t = datetime(2026, 11, 10, 12, tzinfo=timezone.utc)
    times = [t + timedelta(hours=4 * i) for i in range(6)]
    (root / A.as_of_folder(times[0])).mkdir(parents=True)
    (root / ".pipeline" / A.as_of_folder(times[0])).mkdir(parents=True)
    (root / ".pipeline" / A.as_of_folder(times[0]) / "universe.parquet").symlink_to(outside / "u.parquet")
    (root / "elsewhere").mkdir()
    (root / A.as_of_folder(times[1])).symlink_to(root / "elsewhere")  # a link that stays inside
    (root / A.as_of_folder(times[2])).symlink_to(outside)  # a link that leads outside
    (root / ".pipeline" / A.as_of_folder(times[3])).symlink_to(outside)
    (root / A.as_of_folder(times[4])).write_text("a file where the as_of folder belongs")
    (root / ".pipeline" / A.as_of_folder(times[4])).write_text("a file where a folder belongs")
    return times


@pytest.mark.parametrize("asset", ["regime_weights", "universe_ranking", "regime_indicators", keys.HOT_SIGNALS])
def test_artifact_paths_are_artifact_path_of_each_time(tmp_path, asset):
    root, outside = tmp_path / "artifacts", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    times = _layout(root, outside)

    def one(t):  # SPEC §9's layout, every folder resolved by safe_join
        spec = A.BY_ASSET[asset]
        try:
            if spec.spec_file:
                return A.safe_join(root, A.as_of_folder(t)) / spec.filename.split("/")[-1]
            return A.safe_join(root, A.PIPELINE_DIR, A.as_of_folder(t), *spec.filename.split("/"))
        except ValueError:
            return "refused"

    expected = [one(t) for t in times]
    assert "refused" in expected or asset == "regime_weights"
    for t, want in zip(times, expected):
        if want == "refused":
            with pytest.raises(ValueError, match="outside"):
                A.artifact_paths(root, asset, [times[-1], t])
        else:
            assert A.artifact_paths(root, asset, [t]) == [want] == [A.artifact_path(root, asset, t)]
    allowed = [t for t, want in zip(times, expected) if want != "refused"]
    assert A.artifact_paths(root, asset, allowed) == [w for w in expected if w != "refused"]


def test_artifact_paths_refuse_a_pipeline_folder_that_leads_outside(tmp_path):
    root, outside = tmp_path / "artifacts", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    (root / ".pipeline").symlink_to(outside)
    with pytest.raises(ValueError, match="outside"):
        A.artifact_paths(root, "universe_ranking", [datetime(2026, 11, 10, 12, tzinfo=timezone.utc)])


def test_write_files_creates_each_new_folder_it_writes_into(tmp_path):
    from cryptorun_core.artifacts import write_files

    batch = [(tmp_path / "a" / "x.json", b"1"), (tmp_path / "a" / "y.json", b"2"), (tmp_path / "b" / "c" / "z.json", b"3")]
    write_files(batch)
    assert [p.read_bytes() for p, _ in batch] == [b"1", b"2", b"3"]
    assert sorted(q.name for q in tmp_path.rglob("*") if q.is_file()) == ["x.json", "y.json", "z.json"]  # no temporary left
