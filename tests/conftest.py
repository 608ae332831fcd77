"""Shared fixtures: a real local HTTP server, and a real database.

The database is SQLite in a temporary folder, or PostgreSQL when
RELAY_TEST_DATABASE_URL is set (each test then gets its own schema).
"""

from __future__ import annotations

import os
import uuid

# python-telegram-bot 22: RetryAfter.retry_after as a timedelta, without deprecation warnings.
os.environ.setdefault("PTB_TIMEDELTA", "1")
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text

from storage.engine import Database
from storage.migrate import upgrade
from tests.support.fake_telegram import FakeTelegram, fake_telegram_fixture
from tests.support.httpserver import LocalServer

# CI runs the suite in parallel (pytest-xdist) on a busy 2-core machine, where one example's wall
# time says nothing about the code: no per-example deadline (a test can still set its own).
hypothesis_settings.register_profile("relay", deadline=None)
hypothesis_settings.load_profile("relay")


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    """A local fake Telegram Bot API (PTB reaches it through base_url)."""
    yield from fake_telegram_fixture()


def database_url(tmp_path: Path) -> tuple[str, str | None]:
    """The test database URL and schema (schema only on PostgreSQL)."""
    url = os.environ.get("RELAY_TEST_DATABASE_URL")
    if not url:
        return f"sqlite:///{tmp_path / 'relay.db'}", None
    return url, f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    url, schema = database_url(tmp_path)
    if schema:
        admin = create_engine(url)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    database = Database(url, schema=schema)
    upgrade(database)
    yield database
    database.dispose()
    if schema:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
