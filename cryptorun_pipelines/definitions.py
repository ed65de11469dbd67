"""The Dagster code location: ``dagster dev -m cryptorun_pipelines.definitions`` (see docs/orchestration.md)."""

from cryptorun_core.config import load_config, resolve_config_path
from cryptorun_pipelines.build import build_definitions

_config_path = resolve_config_path()
defs = build_definitions(load_config(_config_path), config_path=_config_path)
