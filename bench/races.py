"""Races: several processes register businesses, decide, trust, suspend, post, poll and
publish against one PostgreSQL database at once; afterwards the invariants the row locks
are there for are checked.

    python -m bench.races --seconds 60
    python -m bench.races --seconds 5 --each 1

Invariants (each reported as checked / violations):
- carded: every pending item of an active, untrusted business has a live moderation card;
- trusted: no item of an active, trusted business is left pending;
- cards_decided: no card waits to be sent for an item that is no longer pending;
- suspended: no item of a suspended business is pending or approved or has a live card, and
  none was published after the suspension (publications are counted inside the suspending
  transaction, in the bench's own table);
- doubled: no item has two channel posts, nor two cards for one chat.
Actions that failed (deadlocks, integrity errors) are counted too: there should be none.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from bench.common import fresh_database, print_json, print_table
from feeds.errors import FetchError
from feeds.keys import identity_keys, story_key
from feeds.models import FeedItem, FetchResult, ParsedFeed
from relay import moderation
from relay.clock import utcnow
from relay.ingest import record_failure, record_items
from relay.parsing import ParsedDocument
from relay.publisher import publish_next
from relay.registration import Draft, Found, Post, create_post, register, remove_source
from relay.registration import resume_source as resume_owned_source
from relay.settings import PacingSettings, PollingSettings, Settings
from storage import people
from storage.engine import Database
from storage.sources import claim_due_sources, get_source
from storage.values import Source

ADMIN, SECOND = 1, 2  # moderators; the first is never removed, so every card has a reader
ACTOR = moderation.Actor(ADMIN, "Admin")
OWNER = 700  # owner ids: OWNER + process number
CHANNEL = -1005550000
ROLES = ("owner", "moderator", "poller", "publisher")
SUSPENSIONS = """CREATE TABLE bench_suspensions (
    business_id BIGINT PRIMARY KEY, published INTEGER NOT NULL)"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--each", type=int, default=2, help="processes per role (1 publisher)")
    parser.add_argument("--seed", type=int, default=None)
    return parser.parse_args(argv)


def bench_settings() -> Settings:
    """Publishing as fast as a second apart, no quiet hours, no daily cap; pause quickly."""
    return Settings(
        channel=str(CHANNEL),
        pacing=PacingSettings(
            posts_per_hour=3600, quiet_start_hour=0, quiet_end_hour=0, daily_cap_per_business=10**6
        ),
        polling=PollingSettings(failure_threshold=2, jitter_fraction=0.0, parse_workers=0),
    )


# --- one process ----------------------------------------------------------------------------


@dataclass
class World:
    """What one process acts with: its database, its number, its random source."""

    db: Database
    number: int
    rng: random.Random
    settings: Settings = field(default_factory=bench_settings)
    serial: int = 0

    def next(self) -> int:
        self.serial += 1
        return self.number * 1_000_000 + self.serial

    def pick(self, sql: str, **params: Any) -> int | None:
        """A random id among those `sql` selects (a plain read: it may be stale at once)."""
        with self.db.read() as session:
            ids = list(session.execute(text(sql), params).scalars())
        return self.rng.choice(ids) if ids else None


def owner(world: World) -> str:
    """Register, post, remove a source or resume one, as the process's own owner."""
    me, now = OWNER + world.number, utcnow()
    roll = world.rng.random()
    if roll < 0.2:
        n = world.next()
        url = f"https://b{n}.example/feed"
        found = Found(url, url, "rss", None, ())
        register(
            world.db, Draft(me, "fr", found, f"Shop {n}", "bakery", "Lyon"), world.settings, now
        )
        return "register"
    if roll < 0.8:
        business = world.pick("SELECT id FROM businesses WHERE owner_id = :me", me=me)
        if business is None:
            return "idle"
        n = world.next()
        post = Post(f"News {n}", "Fresh bread", f"https://post.example/{n}")
        create_post(world.db, me, business, post, n, world.settings, now)
        return "post"
    source = world.pick(
        "SELECT s.id FROM sources s JOIN businesses b ON b.id = s.business_id"
        " WHERE b.owner_id = :me AND s.paused = :paused",
        me=me,
        paused=roll < 0.9,
    )
    if source is None:
        return "idle"
    if roll < 0.9:
        resume_owned_source(world.db, me, source, now)
        return "resume"
    remove_source(world.db, me, source)
    return "remove"


