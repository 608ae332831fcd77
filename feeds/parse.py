"""Parse a feed document (RSS 0.9x/2.0, RSS 1.0/RDF, Atom, JSON Feed) into a `ParsedFeed`.

Bytes and the URL they came from in, plain values out. feedparser reads XML feeds; this module
decides what the document is, prepares the bytes so feedparser cannot be misled (encoding, huge
author fields, picture captions taken for titles, bytes taken for file names), and refuses what is not a feed. Entries become items
in `feeds.feedentry`.

Rules:

- Kind: sniffed from the first bytes (BOM, whitespace, XML declaration, comments and a non-HTML
  doctype skipped); the Content-Type is only a hint for documents the sniff cannot place.
- Encoding: valid UTF-8 wins whatever is declared; else the HTTP charset, then the XML
  declaration, if the bytes decode with it (Latin-1 labels read as windows-1252, as browsers
  do); else UTF-8 with each invalid byte read as windows-1252 (mixed documents).
- Truncation: a document whose root element is not closed at its end (trailing whitespace and
  comments aside) was cut. Then the k-th entry is kept only if the document holds at least k
  closing ``</item>`` / ``</entry>`` tags: a cut item never survives; items complete before the
  cut do. (A literal ``</item>`` inside a CDATA section would fool the count: accepted.)
- A document feedparser flags (``bozo``) but that yields entries is kept, ``malformed=True``.
- Exact duplicate items are dropped, the first kept; document order is preserved.
"""

from __future__ import annotations

import codecs
import io
import re
from typing import Any, Literal

import feedparser

from feeds.errors import NotAFeedError
from feeds.feedentry import entry_to_item
from feeds.jsonfeed import is_json_feed, parse_json_feed
from feeds.models import FeedItem, FeedKind, ParsedFeed
from feeds.normalize import clean_link, clean_text

DocumentKind = Literal["rss", "atom", "rdf", "json", "html", "unknown"]

SNIFF_CHARS = 8192
AUTHOR_MAX_CHARS = 1024  # feedparser's author-email regex is quadratic beyond this
TTL_MAX_MINUTES = 7 * 24 * 60

_PROLOG = re.compile(
    r"(?:\s+|<\?.*?\?>|<!--.*?-->|<!DOCTYPE(?!\s+html)[^\[>]*(?:\[.*?\])?\s*>)*", re.S | re.I
)
_FEED_ROOT = re.compile(r"<(?:[\w.-]+:)?(rss|feed|RDF)\b")
_HTML_ROOT = re.compile(r"<!DOCTYPE\s+html|<html\b", re.I)
_HTML_HINT = re.compile(r"<(?:head|body|meta|title|div|p|script|link)\b", re.I)
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([\w.:-]+)["']""")
_MISLEADING = re.compile(
    r"<((?:[\w.-]+:)?(?:author|creator|managingEditor|webMaster|publisher|contributor)"
    r"|media:title|media:description)(?:\s[^>]*)?(?<!/)>",
    re.I,
)
_TRAILING_COMMENT = re.compile(r"<!--(?:(?!<!--).)*?-->\s*\Z", re.S)
_LATIN1_LABELS = {"iso-8859-1", "iso8859-1", "latin-1", "latin1", "us-ascii", "ascii"}
_KINDS_BY_VERSION: dict[str, FeedKind] = {"rss090": "rdf", "rss10": "rdf"}


def detect_kind(content: bytes, content_type: str | None) -> DocumentKind:
    """What the document is, from its first bytes; ``content_type`` only breaks ties."""
    head = _sniff_text(content)
    start = _PROLOG.match(head)
    at = start.end() if start else 0
    root = _FEED_ROOT.match(head, at)
    if root:
        return _root_kind(root.group(1))
    if head.startswith(("{", "["), at):
        return "json" if is_json_feed(content) else "unknown"
    if _HTML_ROOT.match(head, at) or _HTML_ROOT.search(head):
        return "html"
    root = _FEED_ROOT.search(head, at)  # after junk, e.g. a PHP warning before the declaration
    if root:
        return _root_kind(root.group(1))
    if (content_type or "").endswith("html") or _HTML_HINT.match(head, at):
        return "html"
    return "unknown"


def parse_feed(
    content: bytes, url: str, *, content_type: str | None = None, charset: str | None = None
) -> ParsedFeed:
    """Parse a feed document fetched from ``url``; NotAFeedError when it is not one."""
    kind = detect_kind(content, content_type)
    if kind == "json":
        return parse_json_feed(content, url)
    if kind == "html":
        raise NotAFeedError(url, "an HTML page, not a feed")
    text = _decode(content, charset)
    parsed = _feedparser(text)
    version = str(parsed.get("version") or "")
    entries = list(parsed.get("entries") or [])
    if not version and not (entries and kind != "unknown"):
        raise NotAFeedError(url, "not a feed document")
    feed_kind = _version_kind(version) if version else kind
    truncated = _is_truncated(text)
    if truncated:
        entries = entries[: _closed_entries(text, feed_kind)]
    return ParsedFeed(
        kind=feed_kind,
        title=clean_text(_field(parsed["feed"], "title")),
        link=clean_link(_field(parsed["feed"], "link"), url),
        items=_unique(entry_to_item(entry, url) for entry in entries),
        ttl_minutes=_ttl(parsed["feed"].get("ttl")),
        malformed=truncated or bool(parsed.get("bozo")),
    )


