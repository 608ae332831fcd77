"""Dedupe and queueing decisions, as tables (pure: no database, no network)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from feeds.models import FeedItem
from relay.intake import Keyed, initial_picks, judge_stories, starting_state, unseen
from storage.values import BusinessStatus, ItemState, StoryCandidate
from tests.support.builders import T0

FP = 0b1011_0000_1111_0000  # an arbitrary fingerprint
NEAR = FP ^ 0b111  # 3 bits away
FAR = FP ^ 0xFFFF  # 16 bits away


def item(n: int, *, hours_old: float | None = 0) -> FeedItem:
    published = None if hours_old is None else T0 - timedelta(hours=hours_old)
    return FeedItem(f"t{n}", f"https://a.example/{n}", f"g{n}", published, None, None)


def keyed(n: int, story: str | None = None, fp: int | None = None) -> Keyed:
    return Keyed(item(n), f"g:g{n}", story, fp)


def test_only_identities_never_seen_are_new() -> None:
    batch = [keyed(1), keyed(2), keyed(3)]
    assert [k.identity for k in unseen(batch, {"g:g2"})] == ["g:g1", "g:g3"]


@pytest.mark.parametrize(
    ("candidate", "stored", "expected"),
    [
        # same cleaned link, whoever shared it: the same story
        (keyed(1, "//a.example/x"), [StoryCandidate(9, 2, "//a.example/x", None)], 9),
        (keyed(1, "//a.example/x"), [StoryCandidate(9, 1, "//a.example/x", None)], 9),
        # near-identical text under another URL, from another business: the same story
        (keyed(1, "//b.example/y", NEAR), [StoryCandidate(9, 2, "//a.example/x", FP)], 9),
        # ... but from the same business: distinct news (a weekly "open on Sunday")
        (keyed(1, "//b.example/y", NEAR), [StoryCandidate(9, 1, "//a.example/x", FP)], None),
        # different text, different link: a new story
        (keyed(1, "//b.example/y", FAR), [StoryCandidate(9, 2, "//a.example/x", FP)], None),
        # no fingerprint (too short to judge): only links count
        (keyed(1, "//b.example/y", None), [StoryCandidate(9, 2, "//a.example/x", FP)], None),
    ],
)
def test_same_story_decisions(
    candidate: Keyed, stored: list[StoryCandidate], expected: int | None
) -> None:
    (verdict,) = judge_stories([candidate], stored, business_id=1)
    assert verdict.duplicate_of_id == expected


def test_a_story_repeated_inside_one_batch_points_at_its_first_copy() -> None:
    batch = [keyed(1, "//a.example/x"), keyed(2, "//a.example/z"), keyed(3, "//a.example/x")]
    verdicts = judge_stories(batch, [], business_id=1)
    assert [v.duplicate_of_index for v in verdicts] == [None, None, 0]


@pytest.mark.parametrize(
    ("ages", "count", "expected"),
    [
        ([0, 1, 2, 3, 4], 3, {0, 1, 2}),  # the newest three
        ([4, 3, 2, 1, 0], 3, {2, 3, 4}),  # whatever the document order
        ([0, 500, 600], 3, {0}),  # only if recent (two weeks)
        ([None, None, None, None], 3, {0, 1, 2}),  # no dates at all: document order
        ([None, 1, None], 3, {1}),  # some dates: undated items are not "recent"
        ([], 3, set()),
    ],
)
def test_initial_picks(ages: list[float | None], count: int, expected: set[int]) -> None:
    items = [item(n, hours_old=age) for n, age in enumerate(ages)]
    assert initial_picks(items, T0, count=count, max_age=timedelta(days=14)) == expected


@pytest.mark.parametrize(
    ("status", "trusted", "queued", "state"),
    [
        (BusinessStatus.ACTIVE, False, True, ItemState.PENDING),
        (BusinessStatus.ACTIVE, True, True, ItemState.APPROVED),
        (BusinessStatus.PENDING, True, True, ItemState.PENDING),  # waits for the business
        (BusinessStatus.SUSPENDED, False, True, ItemState.SEEN),
        (BusinessStatus.ACTIVE, True, False, ItemState.SEEN),  # old news at registration
    ],
)
def test_starting_state(
    status: BusinessStatus, trusted: bool, queued: bool, state: ItemState
) -> None:
    assert starting_state(status, trusted, queued) is state
