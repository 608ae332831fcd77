"""The Alembic migrations build exactly the schema the tables declare."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import storage.tables  # noqa: F401
from storage.engine import Database


def test_migrated_schema_matches_the_tables(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_upgrade_twice_is_harmless(db: Database) -> None:
    from storage.migrate import upgrade

    upgrade(db)
    with db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0001"
