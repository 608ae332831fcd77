"""Benchmark the publishing policy over a simulated week (relay.fairness, no database),
against a naive FIFO publication of the same queue at the same pace.

    python -m bench.fairness --businesses 50 --busy-per-day 50 --days 7

One business has `--busy-per-day` items approved a day, every other one item a week, at
random (seeded) times. Publication follows `can_publish_now` (pace, quiet hours); the
policy picks with `pick_next` (round-robin, daily cap), the baseline the oldest approval.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bench.common import print_json, print_table
from relay.fairness import can_publish_now, day_start, pick_next
from relay.settings import PacingSettings
from storage.values import ItemState, QueuedItem

BUSY = 1
STEP = timedelta(minutes=1)
Picker = Callable[
    [Sequence[QueuedItem], dict[int, datetime], dict[int, int], dict[int, int]], QueuedItem | None
]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--businesses", type=int, default=50)
    parser.add_argument("--busy-per-day", type=int, default=50)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=11)
    return parser.parse_args(argv)


def week_start(pacing: PacingSettings) -> datetime:
    """Monday 00:00, local time, of a fixed week (UTC)."""
    return datetime(2026, 11, 23, tzinfo=ZoneInfo(pacing.timezone)).astimezone(UTC)


def approvals(args: argparse.Namespace, start: datetime) -> list[QueuedItem]:
    """The approved queue of the week: busy business daily, the others once, random times."""
    rng = random.Random(args.seed)
    span = args.days * 86_400
    times = [
        (BUSY, day * 86_400 + rng.uniform(0, 86_400))
        for day in range(args.days)
        for _ in range(args.busy_per_day)
    ]
    times += [(b, rng.uniform(0, span)) for b in range(2, args.businesses + 1)]
    return [
        QueuedItem(
            id=n,
            business_id=business,
            business_name=f"Commerce {business}",
            category=None,
            city=None,
            title=f"Nouvelle {n}",
            link=None,
            summary=None,
            image=None,
            published=None,
            approved_at=start + timedelta(seconds=at),
            state=ItemState.APPROVED,
        )
        for n, (business, at) in enumerate(sorted(times, key=lambda p: p[1]), start=1)
    ]


def fifo(
    queue: Sequence[QueuedItem],
    _last: dict[int, datetime],
    _today: dict[int, int],
    _week: dict[int, int],
) -> Any:
    """The baseline: the oldest approval goes first, whoever it belongs to, no cap."""
    return min(queue, key=lambda item: (item.approved_at, item.id), default=None)


def simulate(
    items: list[QueuedItem], pick: Picker, pacing: PacingSettings, start: datetime, end: datetime
) -> list[tuple[QueuedItem, datetime]]:
    """Publish minute by minute from `start` to `end`; returns (item, published at)."""
    waiting: list[QueuedItem] = []
    upcoming = list(reversed(items))
    published: list[tuple[QueuedItem, datetime]] = []
    last: dict[int, datetime] = {}
    now = start
    while now < end:
        while upcoming and upcoming[-1].approved_at is not None and upcoming[-1].approved_at <= now:
            waiting.append(upcoming.pop())
        recent = [when for _item, when in published[-pacing.posts_per_hour :]]
        ready = can_publish_now(now, recent, pacing)
        if ready is not None:
            now = max(now + STEP, ready)
            continue
        midnight = day_start(now, pacing.timezone)
        today = Counter(i.business_id for i, when in published if when >= midnight)
        week = Counter(i.business_id for i, when in published if when >= now - timedelta(days=7))
        item = pick(waiting, last, today, week)
        if item is not None:
            waiting.remove(item)
            published.append((item, now))
            last[item.business_id] = now
        now += STEP
    return published


def business_waits(
    items: Sequence[QueuedItem], published: Sequence[tuple[QueuedItem, datetime]], end: datetime
) -> dict[int, float]:
    """Per business, the longest time (h) it had approved news and no post after it."""
    posts: dict[int, list[datetime]] = {}
    for item, when in published:
        posts.setdefault(item.business_id, []).append(when)
    waits: dict[int, float] = {}
    for item in items:
        assert item.approved_at is not None
        after = [w for w in posts.get(item.business_id, []) if w >= item.approved_at]
        wait = (min(after) if after else end) - item.approved_at
        waits[item.business_id] = max(waits.get(item.business_id, 0.0), wait / timedelta(hours=1))
    return waits


def exposure(
    published: Sequence[tuple[QueuedItem, datetime]], businesses: int, tz: str
) -> dict[str, float]:
    """Most-exposed business's posts / median: over the week (all businesses), and per day
    (businesses that posted that day)."""
    week = Counter(item.business_id for item, _ in published)
    counts = [week.get(b, 0) for b in range(1, businesses + 1)]
    days: dict[datetime, Counter[int]] = {}
    for item, when in published:
        days.setdefault(day_start(when, tz), Counter())[item.business_id] += 1
    day_ratios = [max(c.values()) / statistics.median(c.values()) for c in days.values()]
    return {
        "week_ratio": max(counts) / max(statistics.median(counts), 1),
        "max_day_ratio": max(day_ratios, default=0.0),
        "median_day_ratio": statistics.median(day_ratios) if day_ratios else 0.0,
    }


def evaluate(
    name: str, items: list[QueuedItem], pick: Picker, args: argparse.Namespace
) -> dict[str, Any]:
    pacing = PacingSettings()
    start = week_start(pacing)
    end = start + timedelta(days=args.days + 1)  # one more day to drain the last approvals
    published = simulate(items, pick, pacing, start, end)
    waits = business_waits(items, published, end)
    week = [(item, when) for item, when in published if when < start + timedelta(days=args.days)]
    small = [w for b, w in waits.items() if b != BUSY]
    busy_posts = sum(1 for item, _ in published if item.business_id == BUSY)
    return {
        "policy": name,
        "published": len(published),
        "busy_published": busy_posts,
        "busy_left": sum(1 for i in items if i.business_id == BUSY) - busy_posts,
        "small_published": len(published) - busy_posts,
        "max_business_wait_h": max(waits.values()),
        "busy_wait_h": waits.get(BUSY, 0.0),
        "small_max_wait_h": max(small, default=0.0),
        "small_median_wait_h": statistics.median(small) if small else 0.0,
        **exposure(week, args.businesses, pacing.timezone),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    pacing = PacingSettings()
    items = approvals(args, week_start(pacing))

    def round_robin(pacing: PacingSettings) -> Picker:
        def pick(queue: Sequence[QueuedItem], last: Any, today: Any, week: Any) -> Any:
            return pick_next(queue, last, today, pacing, week)

        return pick

    rows = [
        evaluate("round-robin, daily cap (default)", items, round_robin(PacingSettings()), args),
        evaluate(
            "+ weekly exposure cap 3",
            items,
            round_robin(PacingSettings(weekly_exposure_ratio=3.0)),
            args,
        ),
        evaluate("FIFO (baseline)", items, fifo, args),
    ]
    title = f"A week of publishing: {args.businesses} businesses, one with {args.busy_per_day}/day"
    print_table(title, rows)
    ours = rows[0]
    return print_json(
        "fairness",
        {
            "businesses": args.businesses,
            "busy_per_day": args.busy_per_day,
            "days": args.days,
            "pacing": {
                "posts_per_hour": pacing.posts_per_hour,
                "cap": pacing.daily_cap_per_business,
            },
            "policies": rows,
            "seconds": time.perf_counter() - started,
            "targets": {
                "every_business_within_24h": ours["max_business_wait_h"] <= 24,
                "day_ratio_le_3": ours["max_day_ratio"] <= 3,
                "week_ratio_le_3": ours["week_ratio"] <= 3,
            },
        },
    )


if __name__ == "__main__":
    main()
