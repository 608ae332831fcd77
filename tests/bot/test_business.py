"""Business owners talk to the real bot: /register, /post, /sources, /remove.

A local web server serves the businesses' feeds and pages; the fake Telegram API carries
the conversation; the worker's jobs run by hand.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from storage import items as item_queries
from storage import outbox
from storage.sources import businesses_of, sources_of, update_business
from storage.values import BusinessStatus, ItemState
from tests.bot.conftest import ADMIN, Harness
from tests.support.builders import entries, rss
from tests.support.fake_telegram import SentMessage
from tests.support.httpserver import LocalServer, Reply

OWNER = 42
PAGES = Path(__file__).parents[1] / "feeds" / "fixtures" / "pages"
RSS = {"Content-Type": "application/rss+xml"}
HTML = {"Content-Type": "text/html; charset=utf-8"}


def serve_feed(
    server: LocalServer, path: str = "/feed.xml", title: str = "Boulangerie Martin"
) -> str:
    server.route(path, Reply(body=rss(entries(5), title=title), headers=RSS))
    return server.url(path)


def advertising(feed_path: str) -> bytes:
    """A homepage whose <head> advertises its feed."""
    link = f'<link rel="alternate" type="application/rss+xml" href="{feed_path}">'
    return f"<html><head>{link}</head><body>Bienvenue</body></html>".encode()


def buttons(message: SentMessage) -> dict[str, str]:
    """callback data → button text, of a message's inline keyboard."""
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return {b["callback_data"]: b["text"] for row in rows for b in row}


def visible(messages: list[SentMessage]) -> str:
    return "\n".join(m.visible_text or "" for m in messages)


def last_with_buttons(messages: list[SentMessage]) -> SentMessage:
    return [m for m in messages if m.reply_markup][-1]


async def send_address(
    bot: Harness, user: int, typed: str, *, lang: str = "fr"
) -> list[SentMessage]:
    """Say an address: reading it takes a moment after "🔎 …", so wait for the answer too."""
    replies = await bot.say(user, typed, lang=lang)
    while (replies[-1].visible_text or "").startswith("🔎"):
        replies += await bot.replies(user, wait=10)
    return replies


async def register_in_one_go(bot: Harness, url: str, user: int = OWNER) -> list[SentMessage]:
    return await send_address(bot, user, f"/register {url}")


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- /register, guided ------------------------------------------------------------------------


async def test_a_business_registers_its_feed_step_by_step(
    bot: Harness, server: LocalServer
) -> None:
    url = serve_feed(server)
    asked = await bot.say(OWNER, "/register")
    assert "adresse de votre site" in visible(asked)
    assert "reg:nosite" in buttons(asked[-1])

    found = await send_address(bot, OWNER, url)
    assert found[0].visible_text.startswith("🔎")
    preview = found[1]
    assert "flux RSS" in preview.visible_text
    assert url in preview.visible_text
    assert preview.text.count("<a href=") == 3  # three latest items, titles linked
    assert "Nouvelle p0" in preview.visible_text
    assert "Nouvelle p3" not in preview.visible_text
    assert "23/11/2026" in preview.visible_text  # dates in Europe/Paris
    assert buttons(found[-1]) == {"reg:name": "Utiliser « Boulangerie Martin »"}

    category = await bot.press(OWNER, found[-1], "reg:name")
    assert "reg:cat:bakery" in buttons(category[-1])
    assert buttons(category[-1])["reg:cat:bakery"] == "Boulangerie"
    city = await bot.press(OWNER, category[-1], "reg:cat:bakery")
    assert "ville" in visible(city)
    recap = await bot.say(OWNER, "Lyon")
    assert "Boulangerie Martin" in recap[-1].visible_text
    assert "Lyon" in recap[-1].visible_text
    done = await bot.press(OWNER, recap[-1], "reg:ok")
    assert "attend" in visible(done) or "modérateur" in visible(done)

    with bot.db.read() as session:
        [business] = businesses_of(session, OWNER)
        [source] = sources_of(session, business.id)
    assert business.status is BusinessStatus.PENDING
    assert (business.name, business.category, business.city) == (
        "Boulangerie Martin",
        "bakery",
        "Lyon",
    )
    assert (source.url, source.kind) == (url, "rss")

    await bot.worker.send()
    [card] = bot.fake.sent(ADMIN)
    assert "Nouveau commerce" in card.visible_text
    assert "Boulangerie Martin" in card.visible_text
    assert f"m:b:a:{business.id}" in buttons(card)


