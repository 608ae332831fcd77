"""Find the feeds a homepage advertises, and guess where an unadvertised one may live.

Pure: HTML bytes and the page URL in, values out. The caller fetches the page and probes the
guesses (at most ``FetchSettings.max_probes`` of them).
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import lxml.html  # type: ignore[import-untyped]
from lxml import etree

from feeds.models import FeedLink
from feeds.normalize import clean_link, clean_text, strip_controls

MAX_WELL_KNOWN = 6
GENERIC_WHEN_DETECTED = 2

# Media type of a <link rel="alternate"> → FeedLink.type. RSS 1.0 (RDF) is read as "rss":
# FeedLink only knows rss | atom | json, and the parser detects the real format anyway.
_FEED_TYPES = {
    "application/rss+xml": "rss",
    "application/atom+xml": "atom",
    "application/rdf+xml": "rss",
    "application/feed+json": "json",
}
# Ambiguous media types: WordPress advertises its REST API as application/json, so these
# count only when the title or href says "feed".
_HINTED_TYPES = {"application/json": "json", "application/xml": "rss", "text/xml": "rss"}
_FEED_HINT = re.compile(r"feed|flux|rss|atom", re.IGNORECASE)  # "flux": French

# Generic paths, most likely first: WordPress (often with its traces hidden), Drupal/Gatsby,
# Jekyll, Hexo, Hugo, Ghost and others.
_GENERIC_PATHS = ("/feed/", "/rss.xml", "/feed.xml", "/atom.xml", "/index.xml", "/rss")

# (platform, substring) searched, lower case, in the generator meta.
_GENERATORS = (
    ("wordpress", "wordpress"),
    ("blogger", "blogger"),
    ("wix", "wix.com"),
    ("jimdo", "jimdo"),
    ("ghost", "ghost"),
    ("squarespace", "squarespace"),
    ("shopify", "shopify"),
    ("substack", "substack"),
)
# (platform, substring) searched in the page's own host, then in src/href values (asset hosts).
_HOST_HINTS = (
    ("blogger", ".blogspot."),
    ("wix", ".wixsite.com"),
    ("jimdo", ".jimdo"),
    ("substack", ".substack.com"),
    ("shopify", ".myshopify.com"),
    ("squarespace", ".squarespace.com"),
    ("ghost", ".ghost.io"),
    ("wordpress", ".wordpress.com"),
)
_ASSET_HINTS = (
    ("wix", "static.wixstatic.com"),
    ("wix", "static.parastorage.com"),
    ("shopify", "cdn.shopify.com"),
    ("squarespace", "assets.squarespace.com"),
    ("squarespace", "static1.squarespace.com"),
    ("jimdo", "jimcdn.com"),
    ("jimdo", "jimstatic.com"),
    ("substack", "substackcdn.com"),
    ("blogger", "www.blogger.com/static"),
    ("blogger", "blogblog.com"),
    ("ghost", "/ghost/portal"),
    ("wordpress", "/wp-content/"),
    ("wordpress", "/wp-includes/"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([\w.:-]+)""", re.I)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_SHOPIFY_BLOG = re.compile(r"^/blogs/([\w-]+)(?:/|$)")


def decode_html(html: bytes) -> str:
    """Text of an HTML page whose declared encoding may be wrong.

    Valid UTF-8 with non-ASCII bytes is almost never anything else, so it wins over a
    declared latin-1; then the <meta charset>; then cp1252, which never fails. Control
    characters are dropped (lxml would read a NUL as U+FFFD, inside links too).
    """
    return strip_controls(_decode(html))


def _decode(html: bytes) -> str:
    """The page's text, by the rules of `decode_html`."""
    if html.startswith((b"\xff\xfe", b"\xfe\xff")):
        return html.decode("utf-16", errors="replace")
    declared = _META_CHARSET.search(html[:4096])
    encodings = ["utf-8-sig"] + ([declared.group(1).decode("ascii")] if declared else [])
    for encoding in encodings:
        try:
            return html.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            continue
    return html.decode("cp1252", errors="replace")


def parse_html(html: bytes) -> etree._Element | None:
    """The lxml tree of a page, or None when nothing can be read from it."""
    text = _XML_DECLARATION.sub("", decode_html(html), count=1)
    try:
        return lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        return None


def document_base(root: etree._Element, url: str) -> str:
    """The URL relative links resolve against: <base href> (itself relative to the page)."""
    for href in root.xpath("//base/@href")[:1]:
        base = urljoin(url, str(href).strip())
        if urlsplit(base).scheme in ("http", "https"):
            return base
    return url


