"""What happens to freshly parsed items: pure decisions, no I/O.

- which items are new for their source (identity seen before → never again),
- which are the same story as one already known (same cleaned link, or near-identical
  text under another URL) → recorded as duplicates, credited to the first,
- which enter the queue when a source is first added (the newest few, if recent),
- in which moderation state a new item starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from feeds.keys import fingerprint_bands, is_near_duplicate
from feeds.models import FeedItem
from storage.values import BusinessStatus, ItemState, StoryCandidate


@dataclass(frozen=True, slots=True)
class Keyed:
    """A parsed item with its dedupe keys."""

    item: FeedItem
    identity: str
    story_key: str | None
    fingerprint: int | None


@dataclass(frozen=True, slots=True)
class Verdict:
    """Where a new item stands: an original, or a duplicate of a stored or batch item."""

    duplicate_of_id: int | None = None  # an item already stored
    duplicate_of_index: int | None = None  # an earlier new item of this batch

    @property
    def is_duplicate(self) -> bool:
        return self.duplicate_of_id is not None or self.duplicate_of_index is not None


def unseen(keyed: Sequence[Keyed], known: set[str]) -> list[Keyed]:
    """Items whose identity this source never recorded, in document order."""
    return [k for k in keyed if k.identity not in known]


def judge_stories(
    new: Sequence[Keyed],
    stored: Sequence[StoryCandidate],
    business_id: int,
    *,
    max_distance: int = 3,
) -> list[Verdict]:
    """For each new item of `business_id`, is it a story we already have?

    The same cleaned link is the same story, whoever shared it. Near-identical text under
    another URL is the same story only when another business shared it: one business's
    similar posts (a weekly "open on Sunday") are distinct news.
    """
    verdicts: list[Verdict] = []
    for index, candidate in enumerate(new):
        verdicts.append(_judge(candidate, index, new, stored, business_id, max_distance))
    return verdicts


def _judge(
    candidate: Keyed,
    index: int,
    new: Sequence[Keyed],
    stored: Sequence[StoryCandidate],
    business_id: int,
    max_distance: int,
) -> Verdict:
    for existing in _plausible(candidate, stored):
        other = existing.business_id != business_id
        if _same_story(candidate, existing.story_key, existing.fingerprint, other, max_distance):
            return Verdict(duplicate_of_id=existing.id)
    for earlier_index, earlier in enumerate(new[:index]):
        if _same_story(candidate, earlier.story_key, None, False, max_distance):
            return Verdict(duplicate_of_index=earlier_index)
    return Verdict()


def _plausible(candidate: Keyed, stored: Sequence[StoryCandidate]) -> list[StoryCandidate]:
    """Stored items that share the candidate's story key or a fingerprint band at the same
    position: only those can be the same story (the rest came for another new item)."""
    bands = fingerprint_bands(candidate.fingerprint) if candidate.fingerprint is not None else ()
    return [
        existing
        for existing in stored
        if (candidate.story_key and existing.story_key == candidate.story_key)
        or (
            bands
            and existing.fingerprint is not None
            and any(
                a == b for a, b in zip(bands, fingerprint_bands(existing.fingerprint), strict=True)
            )
        )
    ]


def _same_story(
    candidate: Keyed,
    story_key: str | None,
    fingerprint: int | None,
    compare_text: bool,
    max_distance: int,
) -> bool:
    if candidate.story_key and candidate.story_key == story_key:
        return True
    return (
        compare_text
        and candidate.fingerprint is not None
        and fingerprint is not None
        and is_near_duplicate(candidate.fingerprint, fingerprint, max_distance)
    )


def initial_picks(
    items: Sequence[FeedItem], now: datetime, *, count: int, max_age: timedelta
) -> set[int]:
    """Indexes of the items queued when a source is added: the newest `count`, if recent.

    The rest are recorded as already seen (no flood of old news). When no item carries a
    date at all (many page feeds), the first `count` in document order stand in for the
    newest: feeds and pages list their latest news first.
    """
    dated = [(item.published, i) for i, item in enumerate(items) if item.published]
    if not dated:
        return set(range(min(count, len(items))))
    recent = [(when, i) for when, i in dated if now - when <= max_age]
    recent.sort(key=lambda pair: (pair[0], -pair[1]), reverse=True)
    return {i for _, i in recent[:count]}


def starting_state(status: BusinessStatus, trusted: bool, queued: bool) -> ItemState:
    """Moderation state of a new item.

    Items of a trusted active business skip moderation; items of a pending business wait
    (as pending) for the business to be approved; a suspended business's news is only
    recorded.
    """
    if not queued or status is BusinessStatus.SUSPENDED:
        return ItemState.SEEN
    if status is BusinessStatus.ACTIVE and trusted:
        return ItemState.APPROVED
    return ItemState.PENDING
