"""Who goes to the channel next and when: pacing tables, round-robin tables, a week simulated."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from relay.fairness import can_publish_now, day_start, in_quiet_hours, pick_next, weekly_cap
from relay.settings import PacingSettings
from storage.values import ItemState, QueuedItem

PARIS = ZoneInfo("Europe/Paris")
M = timedelta(minutes=1)
H = timedelta(hours=1)
PACING = PacingSettings()  # 6 per hour, quiet 22:00–07:00 Paris, 3 per business per day


def paris(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Paris wall time as an aware datetime."""
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


NOON = paris(2026, 11, 23, 12, 0)


@pytest.mark.parametrize(
    ("case", "now", "recent", "pacing", "expected"),
    [
        ("empty channel", NOON, [], PACING, None),
        ("spaced enough", NOON, [NOON - 10 * M], PACING, None),
        ("too soon after last", NOON, [NOON - 4 * M], PACING, NOON + 6 * M),
        (
            "hour full: wait for the oldest to leave",
            NOON,
            [NOON - 59 * M, NOON - 40 * M, NOON - 30 * M, NOON - 25 * M, NOON - 20 * M],
            PacingSettings(posts_per_hour=5),
            NOON + 1 * M,
        ),
        ("one per hour", NOON, [NOON - 30 * M], PacingSettings(posts_per_hour=1), NOON + 30 * M),
        ("quiet hours, evening", paris(2026, 11, 23, 22, 30), [], PACING, paris(2026, 11, 24, 7)),
        ("quiet hours, small hours", paris(2026, 11, 24, 3, 0), [], PACING, paris(2026, 11, 24, 7)),
        ("quiet ends exactly", paris(2026, 11, 24, 7, 0), [], PACING, None),
        ("last minute before quiet", paris(2026, 11, 23, 21, 59), [], PACING, None),
        (
            "spacing lands in quiet hours",
            paris(2026, 11, 23, 21, 55),
            [paris(2026, 11, 23, 21, 50)],
            PACING,
            paris(2026, 11, 24, 7),
        ),
        (
            "no quiet hours when start == end",
            paris(2026, 11, 23, 23, 0),
            [],
            PacingSettings(quiet_start_hour=0, quiet_end_hour=0),
            None,
        ),
        (
            "window not wrapping midnight",
            paris(2026, 11, 23, 13, 0),
            [],
            PacingSettings(quiet_start_hour=12, quiet_end_hour=14),
            paris(2026, 11, 23, 14),
        ),
        (
            "DST spring forward: 07:00 is CEST",
            paris(2026, 3, 29, 1, 30),
            [],
            PACING,
            datetime(2026, 3, 29, 5, 0, tzinfo=UTC),
        ),
        (
            "DST fall back: 07:00 is CET",
            paris(2026, 10, 25, 2, 30),
            [],
            PACING,
            datetime(2026, 10, 25, 6, 0, tzinfo=UTC),
        ),
    ],
)
def test_can_publish_now(
    case: str,
    now: datetime,
    recent: list[datetime],
    pacing: PacingSettings,
    expected: datetime | None,
) -> None:
    assert can_publish_now(now, recent, pacing) == expected


def test_can_publish_now_answers_in_utc() -> None:
    at = can_publish_now(paris(2026, 11, 23, 23, 0), [], PACING)
    assert at is not None
    assert at.tzinfo is UTC


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 11, 23, 10, 0, tzinfo=UTC), datetime(2026, 11, 22, 23, 0, tzinfo=UTC)),
        (datetime(2026, 11, 23, 23, 30, tzinfo=UTC), datetime(2026, 11, 23, 23, 0, tzinfo=UTC)),
        (datetime(2026, 7, 1, 21, 59, tzinfo=UTC), datetime(2026, 6, 30, 22, 0, tzinfo=UTC)),
        (datetime(2026, 3, 29, 12, 0, tzinfo=UTC), datetime(2026, 3, 28, 23, 0, tzinfo=UTC)),
    ],
)
def test_day_start_is_local_midnight(now: datetime, expected: datetime) -> None:
    assert day_start(now, "Europe/Paris") == expected


