"""Read news items from a page's JSON-LD (schema.org) blocks: posts, events, products.

Pure. Organisation, website, breadcrumb and other page furniture is ignored: only things a
business would announce become items.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

from lxml import etree  # type: ignore[import-untyped]

from feeds.markup import HtmlBudget
from feeds.models import FeedItem
from feeds.normalize import clean_link, clean_text, html_to_text, is_avatar, parse_date

Node = dict[str, Any]

_ARTICLES = {
    "Article",
    "NewsArticle",
    "BlogPosting",
    "SocialMediaPosting",
    "LiveBlogPosting",
    "Report",
    "AnalysisNewsArticle",
    "OpinionNewsArticle",
    "ReportageNewsArticle",
}
_PRODUCTS = {"Product", "ProductGroup"}
# Containers whose members may be items (a Blog's posts, an ItemList's entries).
_CONTAINER_KEYS = ("@graph", "mainEntity", "itemListElement", "item", "blogPost", "blogPosts")
_POST_DATES = ("datePublished", "dateModified", "dateCreated")
_EVENT_DATES = ("datePublished",)
_COMMENT_WRAPPER = re.compile(r"^\s*(?:<!--|//\s*<!\[CDATA\[)|(?:-->|//\s*\]\]>)\s*$")


def jsonld_items(
    root: etree._Element, base: str, *, budget: HtmlBudget | None = None
) -> list[FeedItem]:
    """Items from every JSON-LD block of a page; unreadable blocks are skipped."""
    blocks = list(_blocks(root))
    index: dict[str, Node] = {}
    try:
        nodes = [node for block in blocks for node in _walk(block)]
        _index(blocks, index)
        return [_item(node, index, base, budget) for node in _drop_variants(nodes)]
    except RecursionError:  # absurdly deep JSON: not a real page's data
        return []


def _blocks(root: etree._Element) -> Iterator[Any]:
    """The parsed JSON of each <script type="application/ld+json">."""
    for script in root.iter("script"):
        if (script.get("type") or "").split(";")[0].strip().lower() != "application/ld+json":
            continue
        text = _COMMENT_WRAPPER.sub("", script.text or "")
        try:
            # strict=False: raw newlines inside strings are common in hand-made blocks.
            yield json.loads(text, strict=False)
        except (ValueError, RecursionError):
            continue


def _walk(value: Any) -> Iterator[Node]:
    """Nodes that are items, found through lists, @graph and container properties.

    An item's own properties (its author, its offers) are not searched.
    """
    if isinstance(value, list):
        for member in value:
            yield from _walk(member)
    elif isinstance(value, dict):
        if _kind(value):
            yield value
            return
        for key in _CONTAINER_KEYS:
            yield from _walk(value.get(key))


def _index(value: Any, index: dict[str, Node]) -> None:
    """Record every described node by @id: Yoast and others refer to images that way."""
    if isinstance(value, list):
        for member in value:
            _index(member, index)
    elif isinstance(value, dict):
        if isinstance(value.get("@id"), str) and len(value) > 1:
            index.setdefault(value["@id"], value)
        for member in value.values():
            _index(member, index)


def _types(node: Node) -> set[str]:
    """The node's @type names, without a schema.org prefix."""
    raw = node.get("@type")
    names = raw if isinstance(raw, list) else [raw]
    return {re.split(r"[/:#]", name)[-1] for name in names if isinstance(name, str)}


def _kind(node: Node) -> str | None:
    """Kind of item ("article", "event", "product") for the types we relay, else None."""
    types = _types(node)
    if types & _ARTICLES:
        return "article"
    if types & _PRODUCTS:
        return "product"
    if any(name.endswith("Event") for name in types):  # Event, SaleEvent, MusicEvent…
        return "event"
    return None


def _drop_variants(nodes: list[Node]) -> list[Node]:
    """Nodes without duplicates, and without product variants when their group is present."""
    has_group = any("ProductGroup" in _types(node) for node in nodes)
    kept: list[Node] = []
    seen: set[str] = set()
    for node in nodes:
        key = json.dumps(node.get("@id") or node.get("url") or node, sort_keys=True, default=str)
        if key in seen or (has_group and "isVariantOf" in node):
            continue
        seen.add(key)
        kept.append(node)
    return kept


def _item(node: Node, index: dict[str, Node], base: str, budget: HtmlBudget | None) -> FeedItem:
    """One FeedItem from an article, event or product node."""
    link = _link(node, base)
    ident = _text(node.get("@id"))
    # An event's startDate says when it happens, not when it was announced.
    dates = _EVENT_DATES if _kind(node) == "event" else _POST_DATES
    description = _text(node.get("description")) or _text(node.get("articleBody"))
    return FeedItem(
        title=clean_text(_text(node.get("headline")) or _text(node.get("name")), budget=budget),
        link=link,
        guid=_guid(ident, base) or link,
        published=next((d for k in dates if (d := parse_date(_text(node.get(k))))), None),
        summary=html_to_text(description, budget=budget),
        image=_image(node.get("image"), index, base),
    )


def _guid(ident: str | None, base: str) -> str | None:
    """An @id as an identifier: resolved when relative ("#product"), not a blank node."""
    if not ident or not ident.strip() or ident.startswith("_:"):
        return None
    return urljoin(base, ident.strip())


def _link(node: Node, base: str) -> str | None:
    """The item's own page: url, then mainEntityOfPage, then an http @id without fragment."""
    page = node.get("mainEntityOfPage")
    page_id = page.get("@id") if isinstance(page, dict) else page
    for candidate in (node.get("url"), page_id, node.get("@id")):
        text = _text(candidate)
        if text and text.startswith(("http://", "https://", "/")):
            return clean_link(text.split("#")[0], base)
    return None


def _image(value: Any, index: dict[str, Node], base: str) -> str | None:
    """The first image: a URL, a list of them, or an ImageObject (maybe an @id reference)."""
    if isinstance(value, list):
        return next((i for v in value if (i := _image(v, index, base))), None)
    if isinstance(value, dict):
        ref = value.get("@id")
        node = index.get(ref, value) if isinstance(ref, str) else value
        value = node.get("url") or node.get("contentUrl")
    url = clean_link(_text(value), base)
    return None if url is None or is_avatar(url) else url


def _text(value: Any) -> str | None:
    """A string property, or the first string of a list, or a {"@value": …}."""
    if isinstance(value, list):
        value = next(iter(value), None)
    if isinstance(value, dict):
        value = value.get("@value")
    if not isinstance(value, str):
        return None
    # JSON may escape lone surrogates ("\\ud800"), which no UTF-8 text can carry.
    return value.encode("utf-8", "replace").decode("utf-8")
