"""Fixtures of the notification tests: a loopback HTTP server started (and stopped) by the test."""

from __future__ import annotations

import pytest

from tests.pipelines.notifications.loopback import LoopbackServer


@pytest.fixture
def server():
    srv = LoopbackServer().start()
    try:
        yield srv
    finally:
        srv.stop()
