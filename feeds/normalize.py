"""Normalise feed and page fields: titles, links, dates, summaries, images, HTML.

Pure functions, no I/O. Every HTML parse goes through nh3 (ammonia + html5ever, a Rust
HTML5 parser), whose output is a canonical serialisation that the few regular expressions
below rely on (``<`` in text always comes out as ``&lt;``, attributes always double-quoted).
html5ever is not linear on hostile markup (deep nesting, thousands of attributes): a fragment
with many tags is bounded first by `feeds.markup` (or, for its text, read by
`feeds.markup.plain_text`), and a document's parser passes one `HtmlBudget` to the HTML
functions so that the whole document, not each field, has one allowance of cleaning. Past
it, text fields are read as plain text and the optional ones (sanitised content, a picture
found in the content) are left out.

Control characters: `strip_controls` (text) and `strip_url_controls` (links) are the one place
they are removed; `scrub_feed` applies them to every field a parser produces.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import urljoin, urlsplit

import nh3
from dateutil import parser as dateutil_parser
from dateutil import tz as dateutil_tz

from feeds.markup import (
    BLOCK_TAGS,
    HIDDEN_CONTENT_TAGS,
    HtmlBudget,
    bound_markup,
    needs_bounding,
    plain_text,
)
from feeds.models import FeedItem, ParsedFeed

SUMMARY_MAX_CHARS = 500
MAX_TEXT_CHARS = 10_000  # a title longer than this is garbage or an attack
MAX_HTML_CHARS = 200_000  # nh3 slows quadratically on long runs of escaped text: bound it
IMAGE_WINDOW_CHARS = 20_000  # read after a fragment's first <img>: its picture is near
MAX_URL_CHARS = 4096
MAX_DATE_CHARS = 200
MIN_YEAR, MAX_YEAR = 1970, 2999  # outside: placeholder dates ("0000-00-00") or garbage

TRACKING_PARAMS = frozenset({"fbclid", "gclid", "mc_cid", "mc_eid"})  # and utm_*, any case

_SAFE_TAGS = frozenset(
    {"p", "br", "a", "b", "strong", "i", "em", "ul", "ol", "li", "blockquote", "img"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "figure", "figcaption", "pre", "code"}
)
_SAFE_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title", "width", "height"}}
_URL_ATTRIBUTES = frozenset({"href", "src"})
_IMAGE_SOURCE_ATTRIBUTES = ("src", "data-src", "data-lazy-src", "data-original")

# Safe only on nh3 output: there a tag never contains a bare ">" or "<".
_TAG_RE = re.compile(r"<[^<>]*>")
_IMG_RE = re.compile(r"<img\b[^<>]*>")
_IMG_START_RE = re.compile(r"<img", re.I)
_HIDDEN_START_RE = re.compile("|".join(f"<{tag}" for tag in sorted(HIDDEN_CONTENT_TAGS)), re.I)
_ATTR_RE = re.compile(r'([\w-]+)="([^"]*)"')
# Something in plain text that an HTML parser would read as markup.
_MARKUP_LIKE_RE = re.compile(r"<[a-zA-Z/!?]")
_SPACE_RE = re.compile(r"\s+")  # str patterns: \s covers U+00A0, U+202F, U+2009...
# C0 controls but tab, newline and carriage return, and DEL: never meaningful in feed text.
_TEXT_CONTROLS_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_URL_CONTROLS_RE = re.compile("[\x00-\x1f\x7f]")  # browsers drop them from URLs too


def strip_controls(text: str) -> str:
    """``text`` without control characters (tab, newline and carriage return are kept)."""
    if text.isprintable():  # the common case, checked in C far faster than by the regex
        return text
    return _TEXT_CONTROLS_RE.sub("", text)


def strip_url_controls(url: str) -> str:
    """``url`` without any control character (tab and newline included) or surrounding space.

    Spaces inside a URL are left alone: the link's identity must not change for them.
    """
    if url.isprintable():
        return url.strip()
    return _URL_CONTROLS_RE.sub("", url).strip()


def scrub_item(item: FeedItem) -> FeedItem:
    """``item`` with control characters removed from every field (see the module docstring)."""
    return replace(
        item,
        title=_scrub_text(item.title),
        link=_scrub_url(item.link),
        guid=_scrub_text(item.guid),
        summary=_scrub_text(item.summary),
        image=_scrub_url(item.image),
        content_html=_scrub_text(item.content_html),
    )


def scrub_feed(feed: ParsedFeed) -> ParsedFeed:
    """A parsed document with control characters removed from all its fields and items."""
    return replace(
        feed,
        title=_scrub_text(feed.title),
        link=_scrub_url(feed.link),
        items=tuple(scrub_item(item) for item in feed.items),
    )


def _scrub_text(text: str | None) -> str | None:
    return (strip_controls(text) or None) if text else None


def _scrub_url(url: str | None) -> str | None:
    return (strip_url_controls(url) or None) if url else None


def clean_text(raw: str | None, *, budget: HtmlBudget | None = None) -> str | None:
    """Plain text from a title-like field; None when nothing is left.

    Tags are removed (script/style with their text), entities decoded, and decoded once
    more when the first pass revealed entities or markup (double-escaped feeds).
    """
    if not raw:
        return None
    text = _markup_to_text(strip_controls(raw[:MAX_TEXT_CHARS]), budget)
    if html.unescape(text) != text or _MARKUP_LIKE_RE.search(text):
        text = _markup_to_text(text, budget)
    if _MARKUP_LIKE_RE.search(text):
        # The second decoding revealed markup again: remove it, decode no further.
        text = _markup_to_text(text.replace("&", "&amp;"), budget)
    return _collapse_spaces(text) or None


def strip_tracking(url: str) -> str:
    """Remove utm_* (any case), fbclid, gclid, mc_cid, mc_eid; keep everything else verbatim."""
    rest, hash_mark, fragment = url.partition("#")
    path, question_mark, query = rest.partition("?")
    if not question_mark:
        return url
    params = query.split("&")
    kept = [param for param in params if not _is_tracking_param(param)]
    if len(kept) == len(params):
        return url
    new_query = "?" + "&".join(kept) if kept else ""
    return path + new_query + hash_mark + fragment


def _is_tracking_param(param: str) -> bool:
    """True for a ``name=value`` pair whose name is a known tracking parameter."""
    name = param.partition("=")[0].lower()
    return name.startswith("utm_") or name in TRACKING_PARAMS


def clean_link(raw: str | None, base: str | None) -> str | None:
    """Absolute http(s) link without tracking parameters, or None."""
    if not raw or len(raw) > MAX_URL_CHARS:
        return None
    link = strip_url_controls(raw)  # before any judgement: "java\0script:" is "javascript:"
    try:
        if base:
            link = urljoin(base.strip(), link)
        parts = urlsplit(link)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket, a bad port
        return None
    if parts.scheme not in ("http", "https") or not host or _has_space(parts.netloc):
        return None
    return strip_tracking(link)


def _has_space(value: str) -> bool:
    """True when ``value`` holds whitespace or control characters (never valid in a host)."""
    return any(char.isspace() or ord(char) < 32 for char in value)


# -- dates -------------------------------------------------------------------------------

_MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6,
    "july": 7, "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "janvier": 1, "fevrier": 2, "mars": 3, "avril": 4, "mai": 5, "juin": 6,
    "juillet": 7, "aout": 8, "septembre": 9, "octobre": 10, "novembre": 11, "decembre": 12,
}  # fmt: skip
# Named zones seen in feeds, in hours east of UTC. Ambiguous names (IST) are left out.
_ZONES = {
    "UT": 0, "UTC": 0, "GMT": 0, "Z": 0, "WET": 0, "WEST": 1, "BST": 1,
    "CET": 1, "CEST": 2, "MET": 1, "MEST": 2, "EET": 2, "EEST": 3, "MSK": 3,
    "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
    "AKST": -9, "AKDT": -8, "HST": -10, "AST": -4, "ADT": -3,
    "JST": 9, "AEST": 10, "AEDT": 11, "NZST": 12, "NZDT": 13,
}  # fmt: skip
_ZERO_DATE_RE = re.compile(r"0{4}\D0{1,2}\D0{1,2}")
# Day-month-year, English (RFC 822) or French, any weekday in front. No nested quantifiers.
_DMY_RE = re.compile(
    r"""^(?:[^\W\d]+\.?,?\s+)?
    (?P<day>\d{1,2})(?:er|st|nd|rd|th)?\s+
    (?P<month>[^\W\d]{3,10})\.?,?\s+
    (?P<year>\d{4}|\d{2})
    (?:,?\s+(?:à\s+|at\s+)?
       (?P<hour>\d{1,2})\s?[:h]\s?(?P<minute>\d{2})?(?::(?P<second>\d{2})(?:\.\d+)?)?)?
    \s*(?P<zone>[A-Za-z]{1,5}|[+-]\d{2}:?\d{2})?$""",
    re.VERBOSE | re.IGNORECASE,
)


def parse_date(raw: str | None, *, assume: tzinfo = UTC) -> datetime | None:
    """A UTC datetime from RFC 822 / ISO 8601 / French dates; None when absent or meaningless.

    A date without a zone is read in ``assume`` (UTC unless a page reader knows better,
    e.g. ``ZoneInfo("Europe/Paris")``). Never raises on garbage.
    """
    text = _collapse_spaces(raw[:MAX_DATE_CHARS]) if raw else ""
    if not text or _ZERO_DATE_RE.match(text):
        return None
    for read in (_read_iso, _read_day_month_year, _read_any):
        try:
            value = read(text)
        except (ValueError, OverflowError, TypeError):
            value = None
        if value is not None:
            return _as_plausible_utc(value, assume)
    return None


def _read_iso(text: str) -> datetime | None:
    """ISO 8601 / W3C-DTF, the common case for Atom and JSON Feed."""
    return datetime.fromisoformat(text)


def _read_day_month_year(text: str) -> datetime | None:
    """RFC 822 and French dates: "Mon, 03 Mar 2025 14:30:00 CEST", "lundi 3 mars 2025 14h30"."""
    match = _DMY_RE.match(text)
    month = _month_number(match["month"]) if match else None
    if match is None or month is None:
        return None
    year = int(match["year"])
    if len(match["year"]) == 2:  # RFC 2822 section 4.3
        year += 2000 if year < 50 else 1900
    hour, minute, second = (int(match[name] or 0) for name in ("hour", "minute", "second"))
    zone = _zone(match["zone"])
    return datetime(year, month, int(match["day"]), hour, minute, second, tzinfo=zone)


def _month_number(word: str) -> int | None:
    """Month from an English or French name or abbreviation ("févr", "Sept", "aout")."""
    word = _fold_accents(word.lower())
    if len(word) < 3:
        return None
    numbers = {number for name, number in _MONTHS.items() if name.startswith(word)}
    return numbers.pop() if len(numbers) == 1 else None  # "jui": juin or juillet


def _zone(name: str | None) -> tzinfo | None:
    """A fixed-offset zone from a name or "+0200" (unknown name: UTC); None without one."""
    if not name:
        return None
    if name[0] in "+-":
        digits = name[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        return timezone(-offset if name[0] == "-" else offset)
    return timezone(timedelta(hours=_ZONES.get(name.upper(), 0)))


def _read_any(text: str) -> datetime | None:
    """Last resort, dateutil; a missing year shows as the sentinel year 1 and is refused."""
    sentinel = datetime(1, 1, 1)  # noqa: DTZ001 - only a default for missing fields
    return dateutil_parser.parse(text, default=sentinel, tzinfos=_dateutil_zone)


def _dateutil_zone(name: str | None, offset: int | None) -> tzinfo | None:
    """tzinfos callback: our zone table first; unknown names read as UTC, not a warning."""
    if name and name.upper() in _ZONES:
        return _zone(name)
    if offset is not None:
        return dateutil_tz.tzoffset(name, offset)
    return None


def _as_plausible_utc(value: datetime, assume: tzinfo) -> datetime | None:
    """The date in UTC (naive read in ``assume``), or None outside MIN_YEAR..MAX_YEAR."""
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=assume)
    return value.astimezone(UTC)


# -- HTML --------------------------------------------------------------------------------


def html_to_text(
    html: str | None, max_chars: int = SUMMARY_MAX_CHARS, *, budget: HtmlBudget | None = None
) -> str | None:
    """Plain-text summary of an HTML fragment, bounded at a word boundary.

    Blocks become spaces, hidden elements (script, style) vanish; when cut, the text ends
    with "…" and stays within ``max_chars``.
    """
    if not html:
        return None
    text = _markup_to_text(strip_controls(html[:MAX_HTML_CHARS]), budget)
    if _MARKUP_LIKE_RE.search(text):
        # Escaped markup in a summary ("&lt;p&gt;..."): read it once more.
        text = _markup_to_text(text, budget)
    return _truncate(_collapse_spaces(text), max_chars) or None


def _markup_to_text(fragment: str, budget: HtmlBudget | None) -> str:
    """Text of an HTML fragment, entities decoded once, blocks as spaces (not collapsed).

    A fragment whose shape could make nh3 slow is read by `plain_text` (linear, and close
    enough for a summary), as is every fragment once the document's budget is spent.
    """
    if needs_bounding(fragment) or (budget is not None and not budget.take(len(fragment))):
        return plain_text(fragment)
    kept = nh3.clean(
        fragment,
        tags=set(BLOCK_TAGS),
        clean_content_tags=set(HIDDEN_CONTENT_TAGS),
        attributes={},
        link_rel=None,
    )
    return html.unescape(_TAG_RE.sub(" ", kept))


def _clean_html(fragment: str, budget: HtmlBudget | None, **options: Any) -> str | None:
    """nh3's cleaning of a fragment, bounded first when its shape calls for it (see
    `feeds.markup`); None once the document's budget is spent."""
    bounded = needs_bounding(fragment)
    tags = fragment.count("<") if bounded else 0
    if budget is not None and not budget.take(len(fragment), tags):
        return None
    return nh3.clean(bound_markup(fragment) if bounded else fragment, **options)


