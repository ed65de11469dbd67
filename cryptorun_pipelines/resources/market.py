"""The market source (simulated | replay | ccxt) as a Dagster resource, built by the core factory."""


from contextlib import contextmanager
from typing import Iterator

import dagster as dg

from cryptorun_core.config import JobConfig
from cryptorun_core.market.base import MarketSource
from cryptorun_pipelines.resources.config import CryptoRunConfigResource


class MarketSourceResource(dg.ConfigurableResource):
    """Opens the configured :class:`MarketSource` for a job (its venues, cache TTL and request rate)."""

    config: CryptoRunConfigResource

    @contextmanager
    def open(self, job: JobConfig | None) -> Iterator[MarketSource]:
        """The source for ``job`` (``market.venues`` when None), closed afterwards."""
        from cryptorun_core.market.factory import build_market_source

        source = build_market_source(self.config.load(), job)
        try:
            yield source
        finally:
            source.close()
