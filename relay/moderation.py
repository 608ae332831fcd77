"""Moderation: cards with inline buttons, and race-safe decisions on items and businesses.

Callback data is `m:<kind>:<action>:<id>` (kind i = item, b = business; action a =
approve, r = reject, t = approve and trust). It is only a request: every press is
checked against the database (who presses, what is still pending), so forged data
cannot decide anything, and two moderators pressing at once give one decision.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlmodel import Session

from relay.categories import category_name
from relay.i18n import text
from relay.settings import Settings
from relay.telegram_html import bold, escape, link, truncate_text
from storage import items as item_queries
from storage import outbox, people
from storage.convert import serialize_job, share_job
from storage.outbox import NewDelivery
from storage.sources import decide_business, get_business, lock_business, update_business
from storage.values import Business, BusinessStatus, ItemState, QueuedItem

MODERATORS_LOCK = 7_101  # addressing cards (shared) against removing a moderator (alone)
CALLBACK = re.compile(r"^m:(?P<kind>[ib]):(?P<action>[art]):(?P<id>\d{1,18})$")


@dataclass(frozen=True, slots=True)
class Press:
    kind: str  # "i" | "b"
    action: str  # "a" | "r" | "t"
    target: int


@dataclass(frozen=True, slots=True)
class Actor:
    """Who pressed: Telegram user id and the name shown on decided cards."""

    id: int
    name: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a press did: `won` False means someone decided first (`decided_by`)."""

    found: bool
    won: bool
    state: str
    decided_by: int | None
    decided_by_name: str | None = None


log = logging.getLogger(__name__)


def parse_callback(data: str | None) -> Press | None:
    """The press a callback asks for, or None when the data is not ours."""
    match = CALLBACK.match(data or "")
    if not match:
        return None
    return Press(match["kind"], match["action"], int(match["id"]))


def callback(kind: str, action: str, target: int) -> str:
    data = f"m:{kind}:{action}:{target}"
    assert len(data.encode()) <= 64
    return data


def recipients(session: Session, settings: Settings) -> list[tuple[int, str]]:
    """(chat id, language) of where cards go: the moderation chat, or each moderator."""
    if settings.moderation_chat is not None:
        return [(settings.moderation_chat, "fr")]
    share_job(session, MODERATORS_LOCK)  # a removal waits until these cards are written
    return [(user_id, lang) for user_id, _role, lang in people.moderators(session)]


def _place(category: str | None, city: str | None, lang: str) -> str:
    """ "Boulangerie, Lyon": the category's name in `lang`, then the city."""
    named = category_name(category, lang) if category else None
    return ", ".join(p for p in (named, city) if p)


def item_card(item: QueuedItem, lang: str) -> tuple[str, str]:
    """(HTML text, reply markup JSON) of an item's moderation card."""
    place = _place(item.category, item.city, lang)
    lines = [
        text(lang, "mod.item_card_title"),
        bold(item.business_name) + (f" ({escape(place)})" if place else ""),
    ]
    lines.append(link(item.link, truncate_text(item.title or item.summary or "—", 200)))
    if item.summary and item.title:
        lines.append(escape(truncate_text(item.summary, 600)))
    buttons = [
        [
            _button(lang, "mod.approve", callback("i", "a", item.id)),
            _button(lang, "mod.reject", callback("i", "r", item.id)),
        ],
        [_button(lang, "mod.approve_trust", callback("i", "t", item.id))],
    ]
    return "\n".join(lines), json.dumps({"inline_keyboard": buttons}, ensure_ascii=False)


def business_card(business: Business, source_url: str | None, lang: str) -> tuple[str, str]:
    """(HTML text, reply markup JSON) of a registration card."""
    place = _place(business.category, business.city, lang)
    lines = [text(lang, "mod.business_card_title"), bold(business.name)]
    if place:
        lines.append(escape(place))
    if source_url:
        lines.append(link(source_url, truncate_text(source_url, 200)))
    buttons = [
        [
            _button(lang, "mod.approve", callback("b", "a", business.id)),
            _button(lang, "mod.reject", callback("b", "r", business.id)),
        ]
    ]
    return "\n".join(lines), json.dumps({"inline_keyboard": buttons}, ensure_ascii=False)


def _button(lang: str, key: str, data: str) -> dict[str, str]:
    return {"text": text(lang, key), "callback_data": data}


def enqueue_item_cards(
    session: Session, item_ids: Sequence[int], settings: Settings, now: datetime
) -> None:
    """Cards for items entering moderation, in the transaction that queued them."""
    if not item_ids:
        return
    places = recipients(session, settings)
    if not places:
        return  # nobody to ask yet: /queue shows the items when a moderator arrives
    items = item_queries.items_by_id(session, item_ids)
    cards = [_item_card_delivery(item, chat, lang, "") for chat, lang in places for item in items]
    outbox.enqueue(session, cards, now)


