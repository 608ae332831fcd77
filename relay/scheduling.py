"""When a source is checked next: pure decisions, handed `now`, an outcome and a random draw.

The pipeline classifies each fetch into an `Outcome`, calls `decide_schedule` and stores the
`ScheduleDecision`. Nothing here reads the clock, draws randomness or does I/O, so every rule is
tested with exact values instead of ranges.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from relay.settings import PollingSettings

Outcome = Literal["ok", "not_modified", "error", "gone", "retry_later", "moved"]

MINIMUM_INTERVAL = timedelta(minutes=5)
MAXIMUM_INTERVAL = timedelta(hours=24)
# 2**20 times any sane interval is far beyond the cap, yet fits in a timedelta: stop there.
_MAX_DOUBLINGS = 20

# Reason codes: stable strings the pipeline stores as `last_error` / maps to catalogue keys.
REASON_MOVED = "moved"  # permanent redirect followed: the caller updates the source URL
REASON_FAILING = "failing"  # transient error, retried with backoff
REASON_RATE_LIMITED = "rate_limited"  # 429/503 with or without Retry-After
REASON_GONE = "gone"  # 410: paused at once, the owner is told
REASON_TOO_MANY_FAILURES = "too_many_failures"  # paused after `failure_threshold` in a row


@dataclass(frozen=True, slots=True)
class ScheduleDecision:
    """What to store on the source after a check.

    `failures` is the new consecutive-failure count; `pause` stops polling until someone
    resumes the source; `reason_code` is None for a healthy check.
    """

    next_check_at: datetime
    failures: int
    pause: bool
    reason_code: str | None


def next_check(now: datetime, interval: timedelta, *, jitter: float, rand: float) -> datetime:
    """`now + interval`, spread by ±`jitter` × interval so sources added together drift apart.

    `rand` in [0, 1) maps linearly onto [-jitter, +jitter).
    """
    return now + interval * (1 + jitter * (2 * rand - 1))


def polling_interval(
    settings_interval: timedelta,
    *,
    max_age_seconds: float | None,
    ttl_minutes: int | None,
    minimum: timedelta = MINIMUM_INTERVAL,
    cap: timedelta = MAXIMUM_INTERVAL,
) -> timedelta:
    """The interval to the next check after a healthy fetch.

    Server hints (Cache-Control max-age / Expires, RSS `<ttl>`) may only lengthen the
    configured interval: a site asking to be polled every second gets our interval, a site
    asking for a week gets `cap`. The result is never below `minimum`.
    """
    hinted = max(max_age_seconds or 0.0, (ttl_minutes or 0) * 60.0)
    # Clamp in seconds first: a hostile max-age of 1e20 must not overflow timedelta.
    longest = max(settings_interval, timedelta(seconds=min(hinted, cap.total_seconds())))
    return max(minimum, min(cap, longest))


def backoff(
    failures: int, base_interval: timedelta, *, cap: timedelta = MAXIMUM_INTERVAL
) -> timedelta:
    """Delay after `failures` consecutive failures: base × 2^(failures−1), at most `cap`."""
    doublings = min(max(failures - 1, 0), _MAX_DOUBLINGS)
    return min(cap, min(base_interval, cap) * (1 << doublings))


def after_failure(
    now: datetime,
    failures: int,
    base_interval: timedelta,
    retry_after: float | None,
    rand: float,
    *,
    jitter: float = 0.1,
    cap: timedelta = MAXIMUM_INTERVAL,
) -> datetime:
    """When to retry after a failure: the longer of backoff and the server's Retry-After.

    The jitter only lengthens the delay (up to +`jitter`), so a retry never fires before
    the time the server asked for, yet retries after a shared outage do not all fire at once.
    A Retry-After longer than `cap` is shortened to `cap`: we still look once a day.
    """
    asked = timedelta(seconds=min(max(retry_after or 0.0, 0.0), cap.total_seconds()))
    delay = max(backoff(failures, base_interval, cap=cap), asked)
    return now + delay * (1 + jitter * rand)


def should_pause(failures: int, threshold: int) -> bool:
    """True when a source has failed `threshold` times in a row (threshold ≤ 0: never)."""
    return threshold > 0 and failures >= threshold


def decide_schedule(
    now: datetime,
    source_interval: timedelta,
    failures_before: int,
    outcome: Outcome,
    *,
    retry_after: float | None = None,
    max_age: float | None = None,
    ttl: int | None = None,
    settings: PollingSettings,
    rand: float,
) -> ScheduleDecision:
    """The schedule after one check of a source.

    ok / not_modified / moved: failures reset, next check at the (hinted) interval, jittered.
    error / retry_later: one more failure, backoff (honouring Retry-After), paused at the
    threshold. gone (410): paused at once; polling a deleted feed helps nobody.
    """
    minimum = timedelta(minutes=settings.min_interval_minutes)
    cap = timedelta(hours=settings.max_interval_hours)
    if outcome in ("ok", "not_modified", "moved"):
        interval = polling_interval(
            source_interval, max_age_seconds=max_age, ttl_minutes=ttl, minimum=minimum, cap=cap
        )
        at = next_check(now, interval, jitter=settings.jitter_fraction, rand=rand)
        return ScheduleDecision(at, 0, False, REASON_MOVED if outcome == "moved" else None)
    failures = failures_before + 1
    if outcome == "gone":
        return ScheduleDecision(now + cap, failures, True, REASON_GONE)
    if should_pause(failures, settings.failure_threshold):
        return ScheduleDecision(now + cap, failures, True, REASON_TOO_MANY_FAILURES)
    base = max(minimum, source_interval)
    at = after_failure(
        now, failures, base, retry_after, rand, jitter=settings.jitter_fraction, cap=cap
    )
    reason = REASON_RATE_LIMITED if outcome == "retry_later" else REASON_FAILING
    return ScheduleDecision(at, failures, False, reason)
