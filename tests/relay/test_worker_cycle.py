"""The worker's jobs end to end: feed → moderation card → decision → channel post → owner told.
And the sender under Telegram's real limits (a limit-enforcing fake): no 429, nothing lost."""

from __future__ import annotations

import time

from telegram import Bot

from relay.moderation import Actor, decide, parse_callback
from relay.sender import Sender
from relay.worker import Worker
from storage import people
from storage.engine import Database
from storage.outbox import NewDelivery, enqueue
from storage.sources import NewBusiness, create_business, create_source
from storage.values import BusinessStatus
from tests.support.builders import T0, Clock, entries, relay_settings, rss
from tests.support.fake_telegram import TOKEN, FakeTelegram
from tests.support.httpserver import LocalServer, Reply

CHANNEL, MOD, OWNER = -1001234567890, 900, 77


async def test_a_news_item_goes_from_feed_to_channel_once(
    db: Database, server: LocalServer, telegram: FakeTelegram
) -> None:
    server.route("/feed.xml", Reply(200, rss(entries(1)), {"Content-Type": "application/rss+xml"}))
    with db.write() as s:
        people.add_moderator(s, MOD, "admin", None, T0)
        b = create_business(
            s,
            NewBusiness(name="Boulangerie Martin", owner_id=OWNER, status=BusinessStatus.ACTIVE),
            T0,
        )
        create_source(s, b.id, server.url("/feed.xml"), "rss", T0)
    clock = Clock(T0)
    async with Bot(TOKEN, base_url=telegram.base_url) as bot:
        worker = Worker(relay_settings(channel=str(CHANNEL)), db, bot, clock)
        await worker.resolve_channel()
        try:
            await worker.poll()
            await worker.send()
            (card,) = telegram.sent(MOD)
            approve = card.reply_markup["inline_keyboard"][0][0]["callback_data"]  # type: ignore[index]
            press = parse_callback(approve)
            assert press is not None
            with db.write() as s:
                assert decide(s, press, Actor(MOD, "Mia"), worker.settings, clock()).won
            for _ in range(3):  # the job runs every minute; only one post may result
                await worker.publish()
                await worker.send()
                clock.advance(minutes=1)
        finally:
            await worker.stop()
    (post,) = telegram.sent(CHANNEL)
    assert "Boulangerie Martin" in (post.visible_text or "")
    assert "Nouvelle p0" in (post.visible_text or "")
    (notice,) = telegram.sent(OWNER)
    assert f"/{post.message_id}" in (notice.text or "")
    edits = telegram.edits(MOD)
    assert edits
    assert "Approuvée par Mia" in (edits[-1].text or "")


async def test_the_sender_keeps_within_telegram_limits(db: Database) -> None:
    with FakeTelegram(enforce_limits=True) as telegram:
        deliveries = [NewDelivery(f"p{n}", "digest", 1000 + n, f"digest {n}") for n in range(45)]
        deliveries += [NewDelivery(f"s{n}", "digest", 42, f"suite {n}") for n in range(3)]
        deliveries += [NewDelivery(f"c{n}", "channel_post", CHANNEL, f"post {n}") for n in range(3)]
        with db.write() as s:
            enqueue(s, deliveries, T0)
        started = time.monotonic()
        async with Bot(TOKEN, base_url=telegram.base_url) as bot:
            report = await Sender(db, bot, Clock(T0)).drain()
        elapsed = time.monotonic() - started
        assert telegram.count_429 == 0
        assert report.sent == 51
        assert len(telegram.sent()) == 51
        assert [m.text for m in telegram.sent(42)] == ["suite 0", "suite 1", "suite 2"]
        gaps = [b.at - a.at for a, b in zip(telegram.sent(42), telegram.sent(42)[1:], strict=False)]
        assert min(gaps) >= 0.99
        assert elapsed < 10
