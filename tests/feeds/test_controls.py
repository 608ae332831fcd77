"""Control characters never survive parsing: not in text fields (C0 but tab, newline and
carriage return), not in URLs (any C0 control, nor surrounding space), whatever the parser."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from feeds.models import FeedItem, ParsedFeed
from feeds.normalize import clean_link, scrub_item, strip_controls, strip_url_controls
from feeds.pages import parse_page
from feeds.parse import parse_feed

TEXT_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
URL_CONTROL = re.compile("[\x00-\x1f\x7f]|^\\s|\\s$")
URL = "https://shop.example/"
JUNK = "\x00\x01\x08\x0b\x1b\x7f"  # NUL, SOH, BS, VT, ESC, DEL


def rss(title: str, link: str, guid: str, description: str) -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Sh\x00op</title>'
        f"<link>{link}</link><item><title>{title}</title><link>{link}</link>"
        f"<guid>{guid}</guid><description>{description}</description>"
        f'<enclosure url="{link}.jpg" type="image/jpeg"/></item></channel></rss>'
    ).encode()


def json_feed(title: str, link: str, guid: str, description: str) -> bytes:
    item = {"id": guid, "url": link, "title": title, "summary": description, "image": link}
    feed = {"version": "https://jsonfeed.org/version/1.1", "title": title, "items": [item]}
    return json.dumps(feed).encode()


def og_page(title: str, link: str, guid: str, description: str) -> bytes:
    metas = {"og:title": title, "og:url": link, "og:description": description, "og:image": link}
    head = "".join(f'<meta property="{k}" content="{v}">' for k, v in metas.items())
    return f"<html><head><title>{guid}</title>{head}</head><body></body></html>".encode()


def jsonld_page(title: str, link: str, guid: str, description: str) -> bytes:
    node = {"@type": "NewsArticle", "headline": title, "url": link, "@id": guid}
    node |= {"description": description, "image": link}
    script = f'<script type="application/ld+json">{json.dumps(node)}</script>'
    return f"<html><head>{script}</head><body></body></html>".encode()


def mf2_page(title: str, link: str, guid: str, description: str) -> bytes:
    entry = (
        f'<article class="h-entry"><h1 class="p-name">{title}</h1>'
        f'<a class="u-url" href="{link}">link</a><data class="u-uid" value="{guid}"></data>'
        f'<p class="p-summary">{description}</p><img class="u-photo" src="{link}.jpg"></article>'
    )
    return f"<html><body>{entry}</body></html>".encode()


Builder = Callable[[str, str, str, str], bytes]
PARSERS: dict[str, tuple[Builder, Callable[[bytes, str], ParsedFeed]]] = {
    "rss": (rss, parse_feed),
    "json feed": (json_feed, parse_feed),
    "opengraph page": (og_page, parse_page),
    "json-ld page": (jsonld_page, parse_page),
    "microformats page": (mf2_page, parse_page),
}


def assert_clean(feed: ParsedFeed) -> None:
    assert feed.items
    for text in (feed.title, *(text for item in feed.items for text in _texts(item))):
        assert text is None or not TEXT_CONTROL.search(text), repr(text)
    for url in (feed.link, *(url for item in feed.items for url in (item.link, item.image))):
        assert url is None or not URL_CONTROL.search(url), repr(url)


def _texts(item: FeedItem) -> tuple[str | None, ...]:
    return (item.title, item.guid, item.summary, item.content_html)


@pytest.mark.parametrize(("build", "parse"), PARSERS.values(), ids=PARSERS.keys())
def test_no_parser_lets_a_control_character_through(
    build: Builder, parse: Callable[[bytes, str], ParsedFeed]
) -> None:
    # JSON escapes them (\u0000); in XML and HTML they are raw bytes.
    feed = parse(
        build(f"Fresh{JUNK} bread", f"https://shop.example/a{JUNK}b", f"id{JUNK}", f"Hot{JUNK}"),
        URL,
    )
    assert_clean(feed)
    assert feed.items[0].title == "Fresh bread"
    assert feed.items[0].link == "https://shop.example/ab"


@given(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=40))
@example("\x00")
def test_any_ascii_in_an_rss_item_comes_out_clean(junk: str) -> None:
    escaped = junk.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    content = rss(f"T{escaped}", f"https://shop.example/{escaped}", escaped, escaped)
    assert_clean(parse_feed(content, URL))


@pytest.mark.parametrize(
    ("raw", "text", "url"),
    [
        ("a\x00b", "ab", "ab"),
        ("a\tb\nc\rd", "a\tb\nc\rd", "abcd"),
        (" \x7fhttps://x.example/\x1b ", " https://x.example/ ", "https://x.example/"),
        ("ok", "ok", "ok"),
        ("a b", "a b", "a b"),  # a space inside a URL is the link's own business
    ],
)
def test_strip_controls(raw: str, text: str, url: str) -> None:
    assert (strip_controls(raw), strip_url_controls(raw)) == (text, url)


@given(st.text())
def test_strip_helpers_leave_no_control(raw: str) -> None:
    assert not TEXT_CONTROL.search(strip_controls(raw))
    assert not URL_CONTROL.search(strip_url_controls(raw))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("java\x00script:alert(1)", None),  # judged after cleaning, not before
        ("\x00https://shop.example/\x01a", "https://shop.example/a"),
        ("https://shop.example/a\nb", "https://shop.example/ab"),
    ],
)
def test_links_are_judged_without_their_controls(raw: str, expected: str | None) -> None:
    assert clean_link(raw, None) == expected


def test_scrub_item_empties_a_field_of_only_controls() -> None:
    item = FeedItem(title="\x00", link="\x01", guid=None, published=None, summary="a", image=None)
    assert scrub_item(item) == FeedItem(None, None, None, None, "a", None)
