"""Subscribers, moderators, and the record of digests sent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import RowMapping, bindparam, func, select, update
from sqlmodel import Session

from storage.convert import insert_ignoring_conflicts, is_postgres, split_list, to_subscriber
from storage.tables import (
    BUSINESSES,
    DIGESTS,
    MODERATORS,
    SUBSCRIBERS,
    USERS,
    ModeratorRow,
    SubscriberRow,
    UserRow,
)
from storage.values import Frequency, Subscriber

FIRST_DIGEST_LOOK_BACK = timedelta(days=1)
IN_LIST = 500  # ids per IN (…) look-up
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
    """Active subscribers who want digests, by id (Core rows: thousands are read each run)."""
    columns = (S.id, S.chat_id, S.language, S.frequency, S.hour, S.timezone, S.categories)
    query = (
        select(*columns, S.cities, S.active, S.last_digest_at)
        .where(S.active.is_(True), S.frequency != Frequency.OFF.value)
        .order_by(S.id)
    )
    return [_subscriber(row) for row in session.execute(query).mappings()]


def _subscriber(row: RowMapping) -> Subscriber:
    return Subscriber(
        id=row["id"],
        chat_id=row["chat_id"],
        language=row["language"],
        frequency=Frequency(row["frequency"]),
        hour=row["hour"],
        timezone=row["timezone"],
        categories=split_list(row["categories"]),
        cities=split_list(row["cities"]),
        active=row["active"],
        last_digest_at=row["last_digest_at"],
    )


@dataclass(frozen=True, slots=True)
class NewDigest:
    """A digest to record: `cutoff` is where its items stop (the next one starts after it)."""

    subscriber_id: int  # 0: the channel's weekly roundup
    period: str
    items: int
    cutoff: datetime


def record_digests(
    session: Session, digests: Sequence[NewDigest], now: datetime
) -> set[tuple[int, str]]:
    """Claim many digests in one statement; returns the (subscriber id, period) pairs claimed
    now. A period already composed (by this or another worker) is left out: at most once."""
    # Settings were read when the job began: re-read under the lock the UPDATE below takes
    # anyway, so a /stop committed meanwhile (or under way) gets no digest.
    wanting = _still_wanting(session, [d.subscriber_id for d in digests if d.subscriber_id])
    digests = [d for d in digests if not d.subscriber_id or d.subscriber_id in wanting]
    if not digests:
        return set()
    rows = [
        {
            "subscriber_id": d.subscriber_id,
            "period": d.period,
            "items": d.items,
            "cutoff": d.cutoff,
            "created_at": now,
        }
        for d in sorted(digests, key=lambda d: (d.subscriber_id, d.period))  # one lock order
    ]
    claimed = session.execute(_claim_statement(session), rows)
    won = {(row[0], row[1]) for row in claimed}
    advanced: dict[datetime, list[int]] = {}  # subscribers' last digest moves to its cutoff
    for d in digests:
        if d.subscriber_id and (d.subscriber_id, d.period) in won:
            advanced.setdefault(d.cutoff, []).append(d.subscriber_id)
    for cutoff, ids in advanced.items():
        session.connection().execute(_ADVANCE, {"v_ids": ids, "v_at": cutoff})
    return won


def _still_wanting(session: Session, subscriber_ids: Sequence[int]) -> set[int]:
    """Those of these subscribers who still want digests, their rows locked FOR NO KEY UPDATE
    in id order on PostgreSQL (SQLite's writers already run one at a time)."""
    if not subscriber_ids:
        return set()
    query = (
        select(S.id)
        .where(S.id.in_(sorted(set(subscriber_ids))), S.active.is_(True))
        .where(S.frequency != Frequency.OFF.value)
        .order_by(S.id)
    )
    if is_postgres(session):
        query = query.with_for_update(key_share=True)
    return set(session.execute(query).scalars())


_ADVANCE = (
    update(SUBSCRIBERS)
    .where(S.id.in_(bindparam("v_ids", expanding=True)))
    .values(last_digest_at=bindparam("v_at"))
)
_CLAIMS: dict[str, Any] = {}  # built once per backend: thousands of claims run each time


def _claim_statement(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect not in _CLAIMS:
        insert = insert_ignoring_conflicts(session, DIGESTS, ["subscriber_id", "period"])
        _CLAIMS[dialect] = insert.returning(G.subscriber_id, G.period)
    return _CLAIMS[dialect]


def record_digest(
    session: Session, subscriber_id: int, period: str, items: int, cutoff: datetime, now: datetime
) -> bool:
    """Claim the digest of `period` for a subscriber; False if it was already composed."""
    claimed = record_digests(session, [NewDigest(subscriber_id, period, items, cutoff)], now)
    return (subscriber_id, period) in claimed


def last_cutoff(session: Session, subscriber_id: int) -> datetime | None:
    """Where the previous digest of this subscriber (0: the channel roundup) stopped."""
    return session.execute(
        select(func.max(G.cutoff)).where(G.subscriber_id == subscriber_id)
    ).scalar_one_or_none()


def last_cutoffs(session: Session, subscriber_ids: Sequence[int]) -> dict[int, datetime]:
    """`last_cutoff` of many subscribers (those without a digest yet are left out)."""
    found: dict[int, datetime] = {}
    for start in range(0, len(subscriber_ids), IN_LIST):
        chunk = list(subscriber_ids[start : start + IN_LIST])
        query = (
            select(G.subscriber_id, func.max(G.cutoff))
            .where(G.subscriber_id.in_(chunk))
            .group_by(G.subscriber_id)
        )
        found.update((row[0], row[1]) for row in session.execute(query) if row[1] is not None)
    return found


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