def moderator(world: World) -> str:
    """Decide registrations and items, trust, distrust, suspend, remove or add a moderator."""
    roll = world.rng.random()
    if roll < 0.3:
        return _decide_business(world)
    if roll < 0.7:
        return _decide_item(world)
    business = world.pick("SELECT id FROM businesses WHERE status <> 'suspended'")
    if business is None:
        return "idle"
    now = utcnow()
    with world.db.write() as session:
        if roll < 0.85:
            moderation.set_trust(session, business, world.rng.random() < 0.6, now)
            return "trust"
        if roll < 0.92:
            if moderation.suspend(session, business, ADMIN, now):
                _record_suspension(session, business)
            return "suspend"
        if people.moderator_role(session, SECOND):
            moderation.remove_moderator(session, SECOND)
            return "delmod"
        people.add_moderator(session, SECOND, "moderator", ADMIN, now)
        return "addmod"


def _decide_business(world: World) -> str:
    business = world.pick("SELECT id FROM businesses WHERE status = 'pending'")
    if business is None:
        return "idle"
    action = "r" if world.rng.random() < 0.2 else "a"
    press = moderation.Press("b", action, business)
    with world.db.write() as session:
        outcome = moderation.decide(session, press, ACTOR, world.settings, utcnow())
        if outcome.won and outcome.state == "suspended":
            _record_suspension(session, business)
    return f"press_b_{action}"


def _decide_item(world: World) -> str:
    item = world.pick(  # only items with cards to press: those of active businesses
        "SELECT i.id FROM items i JOIN businesses b ON b.id = i.business_id"
        " WHERE i.state = 'pending' AND b.status = 'active'"
    )
    if item is None:
        return "idle"
    action = world.rng.choices("art", weights=(6, 2, 2))[0]
    with world.db.write() as session:
        press = moderation.Press("i", action, item)
        moderation.decide(session, press, ACTOR, world.settings, utcnow())
    return f"press_i_{action}"


def _record_suspension(session: Session, business_id: int) -> None:
    """Inside the suspending transaction: how many of its items were published so far."""
    session.execute(
        text(
            "INSERT INTO bench_suspensions (business_id, published)"
            " SELECT :b, count(*) FROM items WHERE business_id = :b AND state = 'published'"
            " ON CONFLICT DO NOTHING"
        ),
        {"b": business_id},
    )


def poller(world: World) -> str:
    """Record new items for due sources (or any source: a check may outlive a removal)."""
    now = utcnow()
    sources = claim_due_sources(world.db, now, 3, timedelta(seconds=30))
    if not sources:
        picked = world.pick("SELECT id FROM sources")
        with world.db.read() as session:
            found = get_source(session, picked) if picked is not None else None
        sources = [found] if found else []
    for source in sources:
        if world.rng.random() < 0.1:
            error = FetchError(source.url, "bench")
            record_failure(world.db, source, error, None, now, world.settings, 0.5)
        else:
            document = _document(world, source, world.rng.randint(1, 3))
            result = FetchResult(source.url, source.url, 200, body_hash=str(world.next()))
            record_items(world.db, source, result, document, now, world.settings, 0.5)
    return "ingest" if sources else "idle"


def _document(world: World, source: Source, count: int) -> ParsedDocument:
    """`count` new items, as if just parsed."""
    items = []
    for _ in range(count):
        n = world.next()
        link = f"https://feed.example/{source.id}/{n}"
        items.append(FeedItem(f"Item {n}", link, f"g{n}", utcnow(), f"Text {n}", None))
    feed = ParsedFeed("rss", f"Feed {source.id}", None, tuple(items))
    return ParsedDocument(
        feed, tuple(identity_keys(feed.items)), tuple(story_key(i.link) for i in items)
    )


def publisher(world: World) -> str:
    publish_next(world.db, world.settings, CHANNEL, utcnow())
    return "publish"


ACTIONS: dict[str, Callable[[World], str]] = {
    "owner": owner,
    "moderator": moderator,
    "poller": poller,
    "publisher": publisher,
}


def act(role: str, number: int, url: str, schema: str, seconds: float, seed: int, go: Any) -> None:
    """One process: once every process is ready (`go`), act in `role` for `seconds`; puts
    the counts of actions and failures in `go.results`."""
    db = Database(url, schema=schema)
    world = World(db, number, random.Random(seed))
    done: Counter[str] = Counter()
    go.ready.wait()
    until = time.monotonic() + seconds
    try:
        while time.monotonic() < until:
            try:
                done[ACTIONS[role](world)] += 1
            except Exception as exc:  # counted and shown: the run goes on
                done[f"error:{type(exc).__name__}"] += 1
                if done[f"error:{type(exc).__name__}"] == 1:
                    traceback.print_exc()
            time.sleep(world.rng.random() * 0.004)
    finally:
        db.dispose()
        go.results.put(done)


# --- the run and its checks -----------------------------------------------------------------


def _card(states: str) -> str:
    return (
        "EXISTS (SELECT 1 FROM deliveries d WHERE d.item_id = i.id AND d.kind = 'card'"
        f" AND d.state IN ({states}))"
    )


