"""Feed discovery: advertised feeds and well-known paths, on platform fixtures and focused cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from feeds.discover import (
    MAX_WELL_KNOWN,
    decode_html,
    detect_platform,
    discover_feed_links,
    well_known_feed_urls,
)

FIXTURES = Path(__file__).parent / "fixtures" / "pages"
DISCOVERY_CASES = sorted(
    path.name.removesuffix(".expected.json")
    for path in FIXTURES.glob("*.expected.json")
    if "feeds" in json.loads(path.read_text(encoding="utf-8"))
)


def load(name: str) -> tuple[bytes, dict[str, Any]]:
    """A fixture page's bytes and its hand-written expected output."""
    expected = json.loads((FIXTURES / f"{name}.expected.json").read_text(encoding="utf-8"))
    return (FIXTURES / f"{name}.html").read_bytes(), expected


def page(head: str, body: str = "") -> bytes:
    """A small HTML page."""
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>".encode()


@pytest.mark.parametrize("name", DISCOVERY_CASES)
def test_fixture_feed_links(name: str) -> None:
    html, expected = load(name)
    links = discover_feed_links(html, expected["url"])
    assert [{"url": f.url, "type": f.type, "title": f.title} for f in links] == expected["feeds"]


@pytest.mark.parametrize("name", DISCOVERY_CASES)
def test_fixture_platform(name: str) -> None:
    html, expected = load(name)
    assert detect_platform(html, expected["url"]) == expected["platform"]


@pytest.mark.parametrize("name", DISCOVERY_CASES)
def test_fixture_well_known_first(name: str) -> None:
    html, expected = load(name)
    assert well_known_feed_urls(html, expected["url"])[0] == expected["well_known_first"]


@pytest.mark.parametrize(
    "link",
    [
        '<link rel="alternate" type="application/json" href="/wp-json/wp/v2/pages/12">',
        '<link rel="alternate" type="application/json+oembed" href="/oembed?url=x&format=json">',
        '<link rel="alternate" type="text/xml+oembed" href="/oembed?url=x&format=xml">',
        '<link rel="alternate" type="application/activity+json" href="/users/shop">',
        '<link rel="alternate" hreflang="en" href="/en/">',
        '<link rel="stylesheet alternate" type="text/css" href="/dark.css">',
        '<link rel="service.post" type="application/atom+xml" href="/feeds/posts/default">',
        '<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">',
        '<link rel="alternate" type="application/rss+xml" href="">',
        '<link rel="alternate" type="application/rss+xml">',
    ],
)
def test_non_feed_links_are_ignored(link: str) -> None:
    assert discover_feed_links(page(link), "https://example.fr/") == []


@pytest.mark.parametrize(
    ("link", "kind"),
    [
        ('<link rel="alternate" type="application/rss+xml" href="/f">', "rss"),
        ('<link rel="ALTERNATE" type="Application/Atom+XML" href="/f">', "atom"),
        ('<link rel="alternate" type="application/rss+xml; charset=utf-8" href="/f">', "rss"),
        ('<link rel="alternate" type="application/feed+json" href="/f">', "json"),
        ('<link rel="alternate" type="application/rdf+xml" href="/f">', "rss"),
        ('<link rel="alternate" type="application/json" title="JSON Feed" href="/f">', "json"),
        ('<link rel="alternate" type="application/json" href="/feed.json">', "json"),
        ('<link rel="alternate" type="application/json" title="Flux JSON" href="/f">', "json"),
        ('<link rel="alternate" type="text/xml" title="RSS" href="/f">', "rss"),
        ('<link rel="home alternate" type="application/atom+xml" href="/f">', "atom"),
    ],
)
def test_feed_types_are_normalised(link: str, kind: str) -> None:
    links = discover_feed_links(page(link), "https://example.fr/")
    assert [(f.url.rpartition("/")[0], f.type) for f in links] == [("https://example.fr", kind)]


