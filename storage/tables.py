"""SQLModel tables. Every timestamp is stored as naive UTC and read back timezone-aware."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Index, Table, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if isinstance(value, datetime) else None


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _big(*, nullable: bool = True, index: bool = False, unique: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(BigInteger(), nullable=nullable, index=index, unique=unique),
    )


class BusinessRow(SQLModel, table=True):
    __tablename__ = "businesses"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    category: str | None = Field(default=None, max_length=50)
    city: str | None = Field(default=None, max_length=100)
    owner_id: int | None = _big(index=True)
    owner_language: str = Field(default="fr", max_length=5)
    status: str = Field(default="pending", max_length=20, index=True)
    trusted: bool = Field(default=False)
    created_at: datetime | None = _ts()
    decided_by: int | None = _big()
    decided_at: datetime | None = _ts()
    last_published_at: datetime | None = _ts()


class SourceRow(SQLModel, table=True):
    __tablename__ = "sources"
    __table_args__ = (Index("ix_sources_due", "paused", "next_check_at"),)

    id: int | None = Field(default=None, primary_key=True)
    business_id: int = Field(foreign_key="businesses.id", index=True)
    url: str = Field(sa_column=Column(Text(), nullable=False, unique=True))
    kind: str = Field(default="rss", max_length=10)
    title: str | None = Field(default=None, sa_column=Column(Text()))
    etag: str | None = Field(default=None, sa_column=Column(Text()))
    last_modified: str | None = Field(default=None, max_length=100)
    body_hash: str | None = Field(default=None, max_length=64)
    next_check_at: datetime | None = _ts(nullable=False)
    interval_seconds: int = Field(default=900)
    failures: int = Field(default=0)
    last_error: str | None = Field(default=None, max_length=50)
    last_error_detail: str | None = Field(default=None, sa_column=Column(Text()))
    last_error_at: datetime | None = _ts()
    last_checked_at: datetime | None = _ts()
    # The first successful read: until then every read is a source's first (initial picks).
    first_read_at: datetime | None = _ts()
    last_new_item_at: datetime | None = _ts()
    paused: bool = Field(default=False)
    created_at: datetime | None = _ts()


class ItemRow(SQLModel, table=True):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("source_id", "identity", name="uq_items_source_identity"),
        Index("ix_items_state_approved", "state", "approved_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source_id: int | None = Field(default=None, foreign_key="sources.id")
    business_id: int = Field(foreign_key="businesses.id", index=True)
    identity: str = Field(max_length=255)
    story_key: str | None = Field(default=None, max_length=255, index=True)
    fingerprint: int | None = _big()
    fp_band0: int | None = Field(default=None, index=True)
    fp_band1: int | None = Field(default=None, index=True)
    fp_band2: int | None = Field(default=None, index=True)
    fp_band3: int | None = Field(default=None, index=True)
    title: str | None = Field(default=None, sa_column=Column(Text()))
    link: str | None = Field(default=None, sa_column=Column(Text()))
    summary: str | None = Field(default=None, sa_column=Column(Text()))
    image: str | None = Field(default=None, sa_column=Column(Text()))
    published: datetime | None = _ts()
    first_seen: datetime | None = _ts(nullable=False)
    state: str = Field(default="pending", max_length=20)
    decided_by: int | None = _big()
    decided_at: datetime | None = _ts()
    approved_at: datetime | None = _ts()
    duplicate_of: int | None = Field(default=None, foreign_key="items.id")
    published_at: datetime | None = _ts()
    channel_message_id: int | None = _big()


class SubscriberRow(SQLModel, table=True):
    __tablename__ = "subscribers"

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = _big(nullable=False, unique=True)
    language: str = Field(default="fr", max_length=5)
    frequency: str = Field(default="daily", max_length=10)
    hour: int = Field(default=18)
    timezone: str = Field(default="Europe/Paris", max_length=64)
    categories: str = Field(default="", max_length=500)  # comma-separated
    cities: str = Field(default="", max_length=1000)  # comma-separated
    active: bool = Field(default=True)
    blocked_at: datetime | None = _ts()
    last_digest_at: datetime | None = _ts()
    created_at: datetime | None = _ts()


class ModeratorRow(SQLModel, table=True):
    __tablename__ = "moderators"

    user_id: int = Field(sa_column=Column(BigInteger(), primary_key=True, autoincrement=False))
    role: str = Field(default="moderator", max_length=20)
    name: str | None = Field(default=None, max_length=200)
    language: str = Field(default="fr", max_length=5)
    added_by: int | None = _big()
    added_at: datetime | None = _ts()


class UserRow(SQLModel, table=True):
    """A person's chosen language (`/language`), whatever their role."""

    __tablename__ = "users"

    user_id: int = Field(sa_column=Column(BigInteger(), primary_key=True, autoincrement=False))
    language: str = Field(default="fr", max_length=5)
    updated_at: datetime | None = _ts()


