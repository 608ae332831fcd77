"""Benchmark the digest job: compose every due subscriber's digest inside a running event loop,
while a probe measures how long the loop is kept from running.

    python -m bench.digests                       # 1,000 subscribers (≈10 s)
    python -m bench.digests --subscribers 10000   # ≈1 min
    python -m bench.digests --db postgres

The database holds `--businesses` businesses (8 categories, 6 cities), `--items` items
approved over the last day plus as many over the six days before, and N subscribers with
mixed languages, hours, time zones, filters and previous digests, every one of them due now.
A second loop task writes a small transaction every 20 ms, as the sender does between sends:
a long write transaction would keep it (and so the loop) waiting on SQLite's lock.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select

from bench.common import fresh_database, print_json, print_table
from relay.categories import CATEGORIES
from relay.digest import digest_period
from relay.digest_job import compose_due_digests
from storage import outbox, people
from storage.engine import Database
from storage.items import NewItem, insert_items
from storage.tables import BUSINESSES, DELIVERIES, DIGESTS, SUBSCRIBERS

NOW = datetime(2026, 11, 23, 19, 30, tzinfo=UTC)  # a Monday: 20:30 Paris, 14:30 Montréal
CITIES = ("Lyon", "Villeurbanne", "Saint-Étienne", "Grenoble", "Annecy", "Vienne")
ZONES = ("Europe/Paris",) * 8 + ("America/Montreal", "UTC")
PROBE_SECONDS = 0.005
WRITER_SECONDS = 0.020
FIRST_CHAT = 300_000


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--items", type=int, default=200, help="approved over the last day")
    parser.add_argument("--businesses", type=int, default=40)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--no-writer", action="store_true", help="no sender-like writer task")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


# --- the data -----------------------------------------------------------------------------


def add_businesses(db: Database, count: int, rng: random.Random) -> list[int]:
    rows = [
        {
            "name": f"Commerce {n} & fils",
            "category": rng.choice(CATEGORIES),
            "city": rng.choice(CITIES),
            "status": "active",
            "owner_language": "fr",
            "trusted": True,
            "created_at": NOW - timedelta(days=30),
        }
        for n in range(count)
    ]
    with db.write() as session:
        session.execute(insert(BUSINESSES), rows)
        return list(session.execute(select(BUSINESSES.c.id).order_by(BUSINESSES.c.id)).scalars())


def new_item(business_id: int, n: int, at: datetime, rng: random.Random) -> NewItem:
    words = ["Arrivage", "Atelier", "Horaires", "Nouveautés", "Soldes", "Rencontre", "Dégustation"]
    title = f"{rng.choice(words)} du {at:%d/%m} : venez découvrir notre sélection n° {n}"
    return NewItem(
        source_id=None,
        business_id=business_id,
        identity=f"bench-{n}",
        story_key=None,
        fingerprint=None,
        fp_band0=None,
        fp_band1=None,
        fp_band2=None,
        fp_band3=None,
        title=title,
        link=f"https://commerce-{business_id}.example/actualites/{n}",
        summary="Venez découvrir nos nouveautés et nos conseils de la semaine. " * 3,
        image=None,
        published=at,
        first_seen=at,
        state=rng.choice(("published", "published", "approved")),
        approved_at=at,
    )


def add_items(db: Database, businesses: list[int], per_day: int, rng: random.Random) -> None:
    """`per_day` items over the last day, as many again over the six days before."""
    stamps = [NOW - timedelta(seconds=rng.uniform(0, 86_400)) for _ in range(per_day)]
    stamps += [NOW - timedelta(seconds=rng.uniform(86_400, 7 * 86_400)) for _ in range(per_day)]
    items = [new_item(rng.choice(businesses), n, at, rng) for n, at in enumerate(stamps)]
    with db.write() as session:
        insert_items(session, items)


@dataclass
class Population:
    subscribers: list[dict[str, Any]] = field(default_factory=list)
    digests: list[dict[str, Any]] = field(default_factory=list)


def filters(rng: random.Random) -> tuple[str, str]:
    """(categories, cities): 30% none, 35% a city, 20% one or two categories, 15% both."""
    roll = rng.random()
    categories = ",".join(rng.sample(CATEGORIES, rng.choice((1, 2))))
    city = rng.choice(CITIES)
    if roll < 0.30:
        return "", ""
    if roll < 0.65:
        return "", city
    if roll < 0.85:
        return categories, ""
    return categories.split(",")[0], city


def previous_run(zone: str, hour: int, days: int) -> datetime:
    """When the job composed this subscriber's previous digest: `days` ago at their hour."""
    local = NOW.astimezone(ZoneInfo(zone)) - timedelta(days=days)
    return local.replace(hour=hour, minute=0, second=20, microsecond=0).astimezone(UTC)


def subscriber_row(n: int, rng: random.Random, population: Population) -> None:
    """One subscriber due now; 85% had a digest at their hour before, 15% are new."""
    zone, weekly = rng.choice(ZONES), rng.random() < 0.15
    hour = rng.randint(6, 14)  # ≤ local hour now in every zone used: all due
    categories, cities = filters(rng)
    row = {
        "chat_id": FIRST_CHAT + n,
        "language": "fr" if rng.random() < 0.7 else "en",
        "frequency": "weekly" if weekly else "daily",
        "hour": hour,
        "timezone": zone,
        "categories": categories,
        "cities": cities,
        "active": True,
        "created_at": NOW - timedelta(days=60),
    }
    if rng.random() < 0.85:
        cutoff = previous_run(zone, hour, 7 if weekly else 1)
        period = "W2026-47" if weekly else f"D{cutoff.astimezone(ZoneInfo(zone)).date()}"
        population.digests.append({"chat_id": row["chat_id"], "period": period, "cutoff": cutoff})
    else:  # subscribed during the last day: the first digest looks back one more day
        cutoff = NOW - timedelta(days=1, seconds=rng.uniform(0, 86_400))
    row["last_digest_at"] = cutoff
    population.subscribers.append(row)


