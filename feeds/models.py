"""Plain values that `feeds` hands to the rest of the relay."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

FeedKind = Literal["rss", "atom", "rdf", "json", "page"]


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One normalised news item. Every text field is plain text, already cleaned."""

    title: str | None
    link: str | None
    guid: str | None
    published: datetime | None  # timezone-aware, UTC
    summary: str | None
    image: str | None
    content_html: str | None = None  # sanitised HTML (nh3), never sent to Telegram as-is


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A parsed document: a feed, or a page read as a feed ("page feed")."""

    kind: FeedKind
    title: str | None
    link: str | None  # the site the feed describes, when it says
    items: tuple[FeedItem, ...]
    ttl_minutes: int | None = None  # RSS <ttl>, a polling hint
    malformed: bool = False  # flagged by the parser but still readable


@dataclass(frozen=True, slots=True)
class FeedLink:
    """A feed advertised by (or guessed for) a homepage."""

    url: str
    type: str  # "rss" | "atom" | "json"
    title: str | None = None


@dataclass(frozen=True, slots=True)
class Validators:
    """HTTP cache validators to send back on the next conditional GET."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one fetch produced. A 304 is a result (``not_modified``), not an error."""

    url: str  # the URL asked for
    final_url: str  # after redirects
    status: int
    content: bytes = b""
    content_type: str | None = None  # media type, lower case, without parameters
    charset: str | None = None  # from the Content-Type header, if any
    validators: Validators = field(default_factory=Validators)
    body_hash: str | None = None  # sha256 hex of the body; None on 304
    not_modified: bool = False  # 304, or body hash equal to the one we were given
    permanent_redirect: str | None = None  # new URL when every hop was 301/308
    max_age: float | None = None  # seconds, from Cache-Control max-age or Expires
