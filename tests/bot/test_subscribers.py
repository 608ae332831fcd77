"""Readers, end to end: /subscribe and digests, the /settings panel, /latest, /unsubscribe,
blocked chats. The real Application answers through the fake Telegram Bot API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relay.subscriptions import changes_for, parse_cities, valid_zone
from storage import people
from storage.engine import Database
from storage.items import insert_items
from storage.sources import NewBusiness, create_business
from storage.values import BusinessStatus, Frequency, ItemState, Subscriber
from tests.bot.conftest import Harness
from tests.support.builders import T0, item_row
from tests.support.fake_telegram import SentMessage

READER, OTHER, GROUP = 501, 502, -1009876543210
EVENING = datetime(2026, 11, 23, 17, 5, tzinfo=UTC)  # 18:05 in Paris


def approve_news(
    db: Database, business: str, *, city: str = "Lyon", category: str = "bakery", count: int = 1
) -> None:
    """A business with `count` approved items, approved an hour after T0."""
    at = T0 + timedelta(hours=1)
    with db.write() as s:
        b = create_business(
            s,
            NewBusiness(
                name=business,
                owner_id=None,
                status=BusinessStatus.ACTIVE,
                category=category,
                city=city,
            ),
            at,
        )
        insert_items(
            s,
            [
                item_row(
                    b.id,
                    f"{business}{n}",
                    at,
                    title=f"{business} nouvelle {n} <b>&",
                    link=f"https://shop.example/{business}/{n}",
                    summary="Du pain chaud",
                    published=at,
                    state=ItemState.APPROVED.value,
                    approved_at=at + timedelta(seconds=n),
                )
                for n in range(count)
            ],
        )


def subscriber(db: Database, chat_id: int) -> Subscriber | None:
    with db.read() as s:
        return people.get_subscriber(s, chat_id)


async def evening_digest(bot: Harness, chat_id: int) -> list[SentMessage]:
    """Run the digest job at 18:05 Paris time; the messages the chat received."""
    bot.clock.now = EVENING
    await bot.worker.digests()
    await bot.worker.send()  # returns once every send is answered
    return bot.new_messages(chat_id)


def labels(message: SentMessage | dict[str, Any]) -> list[str]:
    """Every button label of a message's inline keyboard."""
    markup = message.reply_markup if isinstance(message, SentMessage) else message
    return [b["text"] for row in (markup or {}).get("inline_keyboard", []) for b in row]


def last_answer(bot: Harness) -> dict[str, Any]:
    return bot.fake.answered_callbacks[-1]


# --- /subscribe and the digest ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "confirmation", "title"),
    [
        ("fr", "C'est noté", "Les nouvelles du jour"),
        ("en", "Done: you will get", "Today's news"),
    ],
)
async def test_a_subscriber_gets_the_evening_digest(
    bot: Harness, lang: str, confirmation: str, title: str
) -> None:
    [reply] = await bot.say(READER, "/subscribe", lang=lang)
    assert confirmation in (reply.visible_text or "")
    assert "18" in (reply.visible_text or "")
    approve_news(bot.db, "Boulangerie Martin")
    [digest] = await evening_digest(bot, READER)
    assert title in (digest.visible_text or "")
    assert "Boulangerie Martin nouvelle 0 <b>&" in (digest.visible_text or "")


async def test_subscribing_twice_just_confirms(bot: Harness) -> None:
    await bot.say(READER, "/subscribe")
    [again] = await bot.say(READER, "/subscribe")
    assert "déjà abonnée" in (again.visible_text or "")
    with bot.db.read() as s:
        assert people.count_subscribers(s) == {"active": 1, "inactive": 0}


async def test_a_group_subscribes_as_itself(bot: Harness) -> None:
    [reply] = await bot.say(READER, "/subscribe", chat_id=GROUP)
    assert "Ce groupe" in (reply.visible_text or "")
    found = subscriber(bot.db, GROUP)
    assert found is not None
    assert subscriber(bot.db, READER) is None


async def test_unsubscribe_stops_the_digests(bot: Harness) -> None:
    await bot.say(READER, "/subscribe", lang="en")
    [reply] = await bot.say(READER, "/unsubscribe", lang="en")
    assert "/subscribe" in (reply.visible_text or "")
    approve_news(bot.db, "Boulangerie Martin")
    assert await evening_digest(bot, READER) == []
    found = subscriber(bot.db, READER)
    assert found is not None
    assert found.frequency == Frequency.OFF


