"""The owner's side of the relay, without Telegram: registering a business and its source,
posting news without a website, the health of one's sources, removing one.

Each change is one write transaction (business + source + moderation cards together, or
item + cards), so a crash never leaves a business without its card or half a post. What
the owner reads (preview, recap, health) is rendered here too, from the catalogues.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import Session

from feeds.errors import InvalidURLError
from feeds.keys import fingerprint, fingerprint_bands, story_key
from feeds.models import FeedItem
from feeds.reader import SourceReading
from relay.categories import category_name
from relay.i18n import text
from relay.intake import starting_state
from relay.moderation import enqueue_business_card, enqueue_item_cards
from relay.notices import error_sentence
from relay.settings import Settings
from relay.telegram_html import escape, link, truncate_text
from storage import items as item_queries
from storage.engine import Database
from storage.sources import (
    NewBusiness,
    SourceExistsError,
    businesses_of,
    create_business,
    create_source,
    delete_source,
    get_business,
    get_source,
    lock_business,
    resume_paused_source,
    source_owner,
    sources_of,
)
from storage.tables import ITEMS, SOURCES
from storage.values import Business, BusinessStatus, ItemState, Source

# Stored as these codes (language-neutral); shown with the catalogue's names.
MAX_NAME = 200  # the businesses table's column sizes
MAX_CITY = 100
PREVIEW_ITEMS = 3
# "boulangerie.fr" or "www.boulangerie.fr/actus": a host with a dot, no scheme, no spaces.
_BARE_HOST = re.compile(r"^[\w-]+(\.[\w-]+)+(:\d{1,5})?(/\S*)?$")
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"']+")
_TRAILING_PUNCTUATION = ".,;:!?)»]"


# --- Reading what the person typed -----------------------------------------------------------


log = logging.getLogger(__name__)


def candidate_url(typed: str) -> str:
    """The URL a person meant ("boulangerie.fr" → https://boulangerie.fr); InvalidURLError else."""
    raw = typed.strip()
    if "://" not in raw and _BARE_HOST.match(raw):
        raw = "https://" + raw
    try:
        parts = urlsplit(raw)
    except ValueError as exc:
        raise InvalidURLError(typed.strip(), "malformed URL") from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or " " in raw:
        raise InvalidURLError(typed.strip(), "only http and https URLs with a host")
    return raw


def clean_label(typed: str, limit: int) -> str | None:
    """A name or city as typed, on one line, or None when empty or too long."""
    label = " ".join(typed.split())
    return label if 0 < len(label) <= limit else None


@dataclass(frozen=True, slots=True)
class Found:
    """What reading a URL found, kept while the person finishes registering."""

    url: str  # as given
    source_url: str  # what is stored and polled
    kind: str  # rss | atom | rdf | json | page
    title: str | None
    latest: tuple[FeedItem, ...]  # the newest few, for the preview


def found_in(reading: SourceReading) -> Found:
    """The source to register: the feed's final URL, or the page's URL for a page feed."""
    # A page feed is polled as a page (parsed with the page reader), so its URL must be the
    # page actually read; a feed's final URL saves a redirect on every poll.
    title = " ".join((reading.feed.title or "").split()) or None
    return Found(reading.url, reading.source_url, reading.kind, title, latest(reading.feed.items))


def latest(items: tuple[FeedItem, ...], count: int = PREVIEW_ITEMS) -> tuple[FeedItem, ...]:
    """The `count` newest items; undated ones keep their document order, after dated ones."""
    order = sorted(
        range(len(items)),
        key=lambda i: (items[i].published is None, -(_timestamp(items[i])), i),
    )
    return tuple(items[i] for i in order[:count])


def _timestamp(item: FeedItem) -> float:
    return item.published.timestamp() if item.published else 0.0


def proposed_name(found: Found) -> str:
    """The feed's title, else the host of the address given, without "www."."""
    if found.title:
        return truncate_text(found.title, MAX_NAME)
    host = urlsplit(found.url).hostname or found.source_url
    return host.removeprefix("www.")


# --- Registering -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Draft:
    """A registration in progress; `found` is None for a business without a website."""

    owner_id: int
    language: str
    found: Found | None = None
    name: str | None = None
    category: str | None = None
    city: str | None = None


def check_free(session: Session, found: Found) -> None:
    """SourceExistsError when the given URL or the URL read is already someone's source."""
    for url in dict.fromkeys((found.url, found.source_url)):
        owner = source_owner(session, url)
        if owner is not None:
            raise SourceExistsError(url, owner)


def register(db: Database, draft: Draft, settings: Settings, now: datetime) -> Business:
    """Create the business (pending), its source and the moderation cards, all or nothing."""
    assert draft.name
    new = NewBusiness(draft.name, draft.owner_id, draft.language, draft.category, draft.city)
    with db.write() as session:
        if draft.found:
            check_free(session, draft.found)
        business = create_business(session, new, now)
        found = draft.found
        source = None
        if found:
            source = create_source(
                session, business.id, found.source_url, found.kind, now, found.title
            )
        enqueue_business_card(session, business, found.source_url if found else None, settings, now)
    fields = {"business_id": business.id, "source_id": source.id if source else None}
    log.info("business registered", extra=fields | {"source_kind": found.kind if found else None})
    return business


# --- Posting without a website -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Post:
    """A news item typed in the chat: first line the title, the rest the summary."""

    title: str
    summary: str | None
    link: str | None
    image: str | None = None  # "tg:<file_id>" for a photo sent with the news


def read_post(typed: str, image: str | None = None) -> Post | None:
    """The post in a message, or None when there is no text; its first http(s) URL is the link."""
    found = _URL_IN_TEXT.search(typed)
    url = found.group().rstrip(_TRAILING_PUNCTUATION) if found else None
    lines = [line.strip() for line in typed.splitlines() if line.strip()]
    lines = [line for line in lines if line != url] or lines  # a bare URL line is not a title
    if not lines:
        return None
    return Post(lines[0], "\n".join(lines[1:]) or None, url, image)


@dataclass(frozen=True, slots=True)
class Posted:
    item_id: int
    state: ItemState
    business: Business


def create_post(
    db: Database,
    owner_id: int,
    business_id: int,
    post: Post,
    message_id: int,
    settings: Settings,
    now: datetime,
) -> Posted | None:
    """Store the post in its moderation state (cards if it needs them); None if not theirs.

    The same Telegram message never makes two items: an update redelivered after a
    crash finds the item it already created.
    """
    identity = f"post:{message_id}"
    with db.write() as session:
        # FOR SHARE: an approval, trust or suspension of the business waits for this item
        # (and sends its card, approves or withdraws it), or this item starts in its new state.
        business = lock_business(session, business_id, share=True)
        if business is None or business.owner_id != owner_id:
            return None
        existing = _post_item(session, business.id, identity)
        if existing:
            return Posted(existing[0], ItemState(existing[1]), business)
        state = starting_state(business.status, business.trusted, queued=True)
        [item_id] = item_queries.insert_items(
            session, [_post_row(business.id, identity, post, state, now)]
        )
        if state is ItemState.PENDING and business.status is BusinessStatus.ACTIVE:
            enqueue_item_cards(session, [item_id], settings, now)
    return Posted(item_id, state, business)


def _post_item(session: Session, business_id: int, identity: str) -> tuple[int, str] | None:
    """Core query missing from storage.items: an item of a business by identity."""
    row = session.execute(
        select(ITEMS.c.id, ITEMS.c.state).where(
            ITEMS.c.business_id == business_id, ITEMS.c.identity == identity
        )
    ).first()
    return (row[0], row[1]) if row else None


def _post_row(
    business_id: int, identity: str, post: Post, state: ItemState, now: datetime
) -> item_queries.NewItem:
    # Keys as for feed items, so the same story shared later by a feed is credited to it.
    fp = fingerprint(post.title, post.summary)
    bands = fingerprint_bands(fp) if fp is not None else (None, None, None, None)
    return item_queries.NewItem(
        source_id=None,
        business_id=business_id,
        identity=identity,
        story_key=story_key(post.link),
        fingerprint=fp,
        fp_band0=bands[0],
        fp_band1=bands[1],
        fp_band2=bands[2],
        fp_band3=bands[3],
        title=post.title,
        link=post.link,
        summary=post.summary,
        image=post.image,
        published=now,
        first_seen=now,
        state=state.value,
        approved_at=now if state is ItemState.APPROVED else None,
    )


# --- The owner's businesses and sources ----------------------------------------------------------


def owned_business(session: Session, owner_id: int, business_id: int) -> Business | None:
    """The business, if `owner_id` owns it."""
    business = get_business(session, business_id)
    return business if business and business.owner_id == owner_id else None


def owned_source(session: Session, owner_id: int, source_id: int) -> Source | None:
    """The source, if it belongs to a business `owner_id` owns."""
    source = get_source(session, source_id)
    if source is None or owned_business(session, owner_id, source.business_id) is None:
        return None
    return source


def remove_source(db: Database, owner_id: int, source_id: int) -> Source | None:
    """Delete an owner's source (its items stay); None when it is not theirs (or gone)."""
    with db.write() as session:
        source = owned_source(session, owner_id, source_id)
        if source is not None:
            delete_source(session, source.id)
        return source


def resume_source(db: Database, owner_id: int, source_id: int, now: datetime) -> Source | None:
    """Un-pause an owner's source: failures forgotten, checked at the next poll."""
    with db.write() as session:
        source = owned_source(session, owner_id, source_id)
        resumed = source is not None and resume_paused_source(session, source.id, now)
    if source is not None and resumed:  # not if it was no longer paused
        log.info("source resumed", extra={"source_id": source.id, "reason": "owner"})
    return source


@dataclass(frozen=True, slots=True)
class Holding:
    """One of the owner's businesses with its sources and their last error details."""

    business: Business
    sources: tuple[Source, ...]
    error_details: dict[int, str]


def holdings(session: Session, owner_id: int) -> list[Holding]:
    """The owner's businesses, oldest first, each with its sources."""
    found = []
    for business in sorted(businesses_of(session, owner_id), key=lambda b: b.id):
        sources = tuple(sources_of(session, business.id))
        found.append(Holding(business, sources, _error_details(session, sources)))
    return found


def _error_details(session: Session, sources: tuple[Source, ...]) -> dict[int, str]:
    """Core query missing from storage.sources: the detail of each source's last error."""
    failing = [s.id for s in sources if s.last_error]
    if not failing:
        return {}
    query = select(SOURCES.c.id, SOURCES.c.last_error_detail).where(SOURCES.c.id.in_(failing))
    return {row[0]: row[1] or "" for row in session.execute(query).all()}


# --- What the owner reads ------------------------------------------------------------------------


def local_time(when: datetime, lang: str, timezone: str, *, with_time: bool = True) -> str:
    """A date (and time) in the relay's time zone, written the way `lang` writes it."""
    pattern = text(lang, "register.datetime_format" if with_time else "register.date_format")
    return when.astimezone(ZoneInfo(timezone)).strftime(pattern)


def preview_text(found: Found, lang: str, timezone: str) -> str:
    """What was found (kind, URL read) and the latest items, titles linked, with dates."""
    kind = text(lang, f"register.kind_{found.kind}")
    lines = [text(lang, "register.found", kind=kind, url=escape(found.source_url))]
    lines.append(text(lang, "register.latest" if found.latest else "register.no_items"))
    for item in found.latest:
        label = truncate_text(item.title or item.summary or item.link or "—", 120)
        shown = link(item.link, label)
        if item.published:
            date = local_time(item.published, lang, timezone, with_time=False)
            lines.append(text(lang, "register.item_dated", title=shown, date=escape(date)))
        else:
            lines.append(text(lang, "register.item", title=shown))
    return "\n".join(lines)


def recap_text(draft: Draft, lang: str) -> str:
    """The registration to confirm."""
    source = escape(draft.found.source_url) if draft.found else text(lang, "register.recap_no_site")
    return text(
        lang,
        "register.recap",
        name=escape(draft.name or ""),
        category=escape(category_name(draft.category, lang)),
        city=escape(draft.city or "—"),
        source=source,
    )


def holdings_text(found: list[Holding], lang: str, timezone: str) -> str:
    """Each business with its status, and each source's health in plain words."""
    blocks = [text(lang, "business.sources_title")]
    for holding in found:
        business = holding.business
        status = text(lang, f"business.status_{business.status.value}")
        lines = [text(lang, "business.business_line", name=escape(business.name), status=status)]
        if not holding.sources:
            lines.append(text(lang, "business.no_source"))
        for source in holding.sources:
            detail = holding.error_details.get(source.id, "")
            lines.append(source_health(source, detail, lang, timezone))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def source_health(source: Source, detail: str, lang: str, timezone: str) -> str:
    """One source: URL, last check, last new item, last error and pause, in plain words."""
    never = text(lang, "business.not_yet")
    checked = source.last_checked_at
    new = source.last_new_item_at
    lines = [
        text(lang, "business.source_line", url=escape(source.url)),
        text(
            lang,
            "business.last_check",
            when=local_time(checked, lang, timezone) if checked else never,
        ),
        text(lang, "business.last_new", when=local_time(new, lang, timezone) if new else never),
    ]
    if source.last_error:
        reason = escape(error_sentence(source.last_error, source.url, detail, lang))
        lines.append(text(lang, "business.last_error", failures=source.failures, reason=reason))
    if source.paused:
        lines.append(text(lang, "business.paused"))
    return "\n".join(lines)


def posted_text(posted: Posted, post: Post, lang: str) -> str:
    """Where the owner's news now stands."""
    if posted.state is ItemState.APPROVED:
        key = "business.post_approved"
    elif posted.state is not ItemState.PENDING:
        key = "business.post_suspended"
    elif posted.business.status is BusinessStatus.ACTIVE:
        key = "business.post_pending"
    else:
        key = "business.post_waiting_business"
    title = escape(truncate_text(post.title, 120))
    message = text(lang, key, title=title, name=escape(posted.business.name))
    return message + ("\n" + text(lang, "business.post_photo_note") if post.image else "")
