"""Broken configs: the `cryptorun` CLI exits 2 with one line naming the key, and the Dagster
definitions refuse to load (importing ``cryptorun_pipelines.definitions`` with
``CRYPTORUN_CONFIG`` pointing at the file raises ``ConfigError`` naming the key; ``dagster
definitions validate`` reports the code location as invalid).

tests/core/test_config.py, test_config_files.py and test_cron.py cover the loader's cases one by one;
these go through the CLI and the definitions. A refused config writes nothing: no artifacts folder,
no instance folder.
"""

from __future__ import annotations

import copy
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cryptorun_core import config_files
from cryptorun_core.config import CONFIG_PATH_ENV, DEFAULT_CONFIG_PATH, ConfigError
from cryptorun_pipelines.cli.main import main

BASE = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
VENV_BIN = Path(sys.executable).parent


def _job(raw: dict, name: str) -> dict:
    return next(j for j in raw["jobs"] if j["name"] == name)


def _set(path: str, value):
    """mutation setting a dotted path (``jobs[scan.hot].config.score_min``)."""
    def mutate(raw: dict) -> None:
        if path.startswith("jobs["):
            name, rest = path[5:].split("]", 1)
            node, parts = _job(raw, name), rest.lstrip(".").split(".")
        else:
            node, parts = raw, path.split(".")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return mutate


class Text:
    """A mutation of the dumped YAML text (what a dict cannot hold: a duplicate key)."""

    def __init__(self, change):
        self.change = change


class File:
    """Writes the config file itself: ``make(path, raw)`` (unreadable files, overlays)."""

    def __init__(self, make):
        self.make = make


def _replaying_a_missing_folder(raw: dict) -> None:
    raw["market"]["source"] = "replay"
    raw["market"]["replay"]["path"] = "no_such_history"


