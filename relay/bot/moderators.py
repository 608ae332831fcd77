"""Moderators' handlers: card buttons, /queue, /trust, /untrust, /suspend, /addmod, /delmod,
/stats. Only listed moderators act; every callback is answered; callback data is only a
request, checked against the database by `relay.moderation.decide`."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from datetime import timedelta
from functools import wraps

from telegram import MessageOriginUser, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from relay import moderation
from relay.bot.common import (
    ID,
    Context,
    argument,
    excerpt,
    language,
    reply,
    role,
    services,
    typed_id,
)
from relay.i18n import text
from relay.telegram_html import ELLIPSIS, escape, fits, truncate_text
from storage import items as item_queries
from storage import outbox, people
from storage.sources import count_sources, find_businesses, pending_businesses
from storage.values import Business

Handler = Callable[[Update, Context], Coroutine[object, object, None]]
QUEUE_CARDS = 5  # cards re-sent by /queue; the rest are listed
SHOWN_MATCHES = 10  # businesses named when a name is ambiguous
CARD_PRESS = re.compile(rf"m:[ib]:[art]:{ID}")  # what our cards' buttons carry


def moderators_only(*, admin: bool = False) -> Callable[[Handler], Handler]:
    """Refuse politely anyone who is not a moderator (or not an admin)."""

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def guarded(update: Update, context: Context) -> None:
            uid = update.effective_user.id if update.effective_user else 0
            found = role(context, uid)
            if found is None or (admin and found != "admin"):
                await reply(
                    update,
                    context,
                    "moderation.admins_only" if admin and found else "moderation.not_moderator",
                )
                return
            await handler(update, context)

        return guarded

    return decorate


async def on_card_press(update: Update, context: Context) -> None:
    """Approve / reject / trust from a card: one decision, told to whoever pressed."""
    query = update.callback_query
    assert query is not None
    lang = language(update, context)
    valid = CARD_PRESS.fullmatch(query.data or "") is not None
    press = moderation.parse_callback(query.data) if valid else None
    if press is None or role(context, query.from_user.id) is None:
        key = "moderation.not_moderator" if press else "moderation.unknown_button"
        await query.answer(text(lang, key), show_alert=True)
        return
    found = services(context)
    actor = moderation.Actor(query.from_user.id, query.from_user.full_name)
    with found.db.write() as session:
        outcome = moderation.decide(session, press, actor, found.settings, found.clock())
    await query.answer(_press_answer(outcome, lang), show_alert=not outcome.won)


def _press_answer(outcome: moderation.Outcome, lang: str) -> str:
    if not outcome.found:
        return text(lang, "moderation.gone")
    if outcome.won:
        return text(lang, f"moderation.done_{outcome.state}")
    state = text(lang, f"moderation.state_{outcome.state}")
    # A callback answer is plain text of at most 200 characters: the name is cut, not escaped.
    name = truncate_text(outcome.decided_by_name or "?", 60)
    return text(lang, "moderation.already", state=state, name=name)


@moderators_only()
async def queue(update: Update, context: Context) -> None:
    """/queue: what waits, oldest first; the oldest item cards are sent again."""
    found = services(context)
    uid = update.effective_user.id if update.effective_user else 0
    lang = language(update, context)
    with found.db.write() as session:
        waiting = pending_businesses(session)
        items = item_queries.pending_items(session)
        moderation.enqueue_cards_to(
            session, uid, lang, [i.id for i in items[:QUEUE_CARDS]], found.clock()
        )
    lines = [text(lang, "moderation.queue_title", businesses=len(waiting), items=len(items))]
    lines += [f"🏪 #{b.id} {excerpt(b.name)}" for b in waiting]
    lines += [
        f"📰 #{i.id} {excerpt(i.business_name)} — {excerpt(i.title or i.summary or '…', 80)}"
        for i in items
    ]
    await context.bot.send_message(
        uid, _as_many_as_fit(lines[:60]), parse_mode="HTML", disable_web_page_preview=True
    )


def _as_many_as_fit(lines: list[str]) -> str:
    """The lines that fit in one message, then "…" if some were left out."""
    kept: list[str] = []
    for line in lines:
        if not fits("\n".join([*kept, line, ELLIPSIS])):
            return "\n".join([*kept, ELLIPSIS])
        kept.append(line)
    return "\n".join(kept)


async def _with_business(update: Update, context: Context, usage: str) -> Business | None:
    """The one business the command's argument names, or an explanation."""
    query = argument(context)
    if not query:
        await reply(update, context, usage)
        return None
    number = query.lstrip("#").strip()
    if number.isdigit() and typed_id(number) is None:  # no such id: not worth a look-up
        matches: list[Business] = []
    else:
        with services(context).db.read() as session:
            matches = find_businesses(session, query)
    if len(matches) != 1:
        shown = matches[:SHOWN_MATCHES]
        names = ", ".join(f"#{b.id} {excerpt(b.name)}" for b in shown)
        names += ", …" if len(matches) > len(shown) else ""
        key = "moderation.no_business" if not matches else "moderation.ambiguous_business"
        await reply(update, context, key, query=excerpt(query), names=names)
        return None
    return matches[0]


