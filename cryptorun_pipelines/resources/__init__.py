"""Dagster resources: the scheduler config and the market source, chosen by config/env."""

from cryptorun_pipelines.resources.config import CryptoRunConfigResource
from cryptorun_pipelines.resources.market import MarketSourceResource

__all__ = ["CryptoRunConfigResource", "MarketSourceResource"]