def _overlay_of(overlay: str):
    """The config is an overlay of base.yaml (the broken_config dict) beside it."""
    def make(path: Path, raw: dict) -> None:
        (path.parent / "base.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        path.write_text("extends: base.yaml\n" + overlay)
    return File(make)


# (id, mutation of the raw dict or raw YAML text, key named in the error)
CASES = [
    ("yaml_syntax", "global: {artifacts_dir: [unclosed\njobs: []\n", "<yaml>"),
    ("not_a_mapping", "- just\n- a list\n", "<root>"),
    ("unknown_top_key", _set("bogus_section", {"x": 1}), "bogus_section"),
    ("unknown_nested_key", _set("market.ccxt.timeout", 5), "market.ccxt.timeout"),
    ("unknown_job_key", _set("jobs[scan.hot].config.max_samples", 30), "jobs[scan.hot].config.max_samples"),
    ("wrong_type_int", _set("market.history_bars", "lots"), "market.history_bars"),
    ("wrong_type_list", _set("market.venues", "kraken"), "market.venues"),
    ("wrong_type_bool", _set("jobs[scan.hot].enabled", "sometimes"), "jobs[scan.hot].enabled"),
    ("bad_cron_words", _set("jobs[scan.hot].schedule", "every 15 minutes"), "jobs[scan.hot].schedule"),
    ("bad_cron_range", _set("jobs[scan.warm].schedule", "61 */2 * * *"), "jobs[scan.warm].schedule"),
    ("duplicate_job_names", _set("jobs[scan.warm].name", "scan.hot"), "jobs"),
    ("negative_min_adv", _set("universe.min_adv_usd", -5), "universe.min_adv_usd"),
    ("negative_book_age", _set("gates.fresh_max_book_age_s", -1), "gates.fresh_max_book_age_s"),
    ("negative_score_min", _set("jobs[scan.hot].config.score_min", -10), "jobs[scan.hot].config.score_min"),
    ("factor_weights_sum", _set("regime.weights.calm", {"momentum": 0.9, "technical": 0.3, "volume": 0.2, "quality": 0.1}), "regime.weights"),
    ("timeframe_weights_sum", _set("factors.momentum.weights.normal", {"1h": 0.5, "4h": 0.5, "12h": 0.5, "24h": 0.0, "7d": 0.0}),
     "factors.momentum.weights"),
    ("premove_weights_sum", _set("premove.weight_volume", 0.5), "premove"),
    ("unknown_venue", _set("market.venues", ["kraken", "binance"]), "market.venues"),
    ("aggregator_microstructure", _set("market.microstructure_sources", ["kraken", "coingecko"]), "market.microstructure_sources"),
    ("aggregator_job_venue", _set("jobs[scan.hot].config.venues", ["kraken", "cmc_composite"]), "jobs[scan.hot].config.venues"),
    ("job_venue_not_configured", _set("market.venues", ["kraken", "okx"]), "jobs"),
    ("inverted_regime_band", _set("regime.thresholds.realized_vol_7d", {"calm": 0.9, "volatile": 0.4}), "regime.thresholds"),
    ("tiers_not_descending", lambda r: r["universe"].__setitem__("tiers", list(reversed(r["universe"]["tiers"]))), "universe.tiers"),
    ("missing_jobs", lambda r: r.pop("jobs"), "jobs"),
    ("artifacts_dir_unwritable", None, "global.artifacts_dir"),  # below a regular file (tests run as root)
    # refused since issue 14 (they loaded before, silently changing what runs)
    ("nan_threshold", _set("gates.fatigue.r24h_above", float("nan")), "gates.fatigue.r24h_above"),
    ("inf_book_age", _set("gates.fresh_max_book_age_s", float("inf")), "gates.fresh_max_book_age_s"),
    ("nan_weight", _set("regime.weights.calm", {"momentum": float("nan"), "technical": 0.3, "volume": 0.2, "quality": 0.1}),
     "regime.weights.calm.momentum"),
    ("cron_step_61", _set("jobs[scan.hot].schedule", "*/61 * * * *"), "jobs[scan.hot].schedule"),
    ("cron_reversed_range", _set("jobs[scan.warm].schedule", "0 22-2 * * *"), "jobs[scan.warm].schedule"),
    ("cron_never_fires", _set("jobs[regime.refresh].schedule", "0 0 31 2 *"), "jobs[regime.refresh].schedule"),
    ("duplicate_yaml_key", Text(lambda t: t.replace("  history_min_bars: 192\n", "  history_min_bars: 192\n  history_min_bars: 10\n")),
     "gates.history_min_bars"),
    ("replay_unknown_venue", _set("market.replay.venue", "binance"), "market.replay.venue"),
    ("replay_folder_missing", _replaying_a_missing_folder, "market.replay.path"),
    ("binary_file", File(lambda p, raw: p.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))), "<file>"),
    ("utf16_file", File(lambda p, raw: p.write_text(yaml.safe_dump(raw), encoding="utf-16")), "<file>"),
    ("directory", File(lambda p, raw: p.mkdir()), "<file>"),
    ("fifo", File(lambda p, raw: os.mkfifo(p)), "<file>"),
    ("overlay_bad_value", _overlay_of("vadr: {percentile: 170}\n"), "vadr.percentile"),
    ("overlay_unknown_key", _overlay_of("gates: {fatigue: {r24_above: 0.2}}\n"), "gates.fatigue.r24_above"),
    ("overlay_removes_unknown_job", _overlay_of("jobs: [{name: scan.cold, remove: true}]\n"), "jobs[scan.cold].remove"),
    ("extends_missing_file", File(lambda p, raw: p.write_text("extends: nope.yaml\n")), "extends"),
    ("extends_cycle", File(lambda p, raw: p.write_text(f"extends: {p.name}\n")), "extends"),
]
# checks made by cryptorun_pipelines.partitions.build_cadences (the CLI runs them since this suite found
# that `cryptorun schedule list` exited 0 on them)
LATE_CASES = [
    ("partitions_start_off_tick", _set("global.partitions_start", "2026-11-01T00:07:00Z"), "global.partitions_start"),
    ("two_hot_scans", _set("jobs[scan.warm].config.universe", "hot"), "jobs[scan.warm].config.universe"),
]
CASES = CASES + LATE_CASES
IDS = [c[0] for c in CASES]