@pytest.mark.parametrize(
    ("base", "url", "expected"),
    [
        ('<base href="/site/">', "https://example.fr/a/b.html", "https://example.fr/site/rss.xml"),
        ('<base href="sub/">', "https://example.fr/a/b.html", "https://example.fr/a/sub/rss.xml"),
        (
            '<base href="https://cdn.example.org/">',
            "https://example.fr/",
            "https://cdn.example.org/rss.xml",
        ),
        ('<base href="">', "https://example.fr/a/b.html", "https://example.fr/a/rss.xml"),
        (
            '<base href="javascript:void(0)">',
            "https://example.fr/a/",
            "https://example.fr/a/rss.xml",
        ),
        ("", "https://example.fr/a/b.html", "https://example.fr/a/rss.xml"),
    ],
)
def test_hrefs_resolve_against_base(base: str, url: str, expected: str) -> None:
    link = '<link rel="alternate" type="application/rss+xml" href="rss.xml">'
    assert [f.url for f in discover_feed_links(page(base + link), url)] == [expected]


def test_links_keep_document_order_without_duplicates() -> None:
    head = "".join(
        f'<link rel="alternate" type="application/{kind}+xml" href="{href}" title="{title}">'
        for kind, href, title in [
            ("rss", "/b", "B"),
            ("atom", "/a", "A"),
            ("rss", "https://example.fr/b", "B again"),
            ("rss", "/c?utm_source=x", "C"),
            ("rss", "/c", "C again"),
        ]
    )
    links = discover_feed_links(page(head), "https://example.fr/")
    assert [(f.url, f.title) for f in links] == [
        ("https://example.fr/b", "B"),
        ("https://example.fr/a", "A"),
        ("https://example.fr/c", "C"),
    ]


def test_links_in_body_count_too() -> None:
    link = '<link rel="alternate" type="application/rss+xml" href="/late.xml">'
    links = discover_feed_links(page("", "<p>text" + link), "https://example.fr/")
    assert [f.url for f in links] == ["https://example.fr/late.xml"]


@pytest.mark.parametrize("html", [b"", b"   ", b"\x00\xff\xfe\x00garbage", b"<<<>>>", b"%PDF-1.4"])
def test_garbage_has_no_feeds_and_raises_nothing(html: bytes) -> None:
    assert discover_feed_links(html, "https://example.fr/") == []
    assert detect_platform(html, "https://example.fr/") is None
    assert well_known_feed_urls(html, "https://example.fr/")[0] == "https://example.fr/feed/"


@pytest.mark.parametrize(
    ("head", "platform", "first_two"),
    [
        ('<meta name="generator" content="WordPress 6.5">', "wordpress", ["/feed/", "/?feed=rss2"]),
        (
            '<meta name="generator" content="Blogger">',
            "blogger",
            ["/feeds/posts/default", "/feeds/posts/default?alt=rss"],
        ),
        (
            '<meta name="generator" content="Wix.com Website Builder">',
            "wix",
            ["/blog-feed.xml", "/feed/"],
        ),
        ('<meta name="generator" content="Ghost 5.80">', "ghost", ["/rss/", "/feed/"]),
        ('<meta name="generator" content="Jimdo Creator">', "jimdo", ["/rss/blog/", "/feed/"]),
        (
            '<script src="https://cdn.shopify.com/s/x.js"></script>',
            "shopify",
            ["/blogs/news.atom", "/feed/"],
        ),
        (
            '<script src="//assets.squarespace.com/x.js"></script>',
            "squarespace",
            ["/?format=rss", "/blog?format=rss"],
        ),
        (
            '<link rel="stylesheet" href="https://substackcdn.com/main.css">',
            "substack",
            ["/feed", "/feed/"],
        ),
        (
            '<link rel="stylesheet" href="/wp-content/themes/astra/style.css">',
            "wordpress",
            ["/feed/", "/?feed=rss2"],
        ),
        (
            '<img src="https://static.wixstatic.com/media/a.jpg">',
            "wix",
            ["/blog-feed.xml", "/feed/"],
        ),
        ("", None, ["/feed/", "/rss.xml"]),
    ],
)
def test_platform_paths_come_first(head: str, platform: str | None, first_two: list[str]) -> None:
    html = page(head)
    assert detect_platform(html, "https://example.fr/") == platform
    urls = well_known_feed_urls(html, "https://example.fr/")
    assert urls[:2] == ["https://example.fr" + path for path in first_two]