def enqueue_cards_to(
    session: Session, chat_id: int, lang: str, item_ids: Sequence[int], now: datetime
) -> None:
    """Send cards again to one moderator (/queue); their decisions edit these copies too."""
    again = f":{int(now.timestamp())}"  # a new key: the first copy may still be on screen
    items = item_queries.items_by_id(session, item_ids)
    outbox.enqueue(session, [_item_card_delivery(i, chat_id, lang, again) for i in items], now)


def _item_card_delivery(item: QueuedItem, chat_id: int, lang: str, suffix: str) -> NewDelivery:
    """One copy of an item's card; its `ref` ties every copy to the item's decision."""
    body, markup = item_card(item, lang)
    return NewDelivery(
        key=f"card:i:{item.id}:{chat_id}{suffix}",
        kind="card",
        chat_id=chat_id,
        text=body,
        reply_markup=markup,
        item_id=item.id,
        ref=f"card:i:{item.id}",
    )


def notify_owner(
    session: Session, business: Business, key: str, now: datetime, *, once: str | None = None
) -> None:
    """Tell a business's owner something about their business, in their language.

    `once` names the event when it may only be told once (a decision); otherwise each
    call is its own message.
    """
    if business.owner_id is None:
        return
    body = text(business.owner_language, key, name=escape(business.name))
    event = once or str(int(now.timestamp()))
    notice = NewDelivery(
        key=f"notice:{key}:{business.id}:{event}",
        kind="notice",
        chat_id=business.owner_id,
        text=body,
    )
    outbox.enqueue(session, [notice], now)


def enqueue_business_card(
    session: Session,
    business: Business,
    source_url: str | None,
    settings: Settings,
    now: datetime,
) -> None:
    """Cards for a new registration."""
    deliveries = []
    for chat_id, lang in recipients(session, settings):
        body, markup = business_card(business, source_url, lang)
        deliveries.append(
            NewDelivery(
                key=f"card:b:{business.id}:{chat_id}",
                kind="card",
                chat_id=chat_id,
                text=body,
                reply_markup=markup,
                ref=f"card:b:{business.id}",
            )
        )
    outbox.enqueue(session, deliveries, now)


def decide(
    session: Session, press: Press, actor: Actor, settings: Settings, now: datetime
) -> Outcome:
    """Apply a press once; losing presses learn who decided. Cards are edited to match."""
    if press.kind == "i":
        outcome = _decide_item(session, press, actor, settings, now)
    else:
        outcome = _decide_business(session, press, actor, settings, now)
    # Last: the moderator's row is never held while waiting for a business or moderators lock.
    people.remember_moderator_name(session, actor.id, actor.name)
    name = people.moderator_name(session, outcome.decided_by) if outcome.decided_by else None
    if outcome.won:
        target = "item_id" if press.kind == "i" else "business_id"
        fields = {target: press.target, "decision": outcome.state, "moderator_id": actor.id}
        log.info("moderation decision", extra=fields)
    return Outcome(outcome.found, outcome.won, outcome.state, outcome.decided_by, name)


def _decide_item(
    session: Session, press: Press, actor: Actor, settings: Settings, now: datetime
) -> Outcome:
    state = ItemState.REJECTED if press.action == "r" else ItemState.APPROVED
    if press.action == "t":
        # The business row before the item, as a suspension locks them: no deadlock, and a
        # suspension that got there first has withdrawn the item (the press then loses).
        found = item_queries.items_by_id(session, [press.target])
        if found:
            lock_business(session, found[0].business_id)
    decision = item_queries.decide_item(session, press.target, state, actor.id, now)
    if decision is None:
        return Outcome(False, False, "missing", None)
    if decision.won:
        if press.action == "t":
            set_trust(session, decision.business_id, True, now)
        _edit_cards(session, f"card:i:{press.target}", state.value, actor, now)
    return Outcome(True, decision.won, decision.state.value, decision.decided_by)


def _decide_business(
    session: Session, press: Press, actor: Actor, settings: Settings, now: datetime
) -> Outcome:
    # First, before any card row is touched: an approval addresses new cards after editing
    # others, and a moderator's removal takes this lock before touching their cards.
    share_job(session, MODERATORS_LOCK)
    status = BusinessStatus.SUSPENDED if press.action == "r" else BusinessStatus.ACTIVE
    business = get_business(session, press.target)
    if business is None:
        return Outcome(False, False, "missing", None)
    won = decide_business(session, press.target, status, actor.id, now)
    business = get_business(session, press.target)
    assert business is not None
    if won:
        _edit_cards(session, f"card:b:{business.id}", status.value, actor, now)
        _after_business_decision(session, business, actor, settings, now)
    decided_by = actor.id if won else _business_decider(session, business.id)
    return Outcome(True, won, business.status.value, decided_by)


