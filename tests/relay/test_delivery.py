"""Publishing, digests and the outbox sender, against the local fake Telegram Bot API.

Each approved item reaches the channel exactly once; 429s delay but lose nothing; a
blocked subscriber costs nothing afterwards; ambiguous timeouts are never resent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from telegram import Bot

from relay.digest_job import send_due_digests
from relay.publisher import publish_next
from relay.sender import Sender
from relay.settings import Settings
from relay.wire import sender_bot
from storage import items as item_queries
from storage import outbox, people
from storage.engine import Database
from storage.items import insert_items
from storage.outbox import NewDelivery
from storage.sources import NewBusiness, create_business
from storage.values import BusinessStatus, DeliveryState, ItemState
from tests.support.builders import T0, Clock, item_row, relay_settings
from tests.support.fake_telegram import TOKEN, FakeTelegram

CHANNEL = -1001234567890
OWNER_A, OWNER_B, SUBSCRIBER = 101, 102, 301


@pytest.fixture
def settings() -> Settings:
    return relay_settings(channel=str(CHANNEL))


@pytest.fixture
async def bot(telegram: FakeTelegram) -> AsyncIterator[Bot]:
    async with sender_bot(TOKEN, telegram.base_url, read_timeout=0.5) as bot:
        yield bot


def approved_items(db: Database, business: str, owner: int, count: int, at: datetime) -> list[int]:
    with db.write() as s:
        b = create_business(
            s,
            NewBusiness(
                name=business,
                owner_id=owner,
                status=BusinessStatus.ACTIVE,
                category="bakery",
                city="Lyon",
            ),
            at,
        )
        rows = [
            item_row(
                b.id,
                f"{business}{n}",
                at,
                title=f"{business} nouvelle {n} <script>x</script> & co",
                link=f"https://{owner}.example/{n}",
                summary="Du pain chaud",
                published=at,
                state=ItemState.APPROVED.value,
                approved_at=at + timedelta(seconds=n),
            )
            for n in range(count)
        ]
        return insert_items(s, rows)


async def test_each_approved_item_reaches_the_channel_once_in_turn(
    db: Database, bot: Bot, telegram: FakeTelegram, settings: Settings
) -> None:
    approved_items(db, "Boulangerie", OWNER_A, 3, T0)
    approved_items(db, "Fleuriste", OWNER_B, 1, T0 + timedelta(minutes=1))
    clock = Clock(T0 + timedelta(hours=1))
    sender = Sender(db, bot, clock, channel=settings.channel)
    published = []
    for _ in range(6):  # one publish per 10 minutes: the default pace
        item = publish_next(db, settings, CHANNEL, clock())
        published.append(item.business_name if item else None)
        await sender.drain()
        clock.advance(minutes=10)
    assert published == ["Boulangerie", "Fleuriste", "Boulangerie", "Boulangerie", None, None]
    posts = telegram.sent(CHANNEL)
    assert len(posts) == 4
    assert "&lt;script&gt;" in (posts[0].text or "")
    assert "<b>Boulangerie</b>" in (posts[0].text or "")
    notices = telegram.sent(OWNER_B)
    assert len(notices) == 1
    assert f"https://t.me/c/1234567890/{posts[1].message_id}" in (notices[0].text or "")


async def test_the_channel_is_paced_and_quiet_at_night(db: Database, settings: Settings) -> None:
    approved_items(db, "Boulangerie", OWNER_A, 20, T0)
    noon = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)  # 12:00 in Paris
    posted = [publish_next(db, settings, CHANNEL, noon + timedelta(minutes=m)) for m in range(60)]
    assert sum(1 for p in posted if p) == 3  # the daily cap per business (default 3)
    night = datetime(2026, 11, 23, 22, 30, tzinfo=UTC)  # 23:30 in Paris
    approved_items(db, "Fleuriste", OWNER_B, 1, night)
    assert publish_next(db, settings, CHANNEL, night) is None


async def test_a_429_delays_but_loses_nothing(
    db: Database, bot: Bot, telegram: FakeTelegram
) -> None:
    with db.write() as s:
        outbox.enqueue(
            s, [NewDelivery(f"k{n}", "notice", SUBSCRIBER + n, f"hello {n}") for n in range(3)], T0
        )
    telegram.fail_next("sendMessage", error_code=429, retry_after=1)
    clock = Clock(T0)
    sender = Sender(db, bot, clock)
    first = await sender.drain()
    assert first.rate_limited == 1
    clock.advance(seconds=2)
    await sender.drain()
    assert sorted(m.text or "" for m in telegram.sent()) == ["hello 0", "hello 1", "hello 2"]
    assert telegram.count_429 == 1


async def test_a_blocked_subscriber_is_marked_inactive_and_costs_nothing_more(
    db: Database, bot: Bot, telegram: FakeTelegram
) -> None:
    with db.write() as s:
        people.subscribe(s, SUBSCRIBER, "fr", T0)
        outbox.enqueue(
            s,
            [
                NewDelivery("d1", "digest", SUBSCRIBER, "one"),
                NewDelivery("d2", "digest", SUBSCRIBER, "two"),
            ],
            T0,
        )
    telegram.block(SUBSCRIBER)
    await Sender(db, bot, Clock(T0)).drain()
    with db.read() as s:
        subscriber = people.get_subscriber(s, SUBSCRIBER)
        states = [d.state for d in outbox.deliveries_for(s)]
        candidates = people.digest_candidates(s)
    assert subscriber is not None
    assert not subscriber.active
    assert states == [DeliveryState.FAILED, DeliveryState.FAILED]
    assert len(telegram.calls_to("sendMessage")) == 1  # the second was never attempted
    assert candidates == []


async def test_a_migrated_group_is_followed(db: Database, bot: Bot, telegram: FakeTelegram) -> None:
    with db.write() as s:
        people.subscribe(s, -4001, "fr", T0)
        outbox.enqueue(s, [NewDelivery("g1", "digest", -4001, "bonjour")], T0)
    telegram.migrate(-4001, -1009999)
    await Sender(db, bot, Clock(T0)).drain()
    assert [m.text for m in telegram.sent(-1009999)] == ["bonjour"]
    with db.read() as s:
        assert people.get_subscriber(s, -1009999) is not None


async def test_bad_markup_is_resent_once_as_plain_text(
    db: Database, bot: Bot, telegram: FakeTelegram
) -> None:
    with db.write() as s:
        outbox.enqueue(
            s, [NewDelivery("m1", "notice", SUBSCRIBER, "<div>Pain &amp; vin</div>")], T0
        )
    await Sender(db, bot, Clock(T0)).drain()
    sent = telegram.sent(SUBSCRIBER)
    assert [(m.text, m.parse_mode) for m in sent] == [("Pain & vin", None)]


async def test_an_ambiguous_timeout_is_recorded_unknown_and_never_resent(
    db: Database, bot: Bot, telegram: FakeTelegram
) -> None:
    with db.write() as s:
        outbox.enqueue(s, [NewDelivery("post:1", "channel_post", CHANNEL, "une fois")], T0)
    telegram.delay("sendMessage", 1.5)
    report = await Sender(db, bot, Clock(T0)).drain()
    await Sender(db, bot, Clock(T0 + timedelta(hours=1))).drain()
    assert report.unknown == 1
    assert len(telegram.sent(CHANNEL)) == 1  # Telegram got it once; we never sent it again
    with db.read() as s:
        assert [d.state for d in outbox.deliveries_for(s)] == [DeliveryState.UNKNOWN]


async def test_digest_arrives_once_per_period_even_when_composed_again(
    db: Database, bot: Bot, telegram: FakeTelegram
) -> None:
    with db.write() as s:
        people.subscribe(s, SUBSCRIBER, "en", T0 - timedelta(days=1))
    approved_items(db, "Boulangerie", OWNER_A, 2, T0)
    evening = datetime(2026, 11, 23, 17, 5, tzinfo=UTC)  # 18:05 in Paris
    assert send_due_digests(db, evening) == 1
    assert send_due_digests(db, evening + timedelta(minutes=1)) == 0
    await Sender(db, bot, Clock(evening)).drain()
    (digest,) = telegram.sent(SUBSCRIBER)
    assert "Today's news" in (digest.visible_text or "")
    assert "Boulangerie nouvelle 0" in (digest.visible_text or "")
    assert "Boulangerie nouvelle 1" in (digest.visible_text or "")
    tomorrow = evening + timedelta(days=1)
    assert send_due_digests(db, tomorrow) == 0  # nothing new: no empty digest


async def test_digest_respects_the_subscribers_hour_and_filters(db: Database) -> None:
    with db.write() as s:
        people.subscribe(s, SUBSCRIBER, "fr", T0 - timedelta(days=1))
        people.update_subscriber(s, SUBSCRIBER, cities=["Paris"])
    approved_items(db, "Boulangerie", OWNER_A, 1, T0)  # in Lyon
    assert send_due_digests(db, datetime(2026, 11, 23, 12, 0, tzinfo=UTC)) == 0  # 13:00 Paris
    assert send_due_digests(db, datetime(2026, 11, 23, 17, 0, tzinfo=UTC)) == 0  # filtered out
    with db.read() as s:
        assert item_queries.items_for_digest(s, None, T0 + timedelta(days=1))
