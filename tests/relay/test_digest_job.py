"""The digest job against a real database: every due subscriber gets the digest the rules say
(window, filters, hour, language), once, also with two composers at once, while the event
loop keeps running."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from relay.digest import (
    ComposedDigest,
    DueDigest,
    compose_digest,
    digest_period,
    select_for_subscriber,
)
from relay.digest_job import compose_due_digests, labels, send_due_digests, write_groups
from storage import items as item_queries
from storage import people
from storage.engine import Database
from storage.items import insert_items
from storage.people import NewDigest
from storage.tables import BUSINESSES, DELIVERIES, DIGESTS, SUBSCRIBERS
from storage.values import Frequency, Subscriber
from tests.support.builders import item_row

NOW = datetime(2026, 11, 23, 19, 30, tzinfo=UTC)  # a Monday: 20:30 in Paris, 14:30 Montréal
CITIES = ("Lyon", "Saint-Étienne", "Grenoble")
CATEGORIES = ("bakery", "florist", "bookshop")
ZONES = ("Europe/Paris", "America/Montreal", "UTC")


def add_items(db: Database, count: int) -> None:
    """Six businesses (category × city), `count` items approved over the last two days."""
    rng = random.Random(3)
    with db.write() as s:
        s.execute(
            insert(BUSINESSES),
            [
                {"name": f"Commerce {n}", "category": CATEGORIES[n % 3], "city": CITIES[n % 3]}
                | {"status": "active", "owner_language": "fr", "trusted": True}
                for n in range(6)
            ],
        )
        ids = list(s.execute(select(BUSINESSES.c.id)).scalars())
        at = [NOW - timedelta(seconds=rng.uniform(0, 2 * 86_400)) for _ in range(count)]
        insert_items(
            s,
            [
                item_row(
                    rng.choice(ids),
                    f"i{n}",
                    when,
                    title=f"Nouvelle {n} <b>&",
                    link=f"https://shop.example/{n}",
                    state=rng.choice(("approved", "published")),
                )
                for n, when in enumerate(at)
            ],
        )


def subscriber_rows(count: int, seed: int = 5) -> list[dict[str, object]]:
    """Mixed subscribers: languages, frequencies (off too), hours (some not due yet), zones,
    filters, inactive ones, and first digests that look back a day or two."""
    rng = random.Random(seed)
    return [
        {
            "chat_id": 10_000 + n,
            "language": rng.choice(("fr", "en")),
            "frequency": rng.choice(("daily", "daily", "weekly", "off")),
            "hour": rng.randint(6, 23),
            "timezone": rng.choice(ZONES),
            "categories": ",".join(rng.sample(CATEGORIES, rng.randint(0, 2))),
            "cities": rng.choice(("", "", "Lyon", "saint etienne", "Grenoble,Lyon")),
            "active": rng.random() < 0.95,
            "last_digest_at": NOW - timedelta(hours=rng.uniform(1, 60)),
        }
        for n in range(count)
    ]


def add_subscribers(db: Database, count: int) -> None:
    with db.write() as s:
        s.execute(insert(SUBSCRIBERS), subscriber_rows(count))
        ids = list(s.execute(select(SUBSCRIBERS.c.id).order_by(SUBSCRIBERS.c.id)).scalars())
        # A third had a digest before, whose cutoff (not last_digest_at) starts their window.
        earlier = [
            {"subscriber_id": i, "period": "old", "items": 1, "cutoff": NOW - timedelta(hours=h)}
            | {"created_at": NOW - timedelta(days=3)}
            for i, h in zip(ids[::3], range(1, 10_000), strict=False)
        ]
        s.execute(insert(DIGESTS), earlier)


def expected_deliveries(db: Database) -> dict[str, str]:
    """What the digest rules give, one subscriber at a time (the job's previous algorithm)."""
    expected: dict[str, str] = {}
    with db.read() as s:
        for subscriber in people.digest_candidates(s):
            period = digest_period(NOW, subscriber)
            last = subscriber.last_digest_at
            if period is None or (last and digest_period(last, subscriber) == period):
                continue
            after = people.last_cutoff(s, subscriber.id) or last
            chosen = select_for_subscriber(item_queries.items_for_digest(s, after, NOW), subscriber)
            messages = compose_digest(
                chosen, labels=labels(subscriber.language, subscriber.frequency)
            )
            for n, body in enumerate(messages):
                expected[f"digest:{subscriber.id}:{period}:{n}"] = body
    return expected


def due_subscribers(db: Database) -> set[tuple[int, str]]:
    with db.read() as s:
        return {
            (sub.id, period)
            for sub in people.digest_candidates(s)
            if (period := digest_period(NOW, sub))
            and not (sub.last_digest_at and digest_period(sub.last_digest_at, sub) == period)
        }


def written(db: Database) -> tuple[dict[str, str], Counter[tuple[int, str]]]:
    """Digest deliveries by key, and how many digest rows each (subscriber, period) has."""
    with db.read() as s:
        query = select(DELIVERIES.c.key, DELIVERIES.c.text).where(DELIVERIES.c.kind == "digest")
        deliveries = {row[0]: row[1] for row in s.execute(query)}
        rows = s.execute(
            select(DIGESTS.c.subscriber_id, DIGESTS.c.period, func.count())
            .where(DIGESTS.c.period != "old")
            .group_by(DIGESTS.c.subscriber_id, DIGESTS.c.period)
        ).all()
    return deliveries, Counter({(r[0], r[1]): r[2] for r in rows})


def test_the_job_composes_what_the_rules_say_once(db: Database) -> None:
    add_items(db, 120)
    add_subscribers(db, 300)
    expected, due = expected_deliveries(db), due_subscribers(db)
    composed = send_due_digests(db, NOW, batch=40)
    deliveries, rows = written(db)
    assert deliveries == expected
    assert rows == Counter(dict.fromkeys(due, 1))  # every due subscriber, once
    assert composed == len({key.split(":")[1] for key in expected})
    assert send_due_digests(db, NOW + timedelta(minutes=1)) == 0  # nothing twice


class LoopProbe:
    """A task that sleeps 5 ms at a time while the job runs: it ticks only if the loop does."""

    def __init__(self) -> None:
        self.ticks = 0
        self.longest = 0.0  # kept for a look in a debugger; timings are the bench's business
        self.running = True

    async def run(self) -> None:
        while self.running:
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            self.longest = max(self.longest, time.perf_counter() - started)
            self.ticks += 1


async def test_two_thousand_subscribers_each_get_one_digest_while_the_loop_runs(
    db: Database,
) -> None:
    add_items(db, 150)
    add_subscribers(db, 2000)
    due = due_subscribers(db)
    probe = LoopProbe()
    ticking = asyncio.create_task(probe.run())
    before = probe.ticks
    composed = await compose_due_digests(db, NOW)
    during = probe.ticks - before
    probe.running = False
    await ticking
    deliveries, rows = written(db)
    assert rows == Counter(dict.fromkeys(due, 1))  # every due subscriber, once
    assert composed == len({key.split(":")[1] for key in deliveries})
    assert during > 1  # the loop kept running while the digests were composed


def compose_in_threads(db: Database) -> list[int]:
    """Two composers started together, as two workers would, each with its own sessions."""
    start = threading.Barrier(2)
    results: list[int] = []

    def compose() -> None:
        start.wait()
        results.append(send_due_digests(db, NOW, batch=20))

    threads = [threading.Thread(target=compose) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


async def compose_in_tasks(db: Database) -> list[int]:
    return list(
        await asyncio.gather(
            compose_due_digests(db, NOW, batch=20), compose_due_digests(db, NOW, batch=20)
        )
    )


@pytest.mark.parametrize("how", ["threads", "tasks"])
async def test_two_composers_at_once_compose_each_digest_once(db: Database, how: str) -> None:
    add_items(db, 120)
    add_subscribers(db, 400)
    expected, due = expected_deliveries(db), due_subscribers(db)
    results = compose_in_threads(db) if how == "threads" else await compose_in_tasks(db)
    deliveries, rows = written(db)
    assert len(results) == 2
    assert rows == Counter(dict.fromkeys(due, 1))  # every due subscriber, once
    assert deliveries == expected
    assert sum(results) == len({key.split(":")[1] for key in expected})  # each counted once


def test_record_digests_claims_each_period_once_and_moves_the_cutoff(db: Database) -> None:
    with db.write() as s:
        s.execute(insert(SUBSCRIBERS), subscriber_rows(3))
        ids = list(s.execute(select(SUBSCRIBERS.c.id).order_by(SUBSCRIBERS.c.id)).scalars())
    first = [NewDigest(ids[0], "D1", 2, NOW), NewDigest(ids[1], "D1", 0, NOW)]
    again = [NewDigest(ids[1], "D1", 5, NOW), NewDigest(ids[2], "D1", 1, NOW)]
    with db.write() as s:
        assert people.record_digests(s, first, NOW) == {(ids[0], "D1"), (ids[1], "D1")}
    with db.write() as s:
        assert people.record_digests(s, again, NOW) == {(ids[2], "D1")}
        assert people.record_digests(s, [], NOW) == set()
    with db.read() as s:
        assert people.last_cutoffs(s, ids) == dict.fromkeys(ids, NOW)
        stamps = s.execute(select(SUBSCRIBERS.c.last_digest_at)).scalars().all()
        assert set(stamps) == {NOW}


@pytest.mark.parametrize(
    ("sizes", "rows", "expected"),
    [
        ([], 10, []),
        ([3, 3, 3], 10, [[3, 3], [3]]),  # 4 + 4 rows fit, the third would make 12
        ([20, 1], 10, [[20], [1]]),  # one digest at least, even over the limit
        ([0, 0, 0], 2, [[0, 0], [0]]),  # an empty digest is one row
    ],
)
def test_write_groups(sizes: list[int], rows: int, expected: list[list[int]]) -> None:
    reader = Subscriber(1, 42, "fr", Frequency.DAILY, 18, "Europe/Paris", (), (), True)
    due = DueDigest(reader, "D2026-11-23", None)
    digests = [ComposedDigest(due, size, ("m",) * size) for size in sizes]
    groups = write_groups(digests, rows)
    assert [[len(d.messages) for d in group] for group in groups] == expected
