"""Items: the dedupe look-ups and batch inserts of the hot path, moderation, the queue.

The poll path uses Core statements in batches (one ORM object per row costs ~4× more).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, select, union, update
from sqlmodel import Session

from storage.tables import BUSINESSES, ITEMS
from storage.values import ItemState, QueuedItem, StoryCandidate

IT = ITEMS.c
BU = BUSINESSES.c
_BANDS = (IT.fp_band0, IT.fp_band1, IT.fp_band2, IT.fp_band3)
_LIVE = (ItemState.PENDING, ItemState.APPROVED, ItemState.PUBLISHED, ItemState.REJECTED)


@dataclass(frozen=True, slots=True)
class NewItem:
    source_id: int | None
    business_id: int
    identity: str
    story_key: str | None
    fingerprint: int | None
    fp_band0: int | None
    fp_band1: int | None
    fp_band2: int | None
    fp_band3: int | None
    title: str | None
    link: str | None
    summary: str | None
    image: str | None
    published: datetime | None
    first_seen: datetime
    state: str
    approved_at: datetime | None = None
    duplicate_of: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of a moderation press: `won` is False when someone decided first."""

    won: bool
    state: ItemState
    decided_by: int | None
    business_id: int


def known_identities(session: Session, source_id: int, identities: Sequence[str]) -> set[str]:
    """Which of these identity keys this source already recorded (ever)."""
    if not identities:
        return set()
    query = select(IT.identity).where(IT.source_id == source_id, IT.identity.in_(list(identities)))
    return set(session.execute(query).scalars())


def story_candidates(
    session: Session,
    story_keys: Sequence[str],
    bands: Sequence[Sequence[int]],
    since: datetime,
) -> list[StoryCandidate]:
    """Existing items sharing a story key, or (first seen since `since`) a fingerprint band.

    One indexed SELECT per key column, UNIONed: an OR across five columns makes SQLite
    scan the whole table.
    """
    # Only stories that entered the queue count: an old item recorded as "seen" when its
    # source was added must not swallow another business's fresh copy of the story. The
    # state is checked here, not in SQL: given `state IN (…)`, SQLite picks the state index
    # and reads every live item instead of the key's own index.
    columns = (IT.id, IT.business_id, IT.story_key, IT.fingerprint, IT.state)
    selects = []
    if story_keys:
        selects.append(select(*columns).where(IT.story_key.in_(sorted(set(story_keys)))))
    for position, column in enumerate(_BANDS):
        values = sorted({b[position] for b in bands})
        if values:
            selects.append(select(*columns).where(column.in_(values), IT.first_seen >= since))
    if not selects:
        return []
    rows = session.execute(union(*selects) if len(selects) > 1 else selects[0]).all()
    live = {state.value for state in _LIVE}
    return [StoryCandidate(*row[:4]) for row in rows if row[4] in live]


def insert_items(session: Session, items: Sequence[NewItem]) -> list[int]:
    """Insert in one round trip; returns the new ids in the given order."""
    if not items:
        return []
    statement = insert(ITEMS).returning(IT.id, sort_by_parameter_order=True)
    result = session.execute(statement, [asdict(item) for item in items])
    return [row[0] for row in result.all()]


def decide_item(
    session: Session, item_id: int, state: ItemState, moderator_id: int, now: datetime
) -> Decision | None:
    """Move a pending item to `state`, once: a second press learns who decided."""
    values: dict[str, Any] = {"state": state.value, "decided_by": moderator_id, "decided_at": now}
    if state is ItemState.APPROVED:
        values["approved_at"] = now
    result = session.execute(
        update(ITEMS).where(IT.id == item_id, IT.state == ItemState.PENDING.value).values(**values)
    )
    row = session.execute(
        select(IT.state, IT.decided_by, IT.business_id).where(IT.id == item_id)
    ).first()
    if row is None:
        return None
    won = bool(getattr(result, "rowcount", 0))
    return Decision(won, ItemState(row[0]), row[1], row[2])


def approve_pending_of_business(session: Session, business_id: int, now: datetime) -> list[int]:
    """Trusting a business approves what it has waiting; returns those item ids."""
    ids = list(
        session.execute(
            select(IT.id).where(
                IT.business_id == business_id,
                IT.state == ItemState.PENDING.value,
            )
        ).scalars()
    )
    if ids:
        session.execute(
            update(ITEMS)
            .where(IT.id.in_(ids))
            .values(state=ItemState.APPROVED.value, approved_at=now, decided_at=now)
        )
    return ids


def withdraw_queued(
    session: Session, business_id: int, moderator_id: int | None, now: datetime
) -> list[int]:
    """A suspended business's waiting news (pending or approved) is rejected, by
    `moderator_id`: no card press, publication or digest can share it afterwards. Returns
    those item ids."""
    queued = [ItemState.PENDING.value, ItemState.APPROVED.value]
    result = session.execute(
        update(ITEMS)
        .where(IT.business_id == business_id, IT.state.in_(queued))
        .values(state=ItemState.REJECTED.value, decided_by=moderator_id, decided_at=now)
        .returning(IT.id)
    )
    return sorted(row[0] for row in result.all())


