"""Hostile or broken input from chats: overlong text, huge ids, forged or empty button data,
a button on a message that is gone. Each gets a short answer in the person's language, and
the bot's log shows no traceback."""

from __future__ import annotations

import logging

import pytest

from relay.i18n import text
from storage import people
from storage.values import Frequency
from tests.bot.conftest import ADMIN, Harness
from tests.support.fake_telegram import TEXT_LIMIT, SentMessage, telegram_length
from tests.support.httpserver import LocalServer

USER, READER = 801, 802
HUGE = "99999999999999999999"  # more than SQLite's 64-bit integers
FORGED = [
    "",
    "zzz",
    "rs:",
    "post:",
    "rm:",
    "rs:abc",
    f"rs:{HUGE}",
    f"post:{HUGE}",
    f"rm:{HUGE}:y",
    "rs:١٢",  # Arabic-Indic digits: \d would take them
    "rs:5\n",
    f"m:i:a:{HUGE}",
    "lang:",
    "x" * 64,
]


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def shown(messages: list[SentMessage]) -> str:
    return "\n".join(m.visible_text or "" for m in messages)


async def overlong_register(bot: Harness, server: LocalServer) -> None:
    """~4,090 characters after /register: answered with a short excerpt, never refused."""
    for typed in ("x" * 4080, server.url("/") + "a" * 4000):
        replies = await bot.say(USER, f"/register {typed}")
        assert replies
        assert all(telegram_length(m.visible_text or "") < 600 for m in replies)
        assert "…" in shown(replies)
        assert "/cancel" in replies[-1].visible_text  # another try is offered
        await bot.say(USER, "/cancel")


async def huge_ids(bot: Harness) -> None:
    """Ids beyond Telegram's: a clear answer in French and in English, nothing stored."""
    for lang, bad_user, no_business in (
        ("fr", "n'est pas un identifiant", "Aucun commerce"),
        ("en", "is not a Telegram user id", "No business matches"),
    ):
        for typed in (HUGE, "9" * 5000, "-5", "²", "0"):
            for command in ("/addmod", "/delmod"):
                [answer] = await bot.say(ADMIN, f"{command} {typed}", lang=lang)
                assert bad_user in (answer.visible_text or "")
        for command in ("/trust", "/untrust", "/suspend"):
            for typed in (HUGE, f"#{HUGE}", "²"):
                [answer] = await bot.say(ADMIN, f"{command} {typed}", lang=lang)
                assert no_business in (answer.visible_text or "")
    with bot.db.read() as session:
        assert [uid for uid, _role, _lang in people.moderators(session)] == [ADMIN]


async def forged_presses(bot: Harness) -> None:
    """Made-up, empty or out-of-range button data: each press is answered, politely."""
    [welcome] = await bot.say(USER, "/start")
    for data in FORGED:
        before = len(bot.fake.answered_callbacks)
        await bot.press(USER, welcome, data)
        [answer] = bot.fake.answered_callbacks[before:]
        assert answer.get("text") == text("fr", "button.unknown"), data
    for data, said in (("set:hour:99", "abonnés"), ("lang:xx", "Langue inconnue")):
        await bot.press(USER, welcome, data)  # the right shape: its handler says what is wrong
        assert said in bot.fake.answered_callbacks[-1].get("text", "")
    bot.fake.user_presses(USER, welcome, None)  # a game button: no data at all
    await bot.settled()
    assert bot.fake.answered_callbacks[-1].get("text") == text("fr", "button.unknown")


async def stale_settings_button(bot: Harness) -> None:
    """A settings button on a panel that was deleted: the choice is kept and said so."""
    await bot.say(READER, "/subscribe")
    [panel] = await bot.say(READER, "/settings")
    await bot.app.bot.delete_message(READER, panel.message_id)
    assert await bot.press(READER, panel, "set:freq:weekly") == []
    assert "n'est plus à jour" in bot.fake.answered_callbacks[-1]["text"]
    with bot.db.read() as session:
        found = people.get_subscriber(session, READER)
    assert found is not None
    assert found.frequency == Frequency.WEEKLY
    await bot.press(READER, panel, "set:done")
    assert "/settings" in bot.fake.answered_callbacks[-1]["text"]
    [menu] = await bot.say(READER, "/language")
    await bot.app.bot.delete_message(READER, menu.message_id)
    await bot.press(READER, menu, "lang:en")
    assert bot.fake.answered_callbacks[-1]["text"] == text("en", "language.chosen")


async def test_hostile_input_is_answered_and_leaves_no_traceback(
    bot: Harness, server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await overlong_register(bot, server)
    await huge_ids(bot)
    await forged_presses(bot)
    await stale_settings_button(bot)
    assert tracebacks(caplog) == []
    assert all(telegram_length(m.visible_text or "") <= TEXT_LIMIT for m in bot.fake.sent())
