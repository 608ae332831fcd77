"""Replies under Telegram's flood limits: the fake refuses (429) what goes faster than one
message a second per chat, twenty a minute per group or thirty a second overall, and the bot
waits instead of losing the answer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import pytest

from relay.bot.ratelimit import ChatRateLimiter
from relay.limits import SendBudget
from storage.engine import Database
from storage.sources import businesses_of
from tests.bot.conftest import Harness, running_bot
from tests.bot.test_business import register_in_one_go, serve_feed
from tests.support.fake_telegram import FakeTelegram, fake_telegram_fixture
from tests.support.httpserver import LocalServer

USER, OWNER, GROUP = 701, 702, -1009990001


@pytest.fixture
def strict_telegram() -> Iterator[FakeTelegram]:
    """The fake Telegram enforcing its flood limits (a 429 for anything faster)."""
    yield from fake_telegram_fixture(enforce_limits=True)


@pytest.fixture
async def paced(db: Database, strict_telegram: FakeTelegram) -> AsyncIterator[Harness]:
    """The bot with the relay's own limiter, against the strict fake."""
    async with running_bot(db, strict_telegram, ChatRateLimiter()) as harness:
        yield harness


def texts(harness: Harness, chat_id: int) -> list[str]:
    return [m.visible_text or "" for m in harness.fake.sent(chat_id)]


async def test_a_reply_refused_with_a_429_arrives_after_retry_after(bot: Harness) -> None:
    bot.fake.fail_next("sendMessage", error_code=429, retry_after=2, chat_id=USER)
    [reply] = await bot.say(USER, "/help")
    [refused, accepted] = [c for c in bot.fake.calls if c.method == "sendMessage"]
    assert "/subscribe" in (reply.visible_text or "")
    assert accepted.at - refused.at >= 2.0
    assert bot.fake.count_429 == 1


async def test_a_second_429_is_logged_without_an_apology_that_would_be_refused_too(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    bot.fake.fail_next("sendMessage", error_code=429, retry_after=1, chat_id=USER, times=2)
    assert await bot.say(USER, "/help") == []
    assert bot.fake.count_429 == 2
    assert not [r for r in caplog.records if r.exc_info]


async def test_register_with_an_address_gets_looking_then_the_preview(
    paced: Harness, server: LocalServer
) -> None:
    replies = await register_in_one_go(paced, serve_feed(server), user=OWNER)
    assert [m.visible_text[:2] for m in replies if m.visible_text] == ["🔎 ", "✅ ", "🎉 "]
    assert [b.at - a.at >= 1.0 for a, b in zip(replies, replies[1:], strict=False)] == [True, True]
    assert paced.fake.count_429 == 0
    with paced.db.read() as session:
        assert [b.name for b in businesses_of(session, OWNER)] == ["Boulangerie Martin"]


async def test_many_commands_from_many_chats_are_all_answered_in_order(paced: Harness) -> None:
    readers = range(20_000, 20_060)
    for reader in readers:
        paced.fake.user_sends(reader, "/help")
        paced.fake.user_sends(reader, "/start", first_name="Léa")
    await paced.settled(60)
    for reader in readers:
        [help_text, welcome] = texts(paced, reader)
        assert "/subscribe" in help_text
        assert "Léa" in welcome
    assert paced.fake.count_429 == 0
    sent = sorted(m.at for m in paced.fake.sent())
    assert max(len([t for t in sent if start <= t < start + 1]) for start in sent) <= 30


async def test_a_group_at_its_limit_holds_up_nobody_else(
    db: Database, strict_telegram: FakeTelegram
) -> None:
    # Two messages every two seconds in groups, instead of twenty a minute: same situation.
    budget = SendBudget(group_per_minute=2, group_window=2.0)
    async with running_bot(db, strict_telegram, ChatRateLimiter(budget)) as paced:
        for _ in range(3):  # each /start in a group: a welcome and the subscription
            paced.fake.user_sends(USER, "/start", chat_id=GROUP)
        await paced.fake.wait_for_sent(1, chat_id=GROUP)
        asked = time.monotonic()
        paced.fake.user_sends(USER, "/help")
        await paced.fake.wait_for_sent(1, chat_id=USER)
        assert time.monotonic() - asked < 1.0
        assert len(paced.fake.sent(GROUP)) < 6  # the group's replies are still waiting
        await paced.settled(30)
        assert len(paced.fake.sent(GROUP)) == 6
        assert paced.fake.count_429 == 0
