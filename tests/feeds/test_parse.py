"""Feed parsing: every fixture document against its hand-written expected output, then the
rules that fixtures alone do not pin down (truncation, errors, duplicates, kind sniffing)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from feeds.errors import NotAFeedError
from feeds.models import FeedItem, ParsedFeed
from feeds.parse import detect_kind, parse_feed

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
EXPECTED = sorted(FIXTURES.glob("*.expected.json"))
URL = "https://example.fr/feed/"


def _document(expected_path: Path) -> Path:
    """The fixture document beside an expected file (any extension)."""
    stem = expected_path.name.removesuffix(".expected.json")
    (document,) = (p for p in FIXTURES.glob(f"{stem}.*") if p != expected_path)
    return document


def _published(item: FeedItem) -> str | None:
    return item.published.strftime("%Y-%m-%dT%H:%M:%SZ") if item.published else None


def _check_item(item: FeedItem, want: dict[str, Any]) -> None:
    for key in ("title", "link", "guid", "image"):
        assert getattr(item, key) == want[key], key
    assert _published(item) == want["published"]
    if "summary_startswith" in want:
        assert item.summary is not None
        assert item.summary.startswith(want["summary_startswith"])
        assert len(item.summary) <= 500
    else:
        assert item.summary == want["summary"]


@pytest.mark.parametrize("expected_path", EXPECTED, ids=lambda p: p.name.split(".")[0])
def test_fixture(expected_path: Path) -> None:
    want = json.loads(expected_path.read_text(encoding="utf-8"))
    content = _document(expected_path).read_bytes()
    if "error" in want:
        with pytest.raises(NotAFeedError):
            parse_feed(content, want["url"], content_type=want.get("content_type"))
        return
    feed = parse_feed(content, want["url"], content_type=want.get("content_type"))
    assert (feed.kind, feed.title) == (want["kind"], want["title"])
    for key in ("link", "ttl_minutes", "malformed"):
        if key in want:
            assert getattr(feed, key) == want[key], key
    assert [item.title for item in feed.items] == [item["title"] for item in want["items"]]
    for item, wanted in zip(feed.items, want["items"], strict=True):
        _check_item(item, wanted)


def test_every_fixture_has_an_expected_file() -> None:
    documents = {p.name.split(".")[0] for p in FIXTURES.iterdir()}
    expected = {p.name.split(".")[0] for p in EXPECTED}
    assert documents == expected


# --- Truncation -------------------------------------------------------------------------------


def _complete_copy(name: str, closing: str) -> bytes:
    """A fixture document, closed again if it was cut after an item."""
    content = (FIXTURES / name).read_bytes()
    return content if content.rstrip().endswith(closing.encode()) else content + closing.encode()


@pytest.mark.parametrize(
    ("name", "closing", "step"),
    [
        ("truncated-after-item.xml", "</channel>\n</rss>\n", 1),
        ("rdf.xml", "", 3),
        ("blogger.xml", "", 41),
        ("atom-xml-base.xml", "", 7),
        ("wordpress.xml", "", 29),
        ("mastodon.xml", "", 13),
    ],
)
def test_a_cut_document_never_yields_a_cut_item(name: str, closing: str, step: int) -> None:
    content = _complete_copy(name, closing)
    whole = parse_feed(content, URL).items
    assert whole
    for end in range(0, len(content), step):
        try:
            feed = parse_feed(content[:end], URL)
        except NotAFeedError:
            continue  # cut before the document said what it is
        assert feed.items == whole[: len(feed.items)], f"cut at byte {end}"
        assert feed.malformed or end >= len(content.rstrip())


def test_a_document_cut_after_a_complete_item_keeps_it() -> None:
    content = _complete_copy("truncated-after-item.xml", "")
    assert len(parse_feed(content, URL).items) == 2


def test_a_trailing_comment_does_not_look_like_a_cut() -> None:
    content = (FIXTURES / "wix.xml").read_bytes() + b"\n<!-- cache: hit 2025-03-11 -->\n"
    feed = parse_feed(content, URL)
    assert (len(feed.items), feed.malformed) == (2, False)


# --- Errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"   \n",
        b"Service Unavailable",
        b"\x00\x01\x02\xff\xfe garbage",
        b"<html><body><h1>404 Not Found</h1></body></html>",
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "cut',
        b'{"version": "https://jsonfeed.org/version/1.1", "items": "none"}',
        b'{"version": "2.0", "items": []}',
        b'{"jsonfeed.org/version": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b"[1, 2, 3]",
    ],
    ids=[
        "empty",
        "blank",
        "text",
        "binary",
        "html",
        "cut-json",
        "items-not-list",
        "other-json",
        "deep-json",
        "json-array",
    ],
)
def test_not_a_feed(content: bytes) -> None:
    with pytest.raises(NotAFeedError) as error:
        parse_feed(content, URL)
    assert error.value.url == URL


def test_bytes_naming_a_local_file_are_not_read_as_that_file(tmp_path: Path) -> None:
    # feedparser.parse(b"/some/path") opens the file: a hostile server could name one.
    secret = tmp_path / "secret.xml"
    secret.write_bytes((FIXTURES / "wix.xml").read_bytes())
    with pytest.raises(NotAFeedError):
        parse_feed(str(secret).encode(), URL)


# --- Documents as servers send them -----------------------------------------------------------


def test_a_feed_served_as_html_is_still_a_feed() -> None:
    content = (FIXTURES / "ghost.xml").read_bytes()
    feed = parse_feed(content, URL, content_type="text/html", charset="iso-8859-1")
    assert feed.title == "Le Vélo Solidaire"


def test_the_http_charset_decodes_a_document_without_declaration() -> None:
    doc = "<rss version='2.0'><channel><title>Cave à vins – 15 €</title></channel></rss>"
    feed = parse_feed(doc.encode("iso-8859-15", "replace"), URL, charset="ISO-8859-15")
    assert feed.title == "Cave à vins ? 15 €"  # iso-8859-15 has no en dash: encoded as "?"


def test_huge_author_fields_parse_quickly() -> None:
    author = "a" * 200_000
    doc = (
        f'<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        f"<title>T</title><managingEditor>{author}</managingEditor><item><title>Un</title>"
        f"<author>{author}</author><dc:creator>{author}</dc:creator>"
        f"<link>https://example.fr/1</link></item></channel></rss>"
    )
    started = time.perf_counter()
    feed = parse_feed(doc.encode(), URL)
    assert time.perf_counter() - started < 2
    assert [item.title for item in feed.items] == ["Un"]


def test_two_thousand_items_keep_their_order() -> None:
    items = "".join(
        f"<item><title>Article {n}</title><link>https://example.fr/a/{n}</link>"
        f"<guid>a-{n}</guid><pubDate>Mon, 10 Mar 2025 10:00:00 +0000</pubDate>"
        f"<description>&lt;p&gt;Texte {n} &amp;amp; suite&lt;/p&gt;</description></item>"
        for n in range(2000)
    )
    doc = (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{items}</channel></rss>'
    )
    feed = parse_feed(doc.encode(), URL)
    assert [item.guid for item in feed.items] == [f"a-{n}" for n in range(2000)]
    assert feed.items[1999].summary == "Texte 1999 & suite"


def test_exact_duplicates_are_dropped_and_order_kept() -> None:
    one = "<item><title>A</title><link>https://example.fr/a</link><guid>g</guid></item>"
    two = "<item><title>B</title><link>https://example.fr/b</link><guid>g</guid></item>"
    doc = f'<rss version="2.0"><channel><title>T</title>{two}{one}{two}{one}</channel></rss>'
    feed = parse_feed(doc.encode(), URL)
    assert [item.title for item in feed.items] == ["B", "A"]


@pytest.mark.parametrize(
    ("ttl", "expected"),
    [("60", 60), (" 30 ", 30), ("0", None), ("-5", None), ("soon", None), ("99999999", None)],
)
def test_ttl_is_read_within_sane_bounds(ttl: str, expected: int | None) -> None:
    doc = f'<rss version="2.0"><channel><title>T</title><ttl>{ttl}</ttl></channel></rss>'
    assert parse_feed(doc.encode(), URL).ttl_minutes == expected


# --- Kind sniffing ----------------------------------------------------------------------------

RSS = b'<rss version="2.0"><channel><title>T</title></channel></rss>'


@pytest.mark.parametrize(
    ("content", "content_type", "kind"),
    [
        (RSS, "application/rss+xml", "rss"),
        (RSS, "text/html", "rss"),
        (RSS, "text/plain", "rss"),
        (b"\xef\xbb\xbf \n" + RSS, None, "rss"),
        (
            '<?xml version="1.0" encoding="utf-16"?>'.encode("utf-16")
            + RSS.decode().encode("utf-16"),
            None,
            "rss",
        ),
        (
            b'<?xml version="1.0"?>\n<?xml-stylesheet href="/rss.xsl"?>\n<!-- hi -->\n' + RSS,
            None,
            "rss",
        ),
        (
            b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
            b'"http://my.netscape.com/publish/formats/rss-0.91.dtd">\n<rss version="0.91">',
            None,
            "rss",
        ),
        (b'<!DOCTYPE rss [<!ENTITY eacute "&#233;">]><rss version="2.0">', None, "rss"),
        (b"<br />\n<b>Warning</b>: something in x.php<br />\n" + RSS, "text/html", "rss"),
        (b'<feed xmlns="http://www.w3.org/2005/Atom">', None, "atom"),
        (b'<atom:feed xmlns:atom="http://www.w3.org/2005/Atom">', None, "atom"),
        (b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">', None, "rdf"),
        (b' {"version": "https://jsonfeed.org/version/1.1", "items": []}', None, "json"),
        (b'{"items": [], "version": "https:\\/\\/jsonfeed.org\\/version\\/1"}', None, "json"),
        (b'{"name": "not a feed"}', "application/json", "unknown"),
        (b"<!doctype html><html><head><title>x</title></head></html>", None, "html"),
        (b"<!-- page -->\n<HTML><BODY>x</BODY></HTML>", None, "html"),
        (b"<head><meta charset=utf-8><title>x</title>", None, "html"),
        (b"Not found", "text/html", "html"),
        (b"Not found", "text/plain", "unknown"),
        (b"", None, "unknown"),
    ],
)
def test_detect_kind(content: bytes, content_type: str | None, kind: str) -> None:
    assert detect_kind(content, content_type) == kind


def test_results_are_plain_values() -> None:
    feed = parse_feed((FIXTURES / "wordpress.xml").read_bytes(), URL)
    assert isinstance(feed, ParsedFeed)
    assert all(type(item) is FeedItem for item in feed.items)
    assert feed.items[0].content_html is not None
    assert "<script" not in (feed.items[0].content_html or "")
