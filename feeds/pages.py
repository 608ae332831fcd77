"""Read a page that has no feed as a feed ("page feed").

Items come from the most trustworthy source the page offers, never a mix: microformats
(h-entry), then JSON-LD, then OpenGraph (one item for the page itself). Pure: bytes in, values
out. A page with nothing readable gives zero items; the caller decides what that means.

mf2py walks the page recursively, without libxml2's depth limit: it reads the page as
re-written by `feeds.markup.bound_markup` (at most 200 elements deep), never as sent, so a page
nested thousands of levels deep cannot exhaust the interpreter's recursion limit. Should it
still, the page is refused with one `ParseError`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import mf2py
from lxml import etree  # type: ignore[import-untyped]

from feeds.discover import decode_html, document_base, parse_html
from feeds.errors import ParseError
from feeds.jsonld import jsonld_items
from feeds.markup import HtmlBudget, bound_markup
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

Properties = dict[str, list[Any]]

_H_ENTRY = "//*[contains(concat(' ', normalize-space(@class), ' '), ' h-entry ')]"


def parse_page(html: bytes, url: str) -> ParsedFeed:
    """The page's items (from the first source that has any) and the site's name."""
    root = parse_html(html)
    if root is None:
        return ParsedFeed(kind="page", title=None, link=url, items=())
    budget = HtmlBudget()
    meta = _meta(root)
    items = _items(root, meta, html, url, budget)
    if len(items) == 1 and items[0].link is None:
        # A page holding a single item is that item's page.
        items = [replace(items[0], link=url)]
    title = clean_text(meta.get("og:site_name"), budget=budget) or clean_text(
        root.findtext(".//title"), budget=budget
    )
    return scrub_feed(ParsedFeed(kind="page", title=title, link=url, items=tuple(items)))


def _items(
    root: etree._Element, meta: dict[str, str], html: bytes, url: str, budget: HtmlBudget
) -> list[FeedItem]:
    """Items of the most trusted source that has any; an item needs a title or a summary."""
    base = document_base(root, url)
    sources: tuple[Callable[[], list[FeedItem]], ...] = (
        lambda: _mf2_items(root, html, url, base, budget),
        lambda: jsonld_items(root, base, budget=budget),
        lambda: _og_items(root, meta, base, url, budget),
    )
    for source in sources:
        items = [item for item in source() if item.title or item.summary]
        if items:
            return items
    return []


def _mf2_items(
    root: etree._Element, html: bytes, url: str, base: str, budget: HtmlBudget
) -> list[FeedItem]:
    """Items from the page's h-entry microformats (inside an h-feed or not).

    Only pages that mark an h-entry on purpose: mf2py also reads the old "hentry" class,
    which themes add to every page whether it is news or not.
    """
    if not root.xpath(_H_ENTRY):  # mf2py is slow; most pages have none
        return []
    entries = _h_entries(_mf2(html, url).get("items", []))
    return [_mf2_item(entry.get("properties", {}), base, budget) for entry in entries]


def _mf2(html: bytes, url: str) -> Any:
    """mf2py's reading of the page, depth-bounded (see the module docstring)."""
    try:
        with warnings.catch_warnings():
            # BeautifulSoup warns about odd input (it looks like a URL, a file name…).
            warnings.simplefilter("ignore")
            return mf2py.parse(doc=bound_markup(decode_html(html)), url=url, html_parser="lxml")
    except RecursionError as error:
        raise ParseError(url, "the page is nested too deeply to be read") from error


def _h_entries(items: list[Any]) -> Iterator[Any]:
    """h-entry objects, searched through the children of other microformats (an h-feed)."""
    for item in items:
        if not isinstance(item, dict):
            continue
        if "h-entry" in item.get("type", []):
            yield item  # its own children are comments or quotes, not entries
        else:
            yield from _h_entries(item.get("children", []))


def _mf2_item(props: Properties, base: str, budget: HtmlBudget) -> FeedItem:
    """One FeedItem from an h-entry's properties (mf2py has made their URLs absolute)."""
    content = _first(props, "content")
    content_html = content.get("html") if isinstance(content, dict) else None
    content_text = content.get("value") if isinstance(content, dict) else content
    name = _first(props, "name")
    # A name equal to the whole content is implied, not a title (a note).
    if isinstance(name, str) and isinstance(content_text, str) and _same(name, content_text):
        name = None
    url = _string(_first(props, "url"))
    uid = _string(_first(props, "uid"))
    summary = _string(_first(props, "summary"))
    summary_text = (
        html_to_text(summary, budget=budget)
        or html_to_text(content_html, budget=budget)
        or html_to_text(content_text, budget=budget)
    )
    return FeedItem(
        title=clean_text(_string(name), budget=budget),
        link=clean_link(url, None),
        guid=uid or clean_link(url, None),
        published=parse_date(_string(_first(props, "published") or _first(props, "updated"))),
        summary=summary_text,
        image=_mf2_image(props, content_html, base, budget),
        content_html=sanitize_html(content_html, base, budget=budget),
    )


def _mf2_image(
    props: Properties, content_html: str | None, base: str | None, budget: HtmlBudget
) -> str | None:
    """The entry's u-photo or u-featured, else the first picture of its content."""
    for key in ("featured", "photo"):
        for value in props.get(key, []):
            image = clean_link(_string(value), None)
            if image and not is_avatar(image):
                return image
    return first_image_in_html(content_html, base, budget=budget) if content_html else None


def _og_items(
    root: etree._Element, meta: dict[str, str], base: str, url: str, budget: HtmlBudget
) -> list[FeedItem]:
    """The page itself as one item, when it has an og:title.

    Only an article page is a lasting item (guid = its URL); a homepage or a product page
    keeps its URL while its news changes, so it gets no guid.
    """
    title = clean_text(meta.get("og:title"), budget=budget)
    if title is None:
        return []
    canonical = next(iter(root.xpath("//link[@rel='canonical']/@href")), None)
    link = clean_link(meta.get("og:url"), base) or clean_link(canonical, base) or url
    image = clean_link(meta.get("og:image:secure_url") or meta.get("og:image"), base)
    return [
        FeedItem(
            title=title,
            link=link,
            guid=link if meta.get("og:type", "").strip().lower() == "article" else None,
            published=parse_date(meta.get("article:published_time")),
            summary=html_to_text(
                meta.get("og:description") or meta.get("description"), budget=budget
            ),
            image=None if image is None or is_avatar(image) else image,
        )
    ]


def _meta(root: etree._Element) -> dict[str, str]:
    """<meta> values by lower-case property or name; the first one wins."""
    values: dict[str, str] = {}
    for element in root.iter("meta"):
        key = (element.get("property") or element.get("name") or "").strip().lower()
        content = element.get("content")
        if key and content is not None:
            values.setdefault(key, content)
    return values


def _first(props: Properties, key: str) -> Any:
    """The first value of a microformats property, or None."""
    values = props.get(key) or [None]
    return values[0]


def _string(value: Any) -> str | None:
    """A microformats value as a string: plain, or the "value" of an {img alt} or nested object."""
    if isinstance(value, dict):
        value = value.get("value")
    return value if isinstance(value, str) else None


def _same(left: str, right: str) -> bool:
    """Equal once whitespace is collapsed."""
    return " ".join(left.split()) == " ".join(right.split())