async def test_a_typed_name_and_every_button_press_is_answered(
    bot: Harness, server: LocalServer
) -> None:
    url = serve_feed(server)
    await bot.say(OWNER, "/register")
    await send_address(bot, OWNER, url)
    category = await bot.say(OWNER, "  Chez   Martin ")
    city = await bot.press(OWNER, category[-1], "reg:cat:florist")
    recap = await bot.say(OWNER, "Saint-Étienne")
    assert "Fleuriste" in recap[-1].visible_text
    await bot.press(OWNER, recap[-1], "reg:ok")
    with bot.db.read() as session:
        [business] = businesses_of(session, OWNER)
    assert (business.name, business.category, business.city) == (
        "Chez Martin",
        "florist",
        "Saint-Étienne",
    )
    assert city  # asked for the town
    assert len(bot.fake.answered_callbacks) == 2


async def test_text_where_a_button_is_expected_asks_for_the_buttons(
    bot: Harness, server: LocalServer
) -> None:
    await bot.say(OWNER, "/register")
    found = await send_address(bot, OWNER, serve_feed(server))
    category = await bot.press(OWNER, found[-1], "reg:name")
    again = await bot.say(OWNER, "boulangerie")
    assert "boutons" in visible(again)
    forged = await bot.press(OWNER, category[-1], "reg:cat:weapons")
    assert "boutons" in visible(forged)
    city = await bot.press(OWNER, category[-1], "reg:cat:other")
    assert "ville" in visible(city)


async def test_a_business_without_a_website_registers_and_posts(bot: Harness) -> None:
    asked = await bot.say(OWNER, "/register")
    name = await bot.press(OWNER, asked[-1], "reg:nosite")
    assert "nom de votre commerce" in visible(name)
    category = await bot.say(OWNER, "Atelier Jeanne")
    await bot.press(OWNER, category[-1], "reg:cat:crafts")
    recap = await bot.say(OWNER, "Lyon")
    assert "pas de site" in recap[-1].visible_text
    done = await bot.press(OWNER, recap[-1], "reg:ok")
    assert "/post" in visible(done)
    with bot.db.read() as session:
        [business] = businesses_of(session, OWNER)
        assert sources_of(session, business.id) == []
    await bot.worker.send()
    assert "Atelier Jeanne" in bot.fake.sent(ADMIN)[0].visible_text


# --- /register URL, discovery, page feeds ----------------------------------------------------


async def test_register_with_a_url_does_it_in_one_message(
    bot: Harness, server: LocalServer
) -> None:
    url = serve_feed(server)
    replies = await register_in_one_go(bot, url)
    assert "Boulangerie Martin" in replies[-1].visible_text
    with bot.db.read() as session:
        [business] = businesses_of(session, OWNER)
        [source] = sources_of(session, business.id)
    assert (business.name, business.category, business.city) == ("Boulangerie Martin", None, None)
    assert business.status is BusinessStatus.PENDING
    assert source.url == url


async def test_a_homepage_advertising_its_feed_is_discovered(
    bot: Harness, server: LocalServer
) -> None:
    feed = serve_feed(server, "/actus/feed.xml")
    page = advertising("/actus/feed.xml")
    server.route("/", Reply(body=page, headers=HTML))
    replies = await register_in_one_go(bot, server.url("/"))
    assert f"flux RSS : {feed}" in visible(replies)
    with bot.db.read() as session:
        [business] = businesses_of(session, OWNER)
        [source] = sources_of(session, business.id)
    assert (source.url, source.kind) == (feed, "rss")


async def test_a_page_without_a_feed_is_read_as_a_page(bot: Harness, server: LocalServer) -> None:
    server.route("/actualites/", Reply(body=(PAGES / "hfeed.html").read_bytes(), headers=HTML))
    url = server.url("/actualites/")
    replies = await register_in_one_go(bot, url)
    assert "lirai directement" in visible(replies)
    assert "Atelier réparation du samedi" in visible(replies)
    with bot.db.read() as session:
        [business] = businesses_of(session, OWNER)
        [source] = sources_of(session, business.id)
    assert (source.url, source.kind) == (url, "page")
    assert business.name == "Le Vélo Solidaire — Actualités"


async def test_a_host_without_scheme_is_tried_with_https(bot: Harness) -> None:
    replies = await send_address(bot, OWNER, "/register 127.0.0.1:9")
    assert "https://127.0.0.1:9" in visible(replies)


# --- Bad input: a clear answer and another try ------------------------------------------------


