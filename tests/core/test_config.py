"""Config models and load_config: the shipped file is valid, every broken variant fails naming its
key, no value has a second home in the code, and loading writes nothing.

File reading, duplicate keys and overlays: test_config_files.py; cron fields: test_cron.py.
"""

from __future__ import annotations

import copy
import math
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from cryptorun_core import config_files
from cryptorun_core.config import (
    DEFAULT_CONFIG_PATH,
    AppConfig,
    ConfigError,
    _Strict,
    changed,
    is_aggregator,
    load_config,
    packaged_config,
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
    assert not (tmp_path / "out").exists()  # created when the first artifact is written, not at load


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
    ("missing sanitation section", ("sanitation",), _DELETE, "sanitation", "missing"),
    ("missing spike ratio", ("sanitation", "price_spike_ratio"), _DELETE, "sanitation.price_spike_ratio", "missing"),
    ("spike ratio of 1 rejects every bar", ("sanitation", "volume_spike_ratio"), 1, "sanitation.volume_spike_ratio", "greater than 1"),
    ("negative price bound", ("sanitation", "min_price_usd"), -1, "sanitation.min_price_usd", "greater than 0"),
    ("price bounds inverted", ("sanitation", "max_price_usd"), 1e-12, "sanitation.max_price_usd", "above min_price_usd"),
    ("unknown sanitation key", ("sanitation", "max_volume"), 5, "sanitation.max_volume", "unknown key"),
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


def test_env_overrides_artifacts_dir_and_source(tmp_path, monkeypatch, raw):
    (tmp_path / "history").mkdir()
    path = tmp_path / "scheduler.yaml"
    path.write_text(yaml.safe_dump(_mutate(raw, ("market", "replay", "path"), str(tmp_path / "history"))))
    monkeypatch.setenv("CRYPTORUN_ARTIFACTS_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("CRYPTORUN_MARKET_SOURCE", "replay")
    config = load_config(path)
    assert config.global_.artifacts_dir == str((tmp_path / "elsewhere").resolve())
    assert config.market.source == "replay"


def test_a_bad_env_override_is_named_as_the_source(monkeypatch):
    monkeypatch.setenv("CRYPTORUN_MARKET_SOURCE", "yahoo")
    with pytest.raises(ConfigError) as err:
        load_config(DEFAULT_CONFIG_PATH, check_artifacts_dir=False)
    assert err.value.key == "market.source" and "(in $CRYPTORUN_MARKET_SOURCE)" in str(err.value)


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


# -- non-finite numbers: refused in every section by one mechanism (_Strict) ---------------------


def _numeric_leaves(node, path=()):
    """Paths of every number in the packaged file (booleans are not numbers here)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _numeric_leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _numeric_leaves(value, (*path, index))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path


def _label(raw: dict, path: tuple) -> str:
    """The key path load errors name: list items by their ``name``."""
    out, node = "", raw
    for part in path:
        if isinstance(part, int):
            name = node[part].get("name") if isinstance(node[part], dict) else None
            out += f"[{name if name is not None else part}]"
        else:
            out += f".{part}" if out else part
        node = node[part]
    return out


NUMERIC_LEAVES = list(_numeric_leaves(yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())))


def test_the_packaged_file_has_numbers_in_every_section():
    assert len(NUMERIC_LEAVES) > 80
    assert {p[0] for p in NUMERIC_LEAVES} >= {"global", "market", "universe", "factors", "vadr", "regime", "gates", "premove", "jobs"}


@pytest.mark.parametrize("path", NUMERIC_LEAVES, ids=lambda p: ".".join(map(str, p)))
def test_every_number_refuses_nan_and_infinity(raw, path):
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ConfigError) as err:
            parse_config(_mutate(raw, path, bad))
        assert err.value.key == _label(raw, path), str(err.value)
        assert "finite number" in str(err.value)


@pytest.mark.parametrize("section,key,text", [
    ("gates", "fatigue", "{r24h_above: .nan, rsi4h_above: 70}"),
    ("gates", "fresh_max_book_age_s", ".inf"),
    ("premove", "prime_min", "-.inf"),
])
def test_yaml_nan_and_inf_literals_are_refused_at_load(tmp_path, section, key, text):
    lines = DEFAULT_CONFIG_PATH.read_text().splitlines()
    at = lines.index(f"{section}:")
    hit = next(i for i in range(at, len(lines)) if lines[i].strip().startswith(f"{key}:"))
    lines[hit] = f"  {key}: {text}"
    path = tmp_path / "scheduler.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="finite number") as err:
        load_config(path, check_artifacts_dir=False)
    assert err.value.key.startswith(f"{section}.{key}") and str(path) in str(err.value)


# -- every value lives once: in config/scheduler.yaml, never as a model default ------------------


def _models(model: type[BaseModel] = AppConfig, seen: set | None = None):
    seen = set() if seen is None else seen
    if model in seen:
        return
    seen.add(model)
    yield model

    def types(annotation):
        yield annotation
        for arg in typing.get_args(annotation):
            yield from types(arg)

    for field in model.model_fields.values():
        for sub in types(field.annotation):
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                yield from _models(sub, seen)


def test_models_carry_no_defaults_so_every_value_lives_in_scheduler_yaml():
    models = list(_models())
    assert len(models) >= 20
    with_default = [f"{m.__name__}.{name}" for m in models for name, field in m.model_fields.items() if not field.is_required()]
    assert not with_default, f"give these no default; their value belongs in config/scheduler.yaml: {with_default}"


def test_every_model_refuses_unknown_keys_and_non_finite_numbers():
    for model in _models():
        assert issubclass(model, _Strict), model.__name__
        assert model.model_config["extra"] == "forbid" and model.model_config["allow_inf_nan"] is False, model.__name__


def test_a_complete_config_missing_a_key_says_how_to_inherit_it(tmp_path, raw):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(_mutate(raw, ("premove", "imbalance_cap"), _DELETE)))
    with pytest.raises(ConfigError) as err:
        load_config(path, check_artifacts_dir=False)
    assert err.value.key == "premove.imbalance_cap"
    assert "required key is missing" in str(err.value) and "extends:" in str(err.value) and str(path) in str(err.value)


def test_packaged_config_is_the_shipped_file_without_env_overrides(monkeypatch):
    monkeypatch.delenv("CRYPTORUN_MARKET_SOURCE", raising=False)
    monkeypatch.delenv("CRYPTORUN_ARTIFACTS_DIR", raising=False)
    shipped = load_config(DEFAULT_CONFIG_PATH, check_artifacts_dir=False)
    monkeypatch.setenv("CRYPTORUN_MARKET_SOURCE", "ccxt")
    packaged_config.cache_clear()
    assert packaged_config() == shipped and packaged_config().market.source == "simulated"


def test_changed_merges_into_a_section_and_validates():
    market = changed(packaged_config().market, ccxt={"max_retries": 5})
    assert market.ccxt.max_retries == 5 and market.ccxt.timeout_ms == packaged_config().market.ccxt.timeout_ms
    with pytest.raises(ValidationError):
        changed(packaged_config().market, ccxt={"max_retries": math.nan})


# -- replay: the venue and, when replay is the source, the folder ---------------------------------


def _write(tmp_path: Path, raw: dict, name: str = "scheduler.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize("source", ["simulated", "replay"])
def test_replay_venue_must_be_a_known_venue(tmp_path, raw, source):
    (tmp_path / "history").mkdir()
    cfg = _mutate(_mutate(raw, ("market", "replay", "venue"), "binance"), ("market", "source"), source)
    cfg["market"]["replay"]["path"] = str(tmp_path / "history")
    with pytest.raises(ConfigError, match="unknown venue 'binance'") as err:
        load_config(_write(tmp_path, cfg), check_artifacts_dir=False)
    assert err.value.key == "market.replay.venue"


def test_replay_venue_must_be_a_configured_venue_when_replaying(tmp_path, raw):
    (tmp_path / "history").mkdir()
    cfg = _mutate(raw, ("market", "source"), "replay")
    cfg["market"]["replay"].update(path=str(tmp_path / "history"), venue="okx")
    cfg["market"]["venues"] = ["kraken"]
    cfg["market"]["microstructure_sources"] = ["kraken"]
    for job in cfg["jobs"]:
        job["config"]["venues"] = ["kraken"]
    with pytest.raises(ConfigError, match="not one of market.venues") as err:
        load_config(_write(tmp_path, cfg), check_artifacts_dir=False)
    assert err.value.key == "market.replay.venue"
    cfg["market"]["source"] = "simulated"  # not replaying: the replay section is not in use
    load_config(_write(tmp_path, cfg), check_artifacts_dir=False)


def test_every_job_asks_for_the_replayed_venue(tmp_path, raw):
    (tmp_path / "history").mkdir()
    cfg = _mutate(raw, ("market", "source"), "replay")
    cfg["market"]["replay"]["path"] = str(tmp_path / "history")
    cfg["jobs"][1]["config"]["venues"] = ["okx", "coinbase"]
    with pytest.raises(ConfigError, match="must include 'kraken'") as err:
        load_config(_write(tmp_path, cfg), check_artifacts_dir=False)
    assert err.value.key == "jobs[scan.warm].config.venues"


def test_missing_replay_folder_is_refused_only_when_replay_is_the_source(tmp_path, raw, monkeypatch):
    cfg = _mutate(raw, ("market", "replay", "path"), str(tmp_path / "no_history"))
    path = _write(tmp_path, cfg)
    load_config(path, check_artifacts_dir=False)  # simulated: the replay folder is not read
    monkeypatch.setenv("CRYPTORUN_MARKET_SOURCE", "replay")
    with pytest.raises(ConfigError) as err:
        load_config(path, check_artifacts_dir=False)
    assert err.value.key == "market.replay.path"
    assert "does not exist" in str(err.value) and "set by $CRYPTORUN_MARKET_SOURCE" in str(err.value)
    assert str(path) in str(err.value)
    monkeypatch.delenv("CRYPTORUN_MARKET_SOURCE")
    replaying = _write(tmp_path, _mutate(cfg, ("market", "source"), "replay"))
    with pytest.raises(ConfigError, match="does not exist") as err:
        load_config(replaying, check_artifacts_dir=False)
    assert err.value.key == "market.replay.path" and "set by" not in str(err.value)
    monkeypatch.setenv("CRYPTORUN_MARKET_SOURCE", "simulated")  # the environment turns replay off
    assert load_config(replaying, check_artifacts_dir=False).market.source == "simulated"


def test_replay_path_that_is_a_file_is_refused(tmp_path, raw):
    (tmp_path / "history.csv").write_text("timestamp,open\n")
    cfg = _mutate(_mutate(raw, ("market", "source"), "replay"), ("market", "replay", "path"), str(tmp_path / "history.csv"))
    with pytest.raises(ConfigError, match="is not a folder") as err:
        load_config(_write(tmp_path, cfg), check_artifacts_dir=False)
    assert err.value.key == "market.replay.path"


# -- loading writes nothing -----------------------------------------------------------------------


def test_load_checks_the_artifacts_dir_without_creating_it(tmp_path, raw):
    target = tmp_path / "a" / "b" / "artifacts"
    config = load_config(_write(tmp_path, _mutate(raw, ("global", "artifacts_dir"), str(target))))
    assert config.global_.artifacts_dir == str(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scheduler.yaml"]


def test_a_rejected_config_creates_nothing(tmp_path, raw):
    cfg = _mutate(raw, ("global", "artifacts_dir"), str(tmp_path / "artifacts"))
    cfg["jobs"][0]["schedule"] = "*/61 * * * *"
    with pytest.raises(ConfigError):
        load_config(_write(tmp_path, cfg))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scheduler.yaml"]


def test_artifacts_dir_that_is_a_file_is_rejected(tmp_path, raw):
    (tmp_path / "artifacts").write_text("a file")
    with pytest.raises(ConfigError, match="is not a directory") as err:
        load_config(_write(tmp_path, _mutate(raw, ("global", "artifacts_dir"), str(tmp_path / "artifacts"))))
    assert err.value.key == "global.artifacts_dir"


def test_artifacts_dir_below_an_unwritable_folder_is_rejected(tmp_path, raw, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = config_files.os.access
    # (tests run as root, for whom chmod does not lock a folder: os.access answers for it)
    monkeypatch.setattr(config_files.os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    with pytest.raises(ConfigError, match=f"{locked} is not writable") as err:
        load_config(_write(tmp_path, _mutate(raw, ("global", "artifacts_dir"), str(locked / "new" / "artifacts"))))
    assert err.value.key == "global.artifacts_dir"
    assert not (locked / "new").exists()
