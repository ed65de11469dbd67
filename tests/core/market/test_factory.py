"""build_market_source picks simulated | replay | ccxt from config.market.source."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from cryptorun_core.config import AppConfig, JobConfig, changed, packaged_config
from cryptorun_core.market.factory import build_market_source
from cryptorun_core.market.replay import ReplayMarket
from cryptorun_core.market.simulated import SimulatedMarket


def _with_market(config: AppConfig, **market) -> AppConfig:
    return config.model_copy(update={"market": config.market.model_copy(update=market)})


def _job(venues: tuple[str, ...]) -> JobConfig:
    return changed(packaged_config().job("scan.hot"), config={"venues": venues})


def test_simulated_is_the_default_and_uses_the_configured_seed_and_size(app_config):
    assert app_config.market.source == "simulated"
    source = build_market_source(app_config)
    assert isinstance(source, SimulatedMarket)
    assert (source.seed, source.n_symbols) == (app_config.market.simulated.seed, app_config.market.simulated.n_symbols)
    assert source.venues == app_config.market.venues


def test_simulated_takes_the_job_venues(app_config):
    cfg = _with_market(app_config, simulated=app_config.market.simulated.model_copy(update={"seed": 11, "n_symbols": 40}))
    source = build_market_source(cfg, _job(("okx", "coinbase")))
    assert source.venues == ("okx", "coinbase")
    assert (source.seed, source.n_symbols) == (11, 40)


def test_replay_uses_path_resolution_and_venue(app_config, tmp_path):
    (tmp_path / "BTC-USD.csv").write_text("timestamp,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n")
    replay = app_config.market.replay.model_copy(update={"path": str(tmp_path), "resolution": "1h", "venue": "okx"})
    source = build_market_source(_with_market(app_config, source="replay", replay=replay), _job(("kraken",)))
    assert isinstance(source, ReplayMarket)
    assert source.path == Path(tmp_path) and source.native_timeframe == "1h" and source.venues == ("okx",)
    assert source.symbols == ["BTC/USD"]


def test_replay_with_a_missing_folder_fails_clearly(app_config, tmp_path):
    replay = app_config.market.replay.model_copy(update={"path": str(tmp_path / "gone")})
    with pytest.raises(ValueError, match="gone"):
        build_market_source(_with_market(app_config, source="replay", replay=replay))


def test_ccxt_is_imported_lazily_and_built_from_config(app_config, monkeypatch):
    calls = []

    class FakeCcxtMarket:
        @classmethod
        def from_config(cls, config, job):
            calls.append((config, job))
            return "live-source"

    fake = types.ModuleType("cryptorun_core.market.ccxt_live")
    fake.CcxtMarket = FakeCcxtMarket
    monkeypatch.setitem(sys.modules, "cryptorun_core.market.ccxt_live", fake)
    cfg = _with_market(app_config, source="ccxt")
    job = _job(("kraken",))
    assert build_market_source(cfg, job) == "live-source"
    assert build_market_source(cfg) == "live-source"
    assert calls == [(cfg, job), (cfg, None)]


def test_factory_module_does_not_import_ccxt_eagerly():
    import cryptorun_core.market.factory as factory

    source = Path(factory.__file__).read_text()
    assert "import ccxt\n" not in source
    top_level = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert not any("ccxt" in line for line in top_level)
