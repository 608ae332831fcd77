"""Rows → plain domain values, and small helpers shared by the query modules."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Insert
from sqlmodel import Session

from storage.tables import BusinessRow, SourceRow, SubscriberRow
from storage.values import (
    Business,
    BusinessStatus,
    Frequency,
    Source,
    Subscriber,
)


def insert_ignoring_conflicts(session: Session, table: Any, index: list[str]) -> Insert:
    """INSERT … ON CONFLICT DO NOTHING for the session's backend."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=index)
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=index)


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def split_list(value: str) -> tuple[str, ...]:
    return tuple(part for part in value.split(",") if part)


def to_business(row: BusinessRow) -> Business:
    assert row.id is not None
    return Business(
        id=row.id,
        name=row.name,
        category=row.category,
        city=row.city,
        owner_id=row.owner_id,
        owner_language=row.owner_language,
        status=BusinessStatus(row.status),
        trusted=row.trusted,
        last_published_at=row.last_published_at,
    )


def to_source(row: SourceRow) -> Source:
    assert row.id is not None
    assert row.next_check_at is not None
    return Source(
        id=row.id,
        business_id=row.business_id,
        url=row.url,
        kind=row.kind,
        etag=row.etag,
        last_modified=row.last_modified,
        body_hash=row.body_hash,
        next_check_at=row.next_check_at,
        interval_seconds=row.interval_seconds,
        failures=row.failures,
        last_error=row.last_error,
        paused=row.paused,
        last_checked_at=row.last_checked_at,
        first_read_at=row.first_read_at,
        last_new_item_at=row.last_new_item_at,
        title=row.title,
    )


def to_subscriber(row: SubscriberRow) -> Subscriber:
    assert row.id is not None
    return Subscriber(
        id=row.id,
        chat_id=row.chat_id,
        language=row.language,
        frequency=Frequency(row.frequency),
        hour=row.hour,
        timezone=row.timezone,
        categories=split_list(row.categories),
        cities=split_list(row.cities),
        active=row.active,
        last_digest_at=row.last_digest_at,
    )


def serialize_job(session: Session, job_id: int) -> None:
    """Let one process at a time run this transaction (PostgreSQL advisory lock).

    On SQLite, writers already run one at a time (BEGIN IMMEDIATE).
    """
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:job)"), {"job": job_id})


def share_job(session: Session, job_id: int) -> None:
    """Run alongside other sharers of `job_id`, but not while `serialize_job` holds it
    (PostgreSQL shared advisory lock; SQLite writers already run one at a time)."""
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock_shared(:job)"), {"job": job_id})
