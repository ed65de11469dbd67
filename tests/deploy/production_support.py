"""A DAGSTER_HOME of the production profile pointed at a test database (a plain module: tests cannot
import a conftest under ``--import-mode=importlib``)."""

from __future__ import annotations

import shutil
from pathlib import Path

from cryptorun_pipelines.cli.instance import profile_file
from tests.servers import PostgresDb

#: the variables deploy/production/dagster.yaml reads its credentials from
PG_ENV_VARS = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")
#: variables the pooled event log exports into the process that opens the instance
PROCESS_ENV_VARS = ("DAGSTER_EVENT_BATCH_SIZE",)


def pg_env(db: PostgresDb) -> dict[str, str]:
    """The environment deploy/production/dagster.yaml needs to reach ``db``."""
    return dict(zip(PG_ENV_VARS, (db.host, str(db.port), db.username, "", db.db_name)))


def production_home(folder: Path) -> Path:
    """``folder`` with the production profile's dagster.yaml, as `--profile production` installs it."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(profile_file("production"), folder / "dagster.yaml")
    return folder
