"""Readers' handlers: /subscribe, /unsubscribe, the /settings panel, /latest, blocked chats.

The subscriber is a chat: a person in a private chat, or a group where someone typed /start or
/subscribe. Settings live in the database; the panel is one message, redrawn in place from the
database on every press, so an old panel or a restart never shows stale choices for long.
The /settings flow is drawn in subscribers.md.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import replace
from datetime import timedelta
from typing import Any

from telegram import CallbackQuery, InlineKeyboardMarkup, Update
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import BadRequest
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from relay.bot.common import Context, language, reply, services
from relay.bot.settings_panel import panel_keyboard, panel_text, summary
from relay.digest import compose_digest, fold, select_for_subscriber
from relay.digest_job import labels
from relay.i18n import text
from relay.subscriptions import (
    CITY_WORDS,
    PREFIX,
    ZONE_WORDS,
    changes_for,
    parse_cities,
    shortcut_changes,
)
from storage import items as item_queries
from storage import people
from storage.values import Frequency, Subscriber

log = logging.getLogger(__name__)

LATEST_ITEMS = 15
ASKING_CITIES = 0  # the one state of the cities conversation
CITIES_TIMEOUT = timedelta(minutes=10)  # after that, a typed message is not taken as cities
Handler = BaseHandler[Update, Context, Any]
# Telegram's words when the message a button was on cannot be redrawn any more.
MESSAGE_GONE = ("message to edit not found", "message can't be edited")


def handlers() -> list[Handler]:
    """Commands, panel buttons (the cities button first: it opens a conversation), blocks."""
    return [
        CommandHandler("subscribe", subscribe),
        CommandHandler("unsubscribe", unsubscribe),
        CommandHandler("settings", show_settings),
        CommandHandler("latest", latest),
        _cities_conversation(),
        CallbackQueryHandler(on_panel_press, pattern=f"^{PREFIX}"),
        ChatMemberHandler(on_membership, ChatMemberHandler.MY_CHAT_MEMBER),
    ]


def _cities_conversation() -> Handler:
    """Press "cities", then type them. Keyed per chat and person, entered by a button."""
    # PTB warns that a CallbackQueryHandler is not tracked per message; the button only opens
    # the conversation, and the typed answer belongs to the person, so that is what we want.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBUserWarning)
        return ConversationHandler(
            entry_points=[CallbackQueryHandler(ask_cities, pattern=f"^{PREFIX}city\\Z")],
            states={ASKING_CITIES: [MessageHandler(filters.TEXT & ~filters.COMMAND, type_cities)]},
            fallbacks=[],
            allow_reentry=True,
            conversation_timeout=CITIES_TIMEOUT,
        )


# --- I/O helpers ---------------------------------------------------------------------------------


async def send(
    update: Update, context: Context, body: str, markup: InlineKeyboardMarkup | None = None
) -> None:
    """Send composed HTML to the chat the update came from."""
    assert update.effective_chat is not None
    await context.bot.send_message(
        update.effective_chat.id,
        body,
        parse_mode=ParseMode.HTML,
        disable_web_page_preview=True,
        reply_markup=markup,
    )


async def edit_in_place(
    query: CallbackQuery, body: str, markup: InlineKeyboardMarkup | None = None
) -> bool:
    """Redraw the pressed message; False when it is gone (deleted, or no longer editable).
    An identical redraw ("not modified") is fine."""
    try:
        await query.edit_message_text(body, parse_mode=ParseMode.HTML, reply_markup=markup)
    except BadRequest as error:
        reason = error.message.lower()
        if any(gone in reason for gone in MESSAGE_GONE):
            return False
        if "not modified" not in reason:
            raise
    return True


def _subscriber(context: Context, chat_id: int) -> Subscriber | None:
    with services(context).db.read() as session:
        return people.get_subscriber(session, chat_id)


def _update(context: Context, chat_id: int, **changes: Any) -> Subscriber | None:
    with services(context).db.write() as session:
        return people.update_subscriber(session, chat_id, **changes)


def _chat_id(update: Update) -> int:
    assert update.effective_chat is not None
    return update.effective_chat.id


# --- /subscribe, /unsubscribe -----------------------------------------------------------------


async def subscribe(update: Update, context: Context) -> None:
    """/subscribe: daily digests at 18:00 Paris time for this chat; twice just confirms."""
    await confirm_subscription(update, context)


async def confirm_subscription(update: Update, context: Context) -> None:
    """Subscribe the chat the update came from (a group as itself) and show its settings."""
    lang, chat_id, found = language(update, context), _chat_id(update), services(context)
    with found.db.write() as session:
        before = people.get_subscriber(session, chat_id)
        after = people.subscribe(session, chat_id, lang, found.clock())
    already = before is not None and before.active and before.frequency != Frequency.OFF
    group = update.effective_chat is not None and update.effective_chat.type != ChatType.PRIVATE
    key = "already" if already else "done_group" if group else "done"
    await reply(update, context, f"subscribe.{key}", summary=summary(lang, after))


async def unsubscribe(update: Update, context: Context) -> None:
    """/unsubscribe: no more digests; the filters are kept for a later /subscribe."""
    updated = _update(context, _chat_id(update), frequency=Frequency.OFF.value)
    await reply(update, context, "subscribe.stopped" if updated else "subscribe.not_subscribed")


# --- /settings ---------------------------------------------------------------------------------


async def show_settings(update: Update, context: Context) -> None:
    """/settings: the panel. Shortcuts: `/settings ville Lyon, Villeurbanne`, `/settings tz …`."""
    words = context.args or []
    if words and fold(words[0]) in CITY_WORDS | ZONE_WORDS:
        await _settings_shortcut(update, context, fold(words[0]), " ".join(words[1:]))
        return
    subscriber = _subscriber(context, _chat_id(update))
    if subscriber is None:
        await reply(update, context, "settings.not_subscribed")
        return
    lang = language(update, context)
    await send(update, context, panel_text(lang, subscriber), panel_keyboard(lang, subscriber))


async def _settings_shortcut(update: Update, context: Context, word: str, value: str) -> None:
    """Set the cities or the time zone from the command's text."""
    changes = shortcut_changes(word, value)
    if changes is None:
        invalid = "cities" if word in CITY_WORDS else "zone"
        await reply(update, context, f"settings.invalid_{invalid}")
        return
    updated = _update(context, _chat_id(update), **changes)
    await _confirm_saved(update, context, updated)


