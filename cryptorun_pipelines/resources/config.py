"""The run's configuration as a Dagster resource: loaded once when the run starts."""


from typing import Optional

import dagster as dg
from pydantic import Field, PrivateAttr

from cryptorun_core.config import ARTIFACTS_DIR_ENV, MARKET_SOURCE_ENV, AppConfig, JobConfig, load_config


class CryptoRunConfigResource(dg.ConfigurableResource):
    """config/scheduler.yaml (or the file given), with the artifacts folder and market source the
    launcher resolved, so every process of a run (and a worker on another host) reads the same."""

    config_path: str = Field(description="The config file the run reads (absolute).")
    artifacts_dir: Optional[str] = Field(default=None, description="Overrides global.artifacts_dir (the launcher's effective value).")
    market_source: Optional[str] = Field(default=None, description="Overrides market.source: simulated | replay | ccxt.")

    _config: Optional[AppConfig] = PrivateAttr(default=None)

    @classmethod
    def of(cls, config: AppConfig, config_path: str, *, at_launch: bool = True):
        """The resource carrying ``config`` (loaded from ``config_path``) to the run."""
        values = {"config_path": config_path, "artifacts_dir": config.global_.artifacts_dir, "market_source": config.market.source}
        return cls.configure_at_launch(**values) if at_launch else cls(**values)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.load()

    def load(self) -> AppConfig:
        """The validated config (read once per process of a run)."""
        if self._config is None:
            overrides = {ARTIFACTS_DIR_ENV: self.artifacts_dir, MARKET_SOURCE_ENV: self.market_source}
            self._config = load_config(
                self.config_path, check_artifacts_dir=False, environ={k: v for k, v in overrides.items() if v}
            )
        return self._config

    def job(self, name: str) -> JobConfig:
        return self.load().job(name)
