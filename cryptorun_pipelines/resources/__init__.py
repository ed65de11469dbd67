"""Dagster resources: the run's config, the market source, and the on-demand regime window."""

from cryptorun_pipelines.resources.config import CryptoRunConfigResource
from cryptorun_pipelines.resources.market import MarketSourceResource
from cryptorun_pipelines.resources.regime_window import RegimeWindowResource

__all__ = ["CryptoRunConfigResource", "MarketSourceResource", "RegimeWindowResource"]
