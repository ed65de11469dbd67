"""The Dagster code location: ``dagster dev -m cryptorun_pipelines.definitions`` (see docs/orchestration.md)."""

from cryptorun_core.config import load_config
from cryptorun_pipelines.build import build_definitions

defs = build_definitions(load_config())