def _truncate(text: str, max_chars: int) -> str:
    """``text`` cut at a word boundary to fit ``max_chars`` with a trailing "…"."""
    if len(text) <= max_chars:
        return text
    limit = max(max_chars - 1, 0)
    cut = text[:limit]
    head, space, _ = cut.rpartition(" ")
    ends_inside_a_word = text[limit] != " "
    if ends_inside_a_word and space and len(head) >= len(cut) // 2:  # else cut the long word
        cut = head
    return cut.rstrip(" ,;:.-–—") + "…"


def _collapse_spaces(text: str) -> str:
    """Runs of whitespace (non-breaking spaces included) as one space, ends stripped."""
    return _SPACE_RE.sub(" ", text).strip()


def _fold_accents(text: str) -> str:
    """``text`` without combining accents ("févr" → "fevr")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def sanitize_html(
    html: str | None, base: str | None, *, budget: HtmlBudget | None = None
) -> str | None:
    """Safe HTML (nh3): no scripts, no event handlers, links absolute and http(s) only.

    None once the document's budget is spent (the content is optional; the summary is not).
    """
    if not html:
        return None
    fragment = strip_controls(html[:MAX_HTML_CHARS])

    def absolute_urls(tag: str, attribute: str, value: str) -> str | None:
        if attribute in _URL_ATTRIBUTES:
            return clean_link(value, base)
        return value

    cleaned = _clean_html(
        fragment,
        budget,
        tags=set(_SAFE_TAGS),
        clean_content_tags=set(HIDDEN_CONTENT_TAGS),
        attributes=_SAFE_ATTRIBUTES,
        attribute_filter=absolute_urls,
        url_schemes={"http", "https"},
        link_rel="noopener noreferrer nofollow",
    )
    return (cleaned.strip() or None) if cleaned is not None else None


def first_image_in_html(
    html: str | None, base: str | None, *, budget: HtmlBudget | None = None
) -> str | None:
    """The first <img> of a fragment that can stand for the post: absolute http(s), no avatar,
    no tracking pixel. Lazy-loading attributes (data-src...) are read when src is unusable.
    None once the document's budget is spent."""
    if not html:
        return None
    first = _IMG_START_RE.search(html)
    if first is None:
        return None  # most posts have no picture in their text: skip the HTML pass
    start, end = first.start(), first.start() + IMAGE_WINDOW_CHARS
    if _HIDDEN_START_RE.search(html, 0, start):
        start, end = 0, MAX_HTML_CHARS  # that "<img" may sit inside a script: read it all
    images = _clean_html(
        strip_controls(html[start:end]),
        budget,
        tags={"img"},
        clean_content_tags=set(HIDDEN_CONTENT_TAGS),
        attributes={"img": {*_IMAGE_SOURCE_ATTRIBUTES, "width", "height"}},
        url_schemes={"http", "https"},
        link_rel=None,
    )
    for tag in _IMG_RE.findall(images or ""):
        image = _image_source(dict(_ATTR_RE.findall(tag)), base)
        if image:
            return image
    return None


