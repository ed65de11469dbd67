"""The scheduler config (``config/scheduler.yaml``) as a Dagster resource."""

from __future__ import annotations

from typing import Optional

import dagster as dg
from pydantic import Field, PrivateAttr

from cryptorun_core.config import AppConfig, JobConfig, load_config


class CryptoRunConfigResource(dg.ConfigurableResource):
    """Loads and validates the CryptoRun config file for a run.

    ``config_path`` unset → ``$CRYPTORUN_CONFIG`` or the packaged ``config/scheduler.yaml``;
    ``$CRYPTORUN_ARTIFACTS_DIR`` / ``$CRYPTORUN_MARKET_SOURCE`` override the file (load_config).
    """

    config_path: Optional[str] = Field(
        default=None, description="Path of scheduler.yaml (default: $CRYPTORUN_CONFIG or config/scheduler.yaml)."
    )

    _loaded: Optional[AppConfig] = PrivateAttr(default=None)

    def load(self) -> AppConfig:
        """The validated config (read once per run: resources are instantiated per run)."""
        if self._loaded is None:
            self._loaded = load_config(self.config_path, check_artifacts_dir=False)
        return self._loaded

    def job(self, name: str) -> JobConfig:
        return self.load().job(name)
