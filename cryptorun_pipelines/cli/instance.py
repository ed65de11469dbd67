"""Where the CLI finds the project, the Dagster instance and the workspace.

``DAGSTER_HOME`` defaults to ``<project root>/.dagster_home``; ``schedule run``, ``status`` and
``start`` share it, so runs launched from the command line show up in the web UI's run history.
Before any command touches the instance, :func:`prepare_instance` (``instance_setup``) makes sure
the folder is usable, installs the deployment profile into a fresh home and initialises the
storages once, under a file lock.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from cryptorun_pipelines.cli.errors import CliError

if TYPE_CHECKING:  # pragma: no cover
    from dagster import DagsterInstance

    from cryptorun_pipelines.cli.instance_setup import InstanceSetup

DAGSTER_HOME_ENV = "DAGSTER_HOME"
#: the deployment profile (``deploy/<name>/dagster.yaml``) a fresh DAGSTER_HOME gets; set by --profile
PROFILE_ENV = "CRYPTORUN_PROFILE"
DEFAULT_PROFILE = "local"
CODE_LOCATION = "cryptorun"
DEFINITIONS_MODULE = "cryptorun_pipelines.definitions"
DEFINITIONS_ATTR = "defs"


class InstanceError(CliError):
    """DAGSTER_HOME cannot be used; the message names it and says what is wrong (exit 2)."""


def project_root() -> Path:
    """The folder holding ``workspace.yaml``, ``config/`` and ``deploy/`` (the repository checkout)."""
    return Path(__file__).resolve().parents[2]


def workspace_file() -> Path:
    return project_root() / "workspace.yaml"


def profiles_dir() -> Path:
    return project_root() / "deploy"


def profile_file(name: str) -> Path:
    """``deploy/<name>/dagster.yaml``; an unknown name is a usage error naming the known ones."""
    path = profiles_dir() / name / "dagster.yaml"
    if not name or "/" in name or name.startswith(".") or not path.is_file():
        known = sorted(p.parent.name for p in profiles_dir().glob("*/dagster.yaml"))
        raise InstanceError(f"unknown profile '{name}': no {path} (known: {', '.join(known) or 'none'})")
    return path


def requested_profile() -> tuple[str, bool]:
    """The profile to install and whether it was asked for (--profile / $CRYPTORUN_PROFILE)."""
    name = os.environ.get(PROFILE_ENV, "").strip()
    return (name, True) if name else (DEFAULT_PROFILE, False)


def default_dagster_home() -> Path:
    return project_root() / ".dagster_home"


def dagster_home() -> Path:
    """``$DAGSTER_HOME`` or ``<project root>/.dagster_home`` as an existing folder (created if missing)."""
    raw = os.environ.get(DAGSTER_HOME_ENV)
    home = (Path(raw).expanduser() if raw else default_dagster_home()).absolute()
    if home.exists() and not home.is_dir():
        raise InstanceError(f"DAGSTER_HOME {home} is a file, not a folder")
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InstanceError(f"DAGSTER_HOME {home} cannot be created: {exc.strerror or exc}") from None
    return home.resolve()


def use_dagster_home() -> Path:
    """Resolve and prepare the instance folder and export it as ``$DAGSTER_HOME`` (for us and our children)."""
    return prepare_instance().home


def prepare_instance() -> "InstanceSetup":
    """Make ``DAGSTER_HOME`` a ready instance (profile installed, storages initialised) — cheap once done."""
    from cryptorun_pipelines.cli.instance_setup import ensure_instance

    name, explicit = requested_profile()
    if explicit:
        profile_file(name)  # an unknown profile is refused before anything is created
    home = dagster_home()
    os.environ[DAGSTER_HOME_ENV] = str(home)
    return ensure_instance(home, name, explicit=explicit)


def get_instance() -> "DagsterInstance":
    from dagster import DagsterInstance

    from cryptorun_pipelines.cli.instance_setup import opening_instance

    home = use_dagster_home()
    with opening_instance(home):
        return DagsterInstance.get()