@pytest.mark.parametrize("typed", ["pas une url", "ftp://x"])
async def test_not_a_url_gets_a_clear_answer_and_another_try(
    bot: Harness, server: LocalServer, typed: str
) -> None:
    await bot.say(OWNER, "/register")
    answer = await send_address(bot, OWNER, typed)
    assert f"« {typed} » n'est pas une adresse web valide" in visible(answer)
    assert "Envoyez une autre adresse" in visible(answer)
    retry = await send_address(bot, OWNER, serve_feed(server))
    assert "reg:name" in buttons(retry[-1])


async def test_an_unreachable_site_gets_another_try(bot: Harness, server: LocalServer) -> None:
    await bot.say(OWNER, "/register")
    answer = await send_address(bot, OWNER, f"http://127.0.0.1:{unused_port()}/")
    assert "Impossible de joindre" in visible(answer)
    retry = await send_address(bot, OWNER, serve_feed(server))
    assert "reg:name" in buttons(retry[-1])


@pytest.mark.parametrize("url", ["http://10.0.0.1/", "http://169.254.169.254/latest/"])
async def test_a_private_address_is_refused(bot: Harness, url: str) -> None:
    answer = await register_in_one_go(bot, url)
    assert "réseau privé ou local" in visible(answer)
    with bot.db.read() as session:
        assert businesses_of(session, OWNER) == []


async def test_a_site_with_nothing_readable_is_explained(bot: Harness, server: LocalServer) -> None:
    server.route("/", Reply(body=(PAGES / "nothing.html").read_bytes(), headers=HTML))
    answer = await register_in_one_go(bot, server.url("/"))
    assert "Aucun flux ni actualité" in visible(answer)


async def test_a_source_already_registered_says_by_whom(bot: Harness, server: LocalServer) -> None:
    url = serve_feed(server)
    await register_in_one_go(bot, url, user=7)
    answer = await register_in_one_go(bot, url)
    assert "déjà inscrite par Boulangerie Martin" in visible(answer)
    with bot.db.read() as session:
        assert businesses_of(session, OWNER) == []


async def test_a_homepage_whose_feed_is_taken_is_a_duplicate(
    bot: Harness, server: LocalServer
) -> None:
    feed = serve_feed(server)
    page = advertising("/feed.xml")
    server.route("/", Reply(body=page, headers=HTML))
    await register_in_one_go(bot, feed, user=7)
    answer = await register_in_one_go(bot, server.url("/"))
    assert "déjà inscrite par Boulangerie Martin" in visible(answer)


async def test_an_english_speaker_is_answered_in_english(bot: Harness, server: LocalServer) -> None:
    asked = await bot.say(OWNER, "/register", lang="en")
    assert "address of your website" in visible(asked)
    assert buttons(asked[-1]) == {"reg:nosite": "🙅 I have no website"}
    found = await send_address(bot, OWNER, serve_feed(server), lang="en")
    assert "I found an RSS feed" in visible(found)
    assert buttons(found[-1]) == {"reg:name": "Use “Boulangerie Martin”"}
    category = await bot.press(OWNER, found[-1], "reg:name", lang="en")
    assert buttons(category[-1])["reg:cat:bookshop"] == "Bookshop"
    wrong = await bot.say(OWNER, "not a url", lang="en")
    assert "Use the buttons" in visible(wrong)


async def test_cancel_leaves_the_registration(bot: Harness, server: LocalServer) -> None:
    await bot.say(OWNER, "/register")
    found = await send_address(bot, OWNER, serve_feed(server))
    cancelled = await bot.say(OWNER, "/cancel")
    assert "rien n'a été enregistré" in visible(cancelled)
    stale = await bot.press(OWNER, found[-1], "reg:name")
    assert "n'est plus en cours" in visible(stale)
    with bot.db.read() as session:
        assert businesses_of(session, OWNER) == []


async def test_the_recap_cancel_button_saves_nothing(bot: Harness) -> None:
    asked = await bot.say(OWNER, "/register")
    await bot.press(OWNER, asked[-1], "reg:nosite")
    category = await bot.say(OWNER, "Atelier")
    await bot.press(OWNER, category[-1], "reg:cat:other")
    recap = await bot.say(OWNER, "Lyon")
    answer = await bot.press(OWNER, recap[-1], "reg:no")
    assert "rien n'a été enregistré" in visible(answer)
    with bot.db.read() as session:
        assert businesses_of(session, OWNER) == []


# --- /post ------------------------------------------------------------------------------------


async def active_business(bot: Harness, server: LocalServer, user: int = OWNER) -> int:
    """A registered business a moderator approved (approval itself is tested elsewhere)."""
    await register_in_one_go(bot, serve_feed(server, f"/{user}.xml", f"Commerce {user}"), user)
    with bot.db.write() as session:
        [business] = businesses_of(session, user)
        update_business(session, business.id, status=BusinessStatus.ACTIVE.value)
    return business.id


