"""The publish job: the next approved item goes to the channel, fairly and at a gentle pace.

Choosing is pure (`relay.fairness`); this module reads the queue, records the choice and
writes the channel post into the outbox in one transaction, so a crash can neither lose
the item nor post it twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from relay.fairness import can_publish_now, day_start, pick_next
from relay.settings import Settings
from relay.telegram_html import render_post
from storage import items as item_queries
from storage import outbox
from storage.convert import serialize_job
from storage.engine import Database
from storage.outbox import NewDelivery
from storage.sources import lock_business
from storage.values import BusinessStatus, QueuedItem

PUBLISH_LOCK = 7_001
WEEK = timedelta(days=7)


def channel_post(item: QueuedItem, credits: list[str], channel_id: int) -> NewDelivery:
    """The outbox row of one channel post (its key makes a second post impossible)."""
    return NewDelivery(
        key=f"post:{item.id}",
        kind="channel_post",
        chat_id=channel_id,
        text=render_post(item, credits=credits),
        item_id=item.id,
    )


def publish_next(
    db: Database, settings: Settings, channel_id: int, now: datetime
) -> QueuedItem | None:
    """Publish one item if the pace and quiet hours allow; returns it, or None."""
    pacing = settings.pacing
    with db.write() as session:
        serialize_job(session, PUBLISH_LOCK)  # several workers: one publisher at a time
        recent = item_queries.publications_since(session, now - timedelta(hours=1))
        if can_publish_now(now, [when for _b, when in recent], pacing) is not None:
            return None
        queue = item_queries.approved_queue(session)
        if not queue:
            return None
        today = item_queries.publications_since(session, day_start(now, pacing.timezone))
        counts: dict[int, int] = {}
        for business_id, _when in today:
            counts[business_id] = counts.get(business_id, 0) + 1
        week: dict[int, int] = {}
        for business_id, _when in item_queries.publications_since(session, now - WEEK):
            week[business_id] = week.get(business_id, 0) + 1
        last = item_queries.last_publication_by_business(session)
        item = pick_next(queue, last, counts, pacing, week)
        if item is None or not _still_active(session, item.business_id):
            return None
        if not item_queries.mark_published(session, item, now):
            return None
        credits = item_queries.credited_businesses(session, item.id)
        outbox.enqueue(session, [channel_post(item, credits, channel_id)], now)
        return item


def _still_active(session: Session, business_id: int) -> bool:
    """Re-read under lock: the queue was read without one, and a suspension may be under way."""
    # FOR UPDATE before the item is touched (business, then items: the order a suspension
    # takes them in, so the two cannot deadlock); a suspension that got there first shows.
    business = lock_business(session, business_id)
    return business is not None and business.status is BusinessStatus.ACTIVE