def item(
    id: int,
    business_id: int,
    approved_at: datetime | None,
    *,
    published: datetime | None = None,
    state: ItemState = ItemState.APPROVED,
) -> QueuedItem:
    return QueuedItem(
        id=id,
        business_id=business_id,
        business_name=f"Business {business_id}",
        category=None,
        city=None,
        title=f"Item {id}",
        link=f"https://example.org/{id}",
        summary=None,
        image=None,
        published=published,
        approved_at=approved_at,
        state=state,
    )


T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("case", "queue", "last", "today", "expected_id"),
    [
        ("empty queue", [], {}, {}, None),
        (
            "never-published business first",
            [item(1, 1, T0), item(2, 2, T0 + H)],
            {1: T0},
            {},
            2,
        ),
        (
            "least recently published first",
            [item(1, 1, T0), item(2, 2, T0 + H)],
            {1: T0 + 2 * H, 2: T0 - 48 * H},
            {},
            2,
        ),
        (
            "tie: oldest waiting item breaks it",
            [item(1, 1, T0 + H), item(2, 2, T0)],
            {},
            {},
            2,
        ),
        (
            "oldest item of the chosen business",
            [item(5, 1, T0 + 2 * H), item(4, 1, T0 + H), item(9, 2, T0)],
            {1: T0 - 48 * H, 2: T0},
            {},
            4,
        ),
        (
            "same approval: older publication, then id",
            [item(7, 1, T0, published=T0 - H), item(6, 1, T0, published=T0), item(3, 1, T0)],
            {},
            {},
            7,
        ),
        ("missing approval date goes last", [item(1, 1, None), item(2, 1, T0)], {}, {}, 2),
        ("daily cap skips a business", [item(1, 1, T0), item(2, 2, T0 + H)], {}, {1: 3}, 2),
        ("everyone capped", [item(1, 1, T0)], {}, {1: 3}, None),
        ("only approved items", [item(1, 1, T0, state=ItemState.PUBLISHED)], {}, {}, None),
        (
            "tie on dates: lowest item id, whatever the business id",
            [item(1, 2, T0), item(2, 1, T0)],
            {},
            {},
            1,
        ),
    ],
)
def test_pick_next(
    case: str,
    queue: list[QueuedItem],
    last: dict[int, datetime | None],
    today: dict[int, int],
    expected_id: int | None,
) -> None:
    picked = pick_next(queue, last, today, PACING)
    assert (picked.id if picked else None) == expected_id


def test_pick_next_is_deterministic_whatever_the_queue_order() -> None:
    queue = [item(i, i % 7, T0 + (i % 5) * M) for i in range(1, 60)]
    last = {b: T0 - b * H for b in range(0, 7, 2)}
    expected = pick_next(queue, last, {}, PACING)
    assert pick_next(list(reversed(queue)), last, {}, PACING) == expected
    assert pick_next(sorted(queue, key=lambda i: -i.business_id), last, {}, PACING) == expected


# --- A week simulated --------------------------------------------------------------------------

WEEK_START = paris(2026, 11, 23, 0, 0)  # a Monday
BIG = 0  # posts fifty items a day
SMALL = range(1, 50)  # 49 businesses posting one item a week each


