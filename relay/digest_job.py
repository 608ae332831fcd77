"""The digest job: compose each due subscriber's digest once per period, into the outbox.

`digest_period` (pure) says whether a digest is due and for which period; the unique
(subscriber, period) row written in the same transaction as the messages makes it
at-most-once, also across restarts and several workers.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from relay.digest import DigestLabels, compose_digest, digest_period, select_for_subscriber
from relay.i18n import text
from relay.settings import Settings
from storage import items as item_queries
from storage import outbox, people
from storage.engine import Database
from storage.outbox import NewDelivery
from storage.values import Frequency, Subscriber

ROUNDUP_SUBSCRIBER_ID = 0  # the channel's weekly roundup, recorded like a subscriber's
ROUNDUP_HOUR = 10  # Monday, local time


def labels(lang: str, frequency: Frequency) -> DigestLabels:
    """Digest title and continuation mark, from the catalogue."""
    return DigestLabels(
        title=text(lang, f"digest.title_{frequency.value}"),
        continued=text(lang, "digest.continued"),
    )


def send_due_digests(db: Database, now: datetime) -> int:
    """Compose every digest due now; returns how many subscribers got one."""
    with db.read() as session:
        candidates = people.digest_candidates(session)
    composed = 0
    for subscriber in candidates:
        period = digest_period(now, subscriber)
        if period is None or _already_done(subscriber, period):
            continue
        composed += compose_for(db, subscriber, period, now)
    return composed


def _already_done(subscriber: Subscriber, period: str) -> bool:
    """A cheap pre-check; the unique (subscriber, period) row is the real guarantee."""
    last = subscriber.last_digest_at
    return last is not None and digest_period(last, subscriber) == period


def compose_for(db: Database, subscriber: Subscriber, period: str, now: datetime) -> int:
    """One subscriber's digest for `period` (nothing when already composed or empty)."""
    with db.write() as session:
        after = people.last_cutoff(session, subscriber.id) or subscriber.last_digest_at
        items = select_for_subscriber(
            item_queries.items_for_digest(session, after, now), subscriber
        )
        if not people.record_digest(session, subscriber.id, period, len(items), now, now):
            return 0
        messages = compose_digest(items, labels=labels(subscriber.language, subscriber.frequency))
        outbox.enqueue(
            session,
            [
                NewDelivery(
                    key=f"digest:{subscriber.id}:{period}:{n}",
                    kind="digest",
                    chat_id=subscriber.chat_id,
                    text=body,
                    subscriber_id=subscriber.id,
                )
                for n, body in enumerate(messages)
            ],
            now,
        )
        return 1 if messages else 0


def send_weekly_roundup(db: Database, settings: Settings, channel_id: int, now: datetime) -> bool:
    """Last week's channel posts (Monday to Sunday), once, on Monday morning."""
    if not settings.pacing.weekly_roundup:
        return False
    channel = Subscriber(
        id=ROUNDUP_SUBSCRIBER_ID,
        chat_id=channel_id,
        language="fr",
        frequency=Frequency.WEEKLY,
        hour=ROUNDUP_HOUR,
        timezone=settings.pacing.timezone,
        categories=(),
        cities=(),
        active=True,
    )
    period = digest_period(now, channel)
    if period is None:
        return False
    start, end = previous_week(now, settings.pacing.timezone)
    with db.write() as session:
        items = item_queries.published_between(session, start, end)
        if not people.record_digest(session, ROUNDUP_SUBSCRIBER_ID, period, len(items), now, now):
            return False
        labels = DigestLabels(text("fr", "digest.roundup_title"), text("fr", "digest.continued"))
        outbox.enqueue(
            session,
            [
                NewDelivery(
                    key=f"roundup:{period}:{n}", kind="roundup", chat_id=channel_id, text=body
                )
                for n, body in enumerate(compose_digest(items, labels=labels))
            ],
            now,
        )
        return bool(items)


def previous_week(now: datetime, timezone: str) -> tuple[datetime, datetime]:
    """[last Monday 00:00, this Monday 00:00) in local time, as UTC instants."""
    local = now.astimezone(ZoneInfo(timezone))
    monday = datetime.combine(
        local.date() - timedelta(days=local.weekday()), time(0), tzinfo=local.tzinfo
    )
    return (monday - timedelta(days=7)).astimezone(UTC), monday.astimezone(UTC)
