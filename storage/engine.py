"""The database: SQLite (embedded default) or PostgreSQL (the scale path), from one URL.

SQLite runs in WAL mode with a busy timeout, and writers take the write lock when their
transaction starts (`BEGIN IMMEDIATE`): a transaction that reads then writes would
otherwise fail with "database is locked" when another process writes in between.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlmodel import Session

SQLITE_BUSY_TIMEOUT_MS = 30_000


class Database:
    """One engine, and sessions for readers and for writers."""

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = make_engine(url, schema=schema)
        # Writers: same pool, but their transactions start with BEGIN IMMEDIATE on SQLite.
        self.writer = self.engine.execution_options(relay_writer=True)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that may write; committed on success, rolled back on error."""
        with Session(self.writer, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work."""
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def optimize(self) -> None:
        """Refresh the query planner's statistics (SQLite; PostgreSQL's autovacuum does it)."""
        if self.is_sqlite:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA optimize")

    def dispose(self) -> None:
        self.engine.dispose()


def make_engine(url: str, *, schema: str | None = None) -> Engine:
    """An engine configured for the backend `url` names."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _configure_sqlite(engine)
        return engine
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["options"] = f"-csearch_path={schema}"
    return create_engine(url, pool_pre_ping=True, pool_size=10, connect_args=connect_args)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # 64 MB of page cache instead of 2 MB: the items table's indexes stay in memory.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("relay_writer", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
