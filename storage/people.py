"""Subscribers, moderators, and the record of digests sent."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from storage.convert import insert_ignoring_conflicts, to_subscriber
from storage.tables import (
    BUSINESSES,
    DIGESTS,
    MODERATORS,
    SUBSCRIBERS,
    USERS,
    DigestRow,
    ModeratorRow,
    SubscriberRow,
    UserRow,
)
from storage.values import Frequency, Subscriber

FIRST_DIGEST_LOOK_BACK = timedelta(days=1)
S = SUBSCRIBERS.c
M = MODERATORS.c
G = DIGESTS.c


def get_subscriber(session: Session, chat_id: int) -> Subscriber | None:
    row = session.execute(select(SubscriberRow).where(S.chat_id == chat_id)).scalar_one_or_none()
    return to_subscriber(row) if row else None


def subscribe(
    session: Session,
    chat_id: int,
    language: str,
    now: datetime,
    look_back: timedelta = FIRST_DIGEST_LOOK_BACK,
) -> Subscriber:
    """Start (or restart) daily digests at 18:00 Europe/Paris; keeps existing filters.

    The first digest covers the day before subscribing too, so it is not empty.
    """
    row = session.execute(select(SubscriberRow).where(S.chat_id == chat_id)).scalar_one_or_none()
    if row is None:
        row = SubscriberRow(
            chat_id=chat_id, language=language, created_at=now, last_digest_at=now - look_back
        )
        session.add(row)
    else:
        row.active = True
        row.blocked_at = None
        if row.frequency == Frequency.OFF.value:
            row.frequency = Frequency.DAILY.value
    session.flush()
    return to_subscriber(row)


def update_subscriber(session: Session, chat_id: int, **values: Any) -> Subscriber | None:
    """Change settings (frequency, hour, timezone, language, filters)."""
    for name in ("categories", "cities"):
        if isinstance(values.get(name), tuple | list):
            values[name] = ",".join(values[name])
    session.execute(update(SUBSCRIBERS).where(S.chat_id == chat_id).values(**values))
    return get_subscriber(session, chat_id)


def mark_blocked(session: Session, chat_id: int, now: datetime) -> None:
    """The user blocked the bot: inactive, costs nothing afterwards."""
    session.execute(
        update(SUBSCRIBERS).where(S.chat_id == chat_id).values(active=False, blocked_at=now)
    )


def move_chat(session: Session, old_chat_id: int, new_chat_id: int) -> None:
    """A group became a supergroup: follow it."""
    session.execute(update(SUBSCRIBERS).where(S.chat_id == old_chat_id).values(chat_id=new_chat_id))


def digest_candidates(session: Session) -> list[Subscriber]:
    """Active subscribers who want digests."""
    query = (
        select(SubscriberRow)
        .where(S.active.is_(True), S.frequency != Frequency.OFF.value)
        .order_by(S.id)
    )
    return [to_subscriber(row) for row in session.execute(query).scalars()]


def record_digest(
    session: Session, subscriber_id: int, period: str, items: int, cutoff: datetime, now: datetime
) -> bool:
    """Claim the digest of `period` for a subscriber; False if it was already composed."""
    try:
        with session.begin_nested():
            session.add(
                DigestRow(
                    subscriber_id=subscriber_id,
                    period=period,
                    items=items,
                    cutoff=cutoff,
                    created_at=now,
                )
            )
    except IntegrityError:
        return False
    if subscriber_id:
        session.execute(
            update(SUBSCRIBERS).where(S.id == subscriber_id).values(last_digest_at=cutoff)
        )
    return True


def last_cutoff(session: Session, subscriber_id: int) -> datetime | None:
    """Where the previous digest of this subscriber (0: the channel roundup) stopped."""
    return session.execute(
        select(func.max(G.cutoff)).where(G.subscriber_id == subscriber_id)
    ).scalar_one_or_none()


def count_subscribers(session: Session) -> dict[str, int]:
    query = select(S.active, func.count()).group_by(S.active)
    counts = {bool(row[0]): row[1] for row in session.execute(query).all()}
    return {"active": counts.get(True, 0), "inactive": counts.get(False, 0)}


def add_moderator(
    session: Session, user_id: int, role: str, added_by: int | None, now: datetime
) -> bool:
    """Add a moderator; False if already one."""
    statement = insert_ignoring_conflicts(session, ModeratorRow, ["user_id"]).values(
        user_id=user_id, role=role, added_by=added_by, added_at=now, language="fr"
    )
    return bool(getattr(session.execute(statement), "rowcount", 0))


def remove_moderator(session: Session, user_id: int) -> bool:
    result = session.execute(MODERATORS.delete().where(M.user_id == user_id))
    return bool(getattr(result, "rowcount", 0))


def moderator_role(session: Session, user_id: int) -> str | None:
    return session.execute(select(M.role).where(M.user_id == user_id)).scalar_one_or_none()


def moderators(session: Session) -> list[tuple[int, str, str]]:
    """(user id, role, language) of every moderator."""
    rows = session.execute(select(M.user_id, M.role, M.language).order_by(M.user_id)).all()
    return [(row[0], row[1], row[2]) for row in rows]


def set_moderator_language(session: Session, user_id: int, language: str) -> None:
    session.execute(update(MODERATORS).where(M.user_id == user_id).values(language=language))


def remember_moderator_name(session: Session, user_id: int, name: str) -> None:
    """Keep the display name shown on decided cards up to date."""
    session.execute(update(MODERATORS).where(M.user_id == user_id).values(name=name[:200]))


def moderator_name(session: Session, user_id: int) -> str | None:
    return session.execute(select(M.name).where(M.user_id == user_id)).scalar_one_or_none()


def chosen_language(session: Session, user_id: int) -> str | None:
    """The language a person chose with /language, if they did."""
    return session.execute(
        select(USERS.c.language).where(USERS.c.user_id == user_id)
    ).scalar_one_or_none()


def choose_language(session: Session, user_id: int, language: str, now: datetime) -> None:
    """Remember a person's language everywhere they appear."""
    row = session.get(UserRow, user_id)
    if row is None:
        session.add(UserRow(user_id=user_id, language=language, updated_at=now))
    else:
        row.language, row.updated_at = language, now
    session.execute(update(SUBSCRIBERS).where(S.chat_id == user_id).values(language=language))
    session.execute(update(MODERATORS).where(M.user_id == user_id).values(language=language))
    session.execute(
        update(BUSINESSES).where(BUSINESSES.c.owner_id == user_id).values(owner_language=language)
    )
