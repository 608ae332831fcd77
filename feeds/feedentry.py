"""Turn one feedparser entry (RSS, RDF or Atom) into a `FeedItem`.

feedparser's dicts are read here and nowhere else, so its looseness (any key may be missing or
of an unexpected type) stays at this boundary. Every field goes through `feeds.normalize`.

Precedence:

- link: the entry's alternate link (RSS <link>, Atom rel="alternate"), resolved against the
  feed URL (feedparser has already applied xml:base); else the guid / Atom id when it is an
  absolute http(s) URL and a permalink (never a guid with isPermaLink="false").
- guid: the entry's <guid> / <id> verbatim.
- published: the raw published date, else updated (dc:date, dcterms:modified), else created;
  the first one that parses. feedparser's own parsed dates are not used: they read CEST as UTC
  and know no French month.
- image: media:content (images), media:thumbnail, an image enclosure, itunes:image, then the
  first picture in the content; author pictures (avatars, Blogger's gd:image) never count.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from feeds.markup import HtmlBudget
from feeds.models import FeedItem
from feeds.normalize import (
    clean_link,
    clean_text,
    first_image_in_html,
    html_to_text,
    is_avatar,
    parse_date,
    sanitize_html,
)

TITLE_MAX_CHARS = 2000  # raw, before cleaning: a longer title is noise, not a headline
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")
HTML_TYPES = ("text/html", "application/xhtml+xml", "html", "xhtml")


def entry_to_item(
    entry: Any, url: str, *, with_content: bool = True, budget: HtmlBudget | None = None
) -> FeedItem | None:
    """The item an entry describes, or None when it has nothing to show.

    `with_content=False` skips sanitising the HTML content (the poller never stores it);
    `budget` is the document's allowance of HTML cleaning, shared by all its entries.
    """
    title = clean_text(_text(_get(entry, "title"))[:TITLE_MAX_CHARS] or None, budget=budget)
    link = _link(entry, url)
    summary_html = _text(_get(entry, "summary")) or None
    content, content_base = _content(entry, url)
    summary = html_to_text(summary_html or content, budget=budget)
    if not (title or link or summary):
        return None
    body = content or summary_html
    return FeedItem(
        title=title,
        link=link,
        guid=_text(_get(entry, "id")).strip() or None,
        published=_published(entry),
        summary=summary,
        image=_image(entry, url, body, content_base, budget),
        content_html=sanitize_html(body, content_base, budget=budget) if with_content else None,
    )


def _text(value: object) -> str:
    """A feedparser value as a string ('' when absent or not text)."""
    return value if isinstance(value, str) else ""


def _link(entry: Any, url: str) -> str | None:
    """The entry's own page: its alternate link, else a permalink guid."""
    alternates = [
        link
        for link in _dicts(_get(entry, "links"))
        if _get(link, "rel", "alternate") == "alternate"
    ]
    alternates.sort(key=lambda link: _text(_get(link, "type")) not in HTML_TYPES)  # stable
    for alternate in alternates:
        found = clean_link(_text(_get(alternate, "href")) or None, url)
        if found:
            return found
    # feedparser copies a permalink guid (or an Atom id) into `link` when there is no <link>;
    # it leaves `link` unset for isPermaLink="false". Only an absolute web URL is a page.
    guid = _text(_get(entry, "link"))
    if guid and guid == _get(entry, "id") and urlsplit(guid).scheme in ("http", "https"):
        return clean_link(guid, None)
    return None


def _content(entry: Any, url: str) -> tuple[str | None, str]:
    """The entry's full content (HTML preferred) and the base its relative URLs resolve to."""
    contents = _dicts(_get(entry, "content"))
    contents.sort(key=lambda content: _text(_get(content, "type")) not in HTML_TYPES)
    for content in contents:
        value = _text(_get(content, "value"))
        if value.strip():
            return value, urljoin(url, _text(_get(content, "base")))
    detail = _get(entry, "summary_detail")
    base = _text(_get(detail, "base")) if isinstance(detail, dict) else ""
    return None, urljoin(url, base)


def _published(entry: Any) -> datetime | None:
    """The first of published / updated / created that is a real date."""
    for key in ("published", "updated", "created"):
        when = parse_date(_text(_get(entry, key)) or None)
        if when is not None:
            return when
    return None


def _image(
    entry: Any, url: str, html: str | None, html_base: str, budget: HtmlBudget | None
) -> str | None:
    """The post's own picture (see the module docstring for the order)."""
    for raw in _image_candidates(entry):
        image = clean_link(raw or None, url)
        if image and not is_avatar(image):
            return image
    image = first_image_in_html(html, html_base, budget=budget) if html else None
    return image if image and not is_avatar(image) else None


def _image_candidates(entry: Any) -> Iterator[str]:
    """Image URLs the entry declares outside its HTML, best first."""
    for media in _dicts(_get(entry, "media_content")):
        if _is_image(_get(media, "medium"), _get(media, "type"), _get(media, "url")):
            yield _text(_get(media, "url"))
    for thumbnail in _dicts(_get(entry, "media_thumbnail")):
        yield _text(_get(thumbnail, "url"))
    for link in _dicts(_get(entry, "links")):
        if _get(link, "rel") == "enclosure" and _text(_get(link, "type")).startswith("image/"):
            yield _text(_get(link, "href"))
    itunes = _get(entry, "image")  # itunes:image; Blogger's author gd:image is `gd_image`
    if isinstance(itunes, dict):
        yield _text(_get(itunes, "href"))


def _is_image(medium: object, mime: object, url: object) -> bool:
    """Whether a media:content element is a picture (by medium, type, else file name)."""
    if medium or mime:
        return medium == "image" or _text(mime).startswith("image/")
    return urlsplit(_text(url)).path.lower().endswith(IMAGE_SUFFIXES)


def _get(mapping: Any, key: str, default: object = None) -> Any:
    """``mapping[key]`` read as a plain dict: FeedParserDict's key aliases warn and surprise."""
    return dict.get(mapping, key, default) if isinstance(mapping, dict) else default


def _dicts(value: object) -> list[dict[str, Any]]:
    """The dicts of a feedparser list field (a missing or odd field gives [])."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]