def _image_source(attributes: dict[str, str], base: str | None) -> str | None:
    """The usable URL of one <img> (attribute values still escaped), or None."""
    if _is_tiny(attributes.get("width")) or _is_tiny(attributes.get("height")):
        return None
    for name in _IMAGE_SOURCE_ATTRIBUTES:
        link = clean_link(html.unescape(attributes.get(name, "")), base)
        if link and not is_avatar(link):
            return link
    return None


def _is_tiny(size: str | None) -> bool:
    """True for a declared width or height of 0–2 pixels (tracking pixels, spacers)."""
    digits = (size or "").strip().removesuffix("px")
    return digits.isdigit() and int(digits) <= 2


# -- images --------------------------------------------------------------------------------

_AVATAR_HOST_SUFFIXES = ("gravatar.com", "avatars.githubusercontent.com")
_PIXEL_HOSTS = frozenset({"pixel.wp.com", "stats.wp.com", "pixel.quantserve.com"})
_PLACEHOLDER_FILES = frozenset(
    {"blank.gif", "b16-rounded.gif", "spacer.gif", "pixel.gif", "1x1.gif", "1x1.png"}
    | {"transparent.gif", "clear.gif", "pixel.png", "blank.png"}
)


def is_avatar(url: str) -> bool:
    """True for author pictures, emoji and tracking pixels that must not stand for a post.

    Covers gravatar, ``/avatar(s)/`` paths, WordPress avatar uploads, Blogger's profile
    placeholders, WordPress emoji (s.w.org) and FeedBurner's ``/~r/.../~4/`` pixels.
    """
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    path = parts.path.lower()
    file_name = path.rpartition("/")[2]
    return (
        host.endswith(_AVATAR_HOST_SUFFIXES)
        or host in _PIXEL_HOSTS
        or "/avatar/" in path
        or "/avatars/" in path
        or ("/wp-content/" in path and "avatar" in path)
        or file_name in _PLACEHOLDER_FILES
        or (host == "s.w.org" and "/emoji/" in path)
        or ("feedburner.com" in host and path.startswith(("/~r/", "/~ff/", "/~a/")))
    )
