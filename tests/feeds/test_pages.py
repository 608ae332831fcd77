"""Page feeds: items read from microformats, JSON-LD or OpenGraph, on fixtures and focused cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from feeds.models import FeedItem, ParsedFeed
from feeds.pages import parse_page

FIXTURES = Path(__file__).parent / "fixtures" / "pages"
PAGE_CASES = sorted(
    path.name.removesuffix(".expected.json")
    for path in FIXTURES.glob("*.expected.json")
    if "items" in json.loads(path.read_text(encoding="utf-8"))
)
URL = "https://example.fr/page"


def as_dict(item: FeedItem) -> dict[str, Any]:
    """The fields the expected files describe."""
    published = item.published.strftime("%Y-%m-%dT%H:%M:%SZ") if item.published else None
    return {
        "title": item.title,
        "link": item.link,
        "guid": item.guid,
        "published": published,
        "summary": item.summary,
        "image": item.image,
    }


def page(head: str = "", body: str = "") -> bytes:
    """A small HTML page."""
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>".encode()


def jsonld(*blocks: Any) -> str:
    """<script> elements holding each block as JSON-LD (strings are inserted verbatim)."""
    return "".join(
        '<script type="application/ld+json">'
        + (block if isinstance(block, str) else json.dumps(block))
        + "</script>"
        for block in blocks
    )


def only_item(feed: ParsedFeed) -> FeedItem:
    """The single item of a page feed."""
    assert len(feed.items) == 1, feed.items
    return feed.items[0]


@pytest.mark.parametrize("name", PAGE_CASES)
def test_fixture_page_feed(name: str) -> None:
    expected = json.loads((FIXTURES / f"{name}.expected.json").read_text(encoding="utf-8"))
    feed = parse_page((FIXTURES / f"{name}.html").read_bytes(), expected["url"])
    assert feed.kind == expected["kind"]
    assert feed.link == expected["url"]
    assert feed.title == expected["title"]
    assert [as_dict(item) for item in feed.items] == expected["items"]


def test_h_entry_wins_over_json_ld_and_opengraph() -> None:
    html = page(
        '<meta property="og:title" content="OG">'
        + jsonld({"@type": "BlogPosting", "headline": "LD"}),
        '<article class="h-entry"><h2 class="p-name">MF</h2>'
        '<a class="u-url" href="/mf">#</a></article>',
    )
    assert only_item(parse_page(html, URL)).title == "MF"


def test_json_ld_wins_over_opengraph() -> None:
    html = page(
        '<meta property="og:title" content="OG">'
        + jsonld({"@type": "NewsArticle", "headline": "LD"})
    )
    assert only_item(parse_page(html, URL)).title == "LD"


def test_old_hentry_class_is_not_microformats2() -> None:
    # Themes put "hentry" on every page; only a deliberate h-entry counts.
    html = page(
        jsonld({"@type": "BlogPosting", "headline": "LD"}),
        '<article class="post hentry"><h2 class="entry-title">Theme</h2></article>',
    )
    assert only_item(parse_page(html, URL)).title == "LD"


def test_note_whose_name_is_its_content_has_no_title() -> None:
    html = page(
        body='<div class="h-entry"><p class="p-name e-content">Ouvert ce dimanche !</p>'
        '<a class="u-url" href="/n/1"></a></div>'
    )
    item = only_item(parse_page(html, URL))
    assert (item.title, item.summary) == (None, "Ouvert ce dimanche !")


def test_h_entry_content_is_sanitised() -> None:
    html = page(
        body='<div class="h-entry"><h2 class="p-name">T</h2><div class="e-content">'
        '<p onclick="x()">Texte <script>alert(1)</script><a href="/plus">plus</a></p></div></div>'
    )
    content = only_item(parse_page(html, "https://example.fr/a/")).content_html or ""
    assert "script" not in content
    assert "onclick" not in content
    assert 'href="https://example.fr/plus"' in content


def test_author_photo_does_not_stand_for_the_entry() -> None:
    html = page(
        body='<div class="h-entry"><h2 class="p-name">T</h2>'
        '<div class="p-author h-card"><img class="u-photo" src="/jo.jpg" alt="Jo"></div></div>'
    )
    assert only_item(parse_page(html, URL)).image is None


@pytest.mark.parametrize(
    ("event", "published"),
    [
        ({"startDate": "2031-06-21T18:00:00+02:00"}, None),
        ({"startDate": "2031-06-21", "dateModified": "2024-01-01"}, None),
        (
            {"startDate": "2031-06-21", "datePublished": "2024-05-02T10:00:00Z"},
            "2024-05-02T10:00:00Z",
        ),
    ],
)
def test_an_event_is_published_when_announced_not_when_it_starts(
    event: dict[str, str], published: str | None
) -> None:
    html = page(jsonld({"@type": "MusicEvent", "name": "Fête de la musique", **event}))
    assert as_dict(only_item(parse_page(html, URL)))["published"] == published


def test_a_post_falls_back_to_its_modification_date() -> None:
    html = page(jsonld({"@type": "Article", "headline": "T", "dateModified": "2024-05-02"}))
    assert as_dict(only_item(parse_page(html, URL)))["published"] == "2024-05-02T00:00:00Z"


def test_product_with_many_offers_is_one_item() -> None:
    offers = [{"@type": "Offer", "price": str(p), "priceCurrency": "EUR"} for p in (5, 9, 16)]
    html = page(jsonld({"@type": "Product", "name": "Miel", "offers": offers}))
    assert only_item(parse_page(html, URL)).title == "Miel"


def test_product_group_with_variants_is_one_item() -> None:
    variants = [{"@type": "Product", "name": f"Miel {w}", "sku": w} for w in ("250g", "500g")]
    group = {"@type": "ProductGroup", "@id": "#miel", "name": "Miel", "hasVariant": variants}
    assert only_item(parse_page(page(jsonld(group)), URL)).title == "Miel"


def test_variants_listed_beside_their_group_are_dropped() -> None:
    group = {"@type": "ProductGroup", "@id": "https://example.fr/miel#group", "name": "Miel"}
    variants = [
        {"@type": "Product", "name": f"Miel {w}", "isVariantOf": {"@id": group["@id"]}}
        for w in ("250g", "500g")
    ]
    html = page(jsonld({"@context": "https://schema.org", "@graph": [group, *variants]}))
    assert only_item(parse_page(html, URL)).title == "Miel"


@pytest.mark.parametrize(
    "blocks",
    [
        ({"@type": "Organization", "name": "O"}, {"@type": "WebSite", "name": "W"}),
        (
            {"@type": "LocalBusiness", "name": "L"},
            {"@type": "BreadcrumbList", "itemListElement": []},
        ),
        ({"@type": "Person", "name": "P"}, {"@type": "WebPage", "name": "P"}),
        ("{not json",),
        ("",),
        ("[1, 2, null]",),
    ],
)
def test_page_furniture_and_broken_blocks_give_no_item(blocks: tuple[Any, ...]) -> None:
    assert parse_page(page(jsonld(*blocks)), URL).items == ()


@pytest.mark.parametrize(
    "node",
    [
        {"@type": ["BlogPosting"], "@id": ["x"], "headline": ["T"], "image": {"@id": ["y"]}},
        {"@type": "BlogPosting", "headline": {"@value": "T"}, "url": {"bad": 1}, "image": [[]]},
        {"@type": "BlogPosting", "headline": "T", "datePublished": 20240101, "description": 3},
        {"@type": "BlogPosting", "headline": "T", "mainEntityOfPage": {"@id": 4}},
    ],
)
def test_odd_json_ld_shapes_are_tolerated(node: dict[str, Any]) -> None:
    assert only_item(parse_page(page(jsonld(node)), URL)).title == "T"


def test_lone_surrogates_in_json_ld_do_not_reach_the_items() -> None:
    html = page(jsonld('{"@type": "BlogPosting", "headline": "Caf\\ud800\\u00e9 \\ud83d\\ude00"}'))
    title = only_item(parse_page(html, URL)).title or ""
    title.encode("utf-8")
    assert title.endswith("é 😀")


def test_deeply_nested_json_ld_gives_no_item() -> None:
    html = page(
        jsonld(
            '{"@type": "BlogPosting", "headline": "T", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
        )
    )
    assert parse_page(html, URL).items == ()


def test_a_broken_block_does_not_hide_the_others() -> None:
    html = page(jsonld("{broken,", [{"@type": "BlogPosting", "headline": "OK"}]))
    assert only_item(parse_page(html, URL)).title == "OK"


def test_items_nested_in_lists_and_pages_are_found() -> None:
    blog = {
        "@type": "WebPage",
        "mainEntity": {
            "@type": "ItemList",
            "itemListElement": [
                {
                    "@type": "ListItem",
                    "position": 1,
                    "item": {"@type": "BlogPosting", "headline": "Un"},
                },
                {
                    "@type": "ListItem",
                    "position": 2,
                    "item": {"@type": "BlogPosting", "headline": "Deux"},
                },
            ],
        },
    }
    feed = parse_page(
        page(
            jsonld(blog, {"@type": "Blog", "blogPost": [{"@type": "Article", "headline": "Trois"}]})
        ),
        URL,
    )
    assert [item.title for item in feed.items] == ["Un", "Deux", "Trois"]


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("/a.jpg", "https://example.fr/a.jpg"),
        (["/a.jpg", "/b.jpg"], "https://example.fr/a.jpg"),
        ({"@type": "ImageObject", "url": "/a.jpg"}, "https://example.fr/a.jpg"),
        ({"@type": "ImageObject", "contentUrl": "/a.jpg"}, "https://example.fr/a.jpg"),
        ([{"@type": "ImageObject"}, "/b.jpg"], "https://example.fr/b.jpg"),
        ("https://secure.gravatar.com/avatar/abc", None),
        ("javascript:alert(1)", None),
        (42, None),
    ],
)
def test_json_ld_image_shapes(image: Any, expected: str | None) -> None:
    html = page(jsonld({"@type": "BlogPosting", "headline": "T", "image": image}))
    assert only_item(parse_page(html, "https://example.fr/x")).image == expected


def test_single_item_without_link_points_at_the_page() -> None:
    html = page(jsonld({"@type": "Event", "name": "Vide-grenier", "startDate": "2031-05-01"}))
    item = only_item(parse_page(html, URL))
    assert (item.link, item.guid) == (URL, None)


def test_opengraph_needs_og_title() -> None:
    html = page('<title>Accueil</title><meta property="og:description" content="Bienvenue">')
    feed = parse_page(html, URL)
    assert (feed.title, feed.items) == ("Accueil", ())


@pytest.mark.parametrize(
    ("og_type", "guid"), [("article", "https://example.fr/a"), ("website", None), (None, None)]
)
def test_only_an_opengraph_article_has_a_guid(og_type: str | None, guid: str | None) -> None:
    type_meta = f'<meta property="og:type" content="{og_type}">' if og_type else ""
    html = page(
        type_meta + '<meta property="og:title" content="T"><link rel="canonical" href="/a">'
    )
    item = only_item(parse_page(html, URL))
    assert (item.link, item.guid) == ("https://example.fr/a", guid)


@pytest.mark.parametrize(
    "html",
    [
        b"",
        b"\x00" * 100,
        b"\xff\xfe\x00<\x00",
        b"%PDF-1.7\n%\xe2\xe3",
        b"<html><body class='h-entry'>",
    ],
)
def test_garbage_gives_an_empty_page_feed(html: bytes) -> None:
    feed = parse_page(html, URL)
    assert (feed.kind, feed.link) == ("page", URL)
    assert feed.items == ()
