"""The outbox under faults, against the local fake Telegram Bot API: which failures are
retried and which stay unknown, the sending lease across processes, the admins told of
possibly lost sends, and jobs that run as soon as the relay starts."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from telegram import Bot

from relay.sender import SENDER_LEASE, Sender, this_process
from relay.wire import sender_bot, token_key
from relay.worker import Worker
from storage import leases, outbox, people
from storage.engine import Database
from storage.leases import Holder
from storage.outbox import NewDelivery
from storage.sources import NewBusiness, create_business, create_source
from storage.tables import LEASES
from storage.values import BusinessStatus, DeliveryState
from tests.support.builders import T0, Clock, entries, relay_settings, rss
from tests.support.fake_telegram import TOKEN, FakeTelegram
from tests.support.httpserver import LocalServer, Reply

CHANNEL, ADMIN, READER = -1001234567890, 1000, 301


@pytest.fixture
async def bot(telegram: FakeTelegram) -> AsyncIterator[Bot]:
    async with sender_bot(TOKEN, telegram.base_url, read_timeout=0.5) as bot:
        yield bot


def enqueue_one(db: Database, key: str = "post:1", chat: int = CHANNEL) -> None:
    with db.write() as s:
        outbox.enqueue(s, [NewDelivery(key, "channel_post", chat, "la nouvelle")], T0)


def states(db: Database) -> list[DeliveryState]:
    with db.read() as s:
        return [d.state for d in outbox.deliveries_for(s)]


@pytest.mark.parametrize("status", [502, 503])
async def test_a_front_server_refusal_is_retried_later_and_arrives_once(
    db: Database, bot: Bot, telegram: FakeTelegram, status: int
) -> None:
    enqueue_one(db)
    telegram.fail_next("sendMessage", error_code=status, description="Bad Gateway")
    first = await Sender(db, bot, Clock(T0)).drain()
    assert (first.retried, telegram.sent(CHANNEL)) == (1, [])
    assert states(db) == [DeliveryState.PENDING]  # with a backoff: not in the same drain
    await Sender(db, bot, Clock(T0 + timedelta(minutes=1))).drain()
    assert [m.text for m in telegram.sent(CHANNEL)] == ["la nouvelle"]


@pytest.mark.parametrize("status", [500, 504])
async def test_an_answer_that_may_follow_processing_stays_unknown(
    db: Database, bot: Bot, telegram: FakeTelegram, status: int
) -> None:
    enqueue_one(db)
    telegram.fail_next("sendMessage", error_code=status, description="Gateway Timeout")
    report = await Sender(db, bot, Clock(T0)).drain()
    await Sender(db, bot, Clock(T0 + timedelta(hours=1))).drain()
    assert report.unknown == 1
    assert states(db) == [DeliveryState.UNKNOWN]
    assert len(telegram.calls_to("sendMessage")) == 1  # never resent blindly


async def test_a_request_that_never_left_is_retried(db: Database, telegram: FakeTelegram) -> None:
    with socket.socket() as closed:  # a port nobody listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    enqueue_one(db)
    nowhere = sender_bot(TOKEN, f"http://127.0.0.1:{port}/bot")  # not initialised: no getMe
    report = await Sender(db, nowhere, Clock(T0)).drain()
    await nowhere.shutdown()
    assert (report.retried, report.unknown) == (1, 0)
    assert states(db) == [DeliveryState.PENDING]


async def test_only_the_lease_holder_sends_and_a_silent_holder_is_replaced_on_expiry(
    db: Database, bot: Bot, telegram: FakeTelegram
) -> None:
    elsewhere = Holder("other-host:42:abcd", "other-host", 42)
    name = f"sender:{token_key(TOKEN)}"
    assert leases.acquire(db, name, elsewhere, T0, SENDER_LEASE, lambda _l: False).value == "taken"
    enqueue_one(db)
    waiting = await Sender(db, bot, Clock(T0 + timedelta(seconds=5))).drain()
    assert (waiting.standby, telegram.sent(CHANNEL)) == (True, [])
    took_over = await Sender(db, bot, Clock(T0 + SENDER_LEASE + timedelta(seconds=1))).drain()
    assert took_over.standby is False
    assert [m.text for m in telegram.sent(CHANNEL)] == ["la nouvelle"]


def test_a_sender_that_lost_its_lease_can_no_longer_mark_a_send(db: Database) -> None:
    enqueue_one(db)
    (claimed,) = outbox.claim_ready(db, T0, 10, timedelta(minutes=2), "old-holder")
    assert outbox.take_back(db) == {}  # the new holder takes every claim back
    assert not outbox.mark_sending(db, claimed.id, T0, timedelta(minutes=2), "old-holder")
    assert states(db) == [DeliveryState.PENDING]


async def test_the_admins_are_told_once_of_sends_that_may_be_lost(
    db: Database, bot: Bot, telegram: FakeTelegram
) -> None:
    with db.write() as s:
        people.add_moderator(s, ADMIN, "admin", None, T0)
        people.add_moderator(s, ADMIN + 1, "moderator", None, T0)
        outbox.enqueue(
            s,
            [NewDelivery(f"digest:{n}", "digest", READER + n, "résumé") for n in range(2)]
            + [NewDelivery("post:1", "channel_post", CHANNEL, "la nouvelle")],
            T0,
        )
    me = this_process()
    for delivery in outbox.claim_ready(db, T0, 10, timedelta(minutes=2), me.owner):
        outbox.mark_sending(db, delivery.id, T0, timedelta(minutes=2), me.owner)  # then "killed"
    worker = Worker(relay_settings(channel=str(CHANNEL)), db, bot, Clock(T0), channel_id=CHANNEL)
    try:
        report = await worker.send()
        await worker.send()  # the report itself goes out; nobody is told twice
        await worker.send()
    finally:
        await worker.stop()
    assert report.interrupted == {"digest": 2, "channel_post": 1}
    (told,) = telegram.sent(ADMIN)
    assert "3 message(s)" in (told.text or "")
    assert "2 résumés" in (told.text or "")
    assert "1 publications du canal" in (told.text or "")
    assert telegram.sent(ADMIN + 1) == []  # moderators who are not admins are not bothered
    assert telegram.sent(CHANNEL) == []
    assert telegram.sent(READER) == []


async def test_a_started_worker_polls_and_sends_at_once_not_a_minute_later(
    db: Database, server: LocalServer, telegram: FakeTelegram
) -> None:
    server.route("/feed.xml", Reply(200, rss(entries(1)), {"Content-Type": "application/rss+xml"}))
    with db.write() as s:
        people.add_moderator(s, ADMIN, "admin", None, T0)
        b = create_business(
            s, NewBusiness(name="Boulangerie", owner_id=77, status=BusinessStatus.ACTIVE), T0
        )
        create_source(s, b.id, server.url("/feed.xml"), "rss", T0)
    settings = relay_settings(channel=str(CHANNEL))
    async with sender_bot(TOKEN, telegram.base_url) as bot:
        worker = Worker(settings, db, bot, channel_id=CHANNEL)
        await worker.start()
        try:
            # Polled, queued for moderation and the card sent: within seconds of starting.
            await telegram.wait_for_async(lambda: bool(telegram.sent(ADMIN)), timeout=10)
        finally:
            await worker.stop()
    assert len(server.hits("/feed.xml")) == 1
    assert len(telegram.sent(ADMIN)) == 1


def lease_holder(db: Database, name: str) -> str | None:
    """Who holds lease `name` now, if anyone."""
    with db.read() as session:
        return session.execute(select(LEASES.c.owner).where(LEASES.c.name == name)).scalar()


async def test_a_stopped_worker_gives_the_lease_up_for_the_next_process(
    db: Database, bot: Bot, telegram: FakeTelegram
) -> None:
    worker = Worker(relay_settings(channel=str(CHANNEL)), db, bot, channel_id=CHANNEL)
    name = f"sender:{token_key(TOKEN)}"
    await worker.start()
    await telegram.wait_for_async(lambda: lease_holder(db, name) is not None, timeout=10)
    await worker.stop()
    elsewhere = Holder("other-host:42:abcd", "other-host", 42)
    outcome = leases.acquire(db, name, elsewhere, T0, SENDER_LEASE, lambda _l: False)
    assert outcome.value == "taken"