def _sniff_text(content: bytes) -> str:
    """The document's first characters, decoded well enough to recognise its markup."""
    head = content[: SNIFF_CHARS * 2]
    for bom, encoding in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if head.startswith(bom):
            return head[len(bom) :].decode(encoding, "replace")[:SNIFF_CHARS]
    return head.decode("utf-8", "replace").lstrip("\ufeff")[:SNIFF_CHARS]


def _root_kind(name: str) -> DocumentKind:
    """The kind named by a feed's root element."""
    return {"rss": "rss", "feed": "atom"}.get(name, "rdf")  # type: ignore[return-value]


def _version_kind(version: str) -> FeedKind:
    """Our kind for feedparser's version string (rss20, rss10, atom10, ...)."""
    if version.startswith("atom"):
        return "atom"
    return _KINDS_BY_VERSION.get(version, "rss")


def _decode(content: bytes, charset: str | None) -> str:
    """The document as text; see the module docstring for the order of guesses."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le")):
        if content.startswith(bom):
            return content[len(bom) :].decode(encoding, "replace")
    if content.startswith(codecs.BOM_UTF16_BE):
        return content[2:].decode("utf-16-be", "replace")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = _XML_ENCODING.match(content.lstrip()[:200])
    for label in (charset, declared.group(1).decode("ascii") if declared else None):
        decoded = _decode_as(content, label)
        if decoded is not None:
            return decoded
    return content.decode("utf-8", "relay-cp1252")


def _decode_as(content: bytes, label: str | None) -> str | None:
    """``content`` decoded with a declared charset, or None when that fails or is UTF-8."""
    if not label:
        return None
    label = label.strip().lower()
    encoding = "cp1252" if label in _LATIN1_LABELS else label
    try:
        if codecs.lookup(encoding).name == "utf-8":
            return None
        return content.decode(encoding)
    except (LookupError, UnicodeDecodeError):
        return None


def _cp1252_fallback(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: read bytes that are not UTF-8 as windows-1252 (else Latin-1)."""
    assert isinstance(error, UnicodeDecodeError)
    bad = error.object[error.start : error.end]
    text = "".join(bytes([b]).decode("cp1252", "ignore") or chr(b) for b in bad)
    return text, error.end


codecs.register_error("relay-cp1252", _cp1252_fallback)


def _feedparser(text: str) -> Any:
    """feedparser's result for the document, Any kept at this boundary."""
    data = _defuse(text).encode("utf-8")
    # A BytesIO, never bytes or str: feedparser opens a bytes value that names a local file.
    return feedparser.parse(
        io.BytesIO(data),
        sanitize_html=False,
        resolve_relative_uris=False,
        # No Content-Location: feedparser would resolve guids against the fetch URL, and a guid
        # must not change when a feed moves. Links are resolved in `feedentry` instead.
        response_headers={"content-type": "application/xml; charset=utf-8"},
    )


def _defuse(text: str) -> str:
    """Remove elements that mislead feedparser, in one linear pass.

    - media:title / media:description describe a picture, but feedparser files them as the
      entry's title and summary when the entry has none of its own (or has it after them).
    - author-like elements longer than AUTHOR_MAX_CHARS: feedparser's email regex is
      quadratic on them. The relay does not use authors, so nothing is lost.

    Each closing tag is looked for once, from where the previous element ended. An unclosed
    element ends the document: it was cut there anyway.
    """
    pieces: list[str] = []
    pos = 0
    while (opening := _MISLEADING.search(text, pos)) is not None:
        name = opening.group(1)
        close = text.find(f"</{name}", opening.end())
        if close != -1 and _is_author(name) and close - opening.end() <= AUTHOR_MAX_CHARS:
            pieces.append(text[pos:close])
            pos = close
            continue
        pieces.append(text[pos : opening.start()])
        pos = len(text) if close == -1 else text.find(">", close) + 1 or len(text)
    pieces.append(text[pos:])
    return "".join(pieces)


def _is_author(name: str) -> bool:
    """True for the author-like elements `_defuse` only shortens."""
    return not name.lower().startswith("media:")


def _is_truncated(text: str) -> bool:
    """True when the root element is not closed at the end of the document."""
    tail = text[-4096:].rstrip()
    while tail.endswith("-->"):
        comment = _TRAILING_COMMENT.search(tail)
        if comment is None:
            break
        tail = tail[: comment.start()].rstrip()
    return _ROOT_CLOSE.search(tail) is None


_ROOT_CLOSE = re.compile(r"</(?:[\w.-]+:)?(?:rss|feed|RDF)\s*>\Z")


def _closed_entries(text: str, kind: FeedKind) -> int:
    """How many entries of a cut document were closed before the cut."""
    name = "entry" if kind == "atom" else "item"
    return len(re.findall(rf"</(?:[\w.-]+:)?{name}\s*>", text))


def _field(mapping: Any, key: str) -> str | None:
    """A string field of a feedparser dict, or None."""
    value = mapping.get(key)
    return value if isinstance(value, str) else None


def _ttl(raw: object) -> int | None:
    """RSS <ttl> in minutes, when it is a sane number (1 minute to a week)."""
    try:
        minutes = int(str(raw).strip())
    except ValueError:
        return None
    return minutes if 1 <= minutes <= TTL_MAX_MINUTES else None


def _unique(items: Any) -> tuple[FeedItem, ...]:
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
