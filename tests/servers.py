"""Real PostgreSQL and Redis for the tests that need them, on loopback.

`.ci/run` starts both (``.ci/servers start``) and exports ``CRYPTORUN_TEST_POSTGRES_URL`` and
``CRYPTORUN_TEST_REDIS_URL``; a local ``python -m pytest`` without them starts its own pair for the
session in a temp dir and stops it at the end. When the servers cannot be had, a test that needs
them fails under ``CRYPTORUN_REQUIRE_SERVERS=1`` (CI) and is skipped with the reason elsewhere.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
SERVERS_SCRIPT = REPO / ".ci" / "servers"
POSTGRES_ENV = "CRYPTORUN_TEST_POSTGRES_URL"
REDIS_ENV = "CRYPTORUN_TEST_REDIS_URL"
REQUIRE_ENV = "CRYPTORUN_REQUIRE_SERVERS"


def unavailable(what: str) -> None:
    """Fail (CI) or skip (a developer's machine) a test whose server or tool could not be had."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{what} ({REQUIRE_ENV}=1: a test that needs a server it could not get fails)", pytrace=False)
    pytest.skip(what)


@dataclass(frozen=True)
class PostgresDb:
    """One throwaway database: its SQLAlchemy URL and the parts dagster-postgres' config asks for."""

    url: str
    host: str
    port: int
    username: str
    db_name: str

    def storage_config(self) -> dict:
        """``storage: postgres:`` of a dagster.yaml pointing at this database."""
        return {
            "postgres": {
                "postgres_db": {
                    "hostname": self.host,
                    "port": self.port,
                    "username": self.username,
                    "password": "",
                    "db_name": self.db_name,
                    "params": {},
                    "scheme": "postgresql+psycopg2",
                }
            }
        }


class _Servers:
    def __init__(self) -> None:
        self.dir: Path | None = None
        self.env: dict[str, str] = {}
        self.problem: str | None = None

    def start(self) -> None:
        if os.environ.get(POSTGRES_ENV) and os.environ.get(REDIS_ENV):
            self.env = {POSTGRES_ENV: os.environ[POSTGRES_ENV], REDIS_ENV: os.environ[REDIS_ENV]}
            return
        self.dir = Path(tempfile.mkdtemp(prefix="cryptorun-servers-"))
        proc = subprocess.run([str(SERVERS_SCRIPT), "start", str(self.dir)], capture_output=True, text=True, timeout=180)
        if proc.returncode != 0:
            self.problem = f"could not start PostgreSQL/Redis with {SERVERS_SCRIPT.name}: {(proc.stderr or proc.stdout).strip()[-400:]}"
            return
        for line in (self.dir / "env").read_text().splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            self.env[name] = value

    def stop(self) -> None:
        if self.dir is not None:
            subprocess.run([str(SERVERS_SCRIPT), "stop", str(self.dir)], capture_output=True, timeout=120)
            shutil.rmtree(self.dir, ignore_errors=True)


_SERVERS: _Servers | None = None


def _servers() -> _Servers:
    global _SERVERS  # one pair per test session, started on first need
    if _SERVERS is None:
        _SERVERS = _Servers()
        _SERVERS.start()
    return _SERVERS


def stop_servers() -> None:
    if _SERVERS is not None:
        _SERVERS.stop()


def postgres_admin_url() -> str:
    servers = _servers()
    if servers.problem or POSTGRES_ENV not in servers.env:
        unavailable(servers.problem or "PostgreSQL is not available")
    return servers.env[POSTGRES_ENV]


def new_postgres_db() -> PostgresDb:
    """A fresh, empty database on the test server (never shared between tests)."""
    import psycopg2

    admin = urlsplit(postgres_admin_url())
    name = f"t_{secrets.token_hex(6)}"
    conn = psycopg2.connect(host=admin.hostname, port=admin.port, user=admin.username, dbname=admin.path.lstrip("/"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    url = f"postgresql+psycopg2://{admin.username}@{admin.hostname}:{admin.port}/{name}"
    return PostgresDb(url=url, host=admin.hostname, port=admin.port, username=admin.username, db_name=name)


def redis_url() -> str:
    servers = _servers()
    if servers.problem or REDIS_ENV not in servers.env:
        unavailable(servers.problem or "Redis is not available")
    return servers.env[REDIS_ENV]
