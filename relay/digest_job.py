"""The digest job: compose each due subscriber's digest once per period, into the outbox.

`due_periods` (pure) says whose digest is due and for which period; the unique
(subscriber, period) row written in the same transaction as the messages makes it
at-most-once, also across restarts and several workers. The job reads the candidates and the
items once, composes in memory (`DigestComposer`), and writes in short transactions of about
a hundred rows, each in a thread, so the event loop keeps sending and answering meanwhile.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from functools import cache
from time import perf_counter
from zoneinfo import ZoneInfo

from relay.digest import (
    ComposedDigest,
    DigestComposer,
    DigestLabels,
    DueDigest,
    compose_digest,
    digest_period,
    due_periods,
    window_start,
)
from relay.i18n import text
from relay.settings import Settings
from storage import items as item_queries
from storage import outbox, people
from storage.engine import Database
from storage.outbox import NewDelivery
from storage.people import NewDigest
from storage.values import Frequency, Subscriber

log = logging.getLogger(__name__)

ROUNDUP_SUBSCRIBER_ID = 0  # the channel's weekly roundup, recorded like a subscriber's
ROUNDUP_HOUR = 10  # Monday, local time
BATCH = 200  # subscribers composed per step
WRITE_ROWS = 100  # digests + messages per write transaction: SQLite's lock is held ~10-40 ms


@cache
def labels(lang: str, frequency: Frequency) -> DigestLabels:
    """Digest title and continuation mark, from the catalogue."""
    return DigestLabels(
        title=text(lang, f"digest.title_{frequency.value}"),
        continued=text(lang, "digest.continued"),
    )


async def compose_due_digests(db: Database, now: datetime, *, batch: int = BATCH) -> int:
    """Compose every digest due now, off the event loop; returns how many subscribers got one
    (an empty digest is recorded, so the period counts as done, but sends nothing).

    Each step runs in a thread and comes back to the loop: between two write transactions the
    loop's own writers (the sender) get the database, instead of polling for SQLite's lock.
    """
    composed = messages = 0
    started = perf_counter()
    with heap_frozen():
        due, composer = await asyncio.to_thread(prepare, db, now)
        for chunk in batches(due, batch):
            digests = await asyncio.to_thread(compose_all, composer, chunk)
            for group in write_groups(digests):
                sent, written = await asyncio.to_thread(record, db, group, now)
                composed, messages = composed + sent, messages + written
    if due:
        seconds = round(perf_counter() - started, 2)
        fields = {"due": len(due), "composed": composed, "messages": messages, "seconds": seconds}
        log.info("digest run", extra=fields)
    return composed


def send_due_digests(db: Database, now: datetime, *, batch: int = BATCH) -> int:
    """`compose_due_digests`, in the calling thread."""
    due, composer = prepare(db, now)
    digests = (compose_all(composer, chunk) for chunk in batches(due, batch))
    return sum(record(db, group, now)[0] for chunk in digests for group in write_groups(chunk))


@contextmanager
def heap_frozen() -> Iterator[None]:
    """Meanwhile, the garbage collector's full passes skip the objects that existed before.

    Composing allocates enough to set off several full passes, and a pass over the whole heap
    holds the GIL, so the event loop, for 70-150 ms on a busy 2-core machine. The objects
    are handed back to the collector afterwards.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def prepare(db: Database, now: datetime) -> tuple[list[DueDigest], DigestComposer]:
    """Who is due, and the items approved since the oldest of their cutoffs, in one read."""
    with db.read() as session:
        pending = due_periods(now, people.digest_candidates(session))
        cutoffs = people.last_cutoffs(session, [subscriber.id for subscriber, _ in pending])
        due = [DueDigest(s, period, cutoffs.get(s.id) or s.last_digest_at) for s, period in pending]
        items = item_queries.items_for_digest(session, window_start(due), now) if due else []
    return due, DigestComposer(items)


def batches(due: Sequence[DueDigest], size: int) -> Iterator[Sequence[DueDigest]]:
    for start in range(0, len(due), max(size, 1)):
        yield due[start : start + size]


def compose_all(composer: DigestComposer, due: Sequence[DueDigest]) -> list[ComposedDigest]:
    return [composer.compose(d, labels(d.subscriber.language, d.subscriber.frequency)) for d in due]


def write_groups(
    digests: Sequence[ComposedDigest], rows: int = WRITE_ROWS
) -> Iterator[Sequence[ComposedDigest]]:
    """Consecutive digests of at most `rows` rows in all (one per digest and one per message),
    one digest at least."""
    start, count = 0, 0
    for n, digest in enumerate(digests):
        size = 1 + len(digest.messages)
        if n > start and count + size > rows:
            yield digests[start:n]
            start, count = n, 0
        count += size
    if start < len(digests):
        yield digests[start:]


def record(db: Database, digests: Sequence[ComposedDigest], now: datetime) -> tuple[int, int]:
    """One short transaction: claim the digests nobody claimed yet, enqueue their messages;
    returns how many digests had messages, and how many messages."""
    claims = [NewDigest(d.due.subscriber.id, d.due.period, d.items, now) for d in digests]
    with db.write() as session:
        won = people.record_digests(session, claims, now)
        fresh = [d for d in digests if (d.due.subscriber.id, d.due.period) in won]
        messages = [message for d in fresh for message in deliveries(d)]
        outbox.enqueue(session, messages, now)
    return sum(1 for d in fresh if d.messages), len(messages)


def deliveries(digest: ComposedDigest) -> list[NewDelivery]:
    """One delivery per message, keyed by subscriber, period and position."""
    subscriber, period = digest.due.subscriber, digest.due.period
    return [
        NewDelivery(
            key=f"digest:{subscriber.id}:{period}:{n}",
            kind="digest",
            chat_id=subscriber.chat_id,
            text=body,
            subscriber_id=subscriber.id,
        )
        for n, body in enumerate(digest.messages)
    ]


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
        title = DigestLabels(text("fr", "digest.roundup_title"), text("fr", "digest.continued"))
        outbox.enqueue(
            session,
            [
                NewDelivery(
                    key=f"roundup:{period}:{n}", kind="roundup", chat_id=channel_id, text=body
                )
                for n, body in enumerate(compose_digest(items, labels=title))
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
