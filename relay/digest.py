"""Digests: when one is due for a subscriber, what goes in it, and how it is cut into messages.

`digest_period` names the period a digest is due for (e.g. "D2026-11-23", "W2026-48"); the
caller records sent periods under a unique constraint, which gives at-most-once per period even
across restarts, and a digest missed while the worker was down goes out when it comes back.
`compose_digest` cuts the items into messages that each fit Telegram's limit and are valid HTML
on their own: splits fall between items, never inside a tag. `DigestComposer` composes many
subscribers' digests from one list of items: each distinct digest is selected and composed once.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
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


def due_periods(now: datetime, subscribers: Sequence[Subscriber]) -> list[tuple[Subscriber, str]]:
    """(subscriber, period) of each digest due at `now` that their last digest did not cover.

    A cheap pre-check: the unique (subscriber, period) row the caller writes is the guarantee.
    """
    due = []
    for subscriber in subscribers:
        period = digest_period(now, subscriber)
        last = subscriber.last_digest_at
        if period is not None and (last is None or digest_period(last, subscriber) != period):
            due.append((subscriber, period))
    return due


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
    return _wanted(None if value is None else fold(value), wanted)


def _wanted(folded: str | None, wanted: set[str] | frozenset[str]) -> bool:
    return not wanted or (folded is not None and folded in wanted)


def compose_digest(
    items: Sequence[QueuedItem],
    *,
    labels: DigestLabels,
    max_chars: int = MAX_MESSAGE,
    rendered: DigestLines | None = None,
) -> list[str]:
    """Messages for a digest: a bold title, then items grouped by business (businesses in order
    of their first item), one "• linked title" line each.

    Each message holds at most `max_chars` (visible and raw, UTF-16) and cuts only between
    items; a business continued in the next message is repeated with `labels.continued`. An item
    too long for a message on its own is shortened, never dropped. No items: no messages.
    `rendered` lets many digests of the same items share their rendered lines.
    """
    if max_chars < _MIN_CHARS:
        raise ValueError(f"max_chars must be at least {_MIN_CHARS}")
    if not items:
        return []
    render = rendered if rendered is not None else DigestLines()
    heading = max_chars // 4  # title and business headers take at most a quarter each
    out = _Messages(max_chars, render.size)
    out.add([render.heading(labels.title, heading)], entry=False)
    for business, group in _by_business(items):
        for index, item in enumerate(group):
            head = ["", render.heading(business, heading)] if index == 0 else []
            lines = [*head, render.entry(item, max_chars)]
            cost = out.cost(lines)
            if out.size + cost > out.limit:
                if out.has_entries:
                    out.flush()
                    name = business if index == 0 else f"{business} {labels.continued}"
                    head = [render.heading(name, heading)]
                lines = [*head, render.entry(item, out.room(head))]
                cost = out.cost(lines)
            out.add(lines, cost, entry=True)
    return out.finish()


class DigestLines:
    """Rendered lines kept for the digests of one run: each item's line and each heading is
    rendered and measured once, however many digests show it. Items are told apart by id."""

    def __init__(self) -> None:
        self._entries: dict[tuple[int, int], str] = {}
        self._headings: dict[tuple[str, int], str] = {}
        self._sizes: dict[str, int] = {}

    def entry(self, item: QueuedItem, max_raw: int) -> str:
        key = (item.id, max_raw)
        if key not in self._entries:
            self._entries[key] = _entry(item, max_raw)
        return self._entries[key]

    def heading(self, text: str, limit: int) -> str:
        key = (text, limit)
        if key not in self._headings:
            self._headings[key] = bold(truncate_text(text, limit, limit))
        return self._headings[key]

    def size(self, line: str) -> int:
        """The line's length in UTF-16 code units."""
        size = self._sizes.get(line)
        if size is None:
            size = self._sizes[line] = utf16_len(line)
        return size


