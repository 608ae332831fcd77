"""Moderators in Telegram: cards with buttons, one decision per press, polite refusals,
/queue, /trust, /suspend, /addmod, /delmod, /stats."""

from __future__ import annotations

import time

from relay.i18n import text
from storage import people
from storage.sources import NewBusiness, create_business, create_source, get_business
from storage.values import BusinessStatus
from tests.bot.conftest import ADMIN, CHANNEL, Harness
from tests.support.builders import T0, entries, rss
from tests.support.httpserver import LocalServer, Reply

OWNER, MOD2, STRANGER = 77, 2000, 3000


async def business_with_news(
    bot: Harness, server: LocalServer, name: str = "Fleurs Lila", trusted: bool = False
) -> int:
    server.route("/feed.xml", Reply(200, rss(entries(1)), {"Content-Type": "application/rss+xml"}))
    with bot.db.write() as s:
        business = create_business(
            s,
            NewBusiness(name=name, owner_id=OWNER, trusted=trusted, status=BusinessStatus.ACTIVE),
            T0,
        )
        create_source(s, business.id, server.url("/feed.xml"), "rss", T0)
    await bot.worker.poll()
    await bot.worker.send()
    return business.id


def buttons(message) -> list[str]:  # type: ignore[no-untyped-def]
    return [b["callback_data"] for row in message.reply_markup["inline_keyboard"] for b in row]


async def test_a_moderator_approves_from_the_card_and_it_reaches_the_channel_once(
    bot: Harness, server: LocalServer
) -> None:
    await business_with_news(bot, server)
    (card,) = bot.new_messages(ADMIN)
    assert "Fleurs Lila" in (card.visible_text or "")
    approve, reject, trust = buttons(card)
    await bot.press(ADMIN, card, approve, name="Alice")
    assert bot.fake.answered_callbacks[-1].get("text") == "✅ Approuvé."
    await bot.work()
    await bot.work()
    assert len(bot.fake.sent(CHANNEL)) == 1
    edited = bot.fake.message(ADMIN, card.message_id)
    assert "Approuvée par Alice" in edited["text"]


async def test_a_second_press_is_told_who_decided(bot: Harness, server: LocalServer) -> None:
    with bot.db.write() as s:
        people.add_moderator(s, MOD2, "moderator", ADMIN, T0)
    await business_with_news(bot, server)
    (card,) = bot.new_messages(ADMIN)
    approve, reject, _ = buttons(card)
    await bot.press(ADMIN, card, approve, name="Alice")
    await bot.press(ADMIN, card, reject, name="Alice")
    answer = bot.fake.answered_callbacks[-1]
    assert answer.get("text") == "Déjà approuvé par Alice."


async def test_someone_who_is_not_a_moderator_cannot_decide(
    bot: Harness, server: LocalServer
) -> None:
    await business_with_news(bot, server)
    (card,) = bot.new_messages(ADMIN)
    await bot.press(STRANGER, card, buttons(card)[0], lang="en")
    assert "Only the relay's moderators" in bot.fake.answered_callbacks[-1].get("text", "")
    await bot.work()
    assert bot.fake.sent(CHANNEL) == []


async def test_forged_callback_data_decides_nothing(bot: Harness, server: LocalServer) -> None:
    await business_with_news(bot, server)
    (card,) = bot.new_messages(ADMIN)
    await bot.press(ADMIN, card, "m:i:a:987654")
    assert bot.fake.answered_callbacks[-1].get("text") == "Cet élément n'existe plus."
    await bot.press(ADMIN, card, "m:i:a:1;DROP")
    assert bot.fake.answered_callbacks[-1].get("text") == text("fr", "button.unknown")


async def test_queue_lists_what_waits_and_resends_cards(bot: Harness, server: LocalServer) -> None:
    await business_with_news(bot, server)
    bot.new_messages(ADMIN)
    replies = await bot.say(ADMIN, "/queue")
    listing = next(m for m in replies if "En attente" in (m.visible_text or ""))
    assert "Fleurs Lila" in (listing.visible_text or "")
    await bot.worker.send()
    assert any(m.reply_markup for m in bot.new_messages(ADMIN))


async def test_trust_and_suspend_by_name(bot: Harness, server: LocalServer) -> None:
    business_id = await business_with_news(bot, server)
    bot.new_messages(ADMIN)  # the card
    (reply,) = await bot.say(ADMIN, "/trust fleurs lila")
    assert "est de confiance" in (reply.visible_text or "")
    await bot.work()
    assert len(bot.fake.sent(CHANNEL)) == 1  # its waiting news was approved
    (reply,) = await bot.say(ADMIN, f"/suspend #{business_id}")
    assert "est suspendu" in (reply.visible_text or "")
    with bot.db.read() as s:
        business = get_business(s, business_id)
    assert business is not None
    assert business.status is BusinessStatus.SUSPENDED
    await bot.worker.send()
    assert "suspendu" in (bot.fake.sent(OWNER)[-1].visible_text or "")


async def test_only_moderators_use_moderator_commands(bot: Harness) -> None:
    (reply,) = await bot.say(STRANGER, "/stats", lang="en")
    assert "Only the relay's moderators" in (reply.visible_text or "")


async def test_admins_add_and_remove_moderators(bot: Harness) -> None:
    (reply,) = await bot.say(ADMIN, f"/addmod {MOD2}")
    assert f"{MOD2} est maintenant modérateur" in (reply.visible_text or "")
    (reply,) = await bot.say(MOD2, "/addmod 4242")
    assert "Seuls les administrateurs" in (reply.visible_text or "")
    (reply,) = await bot.say(ADMIN, f"/delmod {MOD2}")
    assert "n'est plus modérateur" in (reply.visible_text or "")
    (reply,) = await bot.say(ADMIN, f"/delmod {ADMIN}")
    assert "RELAY_ADMINS" in (reply.visible_text or "")


async def test_addmod_by_replying_to_a_forwarded_message(bot: Harness) -> None:
    me = {"id": ADMIN, "is_bot": False, "first_name": "Admin", "language_code": "fr"}
    forwarded = {
        "message_id": 900,
        "date": int(time.time()),
        "chat": {"id": ADMIN, "type": "private"},
        "from": me,
        "text": "bonjour",
        "forward_origin": {
            "type": "user",
            "date": int(time.time()),
            "sender_user": {"id": 5555, "is_bot": False, "first_name": "Léa"},
        },
    }
    bot.fake.push_update(
        {
            "message": {
                "message_id": 901,
                "date": int(time.time()),
                "chat": {"id": ADMIN, "type": "private"},
                "from": me,
                "text": "/addmod",
                "entities": [{"type": "bot_command", "offset": 0, "length": 7}],
                "reply_to_message": forwarded,
            }
        }
    )
    (reply,) = await bot.replies(ADMIN)
    assert "5555 est maintenant modérateur" in (reply.visible_text or "")


async def test_stats_shows_the_last_day_and_week(bot: Harness, server: LocalServer) -> None:
    await business_with_news(bot, server)
    bot.new_messages(ADMIN)
    (reply,) = await bot.say(ADMIN, "/stats", lang="en")
    assert "Sources: 1 (0 failing, 0 paused)" in (reply.visible_text or "")
