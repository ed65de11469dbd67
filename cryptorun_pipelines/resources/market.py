"""The market source (simulated | replay | ccxt) as a Dagster resource, built by the core factory."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import dagster as dg
from pydantic import Field

from cryptorun_core.config import AppConfig, JobConfig
from cryptorun_core.market.base import MarketSource
from cryptorun_pipelines.resources.config import CryptoRunConfigResource


class MarketSourceResource(dg.ConfigurableResource):
    """Builds the configured :class:`MarketSource` with ``build_market_source(config, job)``.

    ``source`` overrides ``market.source`` of the config (e.g. ``EnvVar("CRYPTORUN_MARKET_SOURCE")``).
    """

    config: CryptoRunConfigResource
    source: Optional[str] = Field(default=None, description="Override of market.source: simulated | replay | ccxt.")

    def app_config(self) -> AppConfig:
        cfg = self.config.load()
        if self.source and self.source != cfg.market.source:
            cfg = cfg.model_copy(update={"market": cfg.market.model_copy(update={"source": self.source})})
        return cfg

    @contextmanager
    def open(self, job: JobConfig | None, config: AppConfig | None = None) -> Iterator[MarketSource]:
        """The source for ``job`` (its venues, cache TTL and request rate), closed afterwards."""
        from cryptorun_core.market.factory import build_market_source

        source = build_market_source(config or self.app_config(), job)
        try:
            yield source
        finally:
            source.close()
