"""Plain domain values returned by queries: frozen dataclasses, never live ORM rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class BusinessStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"


class ItemState(StrEnum):
    SEEN = "seen"  # existed before the source was added: recorded, never queued
    PENDING = "pending"  # waits for a moderator (or for its business to be approved)
    APPROVED = "approved"  # queued for the channel and for digests
    REJECTED = "rejected"
    DUPLICATE = "duplicate"  # same story as `duplicate_of`, credited to that story
    PUBLISHED = "published"  # posted to the channel


class Frequency(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    OFF = "off"


class DeliveryState(StrEnum):
    PENDING = "pending"  # waiting to be sent (or retried at next_attempt_at)
    CLAIMED = "claimed"  # taken by a sender, request not started: safe to send again
    SENDING = "sending"  # request started: a crash here is ambiguous
    SENT = "sent"
    FAILED = "failed"  # permanent: blocked user, chat not found...
    UNKNOWN = "unknown"  # may or may not have been delivered; never retried blindly


@dataclass(frozen=True, slots=True)
class Business:
    id: int
    name: str
    category: str | None
    city: str | None
    owner_id: int | None
    owner_language: str
    status: BusinessStatus
    trusted: bool
    last_published_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Source:
    id: int
    business_id: int
    url: str
    kind: str
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    next_check_at: datetime
    interval_seconds: int
    failures: int
    last_error: str | None
    paused: bool
    last_checked_at: datetime | None = None
    first_read_at: datetime | None = None  # first successful read; None: never read yet
    last_new_item_at: datetime | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True)
class QueuedItem:
    """An item as the publishing and digest decisions see it."""

    id: int
    business_id: int
    business_name: str
    category: str | None
    city: str | None
    title: str | None
    link: str | None
    summary: str | None
    image: str | None
    published: datetime | None
    approved_at: datetime | None
    state: ItemState


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: int
    chat_id: int
    language: str
    frequency: Frequency
    hour: int
    timezone: str
    categories: tuple[str, ...]
    cities: tuple[str, ...]
    active: bool
    last_digest_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    chat_id: int
    kind: str  # "channel_post" | "digest" | "notice" | "card" | "edit"
    text: str
    parse_mode: str | None
    reply_markup: str | None  # JSON
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    item_id: int | None = None
    subscriber_id: int | None = None
    edit_message_id: int | None = None
    plain_fallback: bool = False


@dataclass(frozen=True, slots=True)
class StoryCandidate:
    """An existing item that may be the same story as a new one."""

    id: int
    business_id: int
    story_key: str | None
    fingerprint: int | None
