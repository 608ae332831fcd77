"""Shared fixtures: a real local HTTP server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.httpserver import LocalServer


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer().start()
    yield srv
    srv.stop()
