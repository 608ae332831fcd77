"""Benchmark the dedupe decision and insert of new items against stores of 100k and 1M items,
against a plain sqlite3 `executemany` of the same rows measured in the same run.

    python -m bench.dedupe --items 100000 1000000 --batches 300

Per batch (one source, ~20 new items, one write transaction): known_identities,
story_candidates, judge_stories, insert_items — what relay.ingest.record_items does for new
items. The whole record_items (fingerprints, moderation cards, source update) is timed too.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bench.common import Stopwatch, fresh_database, print_json, print_table
from bench.farm import VOCABULARY
from feeds.keys import fingerprint, fingerprint_bands, story_key
from feeds.models import FeedItem, FetchResult, ParsedFeed
from relay.ingest import NEAR_DUPLICATE_DAYS, record_items
from relay.intake import Keyed, judge_stories, unseen
from relay.parsing import ParsedDocument
from relay.settings import Settings
from storage import people
from storage.engine import Database
from storage.items import NewItem, insert_items, known_identities, story_candidates
from storage.sources import get_source
from storage.tables import BUSINESSES, ITEMS, SOURCES

BATCH = 20  # new items per source check
ITEMS_PER_SOURCE = 100
STATES = ("seen",) * 12 + ("pending", "approved", "rejected", "duplicate") + ("published",) * 4
CHUNK = 20_000


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--batches", type=int, default=300, help="measured batches per size")
    parser.add_argument("--days", type=int, default=365, help="first_seen spread of the store")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seed", type=int, default=3)
    return parser.parse_args(argv)


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choices(VOCABULARY, k=words))


def site(source: int, number: int) -> str:
    return f"https://commerce-{source}.example/actualites/{number}"


def stored_row(rng: random.Random, source: int, number: int, now: datetime) -> dict[str, Any]:
    """A realistic stored item: identity, story key, fingerprint bands, a state, some text."""
    fp = rng.getrandbits(64) - (1 << 63)
    bands = fingerprint_bands(fp)
    state = rng.choice(STATES)
    return {
        "source_id": source,
        "business_id": source,
        "identity": "g:" + site(source, number),
        "story_key": story_key(site(source, number)),
        "fingerprint": fp,
        **{f"fp_band{i}": bands[i] for i in range(4)},
        "title": f"Nouvelle {number} du commerce {source}",
        "link": site(source, number),
        "summary": None,
        "first_seen": now - timedelta(seconds=rng.uniform(0, 86_400 * 365)),
        "state": state,
        "approved_at": now if state in ("approved", "published") else None,
    }


def prefill(db: Database, start: int, stop: int, now: datetime, seed: int) -> float:
    """Grow the store from `start` to `stop` items (Core batch inserts); returns µs per row."""
    rng = random.Random(seed + start)
    first, last = start // ITEMS_PER_SOURCE, (stop - 1) // ITEMS_PER_SOURCE
    owners = [
        {"id": s + 1, "name": f"Commerce {s}", "owner_language": "fr", "status": "active"}
        | {"trusted": False, "created_at": now}
        for s in range(first, last + 1)
        if s * ITEMS_PER_SOURCE >= start
    ]
    sources = [
        {"id": o["id"], "business_id": o["id"], "url": site(o["id"], 0) + ".xml", "kind": "rss"}
        | {"next_check_at": now, "interval_seconds": 900, "failures": 0, "paused": False}
        | {"created_at": now, "last_checked_at": now - timedelta(hours=1)}
        for o in owners
    ]
    with db.write() as session:
        if owners:
            session.execute(insert(BUSINESSES), owners)
            session.execute(insert(SOURCES), sources)
    with Stopwatch() as watch:
        for chunk in range(start, stop, CHUNK):
            rows = [
                stored_row(rng, n // ITEMS_PER_SOURCE + 1, n, now)
                for n in range(chunk, min(chunk + CHUNK, stop))
            ]
            with db.write() as session:
                session.execute(insert(ITEMS), rows)
    return watch.seconds / max(stop - start, 1) * 1e6


def new_batch(rng: random.Random, source: int, tag: str) -> list[Keyed]:
    """~20 unseen items of one source, fingerprinted (as record_items does before deciding)."""
    keyed = []
    for n in range(BATCH):
        link = site(source, 10_000_000 + n) + f"-{tag}"
        item = FeedItem(text(rng, 8), link, link, None, text(rng, 60), None)
        keyed.append(
            Keyed(item, "g:" + link, story_key(link), fingerprint(item.title, item.summary))
        )
    return keyed


def decide_and_insert(db: Database, source: int, keyed: list[Keyed], now: datetime) -> None:
    """The dedupe core of record_items for one source's new items, in one transaction."""
    with db.write() as session:
        known = known_identities(session, source, [k.identity for k in keyed])
        fresh = unseen(keyed, known)
        bands = [fingerprint_bands(k.fingerprint) for k in fresh if k.fingerprint is not None]
        since = now - timedelta(days=NEAR_DUPLICATE_DAYS)
        stored = story_candidates(
            session, [k.story_key for k in fresh if k.story_key], bands, since
        )
        verdicts = judge_stories(fresh, stored, source)
        insert_items(
            session,
            [
                new_item(source, k, v.duplicate_of_id, now)
                for k, v in zip(fresh, verdicts, strict=True)
            ],
        )