@moderators_only()
async def trust(update: Update, context: Context) -> None:
    """/trust <id or name>: its future news skips moderation (waiting news is approved)."""
    await _set_trust(update, context, trusted=True)


@moderators_only()
async def untrust(update: Update, context: Context) -> None:
    """/untrust <id or name>: its news goes through moderation again."""
    await _set_trust(update, context, trusted=False)


async def _set_trust(update: Update, context: Context, *, trusted: bool) -> None:
    business = await _with_business(update, context, "moderation.usage_trust")
    if business is None:
        return
    found = services(context)
    with found.db.write() as session:
        moderation.set_trust(session, business.id, trusted, found.clock())
    key = "moderation.trusted" if trusted else "moderation.untrusted"
    await reply(update, context, key, name=escape(business.name))


@moderators_only()
async def suspend(update: Update, context: Context) -> None:
    """/suspend <id or name>: nothing of it is published any more; the owner is told."""
    business = await _with_business(update, context, "moderation.usage_suspend")
    if business is None:
        return
    found = services(context)
    uid = update.effective_user.id if update.effective_user else 0
    with found.db.write() as session:
        moderation.suspend(session, business.id, uid, found.clock())
    await reply(update, context, "moderation.suspended", name=escape(business.name))


async def _target_user(update: Update, context: Context, usage: str) -> int | None:
    """A user id from the argument, or from the forwarded message replied to; else say why."""
    typed = argument(context)
    if typed:
        target = typed_id(typed)
        if target is None:
            await reply(update, context, "moderation.bad_user_id", typed=excerpt(typed))
        return target
    message = update.effective_message
    replied = message.reply_to_message if message else None
    origin = replied.forward_origin if replied else None
    if isinstance(origin, MessageOriginUser):
        return origin.sender_user.id
    await reply(update, context, usage)
    return None


@moderators_only(admin=True)
async def addmod(update: Update, context: Context) -> None:
    """/addmod <user id>, or in reply to a message forwarded from that person."""
    target = await _target_user(update, context, "moderation.usage_addmod")
    if target is None:
        return
    found = services(context)
    uid = update.effective_user.id if update.effective_user else None
    with found.db.write() as session:
        added = people.add_moderator(session, target, "moderator", uid, found.clock())
    await reply(
        update, context, "moderation.added" if added else "moderation.already_mod", user=target
    )


@moderators_only(admin=True)
async def delmod(update: Update, context: Context) -> None:
    """/delmod <user id>, or in reply to a forwarded message. Configured admins stay."""
    target = await _target_user(update, context, "moderation.usage_delmod")
    found = services(context)
    if target is None:
        return
    if target in found.settings.admins:
        await reply(update, context, "moderation.cannot_remove_admin")
        return
    with found.db.write() as session:
        removed = moderation.remove_moderator(session, target)
    await reply(
        update, context, "moderation.removed" if removed else "moderation.not_a_mod", user=target
    )


@moderators_only()
async def stats(update: Update, context: Context) -> None:
    """/stats: sources, items, subscribers, deliveries over the last day and week."""
    found = services(context)
    now = found.clock()
    with found.db.read() as session:
        sources = count_sources(session)
        subscribers = people.count_subscribers(session)
        periods = {
            label: (
                item_queries.count_items(session, now - delta),
                outbox.count_deliveries(session, now - delta),
            )
            for label, delta in (("day", timedelta(days=1)), ("week", timedelta(days=7)))
        }
    values: dict[str, int] = {
        **{f"sources_{k}": v for k, v in sources.items()},
        **{f"subscribers_{k}": v for k, v in subscribers.items()},
    }
    for label, (items, deliveries) in periods.items():
        values[f"items_{label}"] = sum(items.values())
        values[f"published_{label}"] = items.get("published", 0)
        values[f"sent_{label}"] = deliveries.get("sent", 0)
        values[f"failed_{label}"] = deliveries.get("failed", 0) + deliveries.get("unknown", 0)
    await reply(update, context, "moderation.stats", **values)


def handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    return [
        CallbackQueryHandler(on_card_press, pattern=r"^m:"),
        CommandHandler("queue", queue),
        CommandHandler("trust", trust),
        CommandHandler("untrust", untrust),
        CommandHandler("suspend", suspend),
        CommandHandler("addmod", addmod),
        CommandHandler("delmod", delmod),
        CommandHandler("stats", stats),
    ]
