"""The run's configuration as a Dagster resource: loaded once when the run starts."""


from typing import Optional

import dagster as dg
from pydantic import Field, PrivateAttr

from cryptorun_core.config import ARTIFACTS_DIR_ENV, MARKET_SOURCE_ENV, AppConfig, JobConfig, load_config
from cryptorun_pipelines.run_tags import SETTINGS_TAGS


class CryptoRunConfigResource(dg.ConfigurableResource):
    """config/scheduler.yaml (or the file given), with the artifacts folder and market source the
    launcher resolved, so every process of a run (and a worker on another host) reads the same."""

    config_path: str = Field(description="The config file the run reads (absolute).")
    artifacts_dir: Optional[str] = Field(default=None, description="Overrides global.artifacts_dir (the launcher's effective value).")
    market_source: Optional[str] = Field(default=None, description="Overrides market.source: simulated | replay | ccxt.")

    _config: Optional[AppConfig] = PrivateAttr(default=None)
    _launched: dict = PrivateAttr(default_factory=dict)

    @classmethod
    def of(cls, config: AppConfig, config_path: str, *, at_launch: bool = True):
        """The resource carrying ``config`` (loaded from ``config_path``) to the run."""
        values = {"config_path": config_path, "artifacts_dir": config.global_.artifacts_dir, "market_source": config.market.source}
        return cls.configure_at_launch(**values) if at_launch else cls(**values)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # what the run's own process resolved when the run started (cryptorun_pipelines.executors
        # stamps it on the run): a step in another process or on a Celery worker reads the same
        # files, whatever that process's environment says
        tags = context.dagster_run.tags if context.dagster_run is not None else {}
        self._launched = {field: tags[tag] for field, tag in SETTINGS_TAGS.items() if tags.get(tag)}
        self.load()

    def setting(self, field: str) -> Optional[str]:
        """``config_path`` / ``artifacts_dir`` / ``market_source`` as this run reads it."""
        return self._launched.get(field, getattr(self, field))

    def load(self) -> AppConfig:
        """The validated config (read once per process of a run)."""
        if self._config is None:
            overrides = {ARTIFACTS_DIR_ENV: self.setting("artifacts_dir"), MARKET_SOURCE_ENV: self.setting("market_source")}
            self._config = load_config(
                self.setting("config_path"), check_artifacts_dir=False, environ={k: v for k, v in overrides.items() if v}
            )
        return self._config

    def job(self, name: str) -> JobConfig:
        return self.load().job(name)