async def test_post_without_a_business_says_to_register_first(bot: Harness) -> None:
    answer = await bot.say(OWNER, "/post")
    assert "/register" in visible(answer)


async def test_a_post_becomes_a_pending_item_with_a_card(bot: Harness, server: LocalServer) -> None:
    business_id = await active_business(bot, server)
    ask = await bot.say(OWNER, "/post")
    assert "première ligne est le titre" in visible(ask)
    done = await bot.say(
        OWNER, "Promo du samedi\nCroissants à moitié prix https://martin.example/promo."
    )
    assert "attend la validation" in visible(done)
    with bot.db.read() as session:
        [item] = item_queries.items_of_business(session, business_id, "pending")
    assert (item.title, item.link) == ("Promo du samedi", "https://martin.example/promo")
    assert item.summary == "Croissants à moitié prix https://martin.example/promo."
    bot.new_messages(ADMIN)
    await bot.worker.send()
    cards = [m for m in bot.new_messages(ADMIN) if "Promo du samedi" in (m.visible_text or "")]
    assert len(cards) == 1
    assert f"m:i:a:{item.id}" in buttons(cards[0])


async def test_a_photo_with_a_caption_is_a_post(bot: Harness, server: LocalServer) -> None:
    business_id = await active_business(bot, server)
    await bot.say(OWNER, "/post")
    bot.fake.user_sends_photo(OWNER, "Nouveau bouquet")
    done = await bot.replies(OWNER)
    assert "📷" in visible(done)
    with bot.db.read() as session:
        [item] = item_queries.items_of_business(session, business_id, "pending")
    assert item.title == "Nouveau bouquet"
    assert (item.image or "").startswith("tg:user-42-")


async def test_a_post_needs_some_text(bot: Harness, server: LocalServer) -> None:
    await active_business(bot, server)
    await bot.say(OWNER, "/post")
    bot.fake.user_sends_photo(OWNER)
    answer = await bot.replies(OWNER)
    assert "Il me faut un texte" in visible(answer)


async def test_an_owner_of_two_businesses_picks_one(bot: Harness, server: LocalServer) -> None:
    await register_in_one_go(bot, serve_feed(server, "/a.xml", "Alpha"))
    await register_in_one_go(bot, serve_feed(server, "/b.xml", "Beta"))
    pick = await bot.say(OWNER, "/post")
    choices = buttons(pick[-1])
    assert sorted(choices.values()) == ["Alpha", "Beta"]
    beta = next(data for data, label in choices.items() if label == "Beta")
    ask = await bot.press(OWNER, pick[-1], beta)
    assert "Beta" in visible(ask)
    done = await bot.say(OWNER, "Ouverture dimanche")
    assert "dès que Beta sera validé" in visible(done)  # the business is still pending


async def test_a_forged_business_press_posts_nothing(bot: Harness, server: LocalServer) -> None:
    other = await active_business(bot, server, user=7)
    await register_in_one_go(bot, serve_feed(server, "/mine.xml", "Mine"))
    await register_in_one_go(bot, serve_feed(server, "/mine2.xml", "Mine 2"))
    pick = await bot.say(OWNER, "/post")
    answer = await bot.press(OWNER, pick[-1], f"post:{other}")
    assert "n'est pas à vous" in visible(answer)


async def test_cancel_leaves_posting(bot: Harness, server: LocalServer) -> None:
    business_id = await active_business(bot, server)
    await bot.say(OWNER, "/post")
    assert "annulé" in visible(await bot.say(OWNER, "/cancel"))
    bot.fake.user_sends(OWNER, "Rien")
    with bot.db.read() as session:
        assert item_queries.items_of_business(session, business_id, "pending") == []


# --- /sources and /remove ----------------------------------------------------------------------


async def test_sources_shows_health_in_plain_words(bot: Harness, server: LocalServer) -> None:
    url = serve_feed(server)
    await register_in_one_go(bot, url)
    before = await bot.say(OWNER, "/sources")
    assert "en attente de validation" in visible(before)
    assert "pas encore" in visible(before)
    server.route("/feed.xml", Reply(404, b"gone", HTML))
    await bot.worker.poll()
    after = visible(await bot.say(OWNER, "/sources"))
    assert url in after
    assert "Dernière consultation : 23/11/2026 à 10:00" in after
    assert "Le site « " in after
    assert "a répondu par une erreur (HTTP 404)" in after


