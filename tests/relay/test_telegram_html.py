"""Telegram HTML: escaping, links, channel posts that always fit and always parse."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.telegram_html import (
    MAX_MESSAGE,
    escape,
    link,
    render_post,
    to_plain_message,
    to_plain_text,
    truncate_text,
    utf16_len,
    visible_length,
)
from storage.values import ItemState, QueuedItem
from tests.relay.html_checker import telegram_html_problems


def post_item(**fields: object) -> QueuedItem:
    values: dict[str, object] = {
        "id": 1,
        "business_id": 7,
        "business_name": "Fleurs de Lila",
        "category": "Fleuriste",
        "city": "Saint-Étienne",
        "title": "Arrivage de tulipes",
        "link": "https://fleurs.example/tulipes",
        "summary": "Des tulipes de Hollande, toutes les couleurs.",
        "image": "https://fleurs.example/tulipes.jpg",
        "published": datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
        "approved_at": datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
        "state": ItemState.APPROVED,
    }
    values.update(fields)
    return QueuedItem(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a & b", "a &amp; b"),
        ("<script>", "&lt;script&gt;"),
        ("</b>", "&lt;/b&gt;"),
        ('say "hi"', "say &quot;hi&quot;"),
        ("l'été", "l&#x27;été"),
        ("&amp;", "&amp;amp;"),  # already-escaped text is text: shown as typed
    ],
)
def test_escape(text: str, expected: str) -> None:
    assert escape(text) == expected


@pytest.mark.parametrize(
    ("url", "label", "expected"),
    [
        ("https://a.example/x", "Hi", '<a href="https://a.example/x">Hi</a>'),
        ("HTTP://a.example/", "Hi", '<a href="HTTP://a.example/">Hi</a>'),
        ("https://a.example/?a=1&b=2", "x", '<a href="https://a.example/?a=1&amp;b=2">x</a>'),
        ('https://a.example/"onclick', "x", '<a href="https://a.example/&quot;onclick">x</a>'),
        ("javascript:alert(1)", "<b>", "&lt;b&gt;"),
        ("tg://user?id=1", "x", "x"),
        ("/relative", "x", "x"),
        ("https://", "x", "x"),
        ("https://a.example/\nx", "x", "x"),
        (None, "a & b", "a &amp; b"),
        ("https://a.example/" + "x" * 2000, "long", "long"),
    ],
)
def test_link_only_for_http(url: str | None, label: str, expected: str) -> None:
    assert link(url, label) == expected


@pytest.mark.parametrize(
    ("markup", "plain", "length"),
    [
        ("<b>Fleurs</b>", "Fleurs", 6),
        ('<a href="https://x.example/?a&amp;b">a &amp; b</a>', "a & b", 5),
        ("&lt;script&gt;", "<script>", 8),
        ("🌷", "🌷", 2),  # Telegram counts UTF-16 code units
    ],
)
def test_plain_text_and_visible_length(markup: str, plain: str, length: int) -> None:
    assert to_plain_text(markup) == plain
    assert visible_length(markup) == length


@pytest.mark.parametrize(
    ("text", "visible", "expected"),
    [
        ("short", 10, "short"),
        ("tulipes de Hollande", 12, "tulipes de…"),
        ("anticonstitutionnellement", 10, "anticonst…"),  # no space near: hard cut
        ("a b", 0, ""),
    ],
)
def test_truncate_text_at_word_boundary(text: str, visible: int, expected: str) -> None:
    assert truncate_text(text, visible) == expected


def test_truncate_text_respects_raw_budget() -> None:
    cut = truncate_text("&" * 100, 100, 50)
    assert utf16_len(escape(cut)) <= 50
    assert cut.endswith("…")


RENDERED = [
    (
        "full post",
        post_item(),
        (),
        "<b>Fleurs de Lila</b>\n"
        '<a href="https://fleurs.example/tulipes">Arrivage de tulipes</a>\n'
        "Des tulipes de Hollande, toutes les couleurs.\n"
        '<a href="https://fleurs.example/tulipes.jpg">📷</a>\n'
        "#Fleuriste #SaintÉtienne",
    ),
    (
        "credits for a shared story",
        post_item(image=None, category=None, city=None),
        ("Boulangerie Rose", "Café <Rex>"),
        "<b>Fleurs de Lila</b>\n"
        '<a href="https://fleurs.example/tulipes">Arrivage de tulipes</a>\n'
        "Des tulipes de Hollande, toutes les couleurs.\n"
        "🤝 Boulangerie Rose · Café &lt;Rex&gt;",
    ),
    (
        "no title (Mastodon): the summary's words are the title, not repeated",
        post_item(title=None, summary="Ouvert dimanche !", image=None, category=None, city=None),
        (),
        '<b>Fleurs de Lila</b>\n<a href="https://fleurs.example/tulipes">Ouvert dimanche !</a>',
    ),
    (
        "hostile title, javascript link",
        post_item(
            title="</b><script>alert(1)</script>",
            link="javascript:alert(1)",
            summary=None,
            image="data:image/png;base64,xx",
            category=None,
            city=None,
        ),
        (),
        "<b>Fleurs de Lila</b>\n&lt;/b&gt;&lt;script&gt;alert(1)&lt;/script&gt;",
    ),
    (
        "nothing but a link: never invent a title from the URL",
        post_item(title="", summary="", image=None, category=None, city=None),
        (),
        '<b>Fleurs de Lila</b>\n<a href="https://fleurs.example/tulipes">🔗</a>',
    ),
]


@pytest.mark.parametrize(
    ("item", "credits", "expected"),
    [case[1:] for case in RENDERED],
    ids=[case[0] for case in RENDERED],
)
def test_render_post(item: QueuedItem, credits: tuple[str, ...], expected: str) -> None:
    assert render_post(item, credits=credits) == expected


def test_render_post_shortens_a_long_summary_at_a_word() -> None:
    text = render_post(post_item(summary="mot " * 500))
    summary_line = text.split("\n")[2]
    assert summary_line.endswith("mot…")
    assert len(summary_line) <= 300


hostile = st.sampled_from(["<script>", "a & b", "</b>", '"', "&amp;", "🌷", "<a href='x'>"])
texts = st.lists(st.one_of(hostile, st.text(max_size=60)), max_size=200).map("".join)
urls = st.one_of(
    st.none(),
    st.just("javascript:alert(1)"),
    st.text(max_size=3000).map(lambda tail: "https://x.example/" + tail),
)


@settings(max_examples=200, deadline=None)
@given(
    name=texts,
    title=st.one_of(st.none(), texts),
    summary=st.one_of(st.none(), texts),
    link_url=urls,
    image=urls,
    credits=st.lists(texts, max_size=30),
    category=st.one_of(st.none(), texts),
)
def test_render_post_always_fits_and_parses(
    name: str,
    title: str | None,
    summary: str | None,
    link_url: str | None,
    image: str | None,
    credits: list[str],
    category: str | None,
) -> None:
    item = post_item(
        business_name=name,
        title=title,
        summary=summary,
        link=link_url,
        image=image,
        category=category,
        city=category,
    )
    html = render_post(item, credits=credits)
    assert utf16_len(html) <= MAX_MESSAGE
    assert visible_length(html) <= MAX_MESSAGE
    assert telegram_html_problems(html) == []
    assert "<script" not in html


@pytest.mark.parametrize(
    ("markup", "plain"),
    [
        (
            '<b>Fleurs</b> <a href="https://x.example/?a&amp;b">le bouquet</a>',
            "Fleurs le bouquet (https://x.example/?a&b)",
        ),
        ('<a href="https://x.example/">https://x.example/</a>', "https://x.example/"),
        ("<div>Pain &amp; vin</div>", "Pain & vin"),
    ],
)
def test_the_plain_text_fallback_keeps_link_targets(markup: str, plain: str) -> None:
    assert to_plain_message(markup) == plain
