"""Messages to people about their sources and news, written into the outbox."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from feeds.errors import FeedError
from relay.i18n import text
from relay.scheduling import ScheduleDecision
from relay.settings import Settings
from relay.telegram_html import escape, link
from storage import outbox, people
from storage.outbox import NewDelivery
from storage.sources import get_business
from storage.values import Source


def error_sentence(error_code: str, url: str, detail: str, lang: str) -> str:
    """The plain-words reason a source failed, in `lang`."""
    return text(lang, f"error.{error_code}", url=url, detail=detail)


def enqueue_source_paused(
    session: Session,
    source: Source,
    error: FeedError,
    decision: ScheduleDecision,
    settings: Settings,
    now: datetime,
) -> None:
    """Tell the owner and the moderators, in their language, why and how to fix it."""
    business = get_business(session, source.business_id)
    name = business.name if business else "?"
    people_to_tell = [(user_id, lang) for user_id, _role, lang in people.moderators(session)]
    if business and business.owner_id is not None:
        people_to_tell.insert(0, (business.owner_id, business.owner_language))
    deliveries = []
    for chat_id, lang in dict(people_to_tell).items():
        reason = escape(error_sentence(error.code, source.url, error.detail, lang))
        body = text(
            lang,
            f"notice.source_paused_{decision.reason_code or 'too_many_failures'}",
            name=escape(name),
            url=escape(source.url),
            reason=reason,
            failures=decision.failures,
        )
        deliveries.append(
            NewDelivery(
                key=f"notice:paused:{source.id}:{now.isoformat()}:{chat_id}",
                kind="notice",
                chat_id=chat_id,
                text=body,
            )
        )
    outbox.enqueue(session, deliveries, now)


def enqueue_published(
    session: Session,
    business_id: int,
    item_id: int,
    title: str | None,
    post_url: str | None,
    now: datetime,
) -> None:
    """Tell the owner their news is on the channel, with a link to the post."""
    business = get_business(session, business_id)
    if business is None or business.owner_id is None:
        return
    lang = business.owner_language
    label = escape(title or text(lang, "notice.your_news"))
    where = link(post_url, text(lang, "notice.see_post")) if post_url else ""
    body = text(lang, "notice.published", title=label, link=where)
    outbox.enqueue(
        session,
        [
            NewDelivery(
                key=f"notice:published:{item_id}",
                kind="notice",
                chat_id=business.owner_id,
                text=body,
            )
        ],
        now,
    )


def enqueue_unknown_report(session: Session, now: datetime) -> dict[str, int]:
    """Tell the admins, in their language, of deliveries that may not have arrived (once
    each); returns the counts reported, by kind."""
    counts = outbox.take_unknown_report(session)
    if not counts:
        return counts
    admins = [
        (user_id, lang) for user_id, role, lang in people.moderators(session) if role == "admin"
    ]
    stamp = now.strftime("%Y%m%dT%H%M%S.%f")
    outbox.enqueue(
        session,
        [
            NewDelivery(
                key=f"unknown:{stamp}:{user_id}",
                kind="notice",
                chat_id=user_id,
                text=text(
                    lang,
                    "notice.unknown_deliveries",
                    count=sum(counts.values()),
                    details=", ".join(
                        f"{n} {text(lang, f'notice.kind_{kind}')}"
                        for kind, n in sorted(counts.items())
                    ),
                ),
            )
            for user_id, lang in admins
        ],
        now,
    )
    return counts


def enqueue_job_health(
    session: Session, job: str, now: datetime, *, reason: str | None = None, runs: int = 0
) -> None:
    """Tell the admins, in their language, that `job` keeps failing (with `reason`), or,
    without a reason, that it works again."""
    stamp = now.strftime("%Y%m%dT%H%M%S.%f")
    state = "failing" if reason is not None else "recovered"
    deliveries = []
    for user_id, lang in _admins(session):
        values: dict[str, object] = {"job": escape(text(lang, f"notice.job_name_{job}"))}
        if reason is not None:
            values |= {"reason": escape(reason), "runs": runs}
        deliveries.append(
            NewDelivery(
                key=f"job:{job}:{state}:{stamp}:{user_id}",
                kind="notice",
                chat_id=user_id,
                text=text(lang, f"notice.job_{state}", **values),
            )
        )
    outbox.enqueue(session, deliveries, now)


def _admins(session: Session) -> list[tuple[int, str]]:
    return [
        (user_id, lang) for user_id, role, lang in people.moderators(session) if role == "admin"
    ]
