"""A source's first read is its first SUCCESSFUL read (issue 15).

A failed first check (HTTP error, timeout, parse deadline, garbage) must not make the next
good read look like a regular one: only the initial picks reach the moderators, once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from feeds.fetch import Fetcher
from relay.parsing import ParserPool
from relay.poller import Poller, PollReport
from relay.settings import Settings
from storage import outbox, people
from storage.engine import Database
from storage.sources import get_source, update_source
from storage.values import Source
from tests.relay.test_pipeline import MOD, add_source, serve_feed
from tests.support.builders import T0, Clock, entries, relay_settings, rss
from tests.support.httpserver import LocalServer, Reply

FEED = "/feed.xml"
NOT_A_FEED = Reply(200, b"\x00\x01garbage<<<", {"Content-Type": "text/xml"})


@pytest.fixture
def settings() -> Settings:
    base = relay_settings()
    return replace(base, fetch=replace(base.fetch, total_timeout=0.5))


@pytest.fixture
def pool() -> Iterator[ParserPool]:
    parsers = ParserPool(1, deadline=20)
    yield parsers
    parsers.close()


async def poll(db: Database, settings: Settings, pool: ParserPool, clock: Clock) -> PollReport:
    async with Fetcher(settings.fetch) as fetcher:
        poller = Poller(db, fetcher, pool, settings, clock, rand=lambda: 0.5)
        return await poller.poll_once()


def source_now(db: Database, source_id: int) -> Source:
    with db.read() as s:
        source = get_source(s, source_id)
    assert source is not None
    return source


def cards(db: Database) -> int:
    with db.read() as s:
        return sum(1 for d in outbox.deliveries_for(s) if d.kind == "card")


@pytest.mark.parametrize(
    ("first", "deadline", "error"),
    [
        (Reply(500), 20.0, "http_status"),
        (Reply(200, rss(entries(10)), {"Content-Type": "application/rss+xml"}, delay=1.5), 20.0,
         "timeout"),
        (Reply(200, rss(entries(10)), {"Content-Type": "application/rss+xml"}), 1e-6,
         "parse_timeout"),
        (NOT_A_FEED, 20.0, "not_a_feed"),
    ],
    ids=["http-error", "fetch-timeout", "parse-deadline", "not-a-feed"],
)  # fmt: skip
async def test_a_failed_first_read_then_a_good_one_queues_only_the_initial_picks(
    db: Database,
    server: LocalServer,
    settings: Settings,
    pool: ParserPool,
    first: Reply,
    deadline: float,
    error: str,
) -> None:
    with db.write() as s:
        people.add_moderator(s, MOD, "admin", None, T0)
    source_id = add_source(db, server.url(FEED))
    server.route(FEED, first)
    pool.deadline = deadline
    clock = Clock()
    failed = await poll(db, settings, pool, clock)
    assert (failed.failed, failed.errors) == (1, {error: 1})
    after_failure = source_now(db, source_id)
    assert after_failure.last_checked_at == T0
    assert after_failure.first_read_at is None

    pool.deadline = 20.0
    serve_feed(server, FEED, rss(entries(10)))
    clock.now = after_failure.next_check_at
    good = await poll(db, settings, pool, clock)
    assert (good.changed, good.new_items, good.queued) == (1, 10, 3)
    assert cards(db) == 3
    assert source_now(db, source_id).first_read_at == clock.now


async def test_after_the_first_good_read_new_items_are_queued_as_usual(
    db: Database, server: LocalServer, settings: Settings, pool: ParserPool
) -> None:
    source_id = add_source(db, server.url(FEED))
    serve_feed(server, FEED, rss(entries(10)), etag='"a"')
    clock = Clock()
    assert (await poll(db, settings, pool, clock)).queued == 3
    first_read = source_now(db, source_id).first_read_at
    assert first_read == T0

    server.route(FEED, Reply(500))  # a failure later on keeps the first read
    clock.advance(hours=1)
    assert (await poll(db, settings, pool, clock)).failed == 1
    assert source_now(db, source_id).first_read_at == first_read

    newer = entries(2, prefix="n", start=T0 + timedelta(hours=3))
    serve_feed(server, FEED, rss(newer + entries(10)), etag='"b"')
    clock.now = source_now(db, source_id).next_check_at
    report = await poll(db, settings, pool, clock)
    assert (report.new_items, report.queued) == (2, 2)
    assert source_now(db, source_id).first_read_at == first_read


async def test_an_unchanged_answer_counts_as_a_successful_read(
    db: Database, server: LocalServer, settings: Settings, pool: ParserPool
) -> None:
    # A source read before first_read_at existed whose row was not backfilled (e.g. its
    # last check failed): a 304 proves it was read, so the column is filled.
    source_id = add_source(db, server.url(FEED))
    serve_feed(server, FEED, rss(entries(3)), etag='"a"')
    with db.write() as s:
        update_source(s, source_id, etag='"a"', last_checked_at=T0, last_error="timeout")
    clock = Clock(T0 + timedelta(hours=1))
    assert (await poll(db, settings, pool, clock)).not_modified == 1
    assert source_now(db, source_id).first_read_at == clock.now