async def _confirm_saved(update: Update, context: Context, updated: Subscriber | None) -> None:
    """Confirm typed settings with the new summary (or say the chat is not subscribed)."""
    if updated is None:
        await reply(update, context, "settings.not_subscribed")
        return
    lang = language(update, context)
    await reply(update, context, "settings.saved_summary", summary=summary(lang, updated))


async def _checked_press(update: Update, context: Context, lang: str) -> Subscriber | None:
    """The subscriber a panel press may change; otherwise answer why not and return None."""
    query, user = update.callback_query, update.effective_user
    chat = update.effective_chat
    assert query is not None
    assert user is not None
    assert chat is not None
    # In a private chat only its owner may press; in a group any member speaks for the group.
    subscriber = _subscriber(context, chat.id)
    if chat.type == ChatType.PRIVATE and user.id != chat.id:
        refusal: str | None = "settings.not_yours"
    else:
        refusal = "settings.not_subscribed" if subscriber is None else None
    if refusal is not None:
        await query.answer(text(lang, refusal), show_alert=True)
        return None
    return subscriber


async def on_panel_press(update: Update, context: Context) -> None:
    """A panel button: check who pressed, change the setting, redraw the panel."""
    query = update.callback_query
    assert query is not None
    lang = language(update, context)
    subscriber = await _checked_press(update, context, lang)
    if subscriber is None:
        return
    if query.data == f"{PREFIX}done":
        shown = await edit_in_place(query, panel_text(lang, subscriber))
        await query.answer(None if shown else text(lang, "settings.panel_gone"))
        return
    changes = changes_for(query.data or "", subscriber)
    if changes is None:
        await query.answer(text(lang, "settings.invalid_button"), show_alert=True)
        return
    updated = _update(context, subscriber.chat_id, **changes) or subscriber
    shown = await edit_in_place(query, panel_text(lang, updated), panel_keyboard(lang, updated))
    await query.answer(text(lang, "settings.saved" if shown else "settings.saved_panel_gone"))


async def ask_cities(update: Update, context: Context) -> int:
    """The cities button: ask for names; the person's next text message gives them."""
    query = update.callback_query
    assert query is not None
    assert query.message is not None
    if await _checked_press(update, context, language(update, context)) is None:
        return ConversationHandler.END
    await query.answer()
    # Which panel to redraw once the cities are typed: a detail of this short exchange only.
    if context.user_data is not None:
        context.user_data["settings_panel"] = query.message.message_id
    await reply(update, context, "settings.ask_cities")
    return ASKING_CITIES


async def type_cities(update: Update, context: Context) -> int:
    """The typed cities: save them, confirm, redraw the panel they came from."""
    assert update.effective_message is not None
    cities = parse_cities(update.effective_message.text or "")
    if cities is None:
        await reply(update, context, "settings.invalid_cities")
        return ASKING_CITIES
    updated = _update(context, _chat_id(update), cities=cities)
    await _confirm_saved(update, context, updated)
    if updated is not None:
        await _redraw_panel(update, context, language(update, context), updated)
    return ConversationHandler.END


async def _redraw_panel(update: Update, context: Context, lang: str, s: Subscriber) -> None:
    """Bring the panel the cities button was pressed on up to date (if it still exists)."""
    panel = (context.user_data or {}).pop("settings_panel", None)
    if panel is None:
        return
    try:
        await context.bot.edit_message_text(
            panel_text(lang, s),
            chat_id=_chat_id(update),
            message_id=panel,
            parse_mode=ParseMode.HTML,
            reply_markup=panel_keyboard(lang, s),
        )
    except BadRequest as error:  # deleted or unchanged: the confirmation said it all
        log.info("settings panel not redrawn: %s", error.message)


# --- /latest, blocks ---------------------------------------------------------------------------


async def latest(update: Update, context: Context) -> None:
    """/latest: the most recent approved news as a digest, filtered like this chat's digests."""
    lang, chat_id, found = language(update, context), _chat_id(update), services(context)
    with found.db.read() as session:
        # Filters apply to a generous recent window, not to the whole history.
        approved = item_queries.latest_approved(session, found.clock(), LATEST_ITEMS * 20)
        subscriber = people.get_subscriber(session, chat_id)
    chosen = select_for_subscriber(approved, subscriber) if subscriber else approved
    title = replace(labels(lang, Frequency.DAILY), title=text(lang, "latest.title"))
    messages = compose_digest(chosen[-LATEST_ITEMS:], labels=title)
    if not messages:
        await reply(update, context, "latest.filtered" if approved else "latest.nothing")
        return
    for body in messages:
        await send(update, context, body)


async def on_membership(update: Update, context: Context) -> None:
    """The bot was blocked in a private chat or removed from a group: stop sending there."""
    change = update.my_chat_member
    assert change is not None
    if change.new_chat_member.status not in (ChatMemberStatus.BANNED, ChatMemberStatus.LEFT):
        return
    found = services(context)
    with found.db.write() as session:
        people.mark_blocked(session, change.chat.id, found.clock())
