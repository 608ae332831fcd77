"""Who goes to the public channel next, and when: pure pacing and round-robin decisions.

Pacing: at most `posts_per_hour` in any rolling hour, spaced at least 60/`posts_per_hour`
minutes apart (so a backlog after quiet hours trickles out instead of bursting), never during
quiet hours in `pacing.timezone`. Order: round-robin across businesses, least recently
published first, so a business posting fifty items a day cannot push out a florist posting one a
week; a business at its daily cap waits for tomorrow.

All datetimes must be timezone-aware; results are in UTC.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from relay.settings import PacingSettings
from storage.values import ItemState, QueuedItem

HOUR = timedelta(hours=1)
# Placeholder for a missing date; never compared with a real one (see `_missing_last`).
_NEVER = datetime.min.replace(tzinfo=UTC)


def can_publish_now(
    now: datetime, recent_publish_times: Sequence[datetime], pacing: PacingSettings
) -> datetime | None:
    """None if a post may go out now, else the earliest instant (UTC) it may.

    `recent_publish_times` are the channel's past posts (at least the last hour's, any order).
    """
    if pacing.posts_per_hour < 1:
        raise ValueError("posts_per_hour must be at least 1")
    earliest = max(now, _pacing_ready(now, recent_publish_times, pacing.posts_per_hour))
    earliest = _after_quiet_hours(earliest, pacing)
    return None if earliest <= now else earliest.astimezone(UTC)


def _pacing_ready(now: datetime, times: Sequence[datetime], per_hour: int) -> datetime:
    """Earliest instant allowed by the rolling-hour cap and the even spacing."""
    if not times:
        return now
    recent = sorted(t for t in times if t > now - HOUR)
    ready = max(times) + HOUR / per_hour
    if len(recent) >= per_hour:
        # The post `per_hour` back must leave the rolling hour first.
        ready = max(ready, recent[-per_hour] + HOUR)
    return ready


def in_quiet_hours(moment: datetime, pacing: PacingSettings) -> bool:
    """True if `moment` falls in the quiet window (local hours; may wrap midnight)."""
    start, end = pacing.quiet_start_hour, pacing.quiet_end_hour
    hour = moment.astimezone(ZoneInfo(pacing.timezone)).hour
    if start == end:
        return False
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end


def _after_quiet_hours(moment: datetime, pacing: PacingSettings) -> datetime:
    """`moment` itself, or the end of the quiet window it falls in (DST-correct)."""
    if not in_quiet_hours(moment, pacing):
        return moment
    zone = ZoneInfo(pacing.timezone)
    local = moment.astimezone(zone)
    day = local.date()
    if pacing.quiet_start_hour > pacing.quiet_end_hour and local.hour >= pacing.quiet_start_hour:
        day += timedelta(days=1)  # before midnight in a window that wraps: ends tomorrow
    # Going through UTC resolves a wall time skipped by a DST change to a real instant.
    return datetime.combine(day, time(pacing.quiet_end_hour), tzinfo=zone).astimezone(UTC)


def day_start(now: datetime, tz: str | ZoneInfo) -> datetime:
    """The UTC instant of local midnight starting `now`'s day in `tz` (for daily caps)."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    local_day = now.astimezone(zone).date()
    return datetime.combine(local_day, time(0), tzinfo=zone).astimezone(UTC)


def pick_next(
    queue: Sequence[QueuedItem],
    last_published: Mapping[int, datetime | None],
    published_today: Mapping[int, int],
    pacing: PacingSettings,
    published_week: Mapping[int, int] | None = None,
) -> QueuedItem | None:
    """The next item for the channel, or None when nothing may go out.

    Round-robin: the business published least recently goes first (never published first;
    ties broken by its oldest waiting item, then business id); within a business the oldest
    item (approved_at, then published, then id). Businesses at their daily cap are skipped,
    and so are those whose posts over the last seven days (`published_week`) reached
    `weekly_exposure_ratio` × the median of the businesses that posted in that week.
    Only APPROVED items are considered. Deterministic: same input, same pick.
    """
    week_cap = weekly_cap(published_week or {}, pacing.weekly_exposure_ratio)
    oldest: dict[int, QueuedItem] = {}
    for item in queue:
        if item.state != ItemState.APPROVED:
            continue
        if published_today.get(item.business_id, 0) >= pacing.daily_cap_per_business:
            continue
        if (published_week or {}).get(item.business_id, 0) >= week_cap:
            continue
        current = oldest.get(item.business_id)
        if current is None or _item_order(item) < _item_order(current):
            oldest[item.business_id] = item
    if not oldest:
        return None
    business = min(
        oldest, key=lambda b: (_never_first(last_published.get(b)), _item_order(oldest[b]), b)
    )
    return oldest[business]


def weekly_cap(published_week: Mapping[int, int], ratio: float) -> float:
    """How many posts a week a business may have: `ratio` × the median business's (≥ 1).

    With one business posting fifty items a day and forty-nine posting one a week, the
    median is 1 and the busy one stops at 3 a week; where everyone posts a lot, the
    median is high and the cap does not bind. `ratio` ≤ 0 switches it off.
    """
    counts = [count for count in published_week.values() if count > 0]
    if ratio <= 0 or not counts:
        return float("inf")
    return ratio * max(1.0, statistics.median(counts))


def _item_order(item: QueuedItem) -> tuple[tuple[bool, datetime], tuple[bool, datetime], int]:
    """Oldest first: approved_at, then published (missing dates last), then id."""
    return (_missing_last(item.approved_at), _missing_last(item.published), item.id)


def _missing_last(moment: datetime | None) -> tuple[bool, datetime]:
    # The flag decides before the placeholder is ever compared with a real (aware) datetime.
    return (moment is None, _NEVER if moment is None else moment)


def _never_first(moment: datetime | None) -> tuple[bool, datetime]:
    return (moment is not None, _NEVER if moment is None else moment)
