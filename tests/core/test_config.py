"""Config loading: the shipped file is valid, and every broken variant fails naming its key."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml

from cryptorun_core.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    is_aggregator,
    load_config,
    parse_config,
)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())


def test_shipped_config_loads_with_spec_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYPTORUN_ARTIFACTS_DIR", str(tmp_path / "out"))
    config = load_config()
    assert [j.name for j in config.jobs] == ["scan.hot", "scan.warm", "regime.refresh"]
    hot = config.job("scan.hot")
    assert hot.schedule == "*/15 * * * *" and hot.config.max_sample == 30 and hot.config.score_min == 75
    assert config.job("scan_warm").config.score_min == 65
    assert config.job("regime.refresh").schedule == "0 */4 * * *"
    assert config.regime.weights["volatile"] == {"momentum": 0.30, "technical": 0.20, "volume": 0.30, "quality": 0.20}
    assert config.regime.thresholds.realized_vol_7d.calm == 0.40
    assert [t.depth_min_usd for t in config.universe.tiers] == [150_000, 75_000, 25_000]
    assert config.global_.artifacts_dir == str((tmp_path / "out").resolve())
    assert (tmp_path / "out").is_dir()


def test_tier_lookup_follows_adv_boundaries(raw):
    config = parse_config(raw)
    assert config.tier_for_adv(5_000_000).name == "tier1"
    assert config.tier_for_adv(4_999_999).name == "tier2"
    assert config.tier_for_adv(100_000).name == "tier3"
    assert config.tier_for_adv(99_999) is None


def test_job_names_resolve_dotted_and_dagster_spellings(raw):
    config = parse_config(raw)
    assert config.job("scan.hot") is config.job("scan_hot")
    assert config.job("regime.refresh").dagster_name == "regime_refresh"
    with pytest.raises(KeyError, match="no job named 'scan.cold'"):
        config.job("scan.cold")


def _mutate(raw: dict, path: tuple, value) -> dict:
    cfg = copy.deepcopy(raw)
    node = cfg
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return cfg


_DELETE = object()

BROKEN = [
    # (description, path to change, new value, key named in the error, words in the message)
    ("unknown top-level key", ("extras",), {"a": 1}, "extras", "unknown key"),
    ("unknown nested key", ("global", "artefacts_dir"), "x", "global.artefacts_dir", "unknown key"),
    ("wrong type", ("jobs", 0, "config", "max_sample"), "thirty", "jobs[scan.hot].config.max_sample", "integer"),
    ("bad cron", ("jobs", 0, "schedule"), "*/15 * * *", "jobs[scan.hot].schedule", "cron"),
    ("cron out of range", ("jobs", 1, "schedule"), "0 */2 * * 9", "jobs[scan.warm].schedule", "cron"),
    ("regime weights not summing to 1", ("regime", "weights", "calm", "momentum"), 0.5, "regime.weights", "sum to 1"),
    ("timeframe weights not summing to 1", ("factors", "momentum", "weights", "normal", "7d"), 0.2, "factors.momentum.weights", "sum to 1"),
    ("aggregator as microstructure source", ("market", "microstructure_sources"), ["kraken", "coingecko"], "market.microstructure_sources", "aggregator"),
    ("composite id as microstructure source", ("market", "microstructure_sources"), ["okx_composite"], "market.microstructure_sources", "aggregator"),
    ("unknown venue", ("market", "venues"), ["kraken", "binance_us"], "market.venues", "unknown venue"),
    ("unknown market source", ("market", "source"), "yahoo", "market.source", "simulated"),
    ("negative threshold", ("universe", "min_adv_usd"), -5, "universe.min_adv_usd", "greater than or equal"),
    ("score above 100", ("jobs", 0, "config", "score_min"), 175, "jobs[scan.hot].config.score_min", "less than or equal"),
    ("missing schedule", ("jobs", 2, "schedule"), _DELETE, "jobs[regime.refresh].schedule", "missing"),
    ("bad job type", ("jobs", 2, "type"), "cron", "jobs[regime.refresh].type", "scan"),
    ("bad job name", ("jobs", 0, "name"), "Scan Hot!", "jobs[Scan Hot!].name", "not a valid job name"),
    ("vote bands inverted", ("regime", "thresholds", "realized_vol_7d"), {"calm": 0.9, "volatile": 0.4}, "regime.thresholds", "calm must be below"),
    ("tiers out of order", ("universe", "tiers", 0, "min_adv_usd"), 50_000, "universe.tiers", "decreasing"),
    ("bad log level", ("global", "log_level"), "LOUD", "global.log_level", "INFO"),
    ("job venue not configured", ("jobs", 0, "config", "venues"), ["kraken", "kraken2"], "jobs[scan.hot].config.venues", "unknown venue"),
]


@pytest.mark.parametrize("description,path,value,key,words", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_config_names_the_key(raw, description, path, value, key, words):
    with pytest.raises(ConfigError) as err:
        parse_config(_mutate(raw, path, value))
    assert err.value.key.startswith(key), f"{description}: {err.value}"
    assert words.lower() in str(err.value).lower(), f"{description}: {err.value}"


def test_duplicate_job_names_are_rejected(raw):
    cfg = copy.deepcopy(raw)
    cfg["jobs"].append(copy.deepcopy(cfg["jobs"][0]))
    with pytest.raises(ConfigError, match="duplicate job names: \\['scan.hot'\\]"):
        parse_config(cfg)


def test_yaml_syntax_error_names_line(tmp_path):
    bad = tmp_path / "scheduler.yaml"
    bad.write_text("global:\n  artifacts_dir: [unclosed\njobs: []\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert err.value.key == "<yaml>" and "line" in str(err.value)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_non_mapping_document_is_rejected(tmp_path):
    path = tmp_path / "scheduler.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_unwritable_artifacts_dir_is_rejected(tmp_path, raw):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    path = tmp_path / "scheduler.yaml"
    path.write_text(yaml.safe_dump(_mutate(raw, ("global", "artifacts_dir"), str(blocker / "sub"))))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == "global.artifacts_dir"


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "scheduler.yaml"
    path.write_text("global: !!python/object/apply:os.system ['echo pwned']\njobs: []\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_env_overrides_artifacts_dir_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYPTORUN_ARTIFACTS_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("CRYPTORUN_MARKET_SOURCE", "replay")
    config = load_config()
    assert config.global_.artifacts_dir == str((tmp_path / "elsewhere").resolve())
    assert config.market.source == "replay"


def test_relative_paths_resolve_against_project_root(raw, tmp_path):
    project = tmp_path / "proj"
    (project / "config").mkdir(parents=True)
    path = project / "config" / "scheduler.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    assert Path(config.global_.artifacts_dir) == (project / "artifacts").resolve()


@pytest.mark.parametrize(
    "ident,expected",
    [("coingecko", True), ("CoinMarketCap", True), ("cmc", True), ("my_aggregator", True), ("blended_feed", True),
     ("kraken", False), ("okx", False), ("coinbase", False)],
)
def test_aggregator_detection(ident, expected):
    assert is_aggregator(ident) is expected


def test_weight_tables_sum_to_one(raw):
    config = parse_config(raw)
    for table in (config.regime.weights, config.factors.momentum.weights):
        for row in table.values():
            assert math.isclose(sum(row.values()), 1.0)
