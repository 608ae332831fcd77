"""Digests: when one is due for a subscriber, what goes in it, and how it is cut into messages.

`digest_period` names the period a digest is due for (e.g. "D2026-11-23", "W2026-48"); the
caller records sent periods under a unique constraint, which gives at-most-once per period even
across restarts, and a digest missed while the worker was down goes out when it comes back.
`compose_digest` cuts the items into messages that each fit Telegram's limit and are valid HTML
on their own: splits fall between items, never inside a tag.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from relay.telegram_html import (
    MAX_MESSAGE,
    bold,
    escape,
    item_label,
    link,
    safe_href,
    truncate_text,
    utf16_len,
)
from storage.values import Frequency, QueuedItem, Subscriber

WEEKLY_DAY = 0  # Monday: the week's digest is due from Monday at the subscriber's hour
_BULLET = "• "
_ENTRY_CHARS = 200
_MIN_CHARS = 64  # room for a title, a header and a shortened entry


@dataclass(frozen=True, slots=True)
class DigestLabels:
    """Catalogue text for a digest, in the subscriber's language (owned by relay.i18n)."""

    title: str  # e.g. "Les nouvelles de la semaine"
    continued: str  # appended to a business name repeated in the next message: "(suite)"


def digest_period(now: datetime, subscriber: Subscriber) -> str | None:
    """The key of the period whose digest is due at `now`, or None if none is due.

    Daily: from the subscriber's local hour until midnight, keyed by local date. Weekly: from
    Monday at that hour until Sunday night, keyed by ISO week. Off or inactive: None.
    """
    if not subscriber.active or subscriber.frequency == Frequency.OFF:
        return None
    local = now.astimezone(_zone(subscriber.timezone))
    hour = min(max(subscriber.hour, 0), 23)
    if subscriber.frequency == Frequency.DAILY:
        return f"D{local.date().isoformat()}" if local.hour >= hour else None
    if (local.weekday(), local.hour) < (WEEKLY_DAY, hour):
        return None
    year, week, _ = local.isocalendar()
    return f"W{year}-{week:02d}"


def _zone(name: str) -> ZoneInfo:
    """The subscriber's zone; UTC for an unknown name, so one bad row never stops the loop."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return ZoneInfo("UTC")


def fold(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form: "Saint-Étienne" → "saint etienne"."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    spaced = "".join(c if c.isalnum() else " " for c in bare.casefold())
    return " ".join(spaced.split())


def select_for_subscriber(items: Sequence[QueuedItem], subscriber: Subscriber) -> list[QueuedItem]:
    """The items matching the subscriber's categories and cities (empty filter: all), in order."""
    categories = {fold(c) for c in subscriber.categories}
    cities = {fold(c) for c in subscriber.cities}
    return [
        item
        for item in items
        if _matches(item.category, categories) and _matches(item.city, cities)
    ]


def _matches(value: str | None, wanted: set[str]) -> bool:
    return not wanted or (value is not None and fold(value) in wanted)


def compose_digest(
    items: Sequence[QueuedItem], *, labels: DigestLabels, max_chars: int = MAX_MESSAGE
) -> list[str]:
    """Messages for a digest: a bold title, then items grouped by business (businesses in order
    of their first item), one "• linked title" line each.

    Each message holds at most `max_chars` (visible and raw, UTF-16) and cuts only between
    items; a business continued in the next message is repeated with `labels.continued`. An item
    too long for a message on its own is shortened, never dropped. No items: no messages.
    """
    if max_chars < _MIN_CHARS:
        raise ValueError(f"max_chars must be at least {_MIN_CHARS}")
    if not items:
        return []
    heading = max_chars // 4  # title and business headers take at most a quarter each
    out = _Messages(max_chars)
    out.add([bold(truncate_text(labels.title, heading, heading))], entry=False)
    for business, group in _by_business(items):
        for index, item in enumerate(group):
            lines = ["", bold(truncate_text(business, heading, heading))] if index == 0 else []
            entry = _entry(item, max_chars)
            if not out.fits([*lines, entry]):
                if out.has_entries:
                    out.flush()
                    name = business if index == 0 else f"{business} {labels.continued}"
                    lines = [bold(truncate_text(name, heading, heading))]
                entry = _entry(item, out.room(lines))
            out.add([*lines, entry], entry=True)
    return out.finish()


class _Messages:
    """Accumulates lines into messages, tracking the raw UTF-16 size so each check is O(1).

    Tags and entities are longer than what they show, so raw ≤ limit implies visible ≤ limit.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.done: list[str] = []
        self.lines: list[str] = []
        self.size = 0
        self.has_entries = False

    def _cost(self, lines: list[str]) -> int:
        if not self.lines:
            lines = _without_leading_blanks(lines)
        newlines = len(lines) - (0 if self.lines else 1)
        return sum(utf16_len(line) for line in lines) + max(newlines, 0)

    def fits(self, lines: list[str]) -> bool:
        return self.size + self._cost(lines) <= self.limit

    def room(self, lines: list[str]) -> int:
        """Raw size left for one more line after `lines`."""
        return self.limit - self.size - self._cost([*lines, ""])

    def add(self, lines: list[str], *, entry: bool) -> None:
        self.size += self._cost(lines)
        self.lines.extend(lines if self.lines else _without_leading_blanks(lines))
        self.has_entries = self.has_entries or entry

    def flush(self) -> None:
        self.done.append("\n".join(self.lines))
        self.lines, self.size, self.has_entries = [], 0, False

    def finish(self) -> list[str]:
        if self.lines:
            self.flush()
        return self.done


def _without_leading_blanks(lines: list[str]) -> list[str]:
    while lines and not lines[0]:
        lines = lines[1:]
    return lines


def _by_business(items: Sequence[QueuedItem]) -> list[tuple[str, list[QueuedItem]]]:
    """Items grouped by business id, groups in order of first appearance, items in order."""
    groups: dict[int, tuple[str, list[QueuedItem]]] = {}
    for item in items:
        groups.setdefault(item.business_id, (item.business_name.strip(), []))[1].append(item)
    return list(groups.values())


def _entry(item: QueuedItem, max_raw: int) -> str:
    """One "• title" line, linked when possible, at most `max_raw` raw code units."""
    label = item_label(item, _ENTRY_CHARS) or "🔗"
    href = safe_href(item.link)
    overhead = utf16_len(_BULLET) + (utf16_len(f'<a href="{href}"></a>') if href else 0)
    if href and max_raw - overhead >= 20:  # room left for a readable label
        short = truncate_text(label, max_raw - overhead, max_raw - overhead)
        return _BULLET + link(item.link, short)
    budget = max_raw - utf16_len(_BULLET)
    return _BULLET + escape(truncate_text(label, budget, budget))
