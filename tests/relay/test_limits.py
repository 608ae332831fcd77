"""Our Telegram send budget: under every limit, yet close to 29 messages a second."""

from __future__ import annotations

import time

import pytest

from relay.limits import SendBudget, pick_sendable

PRIVATE, OTHER, GROUP = 1001, 1002, -100123


@pytest.mark.parametrize(
    ("case", "history", "chat", "now", "expected"),
    [
        ("fresh chat", [], PRIVATE, 10.0, 10.0),
        ("private: 1 s apart", [(PRIVATE, 10.0)], PRIVATE, 10.2, 11.0),
        ("private: after a second", [(PRIVATE, 10.0)], PRIVATE, 11.5, 11.5),
        ("another chat is free", [(PRIVATE, 10.0)], OTHER, 10.2, 10.2),
        ("group: 1 s apart too", [(GROUP, 10.0)], GROUP, 10.5, 11.0),
        (
            "group: 20 in a minute, wait for the oldest",
            [(GROUP, 10.0 + 2 * k) for k in range(20)],
            GROUP,
            49.0,
            70.0,
        ),
        (
            "overall: 29 in a second",
            [(5000 + k, 10.0 + k / 100) for k in range(29)],
            OTHER,
            10.5,
            11.0,
        ),
        (
            "overall: 28 in a second still leaves one",
            [(2000 + k, 10.0) for k in range(28)],
            OTHER,
            10.1,
            10.1,
        ),
    ],
)
def test_ready_at(
    case: str, history: list[tuple[int, float]], chat: int, now: float, expected: float
) -> None:
    budget = SendBudget()
    for chat_id, at in history:
        budget.record(chat_id, at)
    assert budget.ready_at(chat, now) == pytest.approx(expected)


def test_penalise_pauses_one_chat() -> None:
    budget = SendBudget()
    budget.penalise(PRIVATE, 30.0, now=100.0)
    assert budget.ready_at(PRIVATE, 101.0) == 130.0
    assert budget.ready_at(OTHER, 101.0) == 101.0


def test_pause_all_pauses_everyone() -> None:
    budget = SendBudget()
    budget.pause_all(5.0, now=100.0)
    assert budget.ready_at(PRIVATE, 101.0) == 105.0
    assert budget.ready_at(GROUP, 104.0) == 105.0


@pytest.mark.parametrize(
    ("case", "pending", "expected"),
    [
        ("distinct chats", [(1, 10), (2, 11), (3, -5)], [(1, 10), (2, 11), (3, -5)]),
        ("one per chat per pick", [(1, 10), (2, 10), (3, 11)], [(1, 10), (3, 11)]),
        ("order kept", [(9, 12), (1, 10)], [(9, 12), (1, 10)]),
        (
            "at most 29 overall",
            [(k, 100 + k) for k in range(40)],
            [(k, 100 + k) for k in range(29)],
        ),
    ],
)
def test_pick_sendable(
    case: str, pending: list[tuple[int, int]], expected: list[tuple[int, int]]
) -> None:
    assert pick_sendable(pending, SendBudget(), now=50.0) == expected


def test_sustained_rate_stays_under_every_limit() -> None:
    """A simulated minute of a digest burst to 5,000 private chats plus a busy channel."""
    budget = SendBudget()
    pending = [(k, 10_000 + k) if k % 50 else (k, GROUP) for k in range(5_000)]
    sent: list[tuple[float, int]] = []
    now = 0.0
    while now < 60.0:
        for delivery_id, chat in pick_sendable(pending[:200], budget, now):
            sent.append((now, chat))
            pending.remove((delivery_id, chat))
        now = round(now + 0.01, 2)  # a sender waking every 10 ms
    times = [t for t, _ in sent]
    assert len(sent) / 60.0 >= 28.5
    assert all(
        sum(1 for t in times[i : i + 30] if t - times[i] < 1.0) <= 29 for i in range(len(times))
    )
    group_times = [t for t, chat in sent if chat == GROUP]
    assert 0 < len(group_times) <= 20  # 20 per rolling minute
    assert all(b - a >= 1.0 for a, b in zip(group_times, group_times[1:], strict=False))


@pytest.mark.serial  # a wall-clock budget: run alone by .ci/run
def test_many_calls_are_cheap() -> None:
    budget = SendBudget()
    start = time.perf_counter()
    for k in range(50_000):
        now = k / 29
        budget.ready_at(k, now)
        budget.record(k, now)
    assert time.perf_counter() - start < 2.0


def test_a_send_counts_from_its_answer_so_slow_requests_never_bunch_up() -> None:
    budget = SendBudget()
    budget.record(42, 10.0)
    budget.complete(42, 10.0, 10.3)  # Telegram may have counted it as late as 10.3
    assert budget.ready_at(42, 11.0) == pytest.approx(11.3)
