"""Everyone's commands, end to end: /start, /language, /help by role, and the command menus."""

from __future__ import annotations

import pytest

from relay.bot import commands
from relay.i18n import catalogue
from storage import people
from storage.sources import NewBusiness, create_business
from tests.bot.conftest import ADMIN, Harness
from tests.support.builders import T0

USER, OWNER, MODERATOR, GROUP = 601, 602, 603, -1001112223334


@pytest.mark.parametrize(
    ("lang", "greeting", "readers"),
    [
        ("fr", "Bonjour Léa", "Recevez un résumé chaque soir avec /subscribe"),
        ("en", "Hello Léa", "Get a digest every evening with /subscribe"),
        ("de", "Hello Léa", "Get a digest every evening with /subscribe"),
    ],
)
async def test_start_explains_the_relay_in_the_users_language(
    bot: Harness, lang: str, greeting: str, readers: str
) -> None:
    [reply] = await bot.say(USER, "/start", lang=lang, name="Léa")
    text = reply.visible_text or ""
    assert greeting in text
    assert readers in text
    assert "/register" in text
    assert "/help" in text


async def test_start_escapes_the_users_name(bot: Harness) -> None:
    [reply] = await bot.say(USER, "/start", name="<Léa & co>")
    assert "<Léa & co>" in (reply.visible_text or "")


async def test_start_in_a_group_subscribes_the_group(bot: Harness) -> None:
    replies = await bot.say(USER, "/start", chat_id=GROUP, lang="en")
    assert "This group will get the news" in (replies[-1].visible_text or "")
    with bot.db.read() as s:
        found = people.get_subscriber(s, GROUP)
    assert found is not None
    assert found.language == "en"


async def test_language_switches_and_later_answers_follow(bot: Harness) -> None:
    [menu] = await bot.say(USER, "/language")
    rows = (menu.reply_markup or {})["inline_keyboard"]
    assert [b["callback_data"] for row in rows for b in row] == ["lang:fr", "lang:en"]
    await bot.press(USER, menu, "lang:en")
    shown = bot.fake.message(USER, menu.message_id)
    assert shown is not None
    assert shown["text"] == "✅ Got it: I will answer in English."
    [reply] = await bot.say(USER, "/start", lang="fr")
    assert "Hello Marie" in (reply.visible_text or "")
    with bot.db.read() as s:
        assert people.chosen_language(s, USER) == "en"


async def test_a_forged_language_is_refused(bot: Harness) -> None:
    [menu] = await bot.say(USER, "/language")
    await bot.press(USER, menu, "lang:de")
    assert "Langue inconnue" in bot.fake.answered_callbacks[-1]["text"]
    with bot.db.read() as s:
        assert people.chosen_language(s, USER) is None


async def test_a_subscriber_who_switches_language_gets_digests_in_it(bot: Harness) -> None:
    await bot.say(USER, "/subscribe")
    [menu] = await bot.say(USER, "/language")
    await bot.press(USER, menu, "lang:en")
    with bot.db.read() as s:
        found = people.get_subscriber(s, USER)
    assert found is not None
    assert found.language == "en"


async def help_text(bot: Harness, user: int, lang: str = "fr") -> str:
    [reply] = await bot.say(user, "/help", lang=lang)
    return reply.visible_text or ""


async def test_help_lists_the_commands_of_each_role(bot: Harness) -> None:
    with bot.db.write() as s:
        create_business(s, NewBusiness(name="Boulangerie", owner_id=OWNER), T0)
        people.add_moderator(s, MODERATOR, "moderator", ADMIN, T0)
    plain = await help_text(bot, USER)
    owner = await help_text(bot, OWNER, "en")
    moderator = await help_text(bot, MODERATOR)
    admin = await help_text(bot, ADMIN)
    assert "/subscribe — Recevoir les nouvelles chaque jour" in plain
    assert "/post" not in plain
    assert "/queue" not in plain
    assert "/post — Post a piece of news by hand" in owner
    assert "/queue" not in owner
    assert "/queue" in moderator
    assert "/addmod" not in moderator
    assert "/addmod" in admin
    assert "/stats" in admin


async def test_publish_sets_the_menus_in_both_languages(bot: Harness) -> None:
    with bot.db.write() as s:
        people.add_moderator(s, MODERATOR, "moderator", ADMIN, T0)
        people.set_moderator_language(s, MODERATOR, "en")
    await commands.publish(bot.app.bot, bot.db, bot.settings)
    french = bot.fake.commands(language_code="fr")
    english = bot.fake.commands()
    assert [c["command"] for c in french] == list(commands.EVERYONE)
    assert [c["command"] for c in english] == list(commands.EVERYONE)
    assert french[1]["description"] == "Recevoir les nouvelles chaque jour"
    assert english[1]["description"] == "Get the news every day"
    admin = bot.fake.commands(scope={"type": "chat", "chat_id": ADMIN})
    moderator = bot.fake.commands(scope={"type": "chat", "chat_id": MODERATOR})
    assert {"queue", "addmod"} <= {c["command"] for c in admin}
    assert "queue" in {c["command"] for c in moderator}
    assert "addmod" not in {c["command"] for c in moderator}
    assert "News waiting for moderation" in {c["description"] for c in moderator}


async def test_a_moderator_menu_follows_their_language(bot: Harness) -> None:
    [menu] = await bot.say(ADMIN, "/language")
    await bot.press(ADMIN, menu, "lang:en")
    admin = bot.fake.commands(scope={"type": "chat", "chat_id": ADMIN})
    assert "Add a moderator" in {c["description"] for c in admin}


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_command_has_a_valid_description(lang: str) -> None:
    names = commands.EVERYONE + commands.OWNERS + commands.MODERATORS + commands.ADMINS
    for name in names:
        assert name.islower()
        assert len(name) <= 32
        assert 3 <= len(catalogue(lang)[f"commands.{name}"]) <= 256
