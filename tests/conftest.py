"""Fixtures every test folder may ask for: real servers on loopback (see tests/servers.py)."""

from __future__ import annotations

import pytest

from tests import servers


@pytest.fixture
def postgres_db() -> servers.PostgresDb:
    """A new empty PostgreSQL database for this test."""
    return servers.new_postgres_db()


@pytest.fixture
def redis_url() -> str:
    """The URL of the session's Redis server (tests use their own key prefixes or db numbers)."""
    return servers.redis_url()


def pytest_sessionfinish(session, exitstatus) -> None:
    servers.stop_servers()