async def test_unsubscribe_without_a_subscription_says_so(bot: Harness) -> None:
    [reply] = await bot.say(READER, "/unsubscribe")
    assert "pas abonnée" in (reply.visible_text or "")


async def test_a_subscriber_who_blocks_the_bot_becomes_inactive(bot: Harness) -> None:
    await bot.say(READER, "/subscribe")
    bot.fake.user_blocks(READER)

    def inactive() -> bool:
        found = subscriber(bot.db, READER)
        return found is not None and not found.active

    await bot.fake.wait_for_async(inactive, 5)
    with bot.db.read() as s:
        assert people.digest_candidates(s) == []


# --- /settings ---------------------------------------------------------------------------------


async def open_panel(bot: Harness, user: int = READER, lang: str = "fr") -> SentMessage:
    await bot.say(user, "/subscribe", lang=lang)
    [panel] = await bot.say(user, "/settings", lang=lang)
    return panel


async def test_the_panel_changes_frequency_hour_categories_and_cities(bot: Harness) -> None:
    panel = await open_panel(bot)
    assert "✅ Chaque jour" in labels(panel)
    await bot.press(READER, panel, "set:freq:weekly")
    await bot.press(READER, panel, "set:hour:8")
    await bot.press(READER, panel, "set:cat:bakery:1")
    await bot.press(READER, panel, "set:cat:florist:1")
    await bot.press(READER, panel, "set:cat:florist:0")
    prompt = await bot.press(READER, panel, "set:city") or await bot.replies(READER)
    assert "virgules" in (prompt[0].visible_text or "")
    [saved] = await bot.say(READER, "Lyon,  villeurbanne ; Lyon")
    assert "Lyon, villeurbanne" in (saved.visible_text or "")
    found = subscriber(bot.db, READER)
    assert found is not None
    assert (found.frequency, found.hour) == (Frequency.WEEKLY, 8)
    assert (found.categories, found.cities) == (("bakery",), ("Lyon", "villeurbanne"))
    shown = bot.fake.message(READER, panel.message_id)
    assert shown is not None
    assert "chaque lundi à 8 h" in shown["text"]
    assert {"✅ Chaque semaine", "✅ 8 h", "✅ Boulangerie"} <= set(labels(shown["reply_markup"]))
    assert len(bot.fake.answered_callbacks) == 6


async def test_an_identical_press_is_answered_without_an_error(bot: Harness) -> None:
    panel = await open_panel(bot)
    edits = len(bot.fake.edits(READER))
    assert await bot.press(READER, panel, "set:freq:daily") == []
    assert len(bot.fake.edits(READER)) == edits
    assert last_answer(bot).get("text") == "Enregistré ✅"


async def test_a_filtered_digest_leaves_out_other_cities(bot: Harness) -> None:
    await bot.say(READER, "/subscribe")
    [reply] = await bot.say(READER, "/settings ville Villeurbanne")
    assert "Villeurbanne" in (reply.visible_text or "")
    approve_news(bot.db, "Boulangerie Martin", city="Lyon")
    approve_news(bot.db, "Fleurs de Villeurbanne", city="Villeurbanne", category="florist")
    [digest] = await evening_digest(bot, READER)
    assert "Fleurs de Villeurbanne" in (digest.visible_text or "")
    assert "Boulangerie Martin" not in (digest.visible_text or "")


async def test_cities_and_time_zone_shortcuts(bot: Harness) -> None:
    await bot.say(READER, "/subscribe", lang="en")
    await bot.say(READER, "/settings city Lyon, Villeurbanne", lang="en")
    [zone] = await bot.say(READER, "/settings tz Europe/Brussels", lang="en")
    assert "Europe/Brussels" in (zone.visible_text or "")
    [bad] = await bot.say(READER, "/settings tz Mars/Olympus", lang="en")
    assert "Unknown time zone" in (bad.visible_text or "")
    await bot.say(READER, "/settings city all", lang="en")
    found = subscriber(bot.db, READER)
    assert found is not None
    assert (found.cities, found.timezone) == ((), "Europe/Brussels")


async def test_a_forged_button_is_refused_politely(bot: Harness) -> None:
    panel = await open_panel(bot)
    await bot.press(READER, panel, "set:freq:xx")
    assert "plus valable" in last_answer(bot)["text"]
    assert last_answer(bot)["show_alert"] is True
    found = subscriber(bot.db, READER)
    assert found is not None
    assert found.frequency == Frequency.DAILY


