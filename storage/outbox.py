"""The outbox: deliveries written with their cause, claimed and resolved by the sender.

States: pending → claimed → sending → sent | failed | unknown, or back to pending
(retry). `claimed` means the request has not started: safe to hand out again after a
crash. `sending` means it may have reached Telegram: after a crash it becomes `unknown`
and is never retried blindly. Claims carry the name of the sender that holds the sending
lease (`claimed_by`): a sender that lost its lease can no longer mark anything `sending`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlmodel import Session

from storage.convert import insert_ignoring_conflicts, is_postgres
from storage.engine import Database
from storage.tables import DELIVERIES, DeliveryRow
from storage.values import Delivery, DeliveryState

D = DELIVERIES.c


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A message to send. `key` makes the intent idempotent (one row per key)."""

    key: str
    kind: str
    chat_id: int
    text: str
    parse_mode: str | None = "HTML"
    reply_markup: str | None = None
    edit_message_id: int | None = None
    item_id: int | None = None
    subscriber_id: int | None = None
    ref: str | None = None


def enqueue(session: Session, deliveries: Sequence[NewDelivery], now: datetime) -> int:
    """Add deliveries in the caller's transaction; an existing key is left alone."""
    if not deliveries:
        return 0
    rows = [
        {
            **_fields(d),
            "state": DeliveryState.PENDING.value,
            "next_attempt_at": now,
            "created_at": now,
            "attempts": 0,
            "plain_fallback": False,
        }
        for d in deliveries
    ]
    result = session.execute(insert_ignoring_conflicts(session, DeliveryRow, ["key"]), rows)
    return int(getattr(result, "rowcount", 0) or 0)


def _fields(d: NewDelivery) -> dict[str, Any]:
    return {name: getattr(d, name) for name in NewDelivery.__dataclass_fields__}


