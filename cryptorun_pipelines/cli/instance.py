"""Where the CLI finds the project, the Dagster instance and the workspace.

``DAGSTER_HOME`` defaults to ``<project root>/.dagster_home`` (created on demand with a
``dagster.yaml``); ``schedule run`` and ``schedule start`` use the same default, so runs launched
from the command line show up in the web UI's run history.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from dagster import DagsterInstance

DAGSTER_HOME_ENV = "DAGSTER_HOME"
CODE_LOCATION = "cryptorun"
DEFINITIONS_MODULE = "cryptorun_pipelines.definitions"
DEFINITIONS_ATTR = "defs"

DAGSTER_YAML = """\
# Created by `cryptorun`: the Dagster instance shared by `cryptorun schedule run|start|status`
# and the web UI. Storage defaults to SQLite files in this folder.
telemetry:
  enabled: false
"""


def project_root() -> Path:
    """The folder holding ``workspace.yaml`` and ``config/`` (the repository checkout)."""
    return Path(__file__).resolve().parents[2]


def workspace_file() -> Path:
    return project_root() / "workspace.yaml"


def dagster_home() -> Path:
    """``$DAGSTER_HOME`` or ``<project root>/.dagster_home``, created with a dagster.yaml if new."""
    raw = os.environ.get(DAGSTER_HOME_ENV)
    home = Path(raw).expanduser() if raw else project_root() / ".dagster_home"
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        tmp = cfg.with_name(f".dagster.yaml.{os.getpid()}.tmp")
        tmp.write_text(DAGSTER_YAML, encoding="utf-8")
        os.replace(tmp, cfg)
    return home


def use_dagster_home() -> Path:
    """Resolve the instance folder and export it as ``$DAGSTER_HOME`` (for us and our children)."""
    home = dagster_home()
    os.environ[DAGSTER_HOME_ENV] = str(home)
    return home


def get_instance() -> "DagsterInstance":
    from dagster import DagsterInstance

    use_dagster_home()
    return DagsterInstance.get()
