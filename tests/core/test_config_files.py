"""Config files: unreadable files, duplicate YAML keys and ``extends:`` overlays, through load_config."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import pytest
import yaml

from cryptorun_core import config_files
from cryptorun_core.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    load_config,
    packaged_config,
    parse_config,
)
from cryptorun_core.explain import config_hash

SHIPPED = DEFAULT_CONFIG_PATH.read_text()
BASE = yaml.safe_load(SHIPPED)


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch):
    for var in ("CRYPTORUN_CONFIG", "CRYPTORUN_ARTIFACTS_DIR", "CRYPTORUN_MARKET_SOURCE"):
        monkeypatch.delenv(var, raising=False)


def _load(path: Path):
    return load_config(path, check_artifacts_dir=False)


def _refused(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        _load(path)
    return err.value


# -- files that are not a readable UTF-8 config ----------------------------------------------------


def _fifo(path: Path) -> None:
    os.mkfifo(path)


UNREADABLE = [
    # (id, how the file is made, words in the message)
    ("binary", lambda p: p.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00" + bytes(range(256))), "NUL byte at offset 7"),
    ("utf16_with_bom", lambda p: p.write_text(SHIPPED, encoding="utf-16"), "UTF-16"),
    ("utf16_without_bom", lambda p: p.write_text(SHIPPED, encoding="utf-16-le"), "NUL byte"),
    ("latin1", lambda p: p.write_bytes("# caf\xe9\n".encode("latin-1") + SHIPPED.encode()), "byte 0xe9 on line 1"),
    ("directory", lambda p: p.mkdir(), "it is a directory"),
    ("fifo", _fifo, "it is a FIFO"),  # opening it must not wait for a writer
    ("too_big", lambda p: p.write_text(SHIPPED + "#" * (1 << 20)), "too big"),
    ("missing", lambda p: None, "config file not found"),
]


@pytest.mark.parametrize("make,words", [u[1:] for u in UNREADABLE], ids=[u[0] for u in UNREADABLE])
def test_unreadable_file_is_a_config_error_naming_it(tmp_path, make, words):
    path = tmp_path / "scheduler.yaml"
    make(path)
    err = _refused(path)
    assert err.key == "<file>" and str(path) in str(err) and words in str(err), str(err)


def test_permission_denied_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "scheduler.yaml"
    path.write_text(SHIPPED)
    real_open = config_files.os.open

    def denied(p, *args, **kwargs):  # (tests run as root, for whom chmod 000 does not deny)
        if Path(p) == path:
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, *args, **kwargs)

    monkeypatch.setattr(config_files.os, "open", denied)
    err = _refused(path)
    assert err.key == "<file>" and f"cannot read config file {path}: permission denied" in str(err)


def test_a_device_is_not_a_config_file():
    err = _refused(Path("/dev/zero"))
    assert err.key == "<file>" and "character device" in str(err)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "scheduler.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + SHIPPED.encode())
    assert config_hash(_load(path)) == config_hash(packaged_config())


def test_an_unreadable_base_is_named_with_the_overlay(tmp_path):
    (tmp_path / "base.yaml").write_text(SHIPPED, encoding="utf-16")
    overlay = tmp_path / "mine.yaml"
    overlay.write_text("extends: base.yaml\n")
    err = _refused(overlay)
    assert err.key == "extends" and str(tmp_path / "base.yaml") in str(err) and f"(in {overlay})" in str(err)


# -- duplicate keys -------------------------------------------------------------------------------


def _with_line_after(anchor: str, line: str) -> tuple[str, int, int]:
    """The shipped text with ``line`` inserted after the first line starting with ``anchor``, and
    the (1-based) numbers of the anchor line and of the inserted line."""
    lines = SHIPPED.splitlines()
    at = next(i for i, text in enumerate(lines) if text.startswith(anchor))
    return "\n".join([*lines[: at + 1], line, *lines[at + 1:]]) + "\n", at + 1, at + 2


@pytest.mark.parametrize("anchor,extra,key", [
    ("  depth_band_pct:", "  depth_band_pct: 3.0", "gates.depth_band_pct"),
    ("      score_min: 75", "      score_min: 10", "jobs[scan.hot].config.score_min"),
    ("    venue: kraken", "    venue: okx", "market.replay.venue"),
])
def test_duplicate_key_is_refused_naming_its_path_and_both_lines(tmp_path, anchor, extra, key):
    text, first, second = _with_line_after(anchor, extra)
    path = tmp_path / "scheduler.yaml"
    path.write_text(text)
    err = _refused(path)
    assert err.key == key and f"line {first} and again on line {second}" in str(err) and str(path) in str(err), str(err)


def test_duplicate_section_is_refused(tmp_path):
    text, _, inserted = _with_line_after("# CryptoRun", "vadr: {min_prior_periods: 5}")
    path = tmp_path / "scheduler.yaml"
    path.write_text(text)
    original = text.splitlines().index("vadr:") + 1
    err = _refused(path)
    assert err.key == "vadr" and f"line {inserted} and again on line {original}" in str(err)


def test_yaml_merge_keys_override_on_purpose(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(f"extends: {DEFAULT_CONFIG_PATH}\njobs:\n"
                    "  - name: scan.warm\n    config: &pace {cache_ttl_s: 60, request_rate_per_s: 1}\n"
                    "  - name: regime.refresh\n    config: {<<: *pace, cache_ttl_s: 30}\n")
    job = _load(path).job("regime.refresh")
    assert (job.config.cache_ttl_s, job.config.request_rate_per_s) == (30, 1)


def test_alias_bomb_is_refused(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    path = tmp_path / "scheduler.yaml"
    path.write_text("\n".join(lines) + "\n")
    err = _refused(path)
    assert err.key == "<yaml>" and "more than" in str(err)


def test_two_documents_are_refused(tmp_path):
    path = tmp_path / "scheduler.yaml"
    path.write_text(SHIPPED + "---\nglobal: {}\n")
    assert _refused(path).key == "<yaml>"


# -- overlays -------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path) -> Path:
    """A project folder whose config/scheduler.yaml is the shipped one."""
    (tmp_path / "proj" / "config").mkdir(parents=True)
    shutil.copy(DEFAULT_CONFIG_PATH, tmp_path / "proj" / "config" / "scheduler.yaml")
    return tmp_path / "proj"


def _overlay(folder: Path, text: str, name: str = "mine.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_overlay_changes_only_its_keys_and_mappings_merge_deeply(project):
    config = _load(_overlay(project / "config", "extends: scheduler.yaml\ngates:\n  fatigue: {r24h_above: 0.2}\n"))
    base = _load(project / "config" / "scheduler.yaml")
    assert config.gates.fatigue.r24h_above == 0.2 and config.gates.fatigue.rsi4h_above == base.gates.fatigue.rsi4h_above
    assert config.model_copy(update={"gates": base.gates}) == base


def test_lists_other_than_jobs_replace(project):
    config = _load(_overlay(project / "config", "extends: scheduler.yaml\nmarket: {excluded_bases: [USDT]}\n"))
    assert config.market.excluded_bases == ("USDT",)


def test_jobs_merge_by_name_add_and_remove(project):
    new_job = copy.deepcopy(next(j for j in BASE["jobs"] if j["name"] == "regime.refresh"))
    new_job.update(name="regime.daily", schedule="0 0 * * *", enabled=False)
    text = "extends: scheduler.yaml\n" + yaml.safe_dump({"jobs": [
        {"name": "scan.hot", "schedule": "*/30 * * * *", "config": {"score_min": 80}},
        {"name": "scan.warm", "remove": True},
        new_job,
    ]}, sort_keys=False)
    config = _load(_overlay(project / "config", text))
    base = _load(project / "config" / "scheduler.yaml")
    assert [j.name for j in config.jobs] == ["scan.hot", "regime.refresh", "regime.daily"]
    hot, base_hot = config.job("scan.hot"), base.job("scan.hot")
    assert (hot.schedule, hot.config.score_min) == ("*/30 * * * *", 80)
    assert hot.config.model_copy(update={"score_min": base_hot.config.score_min}) == base_hot.config
    assert hot.description == base_hot.description and config.job("regime.refresh") == base.job("regime.refresh")
    assert config.job("regime.daily").schedule == "0 0 * * *"


@pytest.mark.parametrize("jobs,key,words", [
    ([{"name": "scan.cold", "remove": True}], "jobs[scan.cold].remove", "no inherited job named 'scan.cold'"),
    ([{"name": "scan.warm", "remove": True, "enabled": False}], "jobs[scan.warm].remove", "nothing else"),
    ([{"name": "scan.warm", "remove": "yes"}], "jobs[scan.warm].remove", "remove: true"),
    ([{"schedule": "0 * * * *"}], "jobs[0].name", "names the job"),
    ([{"name": "scan.hot", "enabled": False}, {"name": "scan.hot", "enabled": True}], "jobs", "duplicate job names: ['scan.hot']"),
    ({"scan.hot": {"enabled": False}}, "jobs", "must be a list"),
    ([{"name": "scan.cold", "schedule": "0 * * * *"}], "jobs[scan.cold].type", "required key is missing"),
])
def test_bad_overlay_job_entries_are_refused(project, jobs, key, words):
    path = _overlay(project / "config", "extends: scheduler.yaml\n" + yaml.safe_dump({"jobs": jobs}))
    err = _refused(path)
    assert err.key == key and words in str(err) and f"(in {path})" in str(err), str(err)


def test_chains_merge_in_order_and_errors_name_the_file_of_the_bad_key(project):
    folder = project / "config"
    middle = _overlay(folder, "extends: scheduler.yaml\nvadr: {percentile: 70}\ngates: {history_min_bars: 100}\n", "middle.yaml")
    top = _overlay(folder, "extends: middle.yaml\ngates: {history_min_bars: 150}\n", "top.yaml")
    config = _load(top)
    assert (config.vadr.percentile, config.gates.history_min_bars) == (70, 150)
    middle.write_text("extends: scheduler.yaml\nvadr: {percentile: 170}\n")
    err = _refused(top)
    assert err.key == "vadr.percentile" and f"(in {middle})" in str(err)
    top.write_text("extends: middle.yaml\nvadr: {percentile: 75}\ngates: {history_min_bars: -1}\n")
    err = _refused(top)
    assert err.key == "gates.history_min_bars" and f"(in {top})" in str(err)


def test_a_bad_value_the_overlay_inherits_names_the_base(project):
    base = project / "config" / "scheduler.yaml"
    base.write_text(base.read_text().replace("  ma_periods: 20", "  ma_periods: 1"))
    err = _refused(_overlay(project / "config", "extends: scheduler.yaml\nvadr: {percentile: 70}\n"))
    assert err.key == "regime.ma_periods" and f"(in {base})" in str(err)


def test_extends_cycles_are_refused_naming_the_files(project):
    folder = project / "config"
    a = _overlay(folder, "extends: b.yaml\n", "a.yaml")
    b = _overlay(folder, "extends: a.yaml\n", "b.yaml")
    err = _refused(a)
    assert err.key == "extends" and f"{a} → {b} → {a}" in str(err)
    _overlay(folder, "extends: ./self.yaml\n", "self.yaml")
    assert "cycle" in str(_refused(folder / "self.yaml"))


@pytest.mark.parametrize("value,words", [("nope.yaml", "config file not found"), ("null", "must be the path"), ("[a, b]", "must be the path")])
def test_a_bad_extends_names_the_overlay(project, value, words):
    path = _overlay(project / "config", f"extends: {value}\n")
    err = _refused(path)
    assert err.key == "extends" and words in str(err) and f"(in {path})" in str(err)


def test_extends_is_relative_to_the_overlay_and_paths_to_the_file_that_set_them(project, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(tmp_path)
    inherits = _overlay(elsewhere, "extends: ../proj/config/scheduler.yaml\n")
    assert _load(inherits).global_.artifacts_dir == str((project / "artifacts").resolve())
    sets = _overlay(elsewhere, "extends: ../proj/config/scheduler.yaml\nglobal: {artifacts_dir: out}\n", "sets.yaml")
    assert _load(sets).global_.artifacts_dir == str((elsewhere / "out").resolve())


def test_the_extends_key_never_reaches_the_settings(project):
    config = _load(_overlay(project / "config", "extends: scheduler.yaml\n"))
    assert config.model_dump() == _load(project / "config" / "scheduler.yaml").model_dump()
    assert "extends" not in config.model_dump()


def test_an_overlay_is_refused_by_parse_config_which_takes_complete_mappings():
    with pytest.raises(ConfigError) as err:
        parse_config({"extends": "scheduler.yaml", **BASE})
    assert err.value.key == "extends"


# -- the shipped overlay --------------------------------------------------------------------------


def _old_replay_2021_copy() -> dict:
    """config/replay_2021.yaml as it was: a full copy of scheduler.yaml with the replay changes
    (and without snapshot_retention_hours, which then took the model default, 48)."""
    raw = copy.deepcopy(BASE)
    raw["global"].update(artifacts_dir="artifacts/replay_2021", partitions_start="2021-01-01T00:00:00Z")
    raw["market"].update(source="replay", venues=["kraken"], microstructure_sources=["kraken"])
    for job in raw["jobs"]:
        job["config"]["venues"] = ["kraken"]
        job["enabled"] = job["name"] == "regime.refresh"
    return raw


def test_replay_2021_overlay_has_the_settings_and_hash_of_the_copy_it_replaced():
    path = DEFAULT_CONFIG_PATH.parent / "replay_2021.yaml"
    raw, origins = config_files.merge_layers(config_files.read_layers(path))  # (no replay folder needed)
    overlay = config_files.validate(raw, origins.source_of)
    copied = parse_config(_old_replay_2021_copy())
    assert overlay.model_dump() == copied.model_dump()
    assert config_hash(overlay) == config_hash(copied)
    assert overlay.global_.snapshot_retention_hours == 48
    assert len(path.read_text().splitlines()) < 30


def test_replay_2021_loads_with_its_history_beside_the_project(tmp_path):
    (tmp_path / "proj" / "config").mkdir(parents=True)
    for name in ("scheduler.yaml", "replay_2021.yaml"):
        shutil.copy(DEFAULT_CONFIG_PATH.parent / name, tmp_path / "proj" / "config" / name)
    (tmp_path / "shared" / "data" / "real" / "daily").mkdir(parents=True)
    config = _load(tmp_path / "proj" / "config" / "replay_2021.yaml")
    assert config.market.replay.path == str(tmp_path / "shared" / "data" / "real" / "daily")
    assert config.global_.artifacts_dir == str(tmp_path / "proj" / "artifacts" / "replay_2021")
    shutil.rmtree(tmp_path / "shared")
    err = _refused(tmp_path / "proj" / "config" / "replay_2021.yaml")
    assert err.key == "market.replay.path" and str(tmp_path / "proj" / "config" / "scheduler.yaml") in str(err)


def test_an_environment_override_is_blamed_only_for_its_own_key(project, monkeypatch):
    base = project / "config" / "scheduler.yaml"
    base.write_text(base.read_text().replace("    venue: kraken", "    venue: okx").replace(
        "  venues: [kraken, okx, coinbase]", "  venues: [kraken, coinbase]"))
    (project / "history").mkdir()
    base.write_text(base.read_text().replace("path: ../shared/data/real/daily", "path: history"))
    monkeypatch.setenv("CRYPTORUN_MARKET_SOURCE", "replay")
    err = _refused(base)
    assert err.key == "market.replay.venue" and f"(in {base})" in str(err)
    monkeypatch.setenv("CRYPTORUN_MARKET_SOURCE", "live")
    assert "(in $CRYPTORUN_MARKET_SOURCE)" in str(_refused(base))