def set_trust(session: Session, business_id: int, trusted: bool, now: datetime) -> Business | None:
    """Trust (or stop trusting) a business; trusting an active one approves its waiting news."""
    # FOR UPDATE: the status read here decides whether waiting news is approved; an approval
    # or an ingest of the business cannot slip in between and leave news pending.
    business = lock_business(session, business_id)
    if business is None:
        return None
    update_business(session, business_id, trusted=trusted)
    if trusted and business.status is BusinessStatus.ACTIVE:
        _approve_waiting(session, business_id, now)
    return replace(business, trusted=trusted)


def suspend(
    session: Session, business_id: int, moderator_id: int, now: datetime
) -> Business | None:
    """Suspend a business: untrusted, its waiting news withdrawn, its owner told."""
    # FOR UPDATE: ingests and /post hold the row FOR SHARE, so news of this business is
    # either already stored (and withdrawn here) or stored after, seeing the suspension.
    business = lock_business(session, business_id)
    if business is None:
        return None
    update_business(session, business_id, status=BusinessStatus.SUSPENDED.value, trusted=False)
    _withdraw(session, business_id, moderator_id, now)
    notify_owner(session, business, "moderation.owner_suspended", now)
    return replace(business, status=BusinessStatus.SUSPENDED, trusted=False)


def _approve_waiting(session: Session, business_id: int, now: datetime) -> None:
    """A trusted active business's pending news is approved; unsent cards dropped."""
    for item_id in item_queries.approve_pending_of_business(session, business_id, now):
        outbox.cancel_pending(session, f"card:i:{item_id}", "approved: business trusted")


def _withdraw(session: Session, business_id: int, moderator_id: int | None, now: datetime) -> None:
    """A suspended business's pending and approved news is rejected; unsent cards dropped."""
    for item_id in item_queries.withdraw_queued(session, business_id, moderator_id, now):
        outbox.cancel_pending(session, f"card:i:{item_id}", "business suspended")


def remove_moderator(session: Session, user_id: int) -> bool:
    """Remove a moderator; the cards still waiting for them are dropped. False if not one."""
    # Alone on the moderators lock: cards being addressed to them are written first (then
    # dropped here), or are addressed without them.
    serialize_job(session, MODERATORS_LOCK)
    outbox.cancel_cards_to(session, user_id, "no longer a moderator")
    return people.remove_moderator(session, user_id)


def _business_decider(session: Session, business_id: int) -> int | None:
    from storage.tables import BusinessRow

    row = session.get(BusinessRow, business_id)
    return row.decided_by if row else None


def _after_business_decision(
    session: Session, business: Business, actor: Actor, settings: Settings, now: datetime
) -> None:
    """Tell the owner; an approved business's waiting news now goes to moderation, a
    rejected one's is withdrawn."""
    approved = business.status is BusinessStatus.ACTIVE
    key = "notice.business_approved" if approved else "notice.business_rejected"
    notify_owner(session, business, key, now, once=business.status.value)
    if not approved:
        _withdraw(session, business.id, actor.id, now)
    else:
        waiting = [i.id for i in item_queries.items_of_business(session, business.id, "pending")]
        if business.trusted:
            _approve_waiting(session, business.id, now)
        elif waiting:
            enqueue_item_cards(session, waiting, settings, now)


def _edit_cards(session: Session, ref: str, state: str, actor: Actor, now: datetime) -> None:
    """Every sent copy of a card shows the decision and who took it (buttons removed)."""
    outbox.cancel_pending(session, ref, "decided before it was sent")
    for chat_id, message_id, card in outbox.sent_messages(session, ref):
        lang = _language_of(session, chat_id)
        note = text(lang, f"mod.decided_{state}", moderator=escape(actor.name))
        outbox.enqueue(
            session,
            [
                NewDelivery(
                    key=f"edit:{ref}:{chat_id}",
                    kind="edit",
                    chat_id=chat_id,
                    text=f"{card}\n\n{note}",
                    edit_message_id=message_id,
                    ref=ref,
                )
            ],
            now,
        )


def _language_of(session: Session, chat_id: int) -> str:
    for user_id, _role, lang in people.moderators(session):
        if user_id == chat_id:
            return lang
    return "fr"
