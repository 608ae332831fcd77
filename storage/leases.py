"""Named leases: one holder at a time across processes sharing the database.

A holder takes a lease when it is free, expired, or when the caller's `may_take` says its
holder is gone (a dead process on the same host); it keeps it by renewing before it
expires. Taking and renewing are single transactions that lock the lease row (`FOR UPDATE`
on PostgreSQL; `BEGIN IMMEDIATE` serialises writers on SQLite), so two processes never
both believe they hold it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update

from storage.convert import insert_ignoring_conflicts, is_postgres
from storage.engine import Database
from storage.tables import LEASES

L = LEASES.c


@dataclass(frozen=True, slots=True)
class Holder:
    """Who asks: `owner` is unique per process (host:pid:random)."""

    owner: str
    host: str
    pid: int


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: Holder
    expires_at: datetime


class Outcome(StrEnum):
    TAKEN = "taken"  # newly ours: whatever the previous holder left is ours to recover
    KEPT = "kept"  # ours already, renewed
    HELD = "held"  # another live holder has it


def acquire(
    db: Database,
    name: str,
    me: Holder,
    now: datetime,
    ttl: timedelta,
    may_take: Callable[[Lease], bool],
) -> Outcome:
    """Take or renew lease `name` for `ttl`."""
    with db.write() as session:
        query = select(LEASES).where(L.name == name)
        if is_postgres(session):
            query = query.with_for_update()  # lock the row: the decision below stays true
        row = session.execute(query).mappings().first()
        values = {"owner": me.owner, "host": me.host, "pid": me.pid, "expires_at": now + ttl}
        if row is None:
            inserted = session.execute(
                insert_ignoring_conflicts(session, LEASES, ["name"]),
                {"name": name, "acquired_at": now, **values},
            )
            return Outcome.TAKEN if getattr(inserted, "rowcount", 0) else Outcome.HELD
        if row["owner"] == me.owner:
            session.execute(update(LEASES).where(L.name == name).values(expires_at=now + ttl))
            return Outcome.KEPT
        current = Lease(name, Holder(row["owner"], row["host"], row["pid"]), row["expires_at"])
        if current.expires_at > now and not may_take(current):
            return Outcome.HELD
        session.execute(update(LEASES).where(L.name == name).values(acquired_at=now, **values))
        return Outcome.TAKEN


def release(db: Database, name: str, me: Holder) -> None:
    """Give the lease up (clean shutdown), so the next process need not wait."""
    with db.write() as session:
        session.execute(LEASES.delete().where(L.name == name, L.owner == me.owner))
