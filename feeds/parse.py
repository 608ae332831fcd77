"""Parse a feed document (RSS 0.9x/2.0, RSS 1.0/RDF, Atom, JSON Feed) into a `ParsedFeed`.

Bytes and the URL they came from in, plain values out. feedparser reads XML feeds; this module
decides what the document is, has `feeds.xmlprep` clear feedparser's traps, refuses what is not
a feed and assembles the result. Entries become items in `feeds.feedentry`.

Rules:

- Kind: sniffed from the first bytes (BOM, whitespace, XML declaration, comments and a non-HTML
  doctype skipped); the Content-Type is only a hint for documents the sniff cannot place.
- Encoding, bare ampersands, captions, huge authors, DTD entities: see `feeds.xmlprep` (a
  document whose entities would expand too far is refused, `EntitiesRefusedError`).
- HTML fields share one budget per document (`feeds.markup.HtmlBudget`); control characters
  are removed from every field (`feeds.normalize.scrub_feed`).
- Truncation: a document whose root element is not closed at its end (trailing whitespace and
  comments aside) was cut. Then the k-th entry is kept only if the document holds at least k
  closing ``</item>`` / ``</entry>`` tags: a cut item never survives; items complete before the
  cut do. (A literal ``</item>`` inside a CDATA section would fool the count: accepted.)
- A document feedparser flags (``bozo``) but that yields entries is kept, ``malformed=True``;
  so is a cut one. A document without any entry is a feed with no items, not an error.
- Exact duplicate items are dropped, the first kept; document order is preserved.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterable
from typing import Any, Literal

import feedparser

from feeds.errors import NotAFeedError
from feeds.feedentry import entry_to_item
from feeds.jsonfeed import is_json_feed, parse_json_feed
from feeds.markup import HtmlBudget
from feeds.models import FeedItem, FeedKind, ParsedFeed
from feeds.normalize import clean_link, clean_text, scrub_feed
from feeds.xmlprep import closed_entries, decode_document, feedparser_input, is_truncated

DocumentKind = Literal["rss", "atom", "rdf", "json", "html", "unknown"]

SNIFF_CHARS = 8192
TTL_MAX_MINUTES = 7 * 24 * 60

_PROLOG = re.compile(
    r"(?:\s+|<\?.*?\?>|<!--.*?-->|<!DOCTYPE(?!\s+html)[^\[>]*(?:\[.*?\])?\s*>)*", re.S | re.I
)
_FEED_ROOT = re.compile(r"<(?:[\w.-]+:)?(rss|feed|RDF)\b")
_HTML_ROOT = re.compile(r"<!DOCTYPE\s+html|<html\b", re.I)
_HTML_HINT = re.compile(r"<(?:head|body|meta|title|div|p|script|link)\b", re.I)
_KINDS_BY_VERSION: dict[str, FeedKind] = {"rss090": "rdf", "rss10": "rdf"}
_KINDS_BY_ROOT: dict[str, DocumentKind] = {"rss": "rss", "feed": "atom", "RDF": "rdf"}


def detect_kind(content: bytes, content_type: str | None) -> DocumentKind:
    """What the document is, from its first bytes; ``content_type`` only breaks ties."""
    head = _sniff_text(content)
    start = _PROLOG.match(head)
    at = start.end() if start else 0
    root = _FEED_ROOT.match(head, at)
    if root:
        return _KINDS_BY_ROOT[root.group(1)]
    if head.startswith(("{", "["), at):
        return "json" if is_json_feed(content) else "unknown"
    if _HTML_ROOT.search(head):
        return "html"
    root = _FEED_ROOT.search(head, at)  # after junk, e.g. a PHP warning before the declaration
    if root:
        return _KINDS_BY_ROOT[root.group(1)]
    if (content_type or "").endswith("html") or _HTML_HINT.match(head, at):
        return "html"
    return "unknown"


def parse_feed(
    content: bytes,
    url: str,
    *,
    content_type: str | None = None,
    charset: str | None = None,
    with_content: bool = True,
) -> ParsedFeed:
    """Parse a feed document fetched from ``url``; NotAFeedError when it is not one.

    `with_content=False` leaves `content_html` out (the poller's hot path never stores it).
    """
    kind = detect_kind(content, content_type)
    if kind == "json":
        return parse_json_feed(content, url)
    if kind == "html":
        raise NotAFeedError(url, "an HTML page, not a feed")
    text = decode_document(content, charset)
    parsed = _feedparser(text, url)
    version = str(parsed.get("version") or "")
    entries = list(parsed.get("entries") or [])
    feed_kind = _feed_kind(version, kind, has_entries=bool(entries))
    if feed_kind is None:
        raise NotAFeedError(url, "not a feed document")
    truncated = is_truncated(text)
    if truncated:  # a cut entry never survives; those closed before the cut do
        entries = entries[: closed_entries(text, "entry" if feed_kind == "atom" else "item")]
    budget = HtmlBudget()
    items = (entry_to_item(e, url, with_content=with_content, budget=budget) for e in entries)
    feed = ParsedFeed(
        kind=feed_kind,
        title=clean_text(_field(parsed["feed"], "title"), budget=budget),
        link=_feed_link(parsed["feed"], url),
        items=_unique(items),
        ttl_minutes=_ttl(_field(parsed["feed"], "ttl")),
        malformed=truncated or bool(parsed.get("bozo")),
    )
    return scrub_feed(feed)


def _sniff_text(content: bytes) -> str:
    """The document's first characters, decoded well enough to recognise its markup."""
    head = content[: SNIFF_CHARS * 2]
    for bom, encoding in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if head.startswith(bom):
            return head[len(bom) :].decode(encoding, "replace")[:SNIFF_CHARS]
    return head.decode("utf-8", "replace").lstrip("\ufeff")[:SNIFF_CHARS]


def _feed_kind(version: str, sniffed: DocumentKind, *, has_entries: bool) -> FeedKind | None:
    """Our kind from feedparser's version (rss20, rss10, atom10...); None: not a feed.

    Without a version, the sniffed kind is trusted only if entries came out.
    """
    if version.startswith("atom"):
        return "atom"
    if version:
        return _KINDS_BY_VERSION.get(version, "rss")
    if has_entries and (sniffed == "rss" or sniffed == "atom" or sniffed == "rdf"):
        return sniffed
    return None


def _feedparser(text: str, url: str) -> Any:
    """feedparser's result for the document; Any stays at this boundary."""
    # A BytesIO, never bytes or str: feedparser opens a bytes value that names a local file.
    return feedparser.parse(
        io.BytesIO(feedparser_input(text, url)),
        sanitize_html=False,
        resolve_relative_uris=False,
        # No Content-Location: feedparser would resolve guids against the fetch URL, and a guid
        # must not change when a feed moves. Links are resolved in `feedentry` instead.
        response_headers={"content-type": "application/xml; charset=utf-8"},
    )


def _field(mapping: Any, key: str) -> str | None:
    """A string field of a feedparser dict, or None."""
    value = dict.get(mapping, key)  # not FeedParserDict.get: its key aliases warn
    return value if isinstance(value, str) else None


def _feed_link(feed: Any, url: str) -> str | None:
    """The site's homepage link."""
    link = _field(feed, "link")
    # feedparser's fallback parser drops the ";" of "&amp;" in a channel's <link> text.
    return clean_link(re.sub(r"&amp(?!;)", "&", link) if link else None, url)


def _ttl(raw: object) -> int | None:
    """RSS <ttl> in minutes, when it is a sane number (1 minute to a week)."""
    try:
        minutes = int(str(raw).strip())
    except ValueError:
        return None
    return minutes if 1 <= minutes <= TTL_MAX_MINUTES else None


def _unique(items: Iterable[FeedItem | None]) -> tuple[FeedItem, ...]:
    """Items in document order, exact duplicates and empty entries dropped."""
    seen: set[tuple[object, ...]] = set()
    kept: list[FeedItem] = []
    for item in items:
        if item is None:
            continue
        key = (item.guid, item.link, item.title, item.published, item.summary)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return tuple(kept)