def _queued_select() -> Any:
    return select(
        IT.id,
        IT.business_id,
        BU.name,
        BU.category,
        BU.city,
        IT.title,
        IT.link,
        IT.summary,
        IT.image,
        IT.published,
        IT.approved_at,
        IT.state,
    ).join(BUSINESSES, BU.id == IT.business_id)


def _queued(rows: Sequence[Any]) -> list[QueuedItem]:
    return [
        QueuedItem(
            id=row[0],
            business_id=row[1],
            business_name=row[2],
            category=row[3],
            city=row[4],
            title=row[5],
            link=row[6],
            summary=row[7],
            image=row[8],
            published=row[9],
            approved_at=row[10],
            state=ItemState(row[11]),
        )
        for row in rows
    ]


def items_by_id(session: Session, ids: Sequence[int]) -> list[QueuedItem]:
    if not ids:
        return []
    query = _queued_select().where(IT.id.in_(list(ids))).order_by(IT.id)
    return _queued(session.execute(query).all())


def items_of_business(session: Session, business_id: int, state: str) -> list[QueuedItem]:
    query = (
        _queued_select()
        .where(IT.business_id == business_id, IT.state == state)
        .order_by(IT.first_seen, IT.id)
    )
    return _queued(session.execute(query).all())


def approved_queue(session: Session) -> list[QueuedItem]:
    """Approved items waiting for the channel, of active businesses."""
    query = (
        _queued_select()
        .where(IT.state == ItemState.APPROVED.value, BU.status == "active")
        .order_by(IT.approved_at, IT.id)
    )
    return _queued(session.execute(query).all())


def pending_items(session: Session, *, limit: int = 50) -> list[QueuedItem]:
    """Items waiting for a moderator (of approved businesses), oldest first."""
    query = (
        _queued_select()
        .where(IT.state == ItemState.PENDING.value, BU.status == "active")
        .order_by(IT.first_seen, IT.id)
        .limit(limit)
    )
    return _queued(session.execute(query).all())


def items_for_digest(session: Session, after: datetime | None, until: datetime) -> list[QueuedItem]:
    """Items approved in (after, until], published to the channel or not, oldest first."""
    states = [ItemState.APPROVED.value, ItemState.PUBLISHED.value]
    condition = and_(IT.state.in_(states), IT.approved_at <= until)
    if after is not None:
        condition = and_(condition, IT.approved_at > after)
    query = _queued_select().where(condition).order_by(IT.approved_at, IT.id)
    return _queued(session.execute(query).all())


def latest_approved(session: Session, until: datetime, limit: int) -> list[QueuedItem]:
    """The `limit` most recently approved items (approved or published), oldest first."""
    states = [ItemState.APPROVED.value, ItemState.PUBLISHED.value]
    query = (
        _queued_select()
        .where(IT.state.in_(states), IT.approved_at <= until)
        .order_by(IT.approved_at.desc(), IT.id.desc())
        .limit(limit)
    )
    return list(reversed(_queued(session.execute(query).all())))


def published_between(session: Session, start: datetime, end: datetime) -> list[QueuedItem]:
    """Channel posts published in [start, end), in publication order."""
    query = (
        _queued_select()
        .where(
            IT.state == ItemState.PUBLISHED.value, IT.published_at >= start, IT.published_at < end
        )
        .order_by(IT.published_at, IT.id)
    )
    return _queued(session.execute(query).all())


def publications_since(session: Session, since: datetime) -> list[tuple[int, datetime]]:
    """(business id, published at) of channel posts since `since`."""
    query = select(IT.business_id, IT.published_at).where(IT.published_at >= since)
    return [(row[0], row[1]) for row in session.execute(query).all()]


def last_publication_by_business(session: Session) -> dict[int, datetime]:
    query = select(BU.id, BU.last_published_at).where(BU.last_published_at.is_not(None))
    return {row[0]: row[1] for row in session.execute(query).all()}


def mark_published(session: Session, item: QueuedItem, now: datetime) -> bool:
    """Approved → published (once); stamps the business for round-robin fairness."""
    result = session.execute(
        update(ITEMS)
        .where(IT.id == item.id, IT.state == ItemState.APPROVED.value)
        .values(state=ItemState.PUBLISHED.value, published_at=now)
    )
    if not getattr(result, "rowcount", 0):
        return False
    session.execute(
        update(BUSINESSES).where(BU.id == item.business_id).values(last_published_at=now)
    )
    return True


def set_channel_message(session: Session, item_id: int, message_id: int) -> None:
    session.execute(update(ITEMS).where(IT.id == item_id).values(channel_message_id=message_id))


def credited_businesses(session: Session, item_id: int) -> list[str]:
    """Names of the other businesses that shared the same story."""
    query = (
        select(BU.name)
        .join(ITEMS, IT.business_id == BU.id)
        .where(IT.duplicate_of == item_id)
        .distinct()
    )
    return list(session.execute(query).scalars())


def count_items(session: Session, since: datetime) -> dict[str, int]:
    """Items first seen since `since`, by state."""
    query = select(IT.state, func.count()).where(IT.first_seen >= since).group_by(IT.state)
    return {row[0]: row[1] for row in session.execute(query).all()}