@pytest.mark.parametrize(
    ("url", "platform"),
    [
        ("https://lesdelicesdelea.blogspot.com/", "blogger"),
        ("https://moncommerce.wixsite.com/boutique", "wix"),
        ("https://fermeduvallon.jimdofree.com/", "jimdo"),
        ("https://lettre.substack.com/", "substack"),
        ("https://boutique.myshopify.com/", "shopify"),
        ("https://example.fr/", None),
    ],
)
def test_platform_from_host(url: str, platform: str | None) -> None:
    assert detect_platform(page(""), url) == platform


def test_generator_wins_over_asset_hosts() -> None:
    # A WordPress site embedding a Shopify "Buy" button is still a WordPress site.
    html = page(
        '<meta name="generator" content="WordPress 6.5">'
        '<script src="https://cdn.shopify.com/buy-button/buybutton.js"></script>'
    )
    assert detect_platform(html, "https://example.fr/") == "wordpress"


def test_unknown_platform_gets_the_generic_list() -> None:
    assert well_known_feed_urls(None, "https://example.fr/shop/page?x=1") == [
        "https://example.fr/feed/",
        "https://example.fr/rss.xml",
        "https://example.fr/feed.xml",
        "https://example.fr/atom.xml",
        "https://example.fr/index.xml",
        "https://example.fr/rss",
    ]


@pytest.mark.parametrize("name", DISCOVERY_CASES)
def test_candidates_are_capped_unique_and_on_the_page_origin(name: str) -> None:
    html, expected = load(name)
    urls = well_known_feed_urls(html, expected["url"])
    page_origin = urlsplit(expected["url"])[:2]
    assert 0 < len(urls) <= MAX_WELL_KNOWN
    assert len(set(urls)) == len(urls)
    assert all(urlsplit(url)[:2] == page_origin for url in urls)


def test_detected_platform_shortens_the_generic_list() -> None:
    urls = well_known_feed_urls(page('<meta name="generator" content="Blogger">'), "https://b.fr/")
    assert urls == [
        "https://b.fr/feeds/posts/default",
        "https://b.fr/feeds/posts/default?alt=rss",
        "https://b.fr/feed/",
        "https://b.fr/rss.xml",
    ]


def test_shopify_blog_handles_come_from_same_site_links() -> None:
    body = (
        '<a href="https://other.example/blogs/elsewhere/x">x</a>'
        '<a href="/blogs/journal/premier-article">a</a>'
        '<a href="https://example.fr/blogs/recettes">b</a>'
        '<a href="/blogs/journal">c</a>'
    )
    html = page('<link href="https://cdn.shopify.com/s/files/theme.css" rel="stylesheet">', body)
    assert well_known_feed_urls(html, "https://example.fr/")[:2] == [
        "https://example.fr/blogs/journal.atom",
        "https://example.fr/blogs/recettes.atom",
    ]


def test_squarespace_tries_the_page_itself_first() -> None:
    html = page('<script src="https://assets.squarespace.com/universal/x.js"></script>')
    urls = well_known_feed_urls(html, "https://example.fr/journal?page=2")
    assert urls[:2] == [
        "https://example.fr/journal?format=rss",
        "https://example.fr/blog?format=rss",
    ]


def test_mastodon_profile_feed() -> None:
    html = page("", '<div id="mastodon" data-props="{}"></div>')
    urls = well_known_feed_urls(html, "https://piaille.fr/@fromagerie/")
    assert urls[0] == "https://piaille.fr/@fromagerie.rss"


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ('<meta charset="utf-8"><p>Été</p>'.encode(), "Été"),
        ('<meta charset="iso-8859-1"><p>Été</p>'.encode("latin-1"), "Été"),
        # Declared latin-1 but really UTF-8 (a CMS upgrade that forgot the template).
        ('<meta charset="iso-8859-1"><p>Été</p>'.encode(), "Été"),
        # Declared UTF-8 but really cp1252 (a page saved by an old editor).
        ('<meta charset="utf-8"><p>Été – œuf</p>'.encode("cp1252"), "Été – œuf"),
        ('<meta charset="no-such-charset"><p>Été</p>'.encode("cp1252"), "Été"),
        ("<p>Été</p>".encode("utf-16"), "Été"),
    ],
)
def test_decode_html_survives_wrong_declarations(html: bytes, text: str) -> None:
    assert text in decode_html(html)
