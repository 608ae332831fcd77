"""The whole story, end to end through the real bot and the fake Telegram API:

a bakery registers its feed → an admin approves the business and a news item → the item is
posted to the channel exactly once (despite a 429) → readers subscribed in French and in
English get it in their digest → a reader who blocked the bot gets nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from storage import people
from tests.bot.conftest import ADMIN, CHANNEL, Harness
from tests.bot.test_business import buttons, register_in_one_go, serve_feed
from tests.support.httpserver import LocalServer

OWNER, MARIE, JOHN, GONE = 42, 51, 52, 53


async def test_from_registration_to_digest(bot: Harness, server: LocalServer) -> None:
    url = serve_feed(server)
    await register_in_one_go(bot, url)
    await bot.worker.send()
    (business_card,) = bot.new_messages(ADMIN)
    assert "Boulangerie Martin" in (business_card.visible_text or "")
    approve_business = next(d for d in buttons(business_card) if d.startswith("m:b:a:"))
    await bot.press(ADMIN, business_card, approve_business, name="Alice")

    await bot.worker.poll()  # the new source: its three newest items go to moderation
    await bot.worker.send()
    cards = [m for m in bot.new_messages(ADMIN) if m.reply_markup]
    assert len(cards) == 3
    first = next(c for c in cards if "Nouvelle p0" in (c.visible_text or ""))
    approve_item = next(d for d in buttons(first) if d.startswith("m:i:a:"))
    await bot.press(ADMIN, first, approve_item, name="Alice")
    await bot.press(ADMIN, first, approve_item, name="Alice")  # a double press changes nothing

    for reader, lang in ((MARIE, "fr"), (JOHN, "en"), (GONE, "fr")):
        await bot.say(reader, "/subscribe", lang=lang)
    bot.fake.user_blocks(GONE)
    bot.fake.fail_next("sendMessage", error_code=429, retry_after=1, chat_id=CHANNEL)
    bot.clock.now = datetime(2026, 11, 23, 17, 5, tzinfo=UTC)  # 18:05 in Paris
    await bot.work()
    bot.clock.advance(seconds=2)  # past retry_after
    await bot.work()
    await bot.work()

    posts = bot.fake.sent(CHANNEL)
    assert len(posts) == 1
    assert "Nouvelle p0" in (posts[0].visible_text or "")
    assert bot.fake.count_429 == 1
    (marie,) = bot.new_messages(MARIE)
    (john,) = bot.new_messages(JOHN)
    assert "Les nouvelles du jour" in (marie.visible_text or "")
    assert "Today's news" in (john.visible_text or "")
    for digest in (marie, john):
        assert "Boulangerie Martin" in (digest.visible_text or "")
        assert "Nouvelle p0" in (digest.visible_text or "")
        assert "Nouvelle p1" not in (digest.visible_text or "")  # not approved
    assert bot.new_messages(GONE) == []
    with bot.db.read() as s:
        gone = people.get_subscriber(s, GONE)
    assert gone is not None
    assert not gone.active
    published = [
        m for m in bot.fake.sent(OWNER) if "publiée sur le canal" in (m.visible_text or "")
    ]
    assert len(published) == 1
