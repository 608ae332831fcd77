"""Digests: when one is due, what a subscriber gets, and how it is cut into valid messages;
many subscribers composed at once get what each would get alone."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.digest import (
    DigestComposer,
    DigestLabels,
    DueDigest,
    compose_digest,
    digest_period,
    due_periods,
    select_for_subscriber,
    window_start,
)
from relay.telegram_html import MAX_MESSAGE, utf16_len, visible_length
from storage.values import Frequency, ItemState, QueuedItem, Subscriber
from tests.relay.html_checker import telegram_html_problems

FR = DigestLabels(title="Les nouvelles du jour", continued="(suite)")


def subscriber(**fields: object) -> Subscriber:
    values: dict[str, object] = {
        "id": 1,
        "chat_id": 42,
        "language": "fr",
        "frequency": Frequency.DAILY,
        "hour": 8,
        "timezone": "Europe/Paris",
        "categories": (),
        "cities": (),
        "active": True,
    }
    values.update(fields)
    return Subscriber(**values)  # type: ignore[arg-type]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


WEEKLY = {"frequency": Frequency.WEEKLY}


@pytest.mark.parametrize(
    ("case", "now", "fields", "expected"),
    [
        ("daily, before the hour", utc(2026, 11, 23, 6, 59), {}, None),  # 07:59 Paris
        ("daily, at the hour", utc(2026, 11, 23, 7, 0), {}, "D2026-11-23"),
        ("daily, late evening", utc(2026, 11, 23, 22, 30), {}, "D2026-11-23"),  # 23:30 Paris
        ("daily, local date not UTC date", utc(2026, 11, 23, 23, 30), {}, None),  # 00:30 24th
        ("daily, summer time", utc(2026, 7, 1, 6, 0), {}, "D2026-07-01"),  # 08:00 CEST
        ("daily, Montréal", utc(2026, 11, 23, 12, 0), {"timezone": "America/Montreal"}, None),
        ("daily, hour 0", utc(2026, 11, 22, 23, 0), {"hour": 0}, "D2026-11-23"),
        ("weekly, Monday before the hour", utc(2026, 11, 23, 6, 0), WEEKLY, None),
        ("weekly, Monday at the hour", utc(2026, 11, 23, 7, 0), WEEKLY, "W2026-48"),
        ("weekly, missed Monday: Wednesday", utc(2026, 11, 25, 3, 0), WEEKLY, "W2026-48"),
        ("weekly, Sunday night", utc(2026, 11, 29, 22, 0), WEEKLY, "W2026-48"),
        ("weekly, ISO year differs", utc(2027, 1, 1, 12, 0), WEEKLY, "W2026-53"),
        ("off", utc(2026, 11, 23, 12, 0), {"frequency": Frequency.OFF}, None),
        ("inactive", utc(2026, 11, 23, 12, 0), {"active": False}, None),
        ("unknown zone: UTC", utc(2026, 11, 23, 8, 0), {"timezone": "Mars/Base"}, "D2026-11-23"),
    ],
)
def test_digest_period(
    case: str, now: datetime, fields: dict[str, object], expected: str | None
) -> None:
    assert digest_period(now, subscriber(**fields)) == expected


def item(
    id: int,
    business_id: int = 1,
    *,
    title: str | None = None,
    category: str | None = None,
    city: str | None = None,
    name: str | None = None,
) -> QueuedItem:
    return QueuedItem(
        id=id,
        business_id=business_id,
        business_name=name or f"Commerce {business_id}",
        category=category,
        city=city,
        title=f"Nouvelle {id}" if title is None else title,
        link=f"https://news.example/{id}",
        summary=None,
        image=None,
        published=None,
        approved_at=None,
        state=ItemState.PUBLISHED,
    )


CATALOGUE = [
    item(1, category="Fleuriste", city="Saint-Étienne"),
    item(2, category="Boulangerie", city="Lyon"),
    item(3, category="fleuriste", city="saint etienne"),
    item(4, category=None, city=None),
]


@pytest.mark.parametrize(
    ("categories", "cities", "expected_ids"),
    [
        ((), (), [1, 2, 3, 4]),  # no filter: everything, in order
        (("Fleuriste",), (), [1, 3]),  # case-insensitive
        ((), ("SAINT-ETIENNE",), [1, 3]),  # accents, case and hyphens ignored
        ((), ("Lyon", "Saint Étienne"), [1, 2, 3]),
        (("Boulangerie",), ("Saint-Étienne",), []),  # both filters apply
        (("Garage",), (), []),
    ],
)
def test_select_for_subscriber(
    categories: tuple[str, ...], cities: tuple[str, ...], expected_ids: list[int]
) -> None:
    chosen = select_for_subscriber(CATALOGUE, subscriber(categories=categories, cities=cities))
    assert [i.id for i in chosen] == expected_ids


def test_compose_digest_groups_by_business_in_order_of_first_item() -> None:
    items = [item(1, 1, name="Fleurs"), item(2, 2, name="Pain & Co"), item(3, 1, name="Fleurs")]
    assert compose_digest(items, labels=FR) == [
        "<b>Les nouvelles du jour</b>\n"
        "\n<b>Fleurs</b>\n"
        '• <a href="https://news.example/1">Nouvelle 1</a>\n'
        '• <a href="https://news.example/3">Nouvelle 3</a>\n'
        "\n<b>Pain &amp; Co</b>\n"
        '• <a href="https://news.example/2">Nouvelle 2</a>'
    ]


def test_compose_digest_nothing_to_say() -> None:
    assert compose_digest([], labels=FR) == []


def test_compose_digest_repeats_the_business_when_it_spans_messages() -> None:
    items = [item(n, 1, name="Fleurs") for n in range(1, 200)]
    messages = compose_digest(items, labels=FR, max_chars=500)
    assert len(messages) > 1
    assert messages[0].startswith("<b>Les nouvelles du jour</b>\n\n<b>Fleurs</b>\n")
    for message in messages[1:]:
        assert message.startswith("<b>Fleurs (suite)</b>\n• ")


def test_compose_digest_shortens_an_item_too_long_for_a_message() -> None:
    messages = compose_digest([item(1, title="mot " * 3000)], labels=FR)
    assert len(messages) == 1
    assert utf16_len(messages[0]) <= MAX_MESSAGE
    assert "mot…</a>" in messages[0]


HREF = re.compile(r'href="https://news\.example/(\d+)"')
hostile = st.sampled_from(["<script>", "a & b", "</b>", '"', "🌷", "&amp;", " "])
texts = st.lists(st.one_of(hostile, st.text(max_size=40)), max_size=120).map("".join)
items_strategy = st.lists(
    st.tuples(st.integers(min_value=1, max_value=6), texts, texts), max_size=80
).map(
    lambda rows: [
        item(n, business, title=title, name=name or "x")
        for n, (business, title, name) in enumerate(rows, start=1)
    ]
)


@settings(max_examples=150, deadline=None)
@given(items=items_strategy, max_chars=st.sampled_from([64, 200, 1000, MAX_MESSAGE]))
def test_compose_digest_properties(items: list[QueuedItem], max_chars: int) -> None:
    messages = compose_digest(items, labels=FR, max_chars=max_chars)
    for message in messages:
        assert utf16_len(message) <= max_chars
        assert visible_length(message) <= max_chars
        assert telegram_html_problems(message) == []
    # Every item exactly once, in business-grouped order.
    seen = [int(n) for message in messages for n in HREF.findall(message)]
    order = {
        b: min(i.id for i in items if i.business_id == b) for b in {i.business_id for i in items}
    }
    expected = [i.id for i in sorted(items, key=lambda i: (order[i.business_id], i.id))]
    if max_chars >= 200:  # very small messages may drop the link, never the item line
        assert seen == expected
    assert sum(message.count("\n• ") for message in messages) == len(items)


def dated(n: int, *, category: str | None, city: str | None, business: int) -> QueuedItem:
    """Item `n`, approved n minutes after midnight (items in approval order)."""
    return replace(
        item(n, business, category=category, city=city),
        approved_at=utc(2026, 11, 23) + timedelta(minutes=n),
    )


AFTERS = st.one_of(st.none(), st.integers(min_value=-1, max_value=40))
FILTER_WORDS = st.lists(st.sampled_from(["Fleuriste", "fleuriste", "Lyon", "Saint-Étienne"]))


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from([None, "Fleuriste", "Boulangerie"]),
            st.sampled_from([None, "Lyon", "saint etienne"]),
            st.integers(min_value=1, max_value=4),
        ),
        max_size=40,
    ),
    readers=st.lists(st.tuples(AFTERS, FILTER_WORDS, FILTER_WORDS, st.booleans()), max_size=8),
)
def test_the_composer_gives_each_subscriber_their_own_digest(
    rows: list[tuple[str | None, str | None, int]],
    readers: list[tuple[int | None, list[str], list[str], bool]],
) -> None:
    """Shared selections and messages give what one subscriber at a time would get."""
    items = [dated(n, category=c, city=y, business=b) for n, (c, y, b) in enumerate(rows)]
    composer = DigestComposer(items, max_chars=300)
    english = DigestLabels(title="Today's news", continued="(continued)")
    for after_minutes, categories, cities, in_english in readers:
        reader = subscriber(categories=tuple(categories), cities=tuple(cities))
        after = (
            None if after_minutes is None else utc(2026, 11, 23) + timedelta(minutes=after_minutes)
        )
        labels = english if in_english else FR
        window = [i for i in items if after is None or (i.approved_at and i.approved_at > after)]
        chosen = select_for_subscriber(window, reader)
        got = composer.compose(DueDigest(reader, "D2026-11-23", after), labels)
        assert got.items == len(chosen)
        assert list(got.messages) == compose_digest(chosen, labels=labels, max_chars=300)


def test_due_periods_skips_what_the_last_digest_covered() -> None:
    evening = utc(2026, 11, 23, 17, 5)  # 18:05 in Paris
    readers = [
        subscriber(id=1, hour=18),
        subscriber(id=2, hour=18, last_digest_at=utc(2026, 11, 23, 17, 1)),  # done today
        subscriber(id=3, hour=18, last_digest_at=utc(2026, 11, 22, 17, 1)),  # yesterday's
        subscriber(id=4, hour=20),  # not yet
        subscriber(id=5, frequency=Frequency.OFF),
    ]
    assert [(s.id, p) for s, p in due_periods(evening, readers)] == [
        (1, "D2026-11-23"),
        (3, "D2026-11-23"),
    ]


@pytest.mark.parametrize(
    ("afters", "expected"),
    [
        ([utc(2026, 11, 23, 9), utc(2026, 11, 22, 9)], utc(2026, 11, 22, 9)),
        ([utc(2026, 11, 23, 9), None], None),  # a first digest with no start: every item
        ([], None),
    ],
)
def test_window_start(afters: list[datetime | None], expected: datetime | None) -> None:
    due = [DueDigest(subscriber(), "D2026-11-23", after) for after in afters]
    assert window_start(due) == expected