def broken_config(tmp_path: Path, case) -> Path:
    name, mutation, _ = case
    path = tmp_path / "config" / "scheduler.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = copy.deepcopy(BASE)
    raw["global"]["artifacts_dir"] = str(tmp_path / "artifacts")
    if isinstance(mutation, str):
        path.write_text(mutation)
        return path
    if isinstance(mutation, File):
        mutation.make(path, raw)
        return path
    if name == "artifacts_dir_unwritable":
        blocker = tmp_path / "a_regular_file"
        blocker.write_text("not a directory\n")
        raw["global"]["artifacts_dir"] = str(blocker / "artifacts")
    elif isinstance(mutation, Text):
        text = yaml.safe_dump(raw, sort_keys=False)
        path.write_text(mutation.change(text))
        assert path.read_text() != text, name
        return path
    elif mutation is not None:
        mutation(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_at_least_fifteen_cases():
    assert len(CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cli_exits_2_naming_the_key(tmp_path, capsys, case):
    path = broken_config(tmp_path, case)
    code = main(["--config", str(path), "schedule", "list"])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cryptorun: "), err
    assert f"'{case[2]}'" in lines[0], lines[0]
    if case[2] == "<file>":
        assert str(path) in lines[0], lines[0]
    assert set(os.listdir(tmp_path)) <= {"config", "a_regular_file"}  # nothing written: no artifacts, no instance


def test_cli_permission_denied_names_the_file(tmp_path, capsys, monkeypatch):
    path = broken_config(tmp_path, ("valid", None, None))
    real_open = config_files.os.open

    def denied(p, *args, **kwargs):  # tests run as root, for whom chmod 000 denies nothing
        if Path(p) == path:
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, *args, **kwargs)

    monkeypatch.setattr(config_files.os, "open", denied)
    assert main(["--config", str(path), "schedule", "list"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"'<file>': cannot read config file {path}: permission denied" in lines[0], lines


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_definitions_refuse_to_load_naming_the_key(tmp_path, monkeypatch, case):
    path = broken_config(tmp_path, case)
    monkeypatch.setenv(CONFIG_PATH_ENV, str(path))
    with pytest.raises(ConfigError) as info:
        runpy.run_module("cryptorun_pipelines.definitions", run_name="cryptorun_reliability_defs")
    assert info.value.key == case[2], str(info.value)


def test_dagster_definitions_validate_reports_the_broken_location(tmp_path):
    """The real Dagster CLI (one subprocess): the code location does not load, the key is named."""
    path = broken_config(tmp_path, next(c for c in CASES if c[0] == "aggregator_microstructure"))
    env = {**os.environ, CONFIG_PATH_ENV: str(path), "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    (tmp_path / "dagster_home").mkdir()
    proc = subprocess.run([str(VENV_BIN / "dagster"), "definitions", "validate", "-m", "cryptorun_pipelines.definitions"],
                          env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode != 0
    assert "market.microstructure_sources" in proc.stdout + proc.stderr


@pytest.mark.parametrize("case,named", [("bad_cron_words", "jobs[scan.hot].schedule"), ("utf16_file", "scheduler.yaml")])
def test_cli_subprocess_exit_code_and_single_line(tmp_path, case, named):
    """The installed console script (one subprocess each): exit 2, one line on stderr naming the
    key or the file, no traceback (a UTF-16 file exited 1 with UnicodeDecodeError before)."""
    path = broken_config(tmp_path, next(c for c in CASES if c[0] == case))
    proc = subprocess.run([str(VENV_BIN / "cryptorun"), "--config", str(path), "schedule", "list"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={k: v for k, v in os.environ.items() if k != CONFIG_PATH_ENV})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and named in proc.stderr and "Traceback" not in proc.stderr


def test_yaml_is_loaded_safely(tmp_path, capsys):
    """A python/object tag is a config error, never code execution."""
    canary = tmp_path / "pwned"
    path = tmp_path / "config" / "scheduler.yaml"
    path.parent.mkdir()
    path.write_text(f"global: !!python/object/apply:os.system ['touch {canary}']\njobs: []\n")
    assert main(["--config", str(path), "schedule", "list"]) == 2
    assert "<yaml>" in capsys.readouterr().err
    assert not canary.exists()
