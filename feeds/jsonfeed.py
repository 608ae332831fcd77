"""Read a JSON Feed (1.0 or 1.1, https://jsonfeed.org/version/1.1) into a `ParsedFeed`.

Relative URLs resolve against the feed's own ``feed_url``, else its ``home_page_url``, else the
URL the document came from. An item's link is its ``url``, else its ``external_url``; an item
without an ``id`` has no guid. The summary is ``summary``, else ``content_html``,
else ``content_text``; the image is ``image``, else ``banner_image``, else the first picture in
the content. Author avatars are never an item's image.
"""

from __future__ import annotations

import html
import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from feeds.errors import NotAFeedError
from feeds.markup import HtmlBudget
from feeds.models import FeedItem, ParsedFeed
from feeds.normalize import (
    clean_link,
    clean_text,
    first_image_in_html,
    html_to_text,
    is_avatar,
    parse_date,
    sanitize_html,
    scrub_feed,
)

# PHP's json_encode escapes slashes: "https:\/\/jsonfeed.org\/version\/1".
_VERSION_MARK = re.compile(rb"jsonfeed\.org\\?/version")
TITLE_MAX_CHARS = 2000


def is_json_feed(content: bytes) -> bool:
    """Cheap check: a JSON object that names a JSON Feed version somewhere."""
    start = content.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return start == b"{" and _VERSION_MARK.search(content) is not None


def parse_json_feed(content: bytes, url: str) -> ParsedFeed:
    """Parse a JSON Feed document fetched from ``url``; NotAFeedError when it is not one."""
    document = _load(content, url)
    base = _base(document, url)
    items = document.get("items")
    if not isinstance(items, list):
        raise NotAFeedError(url, "JSON Feed without an items list")
    budget = HtmlBudget()
    parsed = (_item(item, base, budget) for item in items if isinstance(item, dict))
    feed = ParsedFeed(
        kind="json",
        title=clean_text(_str(document.get("title")), budget=budget),
        link=clean_link(_str(document.get("home_page_url")), base),
        items=tuple(item for item in parsed if item is not None),
    )
    return scrub_feed(feed)


def _load(content: bytes, url: str) -> dict[str, Any]:
    """The decoded JSON object, checked to be a JSON Feed."""
    try:
        document = json.loads(content)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError
        raise NotAFeedError(url, f"invalid JSON: {error}") from error
    version = document.get("version") if isinstance(document, dict) else None
    if not isinstance(document, dict) or not isinstance(version, str):
        raise NotAFeedError(url, "JSON, but not a JSON Feed")
    if "jsonfeed.org/version" not in version:
        raise NotAFeedError(url, "JSON, but not a JSON Feed")
    return document


def _base(document: dict[str, Any], url: str) -> str:
    """The URL relative links in the feed resolve against."""
    for key in ("feed_url", "home_page_url"):
        declared = _str(document.get(key))
        if declared and urlsplit(urljoin(url, declared)).scheme in ("http", "https"):
            return urljoin(url, declared)
    return url


def _item(item: dict[str, Any], base: str, budget: HtmlBudget) -> FeedItem | None:
    """One item, or None when it has nothing to show."""
    title = clean_text((_str(item.get("title")) or "")[:TITLE_MAX_CHARS] or None, budget=budget)
    link = clean_link(_str(item.get("url")) or _str(item.get("external_url")), base)
    body = _str(item.get("content_html")) or _text_as_html(_str(item.get("content_text")))
    # `summary` is plain text by the spec, but PHP plugins put entities in it: read it as HTML.
    summary = html_to_text(_str(item.get("summary")) or body, budget=budget)
    if not (title or link or summary):
        return None
    return FeedItem(
        title=title,
        link=link,
        guid=_guid(item.get("id")),
        published=_date(item),
        summary=summary,
        image=_image(item, base, body, budget),
        content_html=sanitize_html(body, base, budget=budget),
    )


def _guid(value: object) -> str | None:
    """The item's id as text: the spec wants a string, PHP plugins send numbers too."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value).strip() or None


def _date(item: dict[str, Any]) -> datetime | None:
    """date_published, else date_modified."""
    return parse_date(_str(item.get("date_published"))) or parse_date(
        _str(item.get("date_modified"))
    )


def _image(item: dict[str, Any], base: str, body: str | None, budget: HtmlBudget) -> str | None:
    """The item's picture: image, banner_image, else the first one in its content."""
    for key in ("image", "banner_image"):
        image = clean_link(_str(item.get(key)), base)
        if image and not is_avatar(image):
            return image
    image = first_image_in_html(body, base, budget=budget) if body else None
    return image if image and not is_avatar(image) else None


def _text_as_html(text: str | None) -> str | None:
    """Plain text as an HTML fragment, so markup-like characters stay text."""
    if not text or not text.strip():
        return None
    paragraphs = (html.escape(part).replace("\n", "<br>") for part in text.split("\n\n"))
    return "".join(f"<p>{part}</p>" for part in paragraphs)


def _str(value: object) -> str | None:
    """A JSON string value, or None for anything else (numbers, objects, empty strings)."""
    return value if isinstance(value, str) and value.strip() else None