async def test_another_person_cannot_press_someone_elses_panel(bot: Harness) -> None:
    panel = await open_panel(bot)
    await bot.press(OTHER, panel, "set:freq:off", lang="en")
    assert "not yours" in last_answer(bot)["text"]
    found = subscriber(bot.db, READER)
    assert found is not None
    assert found.frequency == Frequency.DAILY


async def test_non_subscribers_are_told_to_subscribe(bot: Harness) -> None:
    [reply] = await bot.say(READER, "/settings", lang="en")
    assert "/subscribe" in (reply.visible_text or "")
    await bot.press(READER, reply, "set:freq:daily", lang="en")
    assert "subscribe first" in last_answer(bot)["text"]
    assert subscriber(bot.db, READER) is None


# --- /latest -----------------------------------------------------------------------------------


async def test_latest_shows_the_most_recent_approved_news(bot: Harness) -> None:
    approve_news(bot.db, "Boulangerie Martin", count=20)
    bot.clock.advance(hours=2)
    [latest] = await bot.say(READER, "/latest", lang="en")
    text = latest.visible_text or ""
    assert "The latest news" in text
    assert "nouvelle 19 <b>&" in text
    assert "nouvelle 4 " not in text  # only the 15 most recent
    assert text.count("•") == 15


async def test_latest_follows_the_subscriber_filters(bot: Harness) -> None:
    await bot.say(READER, "/subscribe")
    await bot.say(READER, "/settings ville Paris")
    approve_news(bot.db, "Boulangerie Martin", city="Lyon")
    bot.clock.advance(hours=2)
    [reply] = await bot.say(READER, "/latest")
    assert "/settings" in (reply.visible_text or "")


async def test_latest_says_when_there_is_nothing_yet(bot: Harness) -> None:
    [reply] = await bot.say(READER, "/latest")
    assert "Pas encore de nouvelles" in (reply.visible_text or "")


# --- Pure decisions ----------------------------------------------------------------------------

SUBSCRIBER = Subscriber(
    id=1,
    chat_id=READER,
    language="fr",
    frequency=Frequency.DAILY,
    hour=18,
    timezone="Europe/Paris",
    categories=("bakery",),
    cities=(),
    active=True,
)


@pytest.mark.parametrize(
    ("data", "changes"),
    [
        ("set:freq:weekly", {"frequency": "weekly", "active": True, "blocked_at": None}),
        ("set:freq:off", {"frequency": "off"}),
        ("set:freq:xx", None),
        ("set:hour:7", {"hour": 7}),
        ("set:hour:24", None),
        ("set:hour:-1", None),
        ("set:hour:٣", None),
        ("set:cat:florist:1", {"categories": ("bakery", "florist")}),
        ("set:cat:bakery:0", {"categories": ()}),
        ("set:cat:bakery:1", {"categories": ("bakery",)}),
        ("set:cat:all", {"categories": ()}),
        ("set:cat:weapons:1", None),
        ("set:cat:bakery", None),
        ("lang:fr", None),
        ("set:hour:7" + "0" * 64, None),
    ],
)
def test_changes_for_a_button(data: str, changes: dict[str, Any] | None) -> None:
    assert changes_for(data, SUBSCRIBER) == changes


@pytest.mark.parametrize(
    ("typed", "cities"),
    [
        ("Lyon, Villeurbanne", ("Lyon", "Villeurbanne")),
        ("  Saint-Étienne ;saint etienne, Lyon ", ("Saint-Étienne", "Lyon")),
        ("*", ()),
        ("Tout", ()),
        ("all", ()),
        (", ,", None),
        ("", None),
        (",".join(f"Ville{n}" for n in range(20)), tuple(f"Ville{n}" for n in range(10))),
        ("x" * 100, ("x" * 60,)),
    ],
)
def test_parse_cities(typed: str, cities: tuple[str, ...] | None) -> None:
    assert parse_cities(typed) == cities


@pytest.mark.parametrize(
    ("name", "zone"),
    [
        ("Europe/Brussels", "Europe/Brussels"),
        ("Europe", None),
        ("europe/paris", None),
        ("../etc/passwd", None),
        ("", None),
        ("A" * 100, None),
    ],
)
def test_valid_zone(name: str, zone: str | None) -> None:
    assert valid_zone(name) == zone
