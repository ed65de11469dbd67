"""Access to the Dagster definitions of this code location (``cryptorun_pipelines.definitions:defs``)."""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING

from cryptorun_pipelines.cli.instance import DEFINITIONS_ATTR, DEFINITIONS_MODULE

if TYPE_CHECKING:  # pragma: no cover
    from dagster import Definitions


@functools.lru_cache(maxsize=1)
def load_definitions() -> "Definitions":
    """Import the definitions module (it loads the config from ``$CRYPTORUN_CONFIG``)."""
    module = importlib.import_module(DEFINITIONS_MODULE)
    return getattr(module, DEFINITIONS_ATTR)