# name: (which items are checked, which of those break the invariant)
INVARIANTS = {
    "carded": (
        "i.state = 'pending' AND b.status = 'active' AND NOT b.trusted",
        "NOT " + _card("'pending', 'claimed', 'sending', 'sent', 'unknown'"),  # cancelled: none
    ),
    "trusted": ("b.status = 'active' AND b.trusted", "i.state = 'pending'"),
    "cards_decided": (_card("'pending', 'claimed'"), "i.state <> 'pending'"),
    "suspended": (
        "b.status = 'suspended'",
        "i.state IN ('pending', 'approved') OR " + _card("'pending', 'claimed'"),
    ),
}
DOUBLED = (
    "SELECT count(*), coalesce(sum(CASE WHEN n > 1 THEN 1 END), 0) FROM ("
    " SELECT count(*) AS n FROM deliveries"
    " WHERE kind IN ('card', 'channel_post') AND item_id IS NOT NULL"
    " GROUP BY kind, item_id, chat_id) AS g"
)


def invariants(session: Session) -> dict[str, tuple[int, int]]:
    """(checked, violations) of each invariant over the whole database."""
    found = {}
    for name, (checked, broken) in INVARIANTS.items():
        found[name] = _pair(
            session,
            f"SELECT count(*), coalesce(sum(CASE WHEN {broken} THEN 1 END), 0)"
            f" FROM items i JOIN businesses b ON b.id = i.business_id WHERE {checked}",
        )
    found["doubled"] = _pair(session, DOUBLED)
    return found


def published_after_suspension(session: Session) -> tuple[int, int]:
    """(suspended businesses recorded, those with more publications now than then)."""
    row = session.execute(
        text(
            "SELECT count(*), coalesce(sum(CASE WHEN now_published > s.published THEN 1 END), 0)"
            " FROM bench_suspensions s CROSS JOIN LATERAL (SELECT count(*) AS now_published"
            " FROM items i WHERE i.business_id = s.business_id AND i.state = 'published') p"
        )
    ).one()
    return int(row[0]), int(row[1])


def _pair(session: Session, sql: str) -> tuple[int, int]:
    row = session.execute(text(sql)).one()
    return int(row[0]), int(row[1])


def prepare(db: Database) -> str:
    """The bench's table, the moderators; returns the schema the processes connect to."""
    with db.write() as session:
        session.execute(text(SUSPENSIONS))
        people.add_moderator(session, ADMIN, "admin", None, utcnow())
        people.add_moderator(session, SECOND, "moderator", ADMIN, utcnow())
        return str(session.execute(text("SELECT current_schema()")).scalar_one())


@dataclass
class Start:
    """Shared with the processes: the starting signal and where they put their counts."""

    ready: Any
    results: Any


def run(db: Database, seconds: float, each: int, seed: int) -> dict[str, Any]:
    """Run every role at once for `seconds`; returns the actions done and the invariants."""
    schema = prepare(db)
    db.dispose()  # forked processes must not share the parent's connections
    context = multiprocessing.get_context("fork")
    go = Start(context.Event(), context.Queue())
    roles = [r for r in ROLES for _ in range(1 if r == "publisher" else each)]
    processes = [
        context.Process(target=act, args=(role, n, db.url, schema, seconds, seed * 100 + n, go))
        for n, role in enumerate(roles)
    ]
    for process in processes:
        process.start()
    go.ready.set()
    done: Counter[str] = sum((go.results.get() for _ in processes), Counter())
    for process in processes:
        process.join()
    with db.read() as session:
        checks = invariants(session)
        checks["published_after_suspension"] = published_after_suspension(session)
    return {"actions": dict(sorted(done.items())), "invariants": checks}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    with tempfile.TemporaryDirectory() as tmp, fresh_database("postgres", Path(tmp)) as db:
        started = time.perf_counter()
        figures = run(db, args.seconds, args.each, seed)
        wall = time.perf_counter() - started
    checks = figures["invariants"]
    errors = sum(n for name, n in figures["actions"].items() if name.startswith("error:"))
    print_table(
        f"Races: {args.seconds:.0f} s, {args.each} processes per role, seed {seed}",
        [{"action": name, "count": n} for name, n in figures["actions"].items()],
    )
    print_table(
        "Invariants",
        [{"invariant": name, "checked": c, "violations": v} for name, (c, v) in checks.items()],
    )
    return print_json(
        "races",
        {
            "seconds": args.seconds,
            "seed": seed,
            "wall_s": round(wall, 1),
            "actions": figures["actions"],
            "invariants": {
                name: {"checked": c, "violations": v} for name, (c, v) in checks.items()
            },
            "errors": errors,
            "targets": {"violations": 0, "errors": 0},
        },
    )


if __name__ == "__main__":
    main()
