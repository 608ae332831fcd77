"""The harness itself: the real Application answers through the fake Telegram API."""

from __future__ import annotations

from tests.bot.conftest import Harness


async def test_an_unknown_command_is_ignored_quietly(bot: Harness) -> None:
    bot.fake.user_sends(5, "hello")
    assert bot.fake.sent(5) == []