class DeliveryRow(SQLModel, table=True):
    """The outbox: every message to Telegram is a row first, written with its cause."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_ready", "state", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True)  # idempotency: one row per intent
    kind: str = Field(max_length=20)
    chat_id: int = _big(nullable=False)
    text: str = Field(sa_column=Column(Text(), nullable=False))
    parse_mode: str | None = Field(default="HTML", max_length=10)
    reply_markup: str | None = Field(default=None, sa_column=Column(Text()))
    edit_message_id: int | None = _big()
    state: str = Field(default="pending", max_length=20)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = _ts(nullable=False)
    claimed_until: datetime | None = _ts()
    last_error: str | None = Field(default=None, sa_column=Column(Text()))
    plain_fallback: bool = Field(default=False)
    message_id: int | None = _big()
    item_id: int | None = Field(default=None, index=True)
    subscriber_id: int | None = Field(default=None)
    ref: str | None = Field(default=None, max_length=100, index=True)  # e.g. "card:item:12"
    created_at: datetime | None = _ts(nullable=False)
    sent_at: datetime | None = _ts()
    claimed_by: str | None = Field(default=None, max_length=120)  # the sender's lease holder
    unknown_reported: bool = Field(default=False)  # admins were told it may not have arrived


class DigestRow(SQLModel, table=True):
    """One row per subscriber and period: a digest is composed at most once per period."""

    __tablename__ = "digests"
    __table_args__ = (UniqueConstraint("subscriber_id", "period", name="uq_digests_period"),)

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(index=True)  # 0 for the channel's weekly roundup
    period: str = Field(max_length=20)
    items: int = Field(default=0)
    cutoff: datetime | None = _ts(nullable=False)
    created_at: datetime | None = _ts(nullable=False)


class LeaseRow(SQLModel, table=True):
    """A named lease held by one process at a time (one sender per bot token)."""

    __tablename__ = "leases"

    name: str = Field(primary_key=True, max_length=100)
    owner: str = Field(max_length=120)  # host:pid:random, unique per process
    host: str = Field(max_length=100)
    pid: int = Field(default=0)
    acquired_at: datetime | None = _ts(nullable=False)
    expires_at: datetime | None = _ts(nullable=False)


# Core handles for the batch statements of the hot path.
BUSINESSES: Table = BusinessRow.__table__  # type: ignore[attr-defined]
SOURCES: Table = SourceRow.__table__  # type: ignore[attr-defined]
ITEMS: Table = ItemRow.__table__  # type: ignore[attr-defined]
SUBSCRIBERS: Table = SubscriberRow.__table__  # type: ignore[attr-defined]
DELIVERIES: Table = DeliveryRow.__table__  # type: ignore[attr-defined]
DIGESTS: Table = DigestRow.__table__  # type: ignore[attr-defined]
MODERATORS: Table = ModeratorRow.__table__  # type: ignore[attr-defined]
USERS: Table = UserRow.__table__  # type: ignore[attr-defined]
LEASES: Table = LeaseRow.__table__  # type: ignore[attr-defined]
