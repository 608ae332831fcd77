"""Record a source check: new items (deduped, in their moderation state), the schedule,
and the notices it causes, in one write transaction per source."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlmodel import Session

from feeds.errors import FeedError
from feeds.keys import fingerprint, fingerprint_bands
from feeds.models import FetchResult
from relay import moderation, notices
from relay.intake import Keyed, Verdict, initial_picks, judge_stories, starting_state, unseen
from relay.parsing import ParsedDocument
from relay.scheduling import Outcome, ScheduleDecision, decide_schedule
from relay.settings import Settings
from storage.engine import Database
from storage.items import NewItem, insert_items, known_identities, story_candidates
from storage.sources import (
    lock_business,
    lock_source,
    source_owner,
    update_source,
    update_sources,
)
from storage.values import Business, ItemState, Source

log = logging.getLogger(__name__)

# Near-identical text counts as the same story only among recent items: a shop's weekly
# "open on Sunday" post, years apart, is not one story.
NEAR_DUPLICATE_DAYS = 30


def record_items(
    db: Database,
    source: Source,
    result: FetchResult,
    document: ParsedDocument,
    now: datetime,
    settings: Settings,
    rand: float,
) -> tuple[int, int]:
    """Store a changed document's new items; returns (new items, items queued)."""
    keyed = _keyed(document)
    schedule = _schedule(
        source, "ok", now, settings, rand, result.max_age, document.feed.ttl_minutes
    )
    with db.write() as session:
        # Locked for the transaction (business FOR SHARE, then source FOR UPDATE): an approval,
        # trust or suspension waits for these items or is seen by them, and a removed source
        # records nothing. Sources of one business still ingest together.
        business = lock_business(session, source.business_id, share=True)
        if business is None or lock_source(session, source.id) is None:
            return 0, 0
        known = known_identities(session, source.id, [k.identity for k in keyed])
        fresh = _fingerprinted(unseen(keyed, known), document.fingerprints is not None)
        rows, verdicts = _new_rows(session, source, business, fresh, now, settings)
        ids = _insert(session, rows, verdicts)
        pending = [i for i, row in zip(ids, rows, strict=True) if row.state == ItemState.PENDING]
        if business.status.value == "active" and pending:
            moderation.enqueue_item_cards(session, pending, settings, now)
        values = _success_values(source, result, schedule, now, document.feed.title)
        if ids:
            values["last_new_item_at"] = now
        _update(session, source, result, values)
    queued = sum(1 for row in rows if row.state in (ItemState.PENDING, ItemState.APPROVED))
    return len(rows), queued


def record_unchanged(
    db: Database,
    checks: Sequence[tuple[Source, FetchResult]],
    now: datetime,
    settings: Settings,
    rand: Callable[[], float],
) -> None:
    """304s and same bodies: only schedules and validators move, for many sources in one
    transaction (most checks of a cycle end here: one transaction each cost ~2 ms)."""
    if not checks:
        return
    rows = []
    for source, result in checks:
        schedule = _schedule(source, "not_modified", now, settings, rand(), result.max_age, None)
        rows.append({"sid": source.id, **_success_values(source, result, schedule, now, None)})
    moved = [(s, r) for s, r in checks if r.permanent_redirect and r.permanent_redirect != s.url]
    with db.write() as session:
        update_sources(session, rows)
        for source, result in moved:
            _update(session, source, result, {})


def record_failure(
    db: Database,
    source: Source,
    error: FeedError,
    retry_after: float | None,
    now: datetime,
    settings: Settings,
    rand: float,
) -> ScheduleDecision:
    """Back off; pause at the threshold (or at once on 410) and tell the owner why."""
    outcome: Outcome = {"gone": "gone", "retry_later": "retry_later"}.get(error.code, "error")  # type: ignore[assignment]
    interval = timedelta(seconds=source.interval_seconds)
    decision = decide_schedule(
        now,
        interval,
        source.failures,
        outcome,
        retry_after=retry_after,
        settings=settings.polling,
        rand=rand,
    )
    with db.write() as session:
        update_source(
            session,
            source.id,
            next_check_at=decision.next_check_at,
            failures=decision.failures,
            last_error=error.code,
            last_error_detail=error.detail[:1000],
            last_error_at=now,
            last_checked_at=now,
            paused=decision.pause,
        )
        paused = decision.pause and not source.paused
        if paused:
            notices.enqueue_source_paused(session, source, error, decision, settings, now)
    if paused:
        reason = decision.reason_code or "too_many_failures"
        fields = {"source_id": source.id, "reason": reason, "error": error.code}
        log.info("source paused", extra=fields | {"failures": decision.failures})
    return decision


def is_first_read(source: Source) -> bool:
    """Never read successfully yet: a failed check (which also sets `last_checked_at`)
    does not count, or the next good read would queue every item of the feed."""
    return source.first_read_at is None