def claim_ready(
    db: Database, now: datetime, limit: int, lease: timedelta, owner: str
) -> list[Delivery]:
    """Take up to `limit` deliveries due now, oldest first, for `lease`, as `owner`."""
    with db.write() as session:
        query = (
            select(DELIVERIES)
            .where(D.state == DeliveryState.PENDING.value, D.next_attempt_at <= now)
            .order_by(D.next_attempt_at, D.id)
            .limit(limit)
        )
        if is_postgres(session):
            query = query.with_for_update(skip_locked=True)
        rows = session.execute(query).mappings().all()
        ids = [row["id"] for row in rows]
        if ids:
            session.execute(
                update(DELIVERIES)
                .where(D.id.in_(ids))
                .values(
                    state=DeliveryState.CLAIMED.value, claimed_until=now + lease, claimed_by=owner
                )
            )
        return [_delivery(row) for row in rows]


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row["id"],
        chat_id=row["chat_id"],
        kind=row["kind"],
        text=row["text"],
        parse_mode=row["parse_mode"],
        reply_markup=row["reply_markup"],
        state=DeliveryState(row["state"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        item_id=row["item_id"],
        subscriber_id=row["subscriber_id"],
        edit_message_id=row["edit_message_id"],
        plain_fallback=row["plain_fallback"],
    )


def mark(session: Session, delivery_id: int, state: DeliveryState, **values: Any) -> None:
    """Move one delivery to `state` with extra column values."""
    session.execute(
        update(DELIVERIES).where(D.id == delivery_id).values(state=state.value, **values)
    )


def mark_sending(
    db: Database, delivery_id: int, now: datetime, lease: timedelta, owner: str
) -> bool:
    """Committed right before the request: from here on a crash is ambiguous.

    False when the claim is no longer `owner`'s (its lease was taken over): do not send.
    """
    with db.write() as session:
        result = session.execute(
            update(DELIVERIES)
            .where(
                D.id == delivery_id,
                D.state == DeliveryState.CLAIMED.value,
                D.claimed_by == owner,
            )
            .values(
                state=DeliveryState.SENDING.value,
                claimed_until=now + lease,
                attempts=D.attempts + 1,
            )
        )
        return bool(getattr(result, "rowcount", 0))


def retry_later(db: Database, delivery_id: int, at: datetime, error: str, **values: Any) -> None:
    """Back to pending, not before `at` (429, network failure before sending...)."""
    with db.write() as session:
        mark(
            session,
            delivery_id,
            DeliveryState.PENDING,
            next_attempt_at=at,
            last_error=error,
            claimed_until=None,
            **values,
        )


def release_claims(db: Database, ids: Sequence[int]) -> None:
    """Hand back claimed deliveries we did not get to (shutdown, limits)."""
    if not ids:
        return
    with db.write() as session:
        session.execute(
            update(DELIVERIES)
            .where(D.id.in_(list(ids)), D.state == DeliveryState.CLAIMED.value)
            .values(state=DeliveryState.PENDING.value, claimed_until=None)
        )


def defer(db: Database, when: Sequence[tuple[int, datetime]]) -> None:
    """Hand claimed deliveries back, each not to be tried before its time (rate limits)."""
    if not when:
        return
    statement = (
        update(DELIVERIES)
        .where(D.id == bindparam("v_id"), D.state == DeliveryState.CLAIMED.value)
        .values(
            state=DeliveryState.PENDING.value, claimed_until=None, next_attempt_at=bindparam("v_at")
        )
    )
    with db.write() as session:
        session.connection().execute(statement, [{"v_id": i, "v_at": at} for i, at in when])


def take_back(db: Database) -> dict[str, int]:
    """A sender that holds the lease and has nothing in flight takes every claim back.

    Claimed deliveries never started: pending again. Deliveries left `sending` (by a dead
    process, or a process that lost the lease) may have reached Telegram: `unknown`, never
    resent. Returns how many became unknown, by kind.
    """
    with db.write() as session:
        session.execute(
            update(DELIVERIES)
            .where(D.state == DeliveryState.CLAIMED.value)
            .values(state=DeliveryState.PENDING.value, claimed_until=None, claimed_by=None)
        )
        cut = session.execute(
            select(D.kind, func.count())
            .where(D.state == DeliveryState.SENDING.value)
            .group_by(D.kind)
        ).all()
        if cut:
            session.execute(
                update(DELIVERIES)
                .where(D.state == DeliveryState.SENDING.value)
                .values(
                    state=DeliveryState.UNKNOWN.value,
                    last_error="interrupted while sending: may or may not have been delivered",
                )
            )
        return {kind: count for kind, count in cut}


def take_unknown_report(session: Session) -> dict[str, int]:
    """Unknown deliveries the admins were not told of yet, by kind; now marked as told.

    One UPDATE … RETURNING: two processes reporting at once never count a row twice.
    """
    fresh = (D.state == DeliveryState.UNKNOWN.value) & D.unknown_reported.is_(False)
    told = session.execute(
        update(DELIVERIES).where(fresh).values(unknown_reported=True).returning(D.kind)
    ).all()
    counts: dict[str, int] = {}
    for (kind,) in told:
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def sent_messages(session: Session, ref: str) -> list[tuple[int, int, str]]:
    """(chat id, message id, text) of the sent messages carrying `ref` (moderation cards)."""
    query = select(D.chat_id, D.message_id, D.text).where(
        D.ref == ref,
        D.kind != "edit",
        D.state == DeliveryState.SENT.value,
        D.message_id.is_not(None),
    )
    return [(row[0], row[1], row[2]) for row in session.execute(query).all()]


def cancel_pending(session: Session, ref: str, reason: str) -> None:
    """Unsent copies of an obsolete message (a card already decided) are not sent."""
    session.execute(
        update(DELIVERIES)
        .where(D.ref == ref, D.state == DeliveryState.PENDING.value)
        .values(state=DeliveryState.FAILED.value, last_error=reason)
    )


def cancel_cards_to(session: Session, chat_id: int, reason: str) -> None:
    """Unsent moderation cards for one chat are not sent (a moderator removed)."""
    session.execute(
        update(DELIVERIES)
        .where(D.chat_id == chat_id, D.kind == "card", D.state == DeliveryState.PENDING.value)
        .values(state=DeliveryState.FAILED.value, last_error=reason)
    )


def count_deliveries(session: Session, since: datetime) -> dict[str, int]:
    """Deliveries created since `since`, by state."""
    query = select(D.state, func.count()).where(D.created_at >= since).group_by(D.state)
    return {row[0]: row[1] for row in session.execute(query).all()}


def deliveries_for(session: Session, *, item_id: int | None = None) -> list[Delivery]:
    query = select(DELIVERIES).order_by(D.id)
    if item_id is not None:
        query = query.where(D.item_id == item_id)
    return [_delivery(row) for row in session.execute(query).mappings().all()]


def fail_pending_for_chat(session: Session, chat_id: int, reason: str) -> None:
    """A chat that blocked the bot gets nothing more: its waiting messages are dropped."""
    session.execute(
        update(DELIVERIES)
        .where(D.chat_id == chat_id, D.state == DeliveryState.PENDING.value)
        .values(state=DeliveryState.FAILED.value, last_error=reason)
    )


def delete_finished_before(db: Database, before: datetime) -> int:
    """Old sent/failed/unknown deliveries are only history: keep a month of it."""
    finished = [DeliveryState.SENT.value, DeliveryState.FAILED.value, DeliveryState.UNKNOWN.value]
    with db.write() as session:
        result = session.execute(
            DELIVERIES.delete().where(D.state.in_(finished), D.created_at < before)
        )
        return int(getattr(result, "rowcount", 0) or 0)