def add_subscribers(db: Database, count: int, rng: random.Random) -> None:
    population = Population()
    for n in range(count):
        subscriber_row(n, rng, population)
    with db.write() as session:
        session.execute(insert(SUBSCRIBERS), population.subscribers)
        ids = {r[0]: r[1] for r in session.execute(select(SUBSCRIBERS.c.chat_id, SUBSCRIBERS.c.id))}
        digests = [
            {
                "subscriber_id": ids[d["chat_id"]],
                "period": d["period"],
                "items": 5,
                "cutoff": d["cutoff"],
                "created_at": d["cutoff"],
            }
            for d in population.digests
        ]
        session.execute(insert(DIGESTS), digests)


def populate(db: Database, args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    businesses = add_businesses(db, args.businesses, rng)
    add_items(db, businesses, args.items, rng)
    add_subscribers(db, args.subscribers, rng)


def due_count(db: Database) -> int:
    """Subscribers the pure rule says are due now (every one, by construction)."""
    with db.read() as session:
        return sum(1 for s in people.digest_candidates(session) if digest_period(NOW, s))


# --- the loop probes ----------------------------------------------------------------------


@dataclass
class Probe:
    """Lateness of a task that sleeps PROBE_SECONDS in a loop: how long the loop was kept."""

    lateness: list[float] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)
    writer_cpu: float = 0.0  # counted apart: the process's CPU time includes it
    running: bool = True

    async def sleeper(self) -> None:
        while self.running:
            started = time.perf_counter()
            await asyncio.sleep(PROBE_SECONDS)
            self.lateness.append(time.perf_counter() - started - PROBE_SECONDS)

    async def writer(self, db: Database) -> None:
        """A small write transaction on the loop every 20 ms, as the sender's marks are."""
        while self.running:
            started, cpu = time.perf_counter(), time.thread_time()
            outbox.release_claims(db, [0])
            self.writes.append(time.perf_counter() - started)
            self.writer_cpu += time.thread_time() - cpu
            await asyncio.sleep(WRITER_SECONDS)


def python_loop_us() -> float:
    """CPU µs of a fixed pure-Python loop (≈10 on an idle modern core): how busy the machine
    was, to read the CPU figures against."""
    started = time.process_time()
    for _ in range(500):
        sum(range(1000))
    return (time.process_time() - started) / 500 * 1e6


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(db: Database, args: argparse.Namespace) -> dict[str, Any]:
    probe = Probe()
    tasks = [asyncio.create_task(probe.sleeper())]
    if not args.no_writer:
        tasks.append(asyncio.create_task(probe.writer(db)))
    await asyncio.sleep(0.05)
    wall, cpu = time.perf_counter(), time.process_time()
    composed = await compose_due_digests(db, NOW, batch=args.batch)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    probe.running = False
    await asyncio.gather(*tasks)
    return {
        "composed": composed,
        "wall_s": wall,
        "cpu_s": cpu - probe.writer_cpu,
        "writer_cpu_s": probe.writer_cpu,
        "digests_per_s": composed / wall if wall else 0.0,
        "longest_block_ms": max(probe.lateness, default=0.0) * 1000,
        "p99_block_ms": percentile(probe.lateness, 0.99) * 1000,
        "median_block_ms": statistics.median(probe.lateness or [0.0]) * 1000,
        "longest_loop_write_ms": max(probe.writes, default=0.0) * 1000,
    }


def outcome(db: Database) -> dict[str, int]:
    """What was written: digests of this run, their messages, duplicates."""
    with db.read() as session:
        rows = session.execute(
            select(DIGESTS.c.subscriber_id, func.count())
            .where(DIGESTS.c.created_at == NOW)
            .group_by(DIGESTS.c.subscriber_id)
        ).all()
        messages = session.execute(select(func.count()).select_from(DELIVERIES)).scalar_one()
    return {
        "digest_rows": sum(n for _, n in rows),
        "subscribers_with_two": sum(1 for _, n in rows if n > 1),
        "messages": int(messages),
    }


def targets(figures: dict[str, Any], subscribers: int) -> dict[str, bool]:
    per_10k = figures["cpu_s"] * 10_000 / max(subscribers, 1)
    return {
        "longest_block_le_100ms": figures["longest_block_ms"] <= 100,
        "cpu_le_5s_per_10k": per_10k <= 5.0,
        "one_digest_each": figures["digest_rows"] == figures["due"]
        and figures["subscribers_with_two"] == 0,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.db, Path(tmp)) as db:
        setup = time.perf_counter()
        populate(db, args)
        setup = time.perf_counter() - setup
        due = due_count(db)
        calibration = python_loop_us()
        figures = asyncio.run(measure(db, args))
        calibration = (calibration + python_loop_us()) / 2
        figures.update(due=due, setup_s=setup, python_loop_us=calibration, **outcome(db))
    title = f"Digests: {args.subscribers} subscribers, {2 * args.items} items ({args.db})"
    print_table(title, [figures])
    return print_json(
        "digests",
        {
            "subscribers": args.subscribers,
            "items": args.items,
            "batch": args.batch,
            "writer": not args.no_writer,
            "db": args.db,
            **figures,
            "targets": targets(figures, args.subscribers),
        },
    )


if __name__ == "__main__":
    main()
