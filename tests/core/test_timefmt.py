"""cryptorun_core.timefmt: the one module that turns instants into text (and UTC)."""

from __future__ import annotations

import ast
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from cryptorun_core.timefmt import as_of_folder, iso_minutes, iso_z, iso_z_exact, to_utc, utc_timestamp

ROOT = Path(__file__).resolve().parents[2]
PLUS_ONE = timezone(timedelta(hours=1))


def test_minutes_form_of_messages():
    assert iso_minutes(datetime(2026, 11, 20, 13, 7, 59, tzinfo=PLUS_ONE)) == "2026-11-20T12:07Z"
    assert iso_minutes("2026-11-20T12:07:30") == "2026-11-20T12:07Z"  # naive means UTC; truncated


def test_whole_seconds_form_of_csvs_and_explain():
    assert iso_z("2021-05-01T00:00:00") == "2021-05-01T00:00:00Z"  # naive means UTC
    assert iso_z(datetime(2021, 5, 1, 1, 0, tzinfo=PLUS_ONE)) == "2021-05-01T00:00:00Z"
    assert iso_z(pd.Timestamp("2021-05-01T00:00:00.75Z")) == "2021-05-01T00:00:00Z"  # truncated, never rounded
    assert iso_z(1619827200123456789) == "2021-05-01T00:00:00Z"  # int64 ns since the epoch


def test_exact_form_of_regime_json_keeps_sub_seconds():
    assert iso_z_exact(datetime(2021, 5, 1, tzinfo=timezone.utc)) == "2021-05-01T00:00:00Z"
    assert iso_z_exact("2021-05-01T00:00:00.25+00:00") == "2021-05-01T00:00:00.250000Z"
    assert iso_z_exact(datetime(2021, 5, 1, 1, tzinfo=PLUS_ONE)) == "2021-05-01T00:00:00Z"


def test_folder_name_and_utc_normalisation():
    assert as_of_folder("2021-05-01T12:30:00Z") == "2021-05-01T12-30-00Z"
    assert to_utc("2021-05-01T01:00:00+01:00") == datetime(2021, 5, 1, tzinfo=timezone.utc)
    assert to_utc("2021-05-01").tzinfo is timezone.utc
    assert utc_timestamp("2021-05-01") == pd.Timestamp("2021-05-01", tz="UTC")


def _defined_functions(names: set[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted([*ROOT.glob("cryptorun_core/**/*.py"), *ROOT.glob("cryptorun_pipelines/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name in names:
                found.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    return found


def test_time_formats_and_utc_helpers_are_declared_once():
    found = _defined_functions({"iso_z", "iso_z_exact", "as_of_folder", "to_utc", "utc_timestamp", "utcnow", "_utc"})
    assert found.pop("_utc", []) == ["cryptorun_core/config.py"]  # the pydantic validator of partitions_start
    assert found == {n: ["cryptorun_core/timefmt.py"] for n in ("iso_z", "iso_z_exact", "as_of_folder", "to_utc",
                                                                  "utc_timestamp", "utcnow")}
