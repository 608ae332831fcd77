"""Schema migrations (Alembic), applied on start and by `relay db upgrade`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage.engine import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(db: Database) -> Config:
    """An Alembic config pointing at our migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision` (the latest by default)."""
    config = alembic_config(db)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revisions(db: Database) -> set[str]:
    """The revisions the database is at (empty before the first migration); connects."""
    with db.engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def head_revisions(db: Database) -> set[str]:
    """The latest revisions this code knows."""
    return set(ScriptDirectory.from_config(alembic_config(db)).get_heads())


def known_revisions(db: Database) -> set[str]:
    """Every revision this code knows (a database at another one was migrated by newer code)."""
    script = ScriptDirectory.from_config(alembic_config(db))
    return {script_revision.revision for script_revision in script.walk_revisions()}


def revision(db: Database, message: str) -> None:
    """Autogenerate a new migration from the tables (developers only)."""
    config = alembic_config(db)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)
