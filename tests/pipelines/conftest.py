"""Fixtures of the pipeline tests: a small simulated market, tmp artifacts dirs, ephemeral instances."""

from __future__ import annotations

import pytest

from cryptorun_core.config import ARTIFACTS_DIR_ENV, CONFIG_PATH_ENV, MARKET_SOURCE_ENV

from ..pipeline_support import REPO, Pipeline, failure_text, make_pipeline, small_config_dict, write_config  # noqa: F401

SPEC_SCAN_HOT = {"signals.csv", "premove.csv", "explain.json"}
SPEC_SCAN_WARM = {"warm_signals.csv"}
SPEC_REGIME = {"regime.json"}

# the cycles the shared fixture materialises: three regime windows around 12:00 on 2026-11-20, hot
# cycles just before (11:30 → T 11:45), on (11:45 → T 12:00) and just after (12:00 → T 12:15) the
# 4h boundary, and warm cycles ending at 10:00 and 12:00.
REGIME_KEYS = ("2026-11-20-04:00", "2026-11-20-08:00")
HOT_KEYS = ("2026-11-20-11:30", "2026-11-20-11:45", "2026-11-20-12:00")
WARM_KEYS = ("2026-11-20-08:00", "2026-11-20-10:00")


ENV_OVERRIDES = (CONFIG_PATH_ENV, ARTIFACTS_DIR_ENV, MARKET_SOURCE_ENV)


@pytest.fixture
def clean_env(monkeypatch):
    """The pipeline tests choose config and artifacts dirs explicitly: no CRYPTORUN_* overrides."""
    for var in ENV_OVERRIDES:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def pipeline(tmp_path, clean_env) -> Pipeline:
    return make_pipeline(tmp_path)


@pytest.fixture(scope="session")
def materialized(tmp_path_factory) -> Pipeline:
    """One pipeline with the REGIME_KEYS, HOT_KEYS and WARM_KEYS partitions materialised."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ENV_OVERRIDES:
            mp.delenv(var, raising=False)
        p = make_pipeline(tmp_path_factory.mktemp("materialized"))
        for job, keys in (("regime_refresh", REGIME_KEYS), ("scan_hot", HOT_KEYS), ("scan_warm", WARM_KEYS)):
            for key in keys:
                result = p.run(job, key)
                assert result.success, failure_text(result)
    return p
