"""The owner's side without Telegram: reading what people type, registering in one
transaction, posts, source health in plain words, removal only by the owner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from feeds.errors import InvalidURLError
from feeds.models import FeedItem, FetchResult, ParsedFeed
from feeds.reader import SourceReading
from relay.registration import (
    Draft,
    Found,
    Holding,
    Post,
    Posted,
    candidate_url,
    category_name,
    clean_label,
    create_post,
    found_in,
    holdings,
    holdings_text,
    latest,
    local_time,
    posted_text,
    preview_text,
    proposed_name,
    read_post,
    recap_text,
    register,
    remove_source,
)
from relay.settings import Settings
from storage import items as item_queries
from storage import outbox, people
from storage.engine import Database
from storage.sources import (
    NewBusiness,
    SourceExistsError,
    businesses_of,
    create_business,
    create_source,
    sources_of,
    update_business,
    update_source,
)
from storage.values import Business, BusinessStatus, ItemState
from tests.support.builders import T0, relay_settings

OWNER, STRANGER, MOD = 42, 43, 11
PARIS = "Europe/Paris"


@pytest.fixture
def settings() -> Settings:
    return relay_settings()


@pytest.fixture
def with_moderator(db: Database) -> Database:
    with db.write() as session:
        people.add_moderator(session, MOD, "moderator", None, T0)
    return db


def item(title: str | None, hours_ago: float | None, link: str | None = None) -> FeedItem:
    when = T0 - timedelta(hours=hours_ago) if hours_ago is not None else None
    return FeedItem(title, link or f"https://martin.example/{title}", None, when, None, None)


def found(
    url: str = "https://martin.example/", source: str = "https://martin.example/feed"
) -> Found:
    return Found(url, source, "rss", "Boulangerie Martin", (item("Pain", 1),))


# --- What people type --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "url"),
    [
        ("https://martin.example/feed", "https://martin.example/feed"),
        ("  http://martin.example  ", "http://martin.example"),
        ("boulangerie.fr", "https://boulangerie.fr"),
        ("www.boulangerie.fr/actus?p=1", "https://www.boulangerie.fr/actus?p=1"),
        ("127.0.0.1:8080", "https://127.0.0.1:8080"),
        ("HTTPS://Martin.example/", "HTTPS://Martin.example/"),
    ],
)
def test_what_people_type_becomes_a_url(typed: str, url: str) -> None:
    assert candidate_url(typed) == url


@pytest.mark.parametrize(
    "typed",
    ["pas une url", "ftp://x", "boulangerie", "http://", "", "javascript:alert(1)", "a b.fr"],
)
def test_what_is_not_a_url_is_refused(typed: str) -> None:
    with pytest.raises(InvalidURLError) as caught:
        candidate_url(typed)
    assert caught.value.url == typed.strip()
    assert caught.value.code == "invalid_url"


@pytest.mark.parametrize(
    ("typed", "limit", "label"),
    [
        ("  Chez   Martin ", 200, "Chez Martin"),
        ("", 200, None),
        ("   ", 5, None),
        ("Lyon", 3, None),
    ],
)
def test_names_and_towns_fit_on_one_line(typed: str, limit: int, label: str | None) -> None:
    assert clean_label(typed, limit) == label


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Promo", Post("Promo", None, None)),
        ("Promo\n\nMoitié prix\nce samedi", Post("Promo", "Moitié prix\nce samedi", None)),
        (
            "Promo https://m.example/p.",
            Post("Promo https://m.example/p.", None, "https://m.example/p"),
        ),
        ("https://m.example/p\nPromo\nSuite", Post("Promo", "Suite", "https://m.example/p")),
        (
            "Voir (https://m.example/x)",
            Post("Voir (https://m.example/x)", None, "https://m.example/x"),
        ),
        ("ftp://m.example/p", Post("ftp://m.example/p", None, None)),
        ("https://m.example/p", Post("https://m.example/p", None, "https://m.example/p")),
        ("  \n ", None),
    ],
)
def test_a_post_is_title_summary_and_link(typed: str, expected: Post | None) -> None:
    assert read_post(typed) == expected


def test_a_photo_post_keeps_its_file_id() -> None:
    assert read_post("Bouquet", "tg:abc") == Post("Bouquet", None, None, "tg:abc")


# --- What reading found -----------------------------------------------------------------------


def test_the_preview_shows_the_newest_items_undated_last() -> None:
    items = (item("old", 30), item("undated", None), item("new", 1), item("mid", 5))
    assert [i.title for i in latest(items)] == ["new", "mid", "old"]
    assert [i.title for i in latest(items, 5)] == ["new", "mid", "old", "undated"]


def test_a_reading_gives_the_final_url_and_the_title() -> None:
    parsed = ParsedFeed("atom", "  Fleurs\n Lila ", None, (item("a", 1),))
    fetched = FetchResult("https://lila.example/", "https://lila.example/atom.xml", 200)
    reading = SourceReading("https://lila.example/", fetched.final_url, "atom", parsed, (), fetched)
    assert found_in(reading) == Found(
        "https://lila.example/",
        "https://lila.example/atom.xml",
        "atom",
        "Fleurs Lila",
        parsed.items,
    )


@pytest.mark.parametrize(
    ("title", "given", "name"),
    [
        ("Boulangerie Martin", "https://martin.example/feed", "Boulangerie Martin"),
        (None, "https://www.martin.example/feed", "martin.example"),
        (None, "http://feeds.example/martin", "feeds.example"),
        ("x" * 300, "https://m.example/", "x" * 199 + "…"),
    ],
)
def test_the_proposed_name_is_the_title_else_the_host_given(
    title: str | None, given: str, name: str
) -> None:
    assert proposed_name(Found(given, "https://cdn.example/f.xml", "rss", title, ())) == name


def test_the_preview_links_titles_and_escapes_them() -> None:
    shown = Found(
        "u",
        "https://m.example/feed",
        "page",
        None,
        (item("<b>Pain</b> & co", 1, "https://m.example/p?a=1&b=2"),),
    )
    html = preview_text(shown, "fr", PARIS)
    assert "lirai directement" in html
    assert '<a href="https://m.example/p?a=1&amp;b=2">&lt;b&gt;Pain&lt;/b&gt; &amp; co</a>' in html
    assert "</a> — 23/11/2026" in html
    assert "(no news yet" in preview_text(
        Found("u", "https://m.example/", "rss", None, ()), "en", PARIS
    )


@pytest.mark.parametrize(
    ("lang", "with_time", "shown"),
    [
        ("fr", True, "23/11/2026 à 10:00"),
        ("en", True, "23 Nov 2026 at 10:00"),
        ("fr", False, "23/11/2026"),
    ],
)
def test_times_are_shown_in_paris(lang: str, with_time: bool, shown: str) -> None:
    assert local_time(T0, lang, PARIS, with_time=with_time) == shown


def test_the_recap_names_the_category_in_the_persons_language() -> None:
    draft = Draft(OWNER, "en", found(), "Martin & fils", "bakery", "Lyon")
    recap = recap_text(draft, "en")
    assert "Martin &amp; fils" in recap
    assert "Category: Bakery" in recap
    assert "no website" in recap_text(Draft(OWNER, "en", None, "A", None, None), "en")
    assert category_name(None, "fr") == "—"
    assert category_name("florist", "fr") == "Fleuriste"


# --- Registering --------------------------------------------------------------------------------


def test_registering_creates_a_pending_business_its_source_and_a_card(
    with_moderator: Database, settings: Settings
) -> None:
    draft = Draft(OWNER, "en", found(), "Boulangerie Martin", "bakery", "Lyon")
    business = register(with_moderator, draft, settings, T0)
    with with_moderator.read() as session:
        [source] = sources_of(session, business.id)
        [card] = outbox.deliveries_for(session)
    assert business.status is BusinessStatus.PENDING
    assert (business.owner_id, business.owner_language) == (OWNER, "en")
    assert (source.url, source.kind, source.title) == (
        "https://martin.example/feed",
        "rss",
        "Boulangerie Martin",
    )
    assert card.chat_id == MOD
    assert "Boulangerie Martin" in card.text


def test_registering_without_a_website_creates_no_source(
    with_moderator: Database, settings: Settings
) -> None:
    business = register(with_moderator, Draft(OWNER, "fr", None, "Atelier"), settings, T0)
    with with_moderator.read() as session:
        assert sources_of(session, business.id) == []
        assert len(outbox.deliveries_for(session)) == 1


@pytest.mark.parametrize(
    "taken", ["https://martin.example/", "https://martin.example/feed"], ids=["given", "read"]
)
def test_a_taken_url_registers_nothing(
    with_moderator: Database, settings: Settings, taken: str
) -> None:
    with with_moderator.write() as session:
        first = create_business(session, NewBusiness("Premier", STRANGER), T0)
        create_source(session, first.id, taken, "rss", T0)
    with pytest.raises(SourceExistsError) as caught:
        register(with_moderator, Draft(OWNER, "fr", found(), "Second"), settings, T0)
    assert caught.value.business.name == "Premier"
    with with_moderator.read() as session:
        assert businesses_of(session, OWNER) == []
        assert outbox.deliveries_for(session) == []


# --- Posting -----------------------------------------------------------------------------------


def a_business(db: Database, status: BusinessStatus, trusted: bool = False) -> Business:
    with db.write() as session:
        return create_business(
            session, NewBusiness("Fleurs Lila", OWNER, status=status, trusted=trusted), T0
        )


@pytest.mark.parametrize(
    ("status", "trusted", "state", "cards"),
    [
        (BusinessStatus.ACTIVE, False, ItemState.PENDING, 1),
        (BusinessStatus.ACTIVE, True, ItemState.APPROVED, 0),
        (BusinessStatus.PENDING, False, ItemState.PENDING, 0),  # cards when it is approved
        (BusinessStatus.SUSPENDED, False, ItemState.SEEN, 0),
    ],
)
def test_a_post_starts_in_the_state_its_business_allows(
    with_moderator: Database,
    settings: Settings,
    status: BusinessStatus,
    trusted: bool,
    state: ItemState,
    cards: int,
) -> None:
    business = a_business(with_moderator, status, trusted)
    post = Post("Bouquet du jour", "Roses", "https://lila.example/b")
    posted = create_post(with_moderator, OWNER, business.id, post, 7, settings, T0)
    assert posted is not None
    assert posted.state is state
    with with_moderator.read() as session:
        [stored] = item_queries.items_by_id(session, [posted.item_id])
        assert len(outbox.deliveries_for(session, item_id=posted.item_id)) == cards
    assert (stored.title, stored.summary, stored.link, stored.state) == (
        "Bouquet du jour",
        "Roses",
        "https://lila.example/b",
        state,
    )
    assert (stored.approved_at is not None) == (state is ItemState.APPROVED)


def test_the_same_message_posts_once(with_moderator: Database, settings: Settings) -> None:
    business = a_business(with_moderator, BusinessStatus.ACTIVE)
    post = Post("Bouquet", None, None)
    first = create_post(with_moderator, OWNER, business.id, post, 7, settings, T0)
    again = create_post(with_moderator, OWNER, business.id, post, 7, settings, T0)
    assert first is not None
    assert again is not None
    assert first.item_id == again.item_id
    with with_moderator.read() as session:
        assert len(item_queries.items_of_business(session, business.id, "pending")) == 1


def test_only_the_owner_posts(with_moderator: Database, settings: Settings) -> None:
    business = a_business(with_moderator, BusinessStatus.ACTIVE)
    post = Post("Bouquet", None, None)
    assert create_post(with_moderator, STRANGER, business.id, post, 7, settings, T0) is None
    assert create_post(with_moderator, OWNER, 999, post, 7, settings, T0) is None


@pytest.mark.parametrize(
    ("state", "status", "words"),
    [
        (ItemState.PENDING, BusinessStatus.ACTIVE, "attend la validation"),
        (ItemState.PENDING, BusinessStatus.PENDING, "dès que <b>Lila</b> sera validé"),
        (ItemState.APPROVED, BusinessStatus.ACTIVE, "est validée"),
        (ItemState.SEEN, BusinessStatus.SUSPENDED, "<b>Lila</b> est suspendu"),
    ],
)
def test_the_owner_is_told_where_the_post_stands(
    state: ItemState, status: BusinessStatus, words: str
) -> None:
    business = Business(1, "Lila", None, None, OWNER, "fr", status, False)
    message = posted_text(Posted(1, state, business), Post("<Promo>", None, None, "tg:x"), "fr")
    assert words in message
    assert "&lt;Promo&gt;" in message
    assert "📷" in message


# --- Health and removal -------------------------------------------------------------------------


def test_health_in_plain_words(db: Database, settings: Settings) -> None:
    with db.write() as session:
        business = create_business(session, NewBusiness("Martin", OWNER), T0)
        ok = create_source(session, business.id, "https://m.example/ok", "rss", T0)
        bad = create_source(session, business.id, "https://m.example/bad", "rss", T0)
        update_source(session, ok.id, last_checked_at=T0, last_new_item_at=T0)
        update_source(
            session,
            bad.id,
            last_checked_at=T0 + timedelta(hours=1),
            last_error="http_status",
            last_error_detail="HTTP 404",
            failures=10,
            paused=True,
        )
        create_business(session, NewBusiness("Atelier", OWNER, status=BusinessStatus.ACTIVE), T0)
    with db.read() as session:
        found_ = holdings(session, OWNER)
    shown = holdings_text(found_, "fr", PARIS)
    assert [h.business.name for h in found_] == ["Martin", "Atelier"]
    assert "Dernière nouveauté : 23/11/2026 à 10:00" in shown
    assert "Dernière consultation : 23/11/2026 à 11:00" in shown
    assert "(10 échec(s) d'affilée)" in shown
    assert "a répondu par une erreur (HTTP 404)" in shown
    assert "En pause" in shown
    assert "✅ actif" in shown
    assert "Pas de site" in shown


def test_health_says_not_yet_in_english() -> None:
    business = Business(1, "Lila", None, None, OWNER, "en", BusinessStatus.SUSPENDED, False)
    shown = holdings_text([Holding(business, (), {})], "en", PARIS)
    assert "⛔ suspended" in shown


def test_only_the_owner_removes_a_source(db: Database) -> None:
    with db.write() as session:
        business = create_business(session, NewBusiness("Martin", OWNER), T0)
        source = create_source(session, business.id, "https://m.example/feed", "rss", T0)
    assert remove_source(db, STRANGER, source.id) is None
    assert remove_source(db, OWNER, 999) is None
    removed = remove_source(db, OWNER, source.id)
    assert removed is not None
    assert removed.url == "https://m.example/feed"
    with db.read() as session:
        assert sources_of(session, business.id) == []
    assert remove_source(db, OWNER, source.id) is None


def test_a_removed_url_can_be_registered_again(db: Database, settings: Settings) -> None:
    with db.write() as session:
        business = create_business(session, NewBusiness("Martin", OWNER), T0)
        source = create_source(session, business.id, "https://martin.example/feed", "rss", T0)
        update_business(session, business.id, status="active")
    remove_source(db, OWNER, source.id)
    again = register(db, Draft(OWNER, "fr", found(), "Martin bis"), settings, T0)
    assert again.status is BusinessStatus.PENDING


def test_dates_are_aware() -> None:
    assert T0.tzinfo is UTC
    assert local_time(datetime(2026, 7, 1, 12, tzinfo=UTC), "fr", PARIS) == "01/07/2026 à 14:00"
