"""The ``executor:`` section: every value in config/scheduler.yaml, each bad value named by its key."""

from __future__ import annotations

import copy

import pytest
import yaml

from cryptorun_core.config import DEFAULT_CONFIG_PATH, ConfigError, parse_config


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())


def test_the_packaged_executor_is_in_process(raw):
    executor = parse_config(raw).executor
    assert executor.type == "in_process"
    assert executor.multiprocess.max_concurrent >= 0
    assert executor.celery.broker_url_env == "CRYPTORUN_CELERY_BROKER_URL"
    assert executor.celery.worker_wait_s == 120
    assert executor.celery.worker_lost_s == 60


BROKEN = [
    ("type", "threads", "executor.type", "in_process"),
    ("multiprocess", {"max_concurrent": -1}, "executor.multiprocess.max_concurrent", "greater than or equal to 0"),
    ("multiprocess", {"max_concurrent": 2, "start": "fork"}, "executor.multiprocess.start", "unknown key"),
    ("multiprocess", {}, "executor.multiprocess.max_concurrent", "missing"),
    ("celery", {"broker_url_env": "redis://localhost:6379/0", "backend_url_env": "B", "worker_wait_s": 120, "worker_lost_s": 60},
     "executor.celery.broker_url_env", "not an environment variable name"),
    ("celery", {"broker_url_env": "A", "backend_url_env": "B", "worker_wait_s": 120, "worker_lost_s": 60, "broker": "redis://x"},
     "executor.celery.broker", "unknown key"),
    ("celery", {"broker_url_env": "A", "backend_url_env": "B", "worker_wait_s": -1, "worker_lost_s": 60},
     "executor.celery.worker_wait_s", "greater than or equal to 0"),
    ("celery", {"broker_url_env": "A", "backend_url_env": "B", "worker_lost_s": 60}, "executor.celery.worker_wait_s", "missing"),
    ("celery", {"broker_url_env": "A", "backend_url_env": "B", "worker_wait_s": 120, "worker_lost_s": -5},
     "executor.celery.worker_lost_s", "greater than or equal to 0"),
    ("celery", {"broker_url_env": "A", "backend_url_env": "B", "worker_wait_s": 120}, "executor.celery.worker_lost_s", "missing"),
]


@pytest.mark.parametrize("key,value,named,words", BROKEN, ids=[f"{b[0]}-{b[2]}" for b in BROKEN])
def test_a_bad_executor_setting_is_named_by_its_key(raw, key, value, named, words):
    cfg = copy.deepcopy(raw)
    cfg["executor"][key] = value
    with pytest.raises(ConfigError) as err:
        parse_config(cfg)
    assert err.value.key == named, str(err.value)
    assert words.lower() in str(err.value).lower()


def test_a_config_without_the_section_is_refused(raw):
    cfg = copy.deepcopy(raw)
    del cfg["executor"]
    with pytest.raises(ConfigError) as err:
        parse_config(cfg)
    assert err.value.key == "executor"


def test_the_executor_does_not_change_the_config_hash_of_a_cycle():
    from cryptorun_core.config import changed, packaged_config
    from cryptorun_core.explain import config_hash

    config = packaged_config()
    for kind in ("multiprocess", "celery"):
        assert config_hash(changed(config, executor={"type": kind})) == config_hash(config)
