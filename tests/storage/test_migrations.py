"""The Alembic migrations build exactly the schema the tables declare."""

from __future__ import annotations

from datetime import datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlmodel import SQLModel

import storage.tables  # noqa: F401
from storage.engine import Database
from storage.migrate import alembic_config, upgrade
from tests.support.builders import T0


def test_migrated_schema_matches_the_tables(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_upgrade_twice_is_harmless(db: Database) -> None:
    upgrade(db)
    head = ScriptDirectory.from_config(alembic_config(db)).get_current_head()
    with db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head


def downgrade(db: Database, revision: str) -> None:
    config = alembic_config(db)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


SOURCES_BEFORE_0002 = [
    # (url, last_checked_at, last_error, body_hash): first_read_at expected after 0002
    ("never-checked", None, None, None),
    ("read-fine", T0, None, "h1"),
    ("read-then-failing", T0, "timeout", "h2"),
    ("only-ever-failed", T0, "http_status", None),
]


def test_0002_marks_the_sources_already_read_successfully(db: Database) -> None:
    downgrade(db, "0001")
    naive = T0.replace(tzinfo=None)  # the column type stores naive UTC
    stamp = naive.isoformat(sep=" ")  # as text: Python 3.12 deprecated sqlite3's datetime adapter
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO businesses (id, name, owner_language, status, trusted)"
                " VALUES (1, 'B', 'fr', 'active', false)"
            )
        )
        for n, (url, checked, error, body_hash) in enumerate(SOURCES_BEFORE_0002):
            conn.execute(
                text(
                    "INSERT INTO sources (id, business_id, url, kind, next_check_at,"
                    " interval_seconds, failures, paused, last_checked_at, last_error,"
                    " body_hash) VALUES (:id, 1, :url, 'rss', :due, 900, 0, false,"
                    " :checked, :error, :hash)"
                ),
                {
                    "id": n + 1,
                    "url": url,
                    "due": stamp,
                    "checked": checked and stamp,
                    "error": error,
                    "hash": body_hash,
                },
            )
    upgrade(db, "0002")
    with db.engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT url, first_read_at FROM sources")).all())
    got = {url: _as_datetime(value) for url, value in rows.items()}
    assert got == {
        "never-checked": None,
        "read-fine": naive,
        "read-then-failing": naive,
        "only-ever-failed": None,
    }
    upgrade(db)


def _as_datetime(value: object) -> datetime | None:
    """SQLite hands raw text back from a text() query; PostgreSQL a datetime."""
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    assert value is None or isinstance(value, datetime)
    return value
