"""The poll pipeline end to end: local feed server → poller → database.

Asserts what a business owner or a moderator would notice: which news is queued, which
is recorded as already seen or as a duplicate, how failing sources back off and pause.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlmodel import select

from feeds.fetch import Fetcher
from relay.parsing import ParserPool
from relay.poller import Poller
from relay.settings import PollingSettings, Settings
from storage import items as item_queries
from storage import outbox, people
from storage.engine import Database
from storage.sources import NewBusiness, create_business, create_source, get_source
from storage.tables import ItemRow
from storage.values import BusinessStatus, ItemState
from tests.support.builders import T0, Clock, Entry, entries, relay_settings, rss
from tests.support.httpserver import LocalServer, Reply

MOD = 500


@pytest.fixture
def settings() -> Settings:
    return relay_settings()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def poller(db: Database, settings: Settings, clock: Clock) -> AsyncIterator[Poller]:
    with db.write() as s:
        people.add_moderator(s, MOD, "admin", None, T0)
    async with Fetcher(settings.fetch) as fetcher:
        yield Poller(db, fetcher, ParserPool(0, 10), settings, clock, rand=lambda: 0.5)


def add_source(
    db: Database,
    url: str,
    *,
    name: str = "Boulangerie Martin",
    trusted: bool = False,
    status: BusinessStatus = BusinessStatus.ACTIVE,
    owner: int = 100,
) -> int:
    with db.write() as s:
        business = create_business(
            s, NewBusiness(name=name, owner_id=owner, status=status, trusted=trusted), T0
        )
        return create_source(s, business.id, url, "rss", T0).id


def states(db: Database) -> dict[str, str]:
    with db.read() as s:
        return {row.identity: row.state for row in s.exec(select(ItemRow)).all()}


def serve_feed(server: LocalServer, path: str, body: bytes, etag: str = '"v1"') -> None:
    def handler(request):  # type: ignore[no-untyped-def]
        if request.headers.get("if-none-match") == etag:
            return Reply(304, headers={"ETag": etag})
        return Reply(200, body, {"Content-Type": "application/rss+xml", "ETag": etag})

    server.route(path, handler)


async def test_a_new_source_queues_only_its_newest_recent_items(
    db: Database, poller: Poller, server: LocalServer
) -> None:
    serve_feed(server, "/feed.xml", rss(entries(10)))
    add_source(db, server.url("/feed.xml"))
    report = await poller.poll_once()
    assert (report.claimed, report.changed, report.new_items, report.queued) == (1, 1, 10, 3)
    got = states(db)
    assert [got[f"g:p{i}"] for i in range(4)] == ["pending", "pending", "pending", "seen"]
    with db.read() as s:
        cards = outbox.deliveries_for(s)
    assert len(cards) == 3
    assert all(c.chat_id == MOD and c.kind == "card" for c in cards)


async def test_old_news_is_not_queued_when_a_source_is_added(
    db: Database, poller: Poller, server: LocalServer
) -> None:
    serve_feed(server, "/old.xml", rss(entries(5, start=T0 - timedelta(days=60))))
    add_source(db, server.url("/old.xml"))
    report = await poller.poll_once()
    assert report.new_items == 5
    assert report.queued == 0


async def test_unchanged_feed_is_asked_conditionally_and_skipped(
    db: Database, poller: Poller, server: LocalServer, clock: Clock
) -> None:
    serve_feed(server, "/feed.xml", rss(entries(3)))
    source_id = add_source(db, server.url("/feed.xml"))
    await poller.poll_once()
    clock.advance(hours=1)
    report = await poller.poll_once()
    assert report.not_modified == 1
    assert server.hits("/feed.xml")[-1].headers.get("if-none-match") == '"v1"'
    with db.read() as s:
        source = get_source(s, source_id)
    assert source is not None
    assert source.next_check_at == clock.now + timedelta(minutes=15)


async def test_an_item_that_leaves_and_comes_back_is_never_queued_again(
    db: Database, poller: Poller, server: LocalServer, clock: Clock
) -> None:
    first = entries(3)
    serve_feed(server, "/feed.xml", rss(first), etag='"a"')
    add_source(db, server.url("/feed.xml"))
    await poller.poll_once()
    newer = entries(1, prefix="n", start=T0 + timedelta(hours=2))
    serve_feed(server, "/feed.xml", rss(newer + first[1:]), etag='"b"')
    clock.advance(hours=1)
    assert (await poller.poll_once()).new_items == 1
    serve_feed(server, "/feed.xml", rss(newer + first), etag='"c"')
    clock.advance(hours=1)
    assert (await poller.poll_once()).new_items == 0


async def test_the_same_story_shared_by_two_businesses_is_queued_once(
    db: Database, poller: Poller, server: LocalServer
) -> None:
    story = Entry(
        "x1",
        "Marché de Noël solidaire place du village samedi",
        "https://mairie.example/noel?utm_source=facebook",
        T0,
        "Le marché de Noël réunit les commerçants du village samedi de dix heures "
        "à dix-huit heures avec des animations pour les enfants et du vin chaud",
    )
    copy = Entry(
        "y9",
        story.title,
        "https://mairie.example/noel?utm_medium=email&fbclid=1",
        T0,
        story.summary,
    )
    serve_feed(server, "/a.xml", rss([story]))
    serve_feed(server, "/b.xml", rss([copy], title="Fleurs Lila"))
    add_source(db, server.url("/a.xml"), name="Boulangerie Martin", owner=1)
    add_source(db, server.url("/b.xml"), name="Fleurs Lila", owner=2)
    await poller.poll_once()
    with db.read() as s:
        rows = sorted(s.exec(select(ItemRow)).all(), key=lambda r: r.id or 0)
    assert [r.state for r in rows] == ["pending", "duplicate"]
    assert rows[1].duplicate_of == rows[0].id
    with db.read() as s:
        credited = item_queries.credited_businesses(s, rows[0].id or 0)
    first = "Boulangerie Martin" if rows[0].business_id == 1 else "Fleurs Lila"
    assert {first, *credited} == {"Boulangerie Martin", "Fleurs Lila"}


async def test_near_identical_text_on_another_domain_is_the_same_story(
    db: Database, poller: Poller, server: LocalServer
) -> None:
    text = (
        "Grande braderie des commerçants du centre ville ce samedi avec des remises "
        "sur les fleurs les livres le pain et les vêtements pour soutenir le quartier"
    )
    a = Entry("a", "Braderie samedi", "https://mairie.example/braderie", T0, text)
    b = Entry(
        "b",
        "Braderie samedi",
        "https://gazette.example/2026/braderie",
        T0,
        text.replace("ce samedi", "samedi"),
    )
    serve_feed(server, "/a.xml", rss([a]))
    add_source(db, server.url("/a.xml"), name="Librairie", owner=1)
    await poller.poll_once()
    serve_feed(server, "/b.xml", rss([b]))
    add_source(db, server.url("/b.xml"), name="Fleurs Lila", owner=2)
    await poller.poll_once()
    assert sorted(states(db).values()) == ["duplicate", "pending"]


async def test_one_business_similar_posts_are_distinct_news(
    db: Database, poller: Poller, server: LocalServer, clock: Clock
) -> None:
    text = (
        "Cette semaine la boutique est ouverte le dimanche matin de neuf heures à midi "
        "avec les légumes du maraîcher et le pain au levain de la boulangerie voisine"
    )
    week1 = Entry("w1", "Ouvert dimanche", "https://b.example/w1", T0, text)
    serve_feed(server, "/w.xml", rss([week1]), etag='"1"')
    add_source(db, server.url("/w.xml"))
    await poller.poll_once()
    week2 = Entry("w2", "Ouvert dimanche", "https://b.example/w2", T0 + timedelta(days=7), text)
    serve_feed(server, "/w.xml", rss([week2, week1]), etag='"2"')
    clock.advance(days=7)
    await poller.poll_once()
    assert states(db) == {"g:w1": "pending", "g:w2": "pending"}


async def test_trusted_business_skips_moderation_and_pending_business_waits(
    db: Database, poller: Poller, server: LocalServer
) -> None:
    serve_feed(server, "/t.xml", rss(entries(1, prefix="t")))
    serve_feed(server, "/w.xml", rss(entries(1, prefix="w", site="https://w.example")))
    add_source(db, server.url("/t.xml"), trusted=True, owner=1)
    add_source(db, server.url("/w.xml"), status=BusinessStatus.PENDING, owner=2, name="Nouveau")
    await poller.poll_once()
    got = states(db)
    assert got["g:t0"] == ItemState.APPROVED
    assert got["g:w0"] == ItemState.PENDING
    with db.read() as s:
        cards = outbox.deliveries_for(s)
    assert cards == []  # trusted: no card; pending business: cards wait for its approval


async def test_a_failing_source_backs_off_then_pauses_and_tells_its_owner(
    db: Database, server: LocalServer, clock: Clock
) -> None:
    settings = relay_settings(
        polling=PollingSettings(parse_workers=0, jitter_fraction=0.0, failure_threshold=3)
    )
    with db.write() as s:
        people.add_moderator(s, MOD, "admin", None, T0)
    source_id = add_source(db, server.url("/missing.xml"))
    async with Fetcher(settings.fetch) as fetcher:
        poller = Poller(db, fetcher, ParserPool(0, 10), settings, clock, rand=lambda: 0.0)
        waits = []
        for _ in range(3):
            report = await poller.poll_once()
            assert report.failed == 1
            with db.read() as s:
                source = get_source(s, source_id)
            assert source is not None
            waits.append(source.next_check_at - clock.now)
            clock.now = source.next_check_at
    assert waits[0] == timedelta(minutes=15)
    assert waits[1] == timedelta(minutes=30)
    assert source.paused
    assert source.last_error == "http_status"
    with db.read() as s:
        notes = outbox.deliveries_for(s)
    owner_note = next(n for n in notes if n.chat_id == 100)
    assert "en pause après 3 échecs" in owner_note.text
    assert any(n.chat_id == MOD for n in notes)


async def test_gone_pauses_at_once_and_moved_updates_the_url(
    db: Database, poller: Poller, server: LocalServer
) -> None:
    server.route("/gone.xml", Reply(410))
    server.route("/old.xml", Reply(301, headers={"Location": "/new.xml"}))
    serve_feed(server, "/new.xml", rss(entries(1, prefix="m", site="https://m.example")))
    gone = add_source(db, server.url("/gone.xml"), owner=1)
    moved = add_source(db, server.url("/old.xml"), owner=2, name="Déménagé")
    await poller.poll_once()
    with db.read() as s:
        gone_source, moved_source = get_source(s, gone), get_source(s, moved)
    assert gone_source is not None
    assert gone_source.paused
    assert gone_source.last_error == "gone"
    assert moved_source is not None
    assert moved_source.url == server.url("/new.xml")


async def test_retry_after_is_honoured(
    db: Database, poller: Poller, server: LocalServer, clock: Clock
) -> None:
    server.route("/busy.xml", Reply(429, headers={"Retry-After": "7200"}))
    source_id = add_source(db, server.url("/busy.xml"))
    await poller.poll_once()
    with db.read() as s:
        source = get_source(s, source_id)
    assert source is not None
    assert source.next_check_at >= clock.now + timedelta(seconds=7200)
    assert not source.paused


async def test_a_garbage_feed_is_an_error_not_items(
    db: Database, poller: Poller, server: LocalServer
) -> None:
    server.route("/junk.xml", Reply(200, b"\x00\x01garbage<<<", {"Content-Type": "text/xml"}))
    source_id = add_source(db, server.url("/junk.xml"))
    report = await poller.poll_once()
    assert report.failed == 1
    with db.read() as s:
        source = get_source(s, source_id)
    assert source is not None
    assert source.last_error == "not_a_feed"
    assert states(db) == {}


async def test_parsing_runs_in_worker_processes_with_a_deadline(server: LocalServer) -> None:
    from relay.parsing import ParseJob, ParseTimeoutError

    pool = ParserPool(1, deadline=20)
    try:
        ok = await pool.parse(ParseJob("https://x.example/f", rss(entries(3)), None, None, False))
        assert len(ok.feed.items) == 3
        pool.deadline = 0.001
        with pytest.raises(ParseTimeoutError):
            await pool.parse(ParseJob("https://x.example/f", rss(entries(2000)), None, None, False))
        pool.deadline = 20
        again = await pool.parse(
            ParseJob("https://x.example/f", rss(entries(2)), None, None, False)
        )
        assert len(again.feed.items) == 2
        assert pool.restarts == 1
    finally:
        pool.close()


async def test_hostile_sources_cost_one_error_each_while_the_others_flow(
    db: Database, settings: Settings, server: LocalServer
) -> None:
    """Entity bombs, an author trick and 50,000-deep markup, polled beside an ordinary feed
    through real parse workers: each hostile source ends with one clear outcome, and the
    ordinary source's news is queued in the same cycle."""
    from bench import hostile

    hostile_feeds = {
        "/bomb.xml": hostile.entities_600k(),
        "/author.xml": hostile.author_entity(),
        "/comment.xml": hostile.author_comment(),
        "/deep.xml": hostile.deep_div_6(),
    }
    for path, body in hostile_feeds.items():
        server.route(path, Reply(200, body, {"Content-Type": "application/rss+xml"}))
    serve_feed(server, "/ok.xml", rss(entries(2, prefix="ok")))
    ids = {
        path: add_source(db, server.url(path), name=path, owner=n)
        for n, path in enumerate([*hostile_feeds, "/ok.xml"], start=1)
    }
    pool = ParserPool(2, deadline=10)
    try:
        async with Fetcher(settings.fetch) as fetcher:
            report = await Poller(
                db, fetcher, pool, settings, Clock(), rand=lambda: 0.5
            ).poll_once()
    finally:
        pool.close()
    with db.read() as s:
        errors = {path: getattr(get_source(s, i), "last_error", None) for path, i in ids.items()}
    assert errors["/bomb.xml"] == "entities_refused"
    assert errors["/author.xml"] == "entities_refused"
    assert errors["/comment.xml"] is None  # its item is kept, the author cut short
    assert errors["/deep.xml"] is None  # its six items are kept, the markup flattened
    assert errors["/ok.xml"] is None
    assert report.claimed == 5
    assert pool.restarts == 0  # nothing had to be killed: every document stayed in budget
    got = states(db)
    assert (got["g:ok0"], got["g:ok1"]) == ("pending", "pending")