def week_of_approvals() -> list[QueuedItem]:
    """Fifty items a day from one business; one a week from each of 49, spread over the week
    at odd hours so some land in quiet hours."""
    items = [item(n, BIG, WEEK_START + n * 1440 / 50 * M) for n in range(7 * 50)]
    week = 7 * 24 * 60
    items += [item(10_000 + b, b, WEEK_START + (b * week // 49 + 13 * b) % week * M) for b in SMALL]
    return items


def open_time_between(start: datetime, end: datetime, pacing: PacingSettings) -> timedelta:
    """Time between `start` and `end` outside quiet hours, to the minute."""
    minutes = int((end - start) / M)
    return sum((M for k in range(minutes) if not in_quiet_hours(start + k * M, pacing)), 0 * M)


def simulate(
    approvals: Sequence[QueuedItem], pacing: PacingSettings, until: datetime
) -> dict[int, datetime]:
    """Run the publisher: at each permitted instant, publish `pick_next` among items approved by
    then. Returns item id → publication time."""
    pending = sorted(approvals, key=lambda i: i.approved_at or WEEK_START)
    published: dict[int, datetime] = {}
    history: list[tuple[datetime, int]] = []  # (time, business)
    now = WEEK_START.astimezone(UTC)
    while now < until:
        wait = can_publish_now(now, [t for t, _ in history[-pacing.posts_per_hour :]], pacing)
        if wait is not None:
            now = wait
            continue
        midnight = day_start(now, pacing.timezone)
        today = Counter(b for t, b in history if t >= midnight)
        last = {b: t for t, b in history}
        queue = [i for i in pending if i.approved_at and i.approved_at <= now]
        chosen = pick_next(queue, last, today, pacing)
        if chosen is None:
            # Nothing publishable: wait for the next approval or the next day's fresh caps.
            later = [i.approved_at for i in pending if i.approved_at and i.approved_at > now]
            tomorrow = day_start(midnight + 25 * H, pacing.timezone)  # 23–25 h days alike
            now = min([*later, tomorrow]).astimezone(UTC)
            continue
        pending.remove(chosen)
        published[chosen.id] = now
        history.append((now, chosen.business_id))
    return published


@pytest.mark.parametrize(
    ("pacing", "max_open_wait"),
    [
        (PACING, 1 * H),  # default pace: a slot every 10 minutes
        # Scarce slots, no cap: the big business always has a backlog, yet after a night the
        # few small businesses waiting go first, one per hour.
        (PacingSettings(posts_per_hour=1, daily_cap_per_business=50), 4 * H),
    ],
    ids=["default", "one-per-hour-no-cap"],
)
def test_week_small_businesses_are_not_pushed_out(
    pacing: PacingSettings, max_open_wait: timedelta
) -> None:
    """Every weekly item is published within 24 h of approval, and within `max_open_wait`
    counting only time outside quiet hours."""
    approvals = week_of_approvals()
    published = simulate(approvals, pacing, until=WEEK_START + 8 * 24 * H)
    for it in approvals:
        if it.business_id == BIG:
            continue
        assert it.id in published, f"business {it.business_id} never published"
        assert it.approved_at is not None
        wait = published[it.id] - it.approved_at
        assert wait <= 24 * H, f"business {it.business_id} waited {wait}"
        open_wait = open_time_between(it.approved_at, published[it.id], pacing)
        assert open_wait <= max_open_wait, (
            f"business {it.business_id} waited {open_wait} in open hours"
        )


def test_week_exposure_of_the_busiest_business_is_bounded() -> None:
    """Each day, the busiest business gets at most 3× the median of those that posted."""
    approvals = week_of_approvals()
    published = simulate(approvals, PACING, until=WEEK_START + 7 * 24 * H)
    business_of = {it.id: it.business_id for it in approvals}
    per_day: dict[datetime, Counter[int]] = {}
    for item_id, at in published.items():
        per_day.setdefault(day_start(at, PACING.timezone), Counter())[business_of[item_id]] += 1
    assert len(per_day) == 7
    for day, counts in per_day.items():
        assert max(counts.values()) <= 3 * statistics.median(counts.values()), day
        assert counts[BIG] <= PACING.daily_cap_per_business


@pytest.mark.parametrize(
    ("week", "ratio", "cap"),
    [
        ({1: 3, **{b: 1 for b in range(2, 50)}}, 3.0, 3.0),  # the median business posted once
        ({1: 10, 2: 8, 3: 9}, 3.0, 27.0),  # everyone busy: the cap does not bind
        ({1: 5}, 3.0, 15.0),  # alone: never held back by itself
        ({}, 3.0, float("inf")),
        ({1: 50, 2: 1}, 0.0, float("inf")),  # switched off (the default)
    ],
)
def test_weekly_exposure_cap(week: dict[int, int], ratio: float, cap: float) -> None:
    assert weekly_cap(week, ratio) == cap
