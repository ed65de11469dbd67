"""The instance storage a benchmark runs on: ``sqlite`` (deploy/local) or ``postgres`` (deploy/production).

``python -m benchmarks.run --storage postgres`` (or ``both``) needs a PostgreSQL server: the one in
``CRYPTORUN_BENCH_POSTGRES_URL`` (or ``CRYPTORUN_TEST_POSTGRES_URL``, as ``.ci/servers`` writes it,
``postgresql+psycopg2://USER@HOST:PORT/DB``), else a throwaway one started with ``.ci/servers`` for
the run and stopped at its end. Every home gets a new, empty database, so no benchmark reads
another's history.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.common import ROOT, make_dagster_home

STORAGES = ("sqlite", "postgres")
URL_ENVS = ("CRYPTORUN_BENCH_POSTGRES_URL", "CRYPTORUN_TEST_POSTGRES_URL")
PRODUCTION_YAML = ROOT / "deploy" / "production" / "dagster.yaml"
#: variables a storage sets in the process that opens it (pooled_postgres sets the batch size)
PROCESS_ENV = ("DAGSTER_EVENT_BATCH_SIZE",)

_server_dir: Path | None = None
_admin_url: str | None = None


def admin_url() -> str:
    """The server's URL, starting a throwaway server on first use when none is configured."""
    global _server_dir, _admin_url  # one server for the whole benchmark run
    if _admin_url:
        return _admin_url
    for name in URL_ENVS:
        if os.environ.get(name):
            _admin_url = os.environ[name]
            return _admin_url
    _server_dir = Path(tempfile.mkdtemp(prefix="bench_servers_"))
    script = ROOT / ".ci" / "servers"
    proc = subprocess.run([str(script), "start", str(_server_dir)], capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        raise RuntimeError(f"cannot start PostgreSQL with .ci/servers: {(proc.stderr or proc.stdout).strip()[-300:]}")
    for line in (_server_dir / "env").read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name == "CRYPTORUN_TEST_POSTGRES_URL":
            _admin_url = value
    if not _admin_url:
        raise RuntimeError(".ci/servers wrote no CRYPTORUN_TEST_POSTGRES_URL")
    return _admin_url


def server_env(storage: str) -> dict[str, str]:
    """What a child benchmark process needs to reach the same server (started here if need be)."""
    return {URL_ENVS[0]: admin_url()} if storage == "postgres" else {}


def stop_server() -> None:
    global _server_dir
    if _server_dir is not None:
        subprocess.run([str(ROOT / ".ci" / "servers"), "stop", str(_server_dir)], capture_output=True, timeout=120)
        shutil.rmtree(_server_dir, ignore_errors=True)
        _server_dir = None


def _new_database() -> dict[str, str]:
    import psycopg2

    url = urlsplit(admin_url())
    name = f"bench_{secrets.token_hex(5)}"
    conn = psycopg2.connect(host=url.hostname, port=url.port, user=url.username, password=url.password or "",
                            dbname=url.path.lstrip("/") or "postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return {"DAGSTER_PG_HOST": url.hostname or "127.0.0.1", "DAGSTER_PG_PORT": str(url.port or 5432),
            "DAGSTER_PG_USER": url.username or "postgres", "DAGSTER_PG_PASSWORD": url.password or "",
            "DAGSTER_PG_DB": name}


def storage_home(storage: str, parent: Path | str | None = None) -> tuple[Path, dict[str, str]]:
    """A new DAGSTER_HOME on ``storage`` and the environment its processes need (the DB credentials)."""
    home = make_dagster_home(parent)
    if storage == "sqlite":
        return home, {}
    if storage != "postgres":
        raise ValueError(f"unknown storage {storage!r} (known: {', '.join(STORAGES)})")
    (home / "dagster.yaml").write_bytes(PRODUCTION_YAML.read_bytes())
    return home, {"CRYPTORUN_PROFILE": "production", **_new_database()}


def in_process_env(storage_env: dict[str, str]) -> dict[str, str | None]:
    """``storage_env`` for :func:`benchmarks.common.temp_env`, also restoring what the storage sets."""
    return {**{name: None for name in PROCESS_ENV}, **storage_env}


def label(storage: str) -> str:
    return "SQLite" if storage == "sqlite" else "Postgres"