def new_item(source: int, k: Keyed, duplicate_of: int | None, now: datetime) -> NewItem:
    bands = fingerprint_bands(k.fingerprint) if k.fingerprint is not None else (None,) * 4
    return NewItem(
        source, source, k.identity, k.story_key, k.fingerprint, *bands, k.item.title,
        k.item.link, k.item.summary, None, None, now, "duplicate" if duplicate_of else "pending",
        None, duplicate_of,
    )  # fmt: skip


def full_record(db: Database, source: int, keyed: list[Keyed], now: datetime) -> None:
    """relay.ingest.record_items itself, as the poller calls it for a changed feed."""
    with db.read() as session:
        stored_source = get_source(session, source)
    assert stored_source is not None
    items = tuple(k.item for k in keyed)
    document = ParsedDocument(
        ParsedFeed("rss", "Commerce", None, items),
        tuple(k.identity for k in keyed),
        tuple(k.story_key for k in keyed),
    )
    result = FetchResult(stored_source.url, stored_source.url, 200, body_hash="x" * 64)
    record_items(db, stored_source, result, document, now, Settings(), 0.5)


def plain_sqlite(path: str, batches: list[list[NewItem]]) -> float:
    """µs per row: plain sqlite3 executemany of the same rows, one transaction per batch."""
    columns = list(asdict(batches[0][0]))
    sql = f"INSERT INTO items ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    with Stopwatch() as watch:
        for batch in batches:
            rows = [
                tuple(_plain(v) for v in asdict(i).values()) for i in batch
            ]  # stamped as SQLAlchemy stores them
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, [(*r[:2], r[2] + "#b", *r[3:]) for r in rows])
            conn.execute("COMMIT")
    conn.close()
    return watch.seconds / sum(len(b) for b in batches) * 1e6


def _plain(value: Any) -> Any:
    return (
        value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
        if isinstance(value, datetime)
        else value
    )


def measure(db: Database, size: int, args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    rng = random.Random(args.seed + size)
    sources = size // ITEMS_PER_SOURCE
    picks = [rng.randrange(1, sources + 1) for _ in range(args.batches * 2)]
    with Stopwatch() as fp_watch:
        batches = [new_batch(rng, s, f"{size}-{i}") for i, s in enumerate(picks)]
    core, full = (
        list(zip(picks, batches, strict=True))[: args.batches],
        list(zip(picks, batches, strict=True))[args.batches :],
    )
    with Stopwatch() as core_watch:
        for source, keyed in core:
            decide_and_insert(db, source, keyed, now)
    with Stopwatch() as full_watch:
        for source, keyed in full:
            full_record(db, source, keyed, now)
    items = args.batches * BATCH
    plain = None
    if db.is_sqlite:
        rows = [[new_item(s, k, None, now) for k in keyed] for s, keyed in core]
        plain = plain_sqlite(db.url.removeprefix("sqlite:///"), rows)
    return {
        "store_items": size,
        "batches": args.batches,
        "dedupe_insert_us_per_item": core_watch.seconds / items * 1e6,
        "record_items_us_per_item": full_watch.seconds / items * 1e6,
        "fingerprint_us_per_item": fp_watch.seconds / (2 * items) * 1e6,
        "plain_sqlite3_us_per_item": plain,
        "ratio_vs_plain": core_watch.seconds / items * 1e6 / plain if plain else None,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    now = datetime.now(UTC)
    rows, prefills = [], []
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.db, Path(tmp)) as db:
        with db.write() as session:
            people.add_moderator(session, 900, "admin", None, now)
        stored = 0
        for size in sorted(args.items):
            cost = prefill(db, stored, size, now, args.seed)
            prefills.append({"from": stored, "to": size, "us_per_row": cost})
            stored = size
            rows.append(measure(db, size, args, now))
    print_table(f"Prefill with Core batch inserts ({args.db})", prefills)
    print_table(f"Dedupe + insert of new items, {BATCH} per transaction ({args.db})", rows)
    largest = rows[-1]
    return print_json(
        "dedupe",
        {
            "db": args.db,
            "sizes": rows,
            "prefill": prefills,
            "targets": {
                "le_100us_per_item_at_largest": largest["dedupe_insert_us_per_item"] <= 100,
            },
        },
    )


if __name__ == "__main__":
    main()