def discover_feed_links(html: bytes, url: str) -> list[FeedLink]:
    """Feeds advertised by <link rel="alternate">, in document order, without duplicates."""
    root = parse_html(html)
    if root is None:
        return []
    base = document_base(root, url)
    links: dict[str, FeedLink] = {}
    for element in root.iter("link"):
        link = _feed_link(element, base)
        if link is not None and link.url not in links:
            links[link.url] = link
    return list(links.values())


def _feed_link(element: etree._Element, base: str) -> FeedLink | None:
    """The FeedLink one <link> element stands for, or None when it is not a feed."""
    if "alternate" not in (element.get("rel") or "").lower().split():
        return None
    media_type = (element.get("type") or "").split(";")[0].strip().lower()
    title = element.get("title") or ""
    href = element.get("href") or ""
    kind = _FEED_TYPES.get(media_type)
    if kind is None and _FEED_HINT.search(title + " " + href) and "/wp-json/" not in href:
        kind = _HINTED_TYPES.get(media_type)
    feed_url = clean_link(href, base) if kind else None
    if kind is None or feed_url is None:
        return None
    return FeedLink(url=feed_url, type=kind, title=clean_text(title))


def detect_platform(html: bytes, url: str) -> str | None:
    """The site builder behind a page ("wordpress", "wix", …), or None when unsure."""
    return _detect_platform(parse_html(html), url)


def _detect_platform(root: etree._Element | None, url: str) -> str | None:
    """Generator meta first, then the page's host, then the hosts its assets come from."""
    generators = root.xpath("//meta[@name='generator']/@content") if root is not None else []
    for generator in (str(g).lower() for g in generators):
        for platform, marker in _GENERATORS:
            if marker in generator:
                return platform
    host = "." + (urlsplit(url).hostname or "")
    for platform, marker in _HOST_HINTS:
        if marker in host:
            return platform
    return _platform_from_assets(root) if root is not None else None


def _platform_from_assets(root: etree._Element) -> str | None:
    """A platform recognised by the hosts and paths its pages load assets from."""
    if root.xpath("//*[@id='mastodon']"):
        return "mastodon"
    values = [str(v).lower() for v in root.xpath("//@src | //@href")]
    for platform, marker in _ASSET_HINTS:
        if any(marker in value for value in values):
            return platform
    return None


def well_known_feed_urls(html: bytes | None, url: str) -> list[str]:
    """Feed URLs worth probing when a page advertises none, most likely first.

    The detected platform's own paths come first, then a shortened generic list; at most
    ``MAX_WELL_KNOWN`` absolute URLs on the page's origin.
    """
    root = parse_html(html) if html else None
    platform = _detect_platform(root, url)
    page = urlsplit(url)
    origin = f"{page.scheme}://{page.netloc}"
    own = _platform_paths(platform, page.path or "/", root, url)
    generic = [p for p in _GENERIC_PATHS if p not in own]
    paths = own + (generic[:GENERIC_WHEN_DETECTED] if own else generic)
    urls = list(dict.fromkeys(origin + path for path in paths))
    return urls[:MAX_WELL_KNOWN]


def _platform_paths(
    platform: str | None, page_path: str, root: etree._Element | None, url: str
) -> list[str]:
    """Feed paths specific to a platform, best first; empty when there is no platform."""
    if platform == "shopify":
        return [f"/blogs/{handle}.atom" for handle in _shopify_blogs(root, url)]
    if platform == "squarespace":
        return [f"{page_path}?format=rss", "/blog?format=rss"]
    if platform == "mastodon":
        return [page_path.rstrip("/") + ".rss"] if page_path.startswith("/@") else []
    return {
        "wordpress": ["/feed/", "/?feed=rss2"],
        "blogger": ["/feeds/posts/default", "/feeds/posts/default?alt=rss"],
        "wix": ["/blog-feed.xml"],
        "ghost": ["/rss/"],
        "substack": ["/feed"],
        # Jimdo Creator blogs; Jimdo's newer builder has no feed at all.
        "jimdo": ["/rss/blog/"],
    }.get(platform or "", [])


def _shopify_blogs(root: etree._Element | None, url: str) -> list[str]:
    """Blog handles linked from a Shopify page (/blogs/<handle>/…); "news" is the default."""
    handles: list[str] = []
    host = urlsplit(url).netloc
    for href in root.xpath("//a/@href") if root is not None else []:
        parts = urlsplit(urljoin(url, str(href)))
        match = _SHOPIFY_BLOG.match(parts.path)
        if match and parts.netloc == host and match.group(1) not in handles:
            handles.append(match.group(1))
    return handles[:2] or ["news"]
