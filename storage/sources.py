"""Businesses and their sources: registration, due-source claims, check results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.convert import is_postgres, to_business, to_source
from storage.engine import Database
from storage.tables import SOURCES, BusinessRow, ItemRow, SourceRow
from storage.values import Business, BusinessStatus, Source


class SourceExistsError(ValueError):
    """The URL is already registered, by `business`."""

    def __init__(self, url: str, business: Business) -> None:
        self.url = url
        self.business = business
        super().__init__(f"{url} is already registered by {business.name}")


@dataclass(frozen=True, slots=True)
class NewBusiness:
    name: str
    owner_id: int | None
    owner_language: str = "fr"
    category: str | None = None
    city: str | None = None
    status: BusinessStatus = BusinessStatus.PENDING
    trusted: bool = False


def create_business(session: Session, new: NewBusiness, now: datetime) -> Business:
    """Insert a business (inside the caller's transaction)."""
    row = BusinessRow(
        name=new.name,
        owner_id=new.owner_id,
        owner_language=new.owner_language,
        category=new.category,
        city=new.city,
        status=new.status.value,
        trusted=new.trusted,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return to_business(row)


def create_source(
    session: Session, business_id: int, url: str, kind: str, now: datetime, title: str | None = None
) -> Source:
    """Insert a source due now; SourceExistsError if the URL is already registered."""
    existing = source_owner(session, url)
    if existing:
        raise SourceExistsError(url, existing)
    row = SourceRow(
        business_id=business_id, url=url, kind=kind, title=title, next_check_at=now, created_at=now
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:  # registered concurrently
        owner = source_owner(session, url)
        if owner is None:
            raise
        raise SourceExistsError(url, owner) from exc
    return to_source(row)


def source_owner(session: Session, url: str) -> Business | None:
    """The business that registered `url`, if any."""
    row = session.exec(
        select(BusinessRow)
        .join(SourceRow, col(SourceRow.business_id) == col(BusinessRow.id))
        .where(col(SourceRow.url) == url)
    ).first()
    return to_business(row) if row else None


def get_business(session: Session, business_id: int) -> Business | None:
    row = session.get(BusinessRow, business_id)
    return to_business(row) if row else None


def lock_business(session: Session, business_id: int, *, share: bool = False) -> Business | None:
    """The business as it is now, its row locked until the transaction ends.

    `share` (FOR SHARE) is for writers whose decision depends on the business without
    changing it (ingest, /post): they run together, and a change to the business waits for
    them (or they for it). Without `share`, FOR UPDATE. PostgreSQL only: on SQLite the
    writer lock (BEGIN IMMEDIATE) already serialises every writer. Lock order everywhere:
    business, then source, then items.
    """
    query = select(BusinessRow).where(col(BusinessRow.id) == business_id)
    if is_postgres(session):
        query = query.with_for_update(read=share)
    row = session.exec(query.execution_options(populate_existing=True)).first()
    return to_business(row) if row else None


def lock_source(session: Session, source_id: int) -> Source | None:
    """The source as it is now, its row locked FOR UPDATE (PostgreSQL); None when deleted."""
    query = select(SourceRow).where(col(SourceRow.id) == source_id)
    if is_postgres(session):
        query = query.with_for_update()
    row = session.exec(query.execution_options(populate_existing=True)).first()
    return to_source(row) if row else None


def businesses_of(session: Session, owner_id: int) -> list[Business]:
    rows = session.exec(select(BusinessRow).where(col(BusinessRow.owner_id) == owner_id)).all()
    return [to_business(r) for r in rows]


def sources_of(session: Session, business_id: int) -> list[Source]:
    rows = session.exec(
        select(SourceRow)
        .where(col(SourceRow.business_id) == business_id)
        .order_by(col(SourceRow.id))
    ).all()
    return [to_source(r) for r in rows]


def get_source(session: Session, source_id: int) -> Source | None:
    row = session.get(SourceRow, source_id)
    return to_source(row) if row else None


def delete_source(session: Session, source_id: int) -> None:
    """Forget a source; its items stay (they may have been published)."""
    found = get_source(session, source_id)
    if found is None:
        return
    # Locked (business shared, then source): an ingest of this source either commits its
    # items first (they are kept, unlinked) or sees the source gone; no orphan reference.
    lock_business(session, found.business_id, share=True)
    if lock_source(session, source_id) is None:
        return
    session.execute(
        update(ItemRow).where(col(ItemRow.source_id) == source_id).values(source_id=None)
    )
    session.execute(SOURCES.delete().where(SOURCES.c.id == source_id))


def update_business(session: Session, business_id: int, **values: Any) -> None:
    session.execute(update(BusinessRow).where(col(BusinessRow.id) == business_id).values(**values))


def decide_business(
    session: Session, business_id: int, status: BusinessStatus, moderator_id: int, now: datetime
) -> bool:
    """Approve or suspend a pending business; False when someone already decided."""
    result = session.execute(
        update(BusinessRow)
        .where(col(BusinessRow.id) == business_id, col(BusinessRow.status) == "pending")
        .values(status=status.value, decided_by=moderator_id, decided_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


def claim_due_sources(db: Database, now: datetime, limit: int, lease: timedelta) -> list[Source]:
    """Take up to `limit` due sources; their next check moves to now + lease meanwhile.

    On PostgreSQL `FOR UPDATE SKIP LOCKED` lets several workers claim disjoint batches;
    on SQLite the writer lock (BEGIN IMMEDIATE) serialises claims.
    """
    with db.write() as session:
        query = (
            select(SourceRow)
            .where(col(SourceRow.paused).is_(False), col(SourceRow.next_check_at) <= now)
            .order_by(col(SourceRow.next_check_at))
            .limit(limit)
        )
        if is_postgres(session):
            query = query.with_for_update(skip_locked=True)
        rows = list(session.exec(query).all())
        sources = [to_source(r) for r in rows]
        if rows:
            session.execute(
                update(SourceRow)
                .where(col(SourceRow.id).in_([r.id for r in rows]))
                .values(next_check_at=now + lease)
            )
        return sources


def resume_paused_source(session: Session, source_id: int, now: datetime) -> bool:
    """Un-pause a source: failures forgotten, due now. False when it was not paused.

    Conditional UPDATE (`paused` re-checked in its WHERE): a stale or repeated ▶ press
    cannot make a source that a worker is checking due again (two checks at once).
    """
    result = session.execute(
        update(SourceRow)
        .where(col(SourceRow.id) == source_id, col(SourceRow.paused).is_(True))
        .values(
            paused=False, failures=0, next_check_at=now, last_error=None, last_error_detail=None
        )
    )
    return bool(getattr(result, "rowcount", 0))


def update_source(session: Session, source_id: int, **values: Any) -> None:
    """Record the outcome of a check (validators, schedule, errors)."""
    session.execute(update(SourceRow).where(col(SourceRow.id) == source_id).values(**values))


def update_sources(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """The same columns for many sources at once (executemany); `sid` names each source."""
    if not rows:
        return
    # Bound names may not equal column names in SET: prefix them.
    columns: dict[str, Any] = {key: bindparam(f"v_{key}") for key in rows[0] if key != "sid"}
    statement = update(SOURCES).where(SOURCES.c.id == bindparam("v_sid")).values(**columns)
    params = [{f"v_{key}": value for key, value in row.items()} for row in rows]
    session.connection().execute(statement, params)


def count_sources(session: Session) -> dict[str, int]:
    """Sources by health: active, paused, failing."""
    count = select(func.count()).select_from(SourceRow)
    total = session.exec(count).one()
    paused = session.exec(count.where(col(SourceRow.paused).is_(True))).one()
    failing = session.exec(count.where(col(SourceRow.failures) > 0)).one()
    return {"total": total, "paused": paused, "failing": failing}


def find_businesses(session: Session, query: str) -> list[Business]:
    """Businesses by id ("12" or "#12") or by name (exact, else containing), any case."""
    wanted = query.strip().lstrip("#")
    if wanted.isdigit():
        found = get_business(session, int(wanted))
        return [found] if found else []
    name = col(BusinessRow.name)
    exact = session.exec(select(BusinessRow).where(func.lower(name) == wanted.lower())).all()
    if exact:
        return [to_business(row) for row in exact]
    pattern = f"%{wanted.lower()}%"
    rows = session.exec(select(BusinessRow).where(func.lower(name).like(pattern)).limit(10)).all()
    return [to_business(row) for row in rows]


def pending_businesses(session: Session) -> list[Business]:
    """Registrations waiting for a moderator, oldest first."""
    rows = session.exec(
        select(BusinessRow)
        .where(col(BusinessRow.status) == BusinessStatus.PENDING.value)
        .order_by(col(BusinessRow.created_at), col(BusinessRow.id))
    ).all()
    return [to_business(row) for row in rows]