class _Messages:
    """Accumulates lines into messages, tracking the raw UTF-16 size so each check is O(1).

    Tags and entities are longer than what they show, so raw ≤ limit implies visible ≤ limit.
    """

    def __init__(self, limit: int, size: Callable[[str], int]) -> None:
        self.limit = limit
        self.line_size = size
        self.done: list[str] = []
        self.lines: list[str] = []
        self.size = 0
        self.has_entries = False

    def cost(self, lines: list[str]) -> int:
        """Raw size `lines` would add to the current message."""
        if not self.lines:
            lines = _without_leading_blanks(lines)
        newlines = len(lines) - (0 if self.lines else 1)
        return sum(self.line_size(line) for line in lines) + max(newlines, 0)

    def room(self, lines: list[str]) -> int:
        """Raw size left for one more line after `lines`."""
        return self.limit - self.size - self.cost([*lines, ""])

    def add(self, lines: list[str], cost: int | None = None, *, entry: bool) -> None:
        self.size += self.cost(lines) if cost is None else cost
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


@dataclass(frozen=True, slots=True)
class DueDigest:
    """A digest to compose: whose, for which period, and where their previous one stopped."""

    subscriber: Subscriber
    period: str
    after: datetime | None  # None: from the first item


@dataclass(frozen=True, slots=True)
class ComposedDigest:
    due: DueDigest
    items: int
    messages: tuple[str, ...]


def window_start(due: Sequence[DueDigest]) -> datetime | None:
    """The oldest cutoff among `due`: the items after it cover every one of their windows."""
    afters = [d.after for d in due]
    if any(after is None for after in afters):
        return None
    return min((after for after in afters if after is not None), default=None)


_Filters = tuple[frozenset[str], frozenset[str]]  # folded categories, folded cities


class DigestComposer:
    """Composes many subscribers' digests from one list of items: those approved up to now,
    since (at least) the oldest cutoff among them, in (approved_at, id) order.

    The items matching each distinct filter are found once; subscribers whose window (the
    items after their cutoff) holds the same matching items, in the same language and
    frequency, share one list of messages. Item lines are rendered once.
    """

    def __init__(self, items: Sequence[QueuedItem], *, max_chars: int = MAX_MESSAGE) -> None:
        dated = [(item.approved_at, item) for item in items if item.approved_at is not None]
        self._times = [at for at, _ in dated]
        self._items = [item for _, item in dated]
        self._categories = [_fold_or_none(item.category) for item in self._items]
        self._cities = [_fold_or_none(item.city) for item in self._items]
        self._max_chars = max_chars
        self._lines = DigestLines()
        self._filters: dict[tuple[tuple[str, ...], tuple[str, ...]], _Filters] = {}
        self._matching: dict[_Filters, list[int]] = {}
        self._messages: dict[tuple[_Filters, int, DigestLabels], tuple[str, ...]] = {}

    def compose(self, due: DueDigest, labels: DigestLabels) -> ComposedDigest:
        """The subscriber's digest: the items approved after `due.after` that match their
        categories and cities, cut into messages."""
        filters = self._folded(due.subscriber)
        matching = self._matching_items(filters)
        start = 0 if due.after is None else bisect_right(self._times, due.after)
        first = bisect_left(matching, start)
        key = (filters, first, labels)
        messages = self._messages.get(key)
        if messages is None:
            items = [self._items[n] for n in matching[first:]]
            composed = compose_digest(
                items, labels=labels, max_chars=self._max_chars, rendered=self._lines
            )
            messages = self._messages[key] = tuple(composed)
        return ComposedDigest(due, len(matching) - first, messages)

    def _folded(self, subscriber: Subscriber) -> _Filters:
        raw = (subscriber.categories, subscriber.cities)
        if raw not in self._filters:
            self._filters[raw] = (
                frozenset(fold(c) for c in subscriber.categories),
                frozenset(fold(c) for c in subscriber.cities),
            )
        return self._filters[raw]

    def _matching_items(self, filters: _Filters) -> list[int]:
        """Positions of the items that pass `filters`, in order."""
        if filters not in self._matching:
            categories, cities = filters
            self._matching[filters] = [
                n
                for n in range(len(self._items))
                if _wanted(self._categories[n], categories) and _wanted(self._cities[n], cities)
            ]
        return self._matching[filters]


def _fold_or_none(value: str | None) -> str | None:
    return None if value is None else fold(value)