def _keyed(document: ParsedDocument) -> list[Keyed]:
    keyed: list[Keyed] = []
    seen: set[str] = set()
    prints = document.fingerprints or (None,) * len(document.identities)
    for item, identity, story, fp in zip(
        document.feed.items, document.identities, document.story_keys, prints, strict=True
    ):
        if identity not in seen:  # one row per identity, even if a feed repeats an item
            seen.add(identity)
            keyed.append(Keyed(item, identity, story, fp))
    return keyed


def _fingerprinted(fresh: Sequence[Keyed], done: bool) -> list[Keyed]:
    """Content fingerprints of the new items, unless the parse worker already made them."""
    if done:
        return list(fresh)
    return [replace(k, fingerprint=fingerprint(k.item.title, k.item.summary)) for k in fresh]


def _new_rows(
    session: Session,
    source: Source,
    business: Business,
    fresh: Sequence[Keyed],
    now: datetime,
    settings: Settings,
) -> tuple[list[NewItem], list[Verdict]]:
    """Rows for the unseen items (duplicates credited, the rest in their starting state)."""
    if is_first_read(source):  # no flood of old news when a source is added
        polling = settings.polling
        picks = initial_picks(
            [k.item for k in fresh],
            now,
            count=polling.initial_items,
            max_age=timedelta(days=polling.initial_max_age_days),
        )
    else:
        picks = set(range(len(fresh)))
    bands = [fingerprint_bands(k.fingerprint) for k in fresh if k.fingerprint is not None]
    since = now - timedelta(days=NEAR_DUPLICATE_DAYS)
    stored = story_candidates(session, [k.story_key for k in fresh if k.story_key], bands, since)
    verdicts = judge_stories(fresh, stored, business.id)
    rows = [
        _row(source, business, k, verdict, index in picks, now)
        for index, (k, verdict) in enumerate(zip(fresh, verdicts, strict=True))
    ]
    return rows, verdicts


def _row(
    source: Source, business: Business, k: Keyed, verdict: Verdict, picked: bool, now: datetime
) -> NewItem:
    if verdict.is_duplicate:
        state = ItemState.DUPLICATE
    else:
        state = starting_state(business.status, business.trusted, picked)
    bands = fingerprint_bands(k.fingerprint) if k.fingerprint is not None else (None,) * 4
    return NewItem(
        source_id=source.id,
        business_id=business.id,
        identity=k.identity,
        story_key=k.story_key,
        fingerprint=k.fingerprint,
        fp_band0=bands[0],
        fp_band1=bands[1],
        fp_band2=bands[2],
        fp_band3=bands[3],
        title=k.item.title,
        link=k.item.link,
        summary=k.item.summary,
        image=k.item.image,
        published=k.item.published,
        first_seen=now,
        state=state.value,
        approved_at=now if state is ItemState.APPROVED else None,
        duplicate_of=verdict.duplicate_of_id,
    )


def _insert(session: Session, rows: list[NewItem], verdicts: list[Verdict]) -> list[int]:
    """Insert, first the rows that refer to no other new row, then those that do."""
    first = [i for i, v in enumerate(verdicts) if v.duplicate_of_index is None]
    later = [i for i, v in enumerate(verdicts) if v.duplicate_of_index is not None]
    ids: dict[int, int] = dict(
        zip(first, insert_items(session, [rows[i] for i in first]), strict=True)
    )
    resolved = [replace(rows[i], duplicate_of=ids[_index(verdicts[i])]) for i in later]
    ids.update(zip(later, insert_items(session, resolved), strict=True))
    return [ids[i] for i in range(len(rows))]


def _index(verdict: Verdict) -> int:
    assert verdict.duplicate_of_index is not None
    return verdict.duplicate_of_index


def _schedule(
    source: Source,
    outcome: Outcome,
    now: datetime,
    settings: Settings,
    rand: float,
    max_age: float | None,
    ttl: int | None,
) -> ScheduleDecision:
    return decide_schedule(
        now,
        timedelta(seconds=source.interval_seconds),
        source.failures,
        outcome,
        max_age=max_age,
        ttl=ttl,
        settings=settings.polling,
        rand=rand,
    )


def _success_values(
    source: Source,
    result: FetchResult,
    schedule: ScheduleDecision,
    now: datetime,
    title: str | None,
) -> dict[str, object]:
    values: dict[str, object] = {
        "next_check_at": schedule.next_check_at,
        "failures": 0,
        "last_error": None,
        "last_error_detail": None,
        "last_checked_at": now,
        "first_read_at": source.first_read_at or now,
        "etag": result.validators.etag,
        "last_modified": result.validators.last_modified,
        "body_hash": result.body_hash or source.body_hash,
    }
    if title and title != source.title:
        values["title"] = title
    return values


def _update(
    session: Session, source: Source, result: FetchResult, values: dict[str, object]
) -> None:
    """Store the check; a permanent redirect moves the source to its new URL."""
    moved = result.permanent_redirect
    if moved and moved != source.url:
        if source_owner(session, moved) is None:
            values["url"] = moved
        else:
            log.warning("source %s moved to %s, already registered", source.id, moved)
    update_source(session, source.id, **values)
