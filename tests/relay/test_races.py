"""Read-then-write across processes, forced deterministically on PostgreSQL.

Each test runs one transaction on its own engine and holds it at a chosen statement (an
SQLAlchemy `before_cursor_execute` listener: no hook in the relay's code), runs a second
transaction meanwhile, and releases the first once the second has finished or is waiting
for one of the first's locks. Without the locks (see storage.sources.lock_business and its
callers) each case ends in a broken invariant or a deadlock. SQLite serialises writers
(BEGIN IMMEDIATE), so these interleavings cannot happen there: PostgreSQL only, except the
stale ▶ press, which needs no concurrency.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text

from bench.races import invariants, run
from feeds.models import FetchResult
from relay import digest_job, moderation
from relay.digest import ComposedDigest
from relay.ingest import record_items
from relay.moderation import Actor, Press
from relay.parsing import ParsedDocument, ParseJob, parse_document
from relay.publisher import publish_next
from relay.registration import Post, create_post, remove_source, resume_source
from relay.settings import Settings
from storage import outbox, people
from storage.engine import Database
from storage.items import insert_items
from storage.sources import (
    NewBusiness,
    claim_due_sources,
    create_business,
    create_source,
    get_business,
    get_source,
    update_source,
)
from storage.tables import DELIVERIES, ITEMS
from storage.values import BusinessStatus, Frequency, ItemState, Source
from tests.support.builders import T0, entries, item_row, relay_settings, rss

postgres_only = pytest.mark.skipif(
    not os.environ.get("RELAY_TEST_DATABASE_URL"),
    reason="SQLite serialises writers (BEGIN IMMEDIATE): these interleavings cannot happen",
)
ALICE, BOB = Actor(11, "Alice"), Actor(12, "Bob")
OWNER = 77
CHANNEL = -1001234567890
WAIT = 20.0  # seconds: far beyond any step here; a hang fails instead of blocking the run


# --- holding a transaction at a statement ------------------------------------------------------


class Hold:
    """Holds the transaction that runs on `db` at a statement until `release()`.

    It stops before the first statement matching `before`, or before the first statement
    that follows one matching `after`; `pid` is its PostgreSQL backend.
    """

    def __init__(self, db: Database, *, before: str = "", after: str = "") -> None:
        self.before = re.compile(before, re.IGNORECASE) if before else None
        self.after = re.compile(after, re.IGNORECASE) if after else None
        self.armed = False
        self.pid: int | None = None
        self.reached = threading.Event()
        self.released = threading.Event()
        event.listen(db.engine, "before_cursor_execute", self._before)
        event.listen(db.engine, "after_cursor_execute", self._after)

    def release(self) -> None:
        self.released.set()

    def _before(self, _conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if self.reached.is_set():
            return
        if self.armed or (self.before is not None and self.before.search(statement)):
            self.pid = cursor.connection.info.backend_pid
            self.reached.set()
            self.released.wait(WAIT)

    def _after(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self.after is not None and self.after.search(statement):
            self.armed = True


class Run(threading.Thread):
    """A function in a thread, keeping its result or its exception."""

    def __init__(self, function: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.function = function
        self.result: object = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.function()
        except BaseException as exc:
            self.error = exc


def interleave(
    hold: Hold, first: Callable[[], object], second: Callable[[], object], watch: Database
) -> tuple[object, object]:
    """`first` until `hold` stops it, then `second`; `first` goes on once `second` is done
    or waits for a lock `first` holds. Both results; either's exception is raised."""
    one = Run(first)
    one.start()
    assert hold.reached.wait(WAIT), "the first transaction never reached its statement"
    two = Run(second)
    two.start()
    deadline = time.monotonic() + WAIT
    while two.is_alive() and not _blocked_by(watch, hold.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    hold.release()
    one.join(WAIT)
    two.join(WAIT)
    for done in (one, two):
        if done.error is not None:
            raise done.error
    return one.result, two.result


def _blocked_by(watch: Database, pid: int | None) -> bool:
    with watch.engine.connect() as conn:
        query = text(
            "SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
        )
        return bool(conn.execute(query, {"pid": pid}).scalar())


# --- a small world ----------------------------------------------------------------------------


@pytest.fixture
def settings() -> Settings:
    return relay_settings()


@pytest.fixture
def other(db: Database) -> Iterator[Database]:
    """A second engine on the test's database: the held transaction runs there."""
    with db.engine.connect() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
    second = Database(db.url, schema=None if db.is_sqlite else str(schema))
    yield second
    second.dispose()


@dataclass(frozen=True)
class Shop:
    business_id: int
    source: Source
    item_id: int  # pending (with its cards), or approved when the shop is asked to publish


def shop(
    db: Database, settings: Settings, status: BusinessStatus, item: ItemState = ItemState.PENDING
) -> Shop:
    """Two moderators and a business (already read once) with one item and its cards."""
    with db.write() as s:
        for actor in (ALICE, BOB):
            people.add_moderator(s, actor.id, "moderator", None, T0)
        business = create_business(s, NewBusiness("Fleurs Lila", OWNER, status=status), T0)
        source = create_source(s, business.id, "https://lila.example/feed", "rss", T0)
        update_source(s, source.id, first_read_at=T0)
        [item_id] = insert_items(s, [item_row(business.id, "old", T0, state=item.value)])
        if item is ItemState.PENDING and status is BusinessStatus.ACTIVE:
            moderation.enqueue_item_cards(s, [item_id], settings, T0)
        fresh = get_source(s, source.id)
    assert fresh is not None
    return Shop(business.id, fresh, item_id)


def document(count: int = 2) -> ParsedDocument:
    body = rss(entries(count, start=T0, prefix="race"))
    job = ParseJob("https://lila.example/feed", body, "application/rss+xml", None, page=False)
    return parse_document(job)


def ingest(db: Database, place: Shop, settings: Settings) -> Callable[[], object]:
    result = FetchResult(place.source.url, place.source.url, 200, body_hash="new")
    return lambda: record_items(db, place.source, result, document(), T0, settings, 0.5)


def post(db: Database, place: Shop, settings: Settings) -> Callable[[], object]:
    news = Post("Arrivage de tulipes", "Ce matin", "https://lila.example/tulipes")
    return lambda: create_post(db, OWNER, place.business_id, news, 501, settings, T0)


def decision(db: Database, kind: str, place: Shop, settings: Settings) -> Callable[[], object]:
    """What a moderator does, in a transaction of its own."""

    def act() -> object:
        with db.write() as s:
            if kind == "approve":
                return moderation.decide(s, Press("b", "a", place.business_id), ALICE, settings, T0)
            if kind == "trust_press":
                return moderation.decide(s, Press("i", "t", place.item_id), ALICE, settings, T0)
            if kind == "trust_command":
                return moderation.set_trust(s, place.business_id, True, T0)
            return moderation.suspend(s, place.business_id, ALICE.id, T0)

    return act


def checked(db: Database) -> dict[str, tuple[int, int]]:
    with db.read() as s:
        return invariants(s)


def no_violation(db: Database) -> dict[str, int]:
    """The invariants hold; returns how many items each one checked."""
    found = checked(db)
    assert {name: bad for name, (_n, bad) in found.items() if bad} == {}
    return {name: n for name, (n, _bad) in found.items()}


# --- news of a business while the business is decided -------------------------------------------

# decision: (status before, the invariant it is about, its last look at the business's news)
PENDING_NEWS = r"^SELECT items\.id\s+FROM items\s+WHERE items\.business_id"
DECISIONS = {
    "approve": (BusinessStatus.PENDING, "carded", r"^SELECT items\.id, items\.business_id"),
    "trust_press": (BusinessStatus.ACTIVE, "trusted", PENDING_NEWS),
    "trust_command": (BusinessStatus.ACTIVE, "trusted", PENDING_NEWS),
    "suspend": (BusinessStatus.ACTIVE, "suspended", r"^UPDATE items"),
}


@postgres_only
@pytest.mark.parametrize("writer", ["ingest", "post"])
@pytest.mark.parametrize("kind", list(DECISIONS))
@pytest.mark.parametrize("held", ["news", "decision"])
def test_news_stored_while_its_business_is_decided(
    db: Database, other: Database, settings: Settings, writer: str, kind: str, held: str
) -> None:
    """Approval sends the new news's cards, trust approves it, suspension withdraws it:
    whichever transaction reads the business first, the other one sees its outcome."""
    status, invariant, last_look = DECISIONS[kind]
    place = shop(db, settings, status)
    store = ingest if writer == "ingest" else post
    if held == "news":
        hold = Hold(other, before=r"^INSERT INTO items")
        interleave(hold, store(other, place, settings), decision(db, kind, place, settings), db)
    else:
        hold = Hold(other, after=last_look)  # decided, the news it will act on already read
        interleave(hold, decision(other, kind, place, settings), store(db, place, settings), db)
    assert no_violation(db)[invariant] >= 2


# --- publishing and approve-and-trust while the business is suspended ----------------------------


@postgres_only
@pytest.mark.parametrize("held", ["publisher", "suspension"])
def test_publication_and_suspension_at_once(
    db: Database, other: Database, settings: Settings, held: str
) -> None:
    """No deadlock (the business row is locked first by both), nothing published after."""
    place = shop(db, settings, BusinessStatus.ACTIVE, ItemState.APPROVED)

    def publish(on: Database) -> Callable[[], object]:
        return lambda: publish_next(on, settings, CHANNEL, T0)

    if held == "publisher":
        hold = Hold(other, before=r"^UPDATE businesses")  # item marked, business not stamped
        published, _ = interleave(
            hold, publish(other), decision(db, "suspend", place, settings), db
        )
    else:
        hold = Hold(other, after=r"^UPDATE businesses")  # suspended, items not withdrawn
        _, published = interleave(
            hold, decision(other, "suspend", place, settings), publish(db), db
        )
    no_violation(db)
    with db.read() as s:
        posts = s.execute(select(DELIVERIES.c.id).where(DELIVERIES.c.kind == "channel_post"))
        assert len(posts.all()) == (1 if held == "publisher" else 0)
    assert (published is not None) == (held == "publisher")


@postgres_only
@pytest.mark.parametrize("held", ["press", "suspension"])
def test_approve_and_trust_pressed_while_suspending(
    db: Database, other: Database, settings: Settings, held: str
) -> None:
    """No deadlock, and the suspended business ends untrusted with nothing waiting."""
    place = shop(db, settings, BusinessStatus.ACTIVE)
    press, suspension = "trust_press", "suspend"
    if held == "press":
        hold = Hold(other, before=r"^UPDATE businesses")  # item approved, trust not yet set
        first, second = (
            decision(other, press, place, settings),
            decision(db, suspension, place, settings),
        )
    else:
        hold = Hold(other, after=r"^UPDATE businesses")  # suspended, items not withdrawn
        first, second = (
            decision(other, suspension, place, settings),
            decision(db, press, place, settings),
        )
    interleave(hold, first, second, db)
    assert no_violation(db)["suspended"] == 1
    with db.read() as s:
        business = get_business(s, place.business_id)
    assert business is not None
    assert (business.status, business.trusted) == (BusinessStatus.SUSPENDED, False)


# --- sources removed while being checked ---------------------------------------------------------


@postgres_only
@pytest.mark.parametrize("held", ["ingest", "removal"])
def test_source_removed_while_its_check_is_recorded(
    db: Database, other: Database, settings: Settings, held: str
) -> None:
    """Neither side fails: the items recorded first are kept (unlinked), or none are."""
    place = shop(db, settings, BusinessStatus.ACTIVE)

    def remove(on: Database) -> Callable[[], object]:
        return lambda: remove_source(on, OWNER, place.source.id)

    if held == "ingest":
        hold = Hold(other, before=r"^INSERT INTO items")
        interleave(hold, ingest(other, place, settings), remove(db), db)
    else:
        hold = Hold(other, before=r"^DELETE FROM sources")  # items unlinked, source not gone
        interleave(hold, remove(other), ingest(db, place, settings), db)
    with db.read() as s:
        assert get_source(s, place.source.id) is None
        linked = s.execute(select(ITEMS.c.id).where(ITEMS.c.source_id.is_not(None))).all()
        kept = s.execute(select(ITEMS.c.id).where(ITEMS.c.business_id == place.business_id))
        assert linked == []
        assert len(kept.all()) == (3 if held == "ingest" else 1)


def test_a_stale_resume_press_does_not_make_a_checked_source_due_again(
    db: Database, settings: Settings
) -> None:
    """▶ on a source being checked (its button from before) must not start a second check."""
    place = shop(db, settings, BusinessStatus.ACTIVE)
    with db.write() as s:
        update_source(s, place.source.id, paused=True, failures=10, next_check_at=T0)
    assert resume_source(db, OWNER, place.source.id, T0) is not None
    lease = timedelta(minutes=5)
    assert [s.id for s in claim_due_sources(db, T0, 10, lease)] == [place.source.id]
    assert resume_source(db, OWNER, place.source.id, T0) is not None  # the stale press
    assert claim_due_sources(db, T0, 10, lease) == []


# --- a moderator removed while cards are addressed -----------------------------------------------


@postgres_only
@pytest.mark.parametrize("held", ["cards", "removal"])
def test_moderator_removed_while_cards_are_addressed(
    db: Database, other: Database, settings: Settings, held: str
) -> None:
    """No card is left waiting for someone who is no longer a moderator."""
    place = shop(db, settings, BusinessStatus.ACTIVE)

    def remove(on: Database) -> Callable[[], object]:
        def act() -> object:
            with on.write() as s:
                return moderation.remove_moderator(s, BOB.id)

        return act

    if held == "cards":
        hold = Hold(other, before=r"^INSERT INTO deliveries")
        interleave(hold, ingest(other, place, settings), remove(db), db)
    else:
        hold = Hold(other, before=r"^DELETE FROM moderators")  # their cards already dropped
        interleave(hold, remove(other), ingest(db, place, settings), db)
    with db.read() as s:
        waiting = [d for d in outbox.deliveries_for(s) if d.state.value == "pending"]
    assert {d.chat_id for d in waiting if d.kind == "card"} == {ALICE.id}
    assert no_violation(db)["carded"] == 3


@postgres_only
def test_moderator_removed_while_a_registration_is_approved(
    db: Database, other: Database, settings: Settings
) -> None:
    """No deadlock: the approval edits the registration's cards (Bob's among them) and then
    addresses its waiting news's cards, so it takes the moderators lock before either."""
    place = shop(db, settings, BusinessStatus.PENDING)
    with db.write() as s:
        business = get_business(s, place.business_id)
        assert business is not None
        moderation.enqueue_business_card(s, business, place.source.url, settings, T0)

    def remove() -> object:
        with db.write() as s:
            return moderation.remove_moderator(s, BOB.id)

    hold = Hold(other, after=r"^UPDATE deliveries")  # unsent registration cards cancelled
    interleave(hold, decision(other, "approve", place, settings), remove, db)
    with db.read() as s:
        waiting = [d for d in outbox.deliveries_for(s) if d.state.value == "pending"]
    assert {d.chat_id for d in waiting if d.kind == "card"} == {ALICE.id}
    assert no_violation(db)["carded"] == 1


# --- a digest composed while its reader says /stop ---------------------------------------------

EVENING = T0.replace(hour=19, minute=30)  # 20:30 in Paris: daily digests (18:00) are due
READERS = (301, 302)


def due_digests(db: Database) -> Sequence[ComposedDigest]:
    """Two readers due for their daily digest, one approved item: composed, not yet written."""
    with db.write() as s:
        business = create_business(
            s, NewBusiness("Fleurs Lila", OWNER, status=BusinessStatus.ACTIVE), T0
        )
        insert_items(s, [item_row(business.id, "news", EVENING - timedelta(hours=1))])
        for chat in READERS:
            people.subscribe(s, chat, "fr", EVENING - timedelta(days=1))
    due, composer = digest_job.prepare(db, EVENING)
    return digest_job.compose_all(composer, due)


def stop(db: Database, chat_id: int) -> Callable[[], object]:
    def act() -> object:
        with db.write() as s:
            return people.update_subscriber(s, chat_id, frequency=Frequency.OFF.value)

    return act


def digests_to(db: Database) -> set[int]:
    with db.read() as s:
        query = select(DELIVERIES.c.chat_id).where(DELIVERIES.c.kind == "digest")
        return set(s.execute(query).scalars())


def test_a_reader_who_stopped_while_digests_were_composed_gets_none(db: Database) -> None:
    """The job read its subscribers when it began; the claim re-reads them."""
    composed = due_digests(db)
    stop(db, READERS[0])()
    digest_job.record(db, composed, EVENING)
    assert digests_to(db) == {READERS[1]}


@postgres_only
def test_a_stop_under_way_while_digests_are_claimed(db: Database, other: Database) -> None:
    """The claim waits for a /stop being written (it locks the rows it re-reads)."""
    composed = due_digests(db)
    hold = Hold(other, after=r"^UPDATE subscribers")  # stopped, not yet committed
    interleave(hold, stop(other, READERS[0]), lambda: digest_job.record(db, composed, EVENING), db)
    assert digests_to(db) == {READERS[1]}


# --- everything at once --------------------------------------------------------------------------


@postgres_only
def test_random_run_of_every_role_keeps_the_invariants(db: Database) -> None:
    """bench.races for a few seconds: registrations, decisions, trust, suspensions, posts,
    polls and publications in seven processes."""
    figures = run(db, seconds=4.0, each=1, seed=7)
    actions, found = figures["actions"], figures["invariants"]
    assert [name for name in actions if name.startswith("error:")] == []
    assert {name: bad for name, (_n, bad) in found.items() if bad} == {}
    assert {"register", "post", "ingest", "publish", "suspend"} <= set(actions)