async def test_a_paused_source_is_resumed_from_sources(bot: Harness, server: LocalServer) -> None:
    url = serve_feed(server)
    await register_in_one_go(bot, url)
    server.route("/feed.xml", Reply(410, b"gone", HTML))
    await bot.worker.poll()  # 410: paused at once
    listing = await bot.say(OWNER, "/sources")
    assert "En pause" in visible(listing)
    resume = next(data for data in buttons(listing[-1]) if data.startswith("rs:"))
    other = await bot.press(7, listing[-1], resume)
    assert "n'est pas à vous" in visible(other)
    done = await bot.press(OWNER, listing[-1], resume)
    assert "reprend" in visible(done)
    server.route("/feed.xml", Reply(200, rss(entries(2)), {"Content-Type": "application/rss+xml"}))
    report = await bot.worker.poll()
    assert report.changed == 1


async def test_sources_in_english(bot: Harness, server: LocalServer) -> None:
    await register_in_one_go(bot, serve_feed(server))
    await bot.worker.poll()
    answer = visible(await bot.say(OWNER, "/sources", lang="en"))
    assert "waiting for review" in answer
    assert "Last checked: 23 Nov 2026 at 10:00" in answer


async def test_sources_without_a_business(bot: Harness) -> None:
    assert "/register" in visible(await bot.say(OWNER, "/sources"))


async def test_remove_deletes_the_chosen_source(bot: Harness, server: LocalServer) -> None:
    url = serve_feed(server)
    await register_in_one_go(bot, url)
    pick = await bot.say(OWNER, "/remove")
    [data] = buttons(pick[-1])
    sure = await bot.press(OWNER, pick[-1], data)
    assert url in visible(sure)
    done = await bot.press(OWNER, sure[-1], f"{data}:y")
    assert "Source retirée" in visible(done)
    with bot.db.read() as session:
        [business] = businesses_of(session, OWNER)
        assert sources_of(session, business.id) == []


async def test_remove_can_be_declined(bot: Harness, server: LocalServer) -> None:
    await register_in_one_go(bot, serve_feed(server))
    pick = await bot.say(OWNER, "/remove")
    [data] = buttons(pick[-1])
    sure = await bot.press(OWNER, pick[-1], data)
    assert "je garde" in visible(await bot.press(OWNER, sure[-1], "rm:n"))
    with bot.db.read() as session:
        [business] = businesses_of(session, OWNER)
        assert len(sources_of(session, business.id)) == 1


async def test_a_forged_remove_press_does_nothing(bot: Harness, server: LocalServer) -> None:
    await register_in_one_go(bot, serve_feed(server, "/theirs.xml", "Theirs"), user=7)
    await register_in_one_go(bot, serve_feed(server))
    with bot.db.read() as session:
        [theirs] = businesses_of(session, 7)
        [their_source] = sources_of(session, theirs.id)
    pick = await bot.say(OWNER, "/remove")
    for data in (f"rm:{their_source.id}", f"rm:{their_source.id}:y", "rm:999999"):
        answer = await bot.press(OWNER, pick[-1], data)
        assert "n'est pas à vous" in visible(answer)
    with bot.db.read() as session:
        assert len(sources_of(session, theirs.id)) == 1


async def test_remove_with_nothing_to_remove(bot: Harness) -> None:
    assert "aucune source" in visible(await bot.say(OWNER, "/remove"))


async def test_every_press_is_answered(bot: Harness, server: LocalServer) -> None:
    await register_in_one_go(bot, serve_feed(server))
    pick = await bot.say(OWNER, "/remove")
    presses = ["rm:n", "reg:ok", "reg:cat:bakery", "post:1"]
    for data in presses:
        await bot.press(OWNER, pick[-1], data)
    assert len(bot.fake.answered_callbacks) == len(presses)


async def test_the_pending_item_waits_for_its_business(bot: Harness) -> None:
    """A post of a business not yet approved is pending, with no card until approval."""
    asked = await bot.say(OWNER, "/register")
    await bot.press(OWNER, asked[-1], "reg:nosite")
    category = await bot.say(OWNER, "Atelier")
    await bot.press(OWNER, category[-1], "reg:cat:crafts")
    recap = await bot.say(OWNER, "Lyon")
    await bot.press(OWNER, recap[-1], "reg:ok")
    await bot.say(OWNER, "/post")
    await bot.say(OWNER, "Stage de poterie samedi")
    with bot.db.read() as session:
        [business] = businesses_of(session, OWNER)
        [item] = item_queries.items_of_business(session, business.id, "pending")
        cards = [d for d in outbox.deliveries_for(session) if d.item_id == item.id]
    assert item.state is ItemState.PENDING
    assert cards == []
