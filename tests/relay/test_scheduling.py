"""When a source is checked next: exact values, since the clock and randomness are injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from relay.scheduling import (
    REASON_FAILING,
    REASON_GONE,
    REASON_MOVED,
    REASON_RATE_LIMITED,
    REASON_TOO_MANY_FAILURES,
    Outcome,
    ScheduleDecision,
    after_failure,
    backoff,
    decide_schedule,
    next_check,
    polling_interval,
    should_pause,
)
from relay.settings import PollingSettings

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("interval", "jitter", "rand", "expected"),
    [
        (15 * M, 0.1, 0.5, NOW + 15 * M),  # middle of the spread: exactly the interval
        (15 * M, 0.1, 0.0, NOW + 15 * M - 90 * timedelta(seconds=1)),  # -10 %
        (15 * M, 0.1, 0.75, NOW + 15 * M + 45 * timedelta(seconds=1)),  # +5 %
        (60 * M, 0.0, 0.99, NOW + 60 * M),  # no jitter
    ],
)
def test_next_check_spreads_around_the_interval(
    interval: timedelta, jitter: float, rand: float, expected: datetime
) -> None:
    assert next_check(NOW, interval, jitter=jitter, rand=rand) == expected


@pytest.mark.parametrize(
    ("configured", "max_age", "ttl", "expected"),
    [
        (15 * M, None, None, 15 * M),  # no hints
        (15 * M, 60.0, None, 15 * M),  # a shorter max-age never speeds us up
        (15 * M, 3600.0, None, 60 * M),  # a longer max-age slows us down
        (15 * M, None, 120, 120 * M),  # RSS <ttl> in minutes
        (15 * M, 1800.0, 90, 90 * M),  # the longest hint wins
        (15 * M, 7 * 86400.0, None, 24 * H),  # capped at a day
        (15 * M, 1e30, None, 24 * H),  # absurd hint: capped, no overflow
        (15 * M, -5.0, -3, 15 * M),  # nonsense hints ignored
        (1 * M, None, None, 5 * M),  # never below the minimum
        (48 * H, None, None, 24 * H),  # nor above the cap
    ],
)
def test_polling_interval_hints_only_lengthen(
    configured: timedelta, max_age: float | None, ttl: int | None, expected: timedelta
) -> None:
    assert polling_interval(configured, max_age_seconds=max_age, ttl_minutes=ttl) == expected


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        (0, 15 * M),
        (1, 15 * M),
        (2, 30 * M),
        (3, 60 * M),
        (5, 4 * H),
        (7, 16 * H),
        (8, 24 * H),  # 32 h capped
        (1000, 24 * H),  # no overflow
    ],
)
def test_backoff_doubles_up_to_a_day(failures: int, expected: timedelta) -> None:
    assert backoff(failures, 15 * M) == expected


@pytest.mark.parametrize(
    ("failures", "retry_after", "rand", "expected"),
    [
        (1, None, 0.0, NOW + 15 * M),  # backoff, no jitter drawn
        (1, 3600.0, 0.0, NOW + H),  # Retry-After longer than backoff wins
        (3, 60.0, 0.0, NOW + H),  # backoff longer than Retry-After wins
        (1, 3600.0, 0.5, NOW + H + 3 * M),  # jitter only lengthens (+5 %)
        (1, 10 * 86400.0, 0.0, NOW + 24 * H),  # a week-long Retry-After: we still look daily
    ],
)
def test_after_failure_honours_retry_after(
    failures: int, retry_after: float | None, rand: float, expected: datetime
) -> None:
    assert after_failure(NOW, failures, 15 * M, retry_after, rand) == expected


@pytest.mark.parametrize(
    ("failures", "threshold", "expected"),
    [(0, 10, False), (9, 10, False), (10, 10, True), (11, 10, True), (50, 0, False)],
)
def test_should_pause_at_threshold(failures: int, threshold: int, expected: bool) -> None:
    assert should_pause(failures, threshold) is expected


SETTINGS = PollingSettings(failure_threshold=3, jitter_fraction=0.1)

DECISIONS: list[tuple[str, Outcome, int, dict[str, float], ScheduleDecision]] = [
    ("healthy", "ok", 0, {}, ScheduleDecision(NOW + 15 * M, 0, False, None)),
    ("recovery resets failures", "ok", 2, {}, ScheduleDecision(NOW + 15 * M, 0, False, None)),
    ("304 keeps pace", "not_modified", 0, {}, ScheduleDecision(NOW + 15 * M, 0, False, None)),
    ("max-age slows", "ok", 0, {"max_age": 7200}, ScheduleDecision(NOW + 2 * H, 0, False, None)),
    ("ttl slows", "not_modified", 0, {"ttl": 60}, ScheduleDecision(NOW + H, 0, False, None)),
    ("moved", "moved", 1, {}, ScheduleDecision(NOW + 15 * M, 0, False, REASON_MOVED)),
    ("1st error", "error", 0, {}, ScheduleDecision(NOW + 15 * M, 1, False, REASON_FAILING)),
    ("2nd error", "error", 1, {}, ScheduleDecision(NOW + 30 * M, 2, False, REASON_FAILING)),
    (
        "error at threshold pauses",
        "error",
        2,
        {},
        ScheduleDecision(NOW + 24 * H, 3, True, REASON_TOO_MANY_FAILURES),
    ),
    (
        "429 with Retry-After",
        "retry_later",
        0,
        {"retry_after": 7200},
        ScheduleDecision(NOW + 2 * H, 1, False, REASON_RATE_LIMITED),
    ),
    ("410 pauses at once", "gone", 0, {}, ScheduleDecision(NOW + 24 * H, 1, True, REASON_GONE)),
]


@pytest.mark.parametrize(
    ("outcome", "failures_before", "hints", "expected"),
    [case[1:] for case in DECISIONS],
    ids=[case[0] for case in DECISIONS],
)
def test_decide_schedule(
    outcome: Outcome, failures_before: int, hints: dict[str, float], expected: ScheduleDecision
) -> None:
    # rand=0.5 is the centre of the success jitter and +5 % on failures; use 0 for exact failures.
    rand = 0.5 if outcome in ("ok", "not_modified", "moved") else 0.0
    decision = decide_schedule(
        NOW,
        15 * M,
        failures_before,
        outcome,
        retry_after=hints.get("retry_after"),
        max_age=hints.get("max_age"),
        ttl=int(hints["ttl"]) if "ttl" in hints else None,
        settings=SETTINGS,
        rand=rand,
    )
    assert decision == expected


def test_retries_after_a_shared_outage_do_not_fire_together() -> None:
    times = {
        decide_schedule(NOW, 15 * M, 0, "error", settings=SETTINGS, rand=i / 100).next_check_at
        for i in range(100)
    }
    assert len(times) == 100
    assert min(times) >= NOW + 15 * M
