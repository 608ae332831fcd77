"""Telegram HTML: escaping, safe links, channel posts that always fit, and the plain fallback.

Telegram accepts only a few tags and the entities &lt; &gt; &amp; &quot; (plus numeric ones);
anything else fails with "can't parse entities". Every piece of text from a feed goes through
`escape`; only http(s) URLs become links. A message may hold 4096 characters after entity
parsing; lengths here count UTF-16 code units (how Telegram counts, never fewer than `len`),
and both the visible text and the raw HTML are kept within the limit.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from storage.values import QueuedItem

MAX_MESSAGE = 4096
MAX_URL = 1024  # raw href length; longer URLs are shown unlinked rather than blow the budget
ELLIPSIS = "…"
SUMMARY_CHARS = 300
_NAME_CHARS = 100
_TITLE_CHARS = 200
_CREDITS_CHARS = 200
_FIRST_WORDS_CHARS = 80
_TAG = re.compile(r"<[^>]*>")


def escape(text: str) -> str:
    """Text safe inside Telegram HTML, attribute values included (' becomes &#x27;)."""
    return html.escape(text, quote=True)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: an emoji outside the BMP counts two."""
    return len(text.encode("utf-16-le")) // 2


def safe_href(url: str | None) -> str | None:
    """The escaped href for an absolute http(s) URL of reasonable length, else None."""
    if not url or any(c.isspace() or ord(c) < 32 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    href = escape(url)
    return href if len(href) <= MAX_URL else None


def link(url: str | None, label: str) -> str:
    """`<a href>` around the escaped label for http(s) URLs; just the escaped label otherwise."""
    href = safe_href(url)
    return f'<a href="{href}">{escape(label)}</a>' if href else escape(label)


def bold(text: str) -> str:
    """Escaped text in bold."""
    return f"<b>{escape(text)}</b>"


def to_plain_text(markup: str) -> str:
    """The visible text of Telegram HTML: tags stripped, entities decoded (parse fallback)."""
    return html.unescape(_TAG.sub("", markup))


_LINK = re.compile(r'<a\s+href="([^"]*)"\s*>(.*?)</a>', re.DOTALL)


def to_plain_message(markup: str, limit: int = MAX_MESSAGE) -> str:
    """What to send when Telegram refuses our HTML: plain text that keeps link targets
    ("label (https://…)"), bounded to the message limit."""

    def spell_out(match: re.Match[str]) -> str:
        url, label = html.unescape(match.group(1)), match.group(2)
        return label if html.unescape(_TAG.sub("", label)) == url else f"{label} ({url})"

    plain = to_plain_text(_LINK.sub(spell_out, markup))
    return plain if utf16_len(plain) <= limit else truncate_text(plain, limit, limit)


def visible_length(markup: str) -> int:
    """What Telegram counts against the 4096 limit: the text after entity parsing."""
    return utf16_len(to_plain_text(markup))


def fits(markup: str, limit: int = MAX_MESSAGE) -> bool:
    """True if both the visible text and the raw HTML are within `limit`."""
    return utf16_len(markup) <= limit and visible_length(markup) <= limit


def truncate_text(text: str, visible: int, raw: int | None = None) -> str:
    """Plain `text` cut at a word boundary (with "…") so it shows ≤ `visible` code units and
    escapes to ≤ `raw` (default: no raw bound). Returns "" when not even "…" fits."""
    raw_limit = raw if raw is not None else 6 * visible  # escaping grows text ≤ 6×
    if _text_fits(text, visible, raw_limit):
        return text
    size = min(len(text), visible)
    while size > 0:
        candidate = _cut_at_word(text, size) + ELLIPSIS
        excess = max(utf16_len(candidate) - visible, utf16_len(escape(candidate)) - raw_limit)
        if excess <= 0:
            return candidate
        size -= max(1, excess // 6)  # an escaped character costs at most 6
    return ELLIPSIS if _text_fits(ELLIPSIS, visible, raw_limit) else ""


def _text_fits(text: str, visible: int, raw: int) -> bool:
    return utf16_len(text) <= visible and utf16_len(escape(text)) <= raw


def _cut_at_word(text: str, size: int) -> str:
    """The first `size` characters, backed off to a word boundary when one is near."""
    head = text[:size]
    if size < len(text) and not text[size].isspace():
        space = max(head.rfind(" "), head.rfind("\n"))
        if space > size // 2:
            head = head[:space]
    return head.rstrip()


def item_label(item: QueuedItem, limit: int = _TITLE_CHARS) -> str:
    """The item's title, or the summary's first words when it has none (Mastodon); never the URL.

    At most `limit` visible characters and 3 × `limit` once escaped.
    """
    title = " ".join((item.title or "").split())
    if title:
        return truncate_text(title, limit, 3 * limit)
    summary = " ".join((item.summary or "").split())
    short = min(limit, _FIRST_WORDS_CHARS)
    return truncate_text(summary, short, 3 * short)


def hashtag(word: str | None) -> str | None:
    """ "#Word" from a category or city (letters, digits and _ only), None if nothing is left."""
    tag = re.sub(r"\W+", "", word or "")
    return f"#{tag[:50]}" if any(c.isalpha() for c in tag) else None


def render_post(
    item: QueuedItem,
    *,
    credits: Sequence[str] = (),
    credit_mark: str = "🤝",
    hashtags: bool = True,
) -> str:
    """A channel post: business in bold, linked title, short summary, 📷 link, credits, tags.

    Credits name the other businesses that shared the same story ("🤝 X · Y"). The summary
    takes whatever budget is left (at most ~300 characters), so the post always fits.
    """
    label = item_label(item)
    head = [bold(truncate_text(item.business_name.strip(), _NAME_CHARS, 3 * _NAME_CHARS))]
    if label:
        head.append(link(item.link, label))
    elif safe_href(item.link):
        head.append(link(item.link, "🔗"))
    tail = _post_tail(item, credits, credit_mark, hashtags)
    # Bounded heading and tail leave the summary at least ~500 raw code units.
    budget = max(0, MAX_MESSAGE - utf16_len("\n".join(head + tail)) - 2)
    summary = _post_summary(item, label, visible=min(SUMMARY_CHARS, budget), raw=budget)
    return "\n".join(head + ([escape(summary)] if summary else []) + tail)


def _post_summary(item: QueuedItem, label: str, *, visible: int, raw: int) -> str:
    """The summary, unless the heading already shows all of it (title-less items)."""
    summary = " ".join((item.summary or "").split())
    if not summary or (not (item.title or "").strip() and label == summary):
        return ""
    return truncate_text(summary, visible, raw)


def _post_tail(
    item: QueuedItem, credits: Sequence[str], credit_mark: str, hashtags: bool
) -> list[str]:
    """Image link, credit line and hashtags: each bounded, together well under the limit."""
    lines: list[str] = []
    if safe_href(item.image):
        lines.append(link(item.image, "📷"))
    names = [" ".join(name.split()) for name in credits if name.strip()]
    if names:
        credit_line = f"{credit_mark} " + " · ".join(names)
        lines.append(escape(truncate_text(credit_line, _CREDITS_CHARS, 2 * _CREDITS_CHARS)))
    tags = [t for t in (hashtag(item.category), hashtag(item.city)) if t] if hashtags else []
    if tags:
        lines.append(" ".join(tags))
    return lines
