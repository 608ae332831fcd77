"""Plumbing shared by the owners' handlers: HTML replies, buttons, conversations."""

from __future__ import annotations

import warnings
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.ext import ConversationHandler, filters
from telegram.warnings import PTBUserWarning

from relay.bot.common import Context, language
from relay.i18n import text

END = ConversationHandler.END
PRIVATE = filters.ChatType.PRIVATE
TYPED = filters.TEXT & ~filters.COMMAND
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


async def send(
    update: Update,
    context: Context,
    html: str,
    buttons: list[list[InlineKeyboardButton]] | None = None,
) -> None:
    """An HTML message to the chat of the update, with inline buttons if any."""
    chat = update.effective_chat
    assert chat is not None
    markup = InlineKeyboardMarkup(buttons) if buttons else None
    await context.bot.send_message(
        chat.id,
        html,
        parse_mode=ParseMode.HTML,
        link_preview_options=NO_PREVIEW,
        reply_markup=markup,
    )


async def say(update: Update, context: Context, key: str, **values: Any) -> None:
    """A catalogue message in the person's language."""
    await send(update, context, text(language(update, context), key, **values))


async def pressed(update: Update) -> str:
    """Answer a button press at once (the person sees a spinner until then); its data."""
    query = update.callback_query
    assert query is not None
    await query.answer()
    return query.data or ""


def button(lang: str, key: str, data: str, **values: Any) -> InlineKeyboardButton:
    return InlineKeyboardButton(text(lang, key, **values), callback_data=data)


def user_data(context: Context) -> dict[str, Any]:
    assert context.user_data is not None
    return context.user_data


def typed_text(update: Update) -> str:
    message = update.effective_message
    return (message.text or "") if message else ""


def forget(context: Context, *keys: str) -> int:
    """Leave a conversation, forgetting what it kept in user_data."""
    for key in keys:
        user_data(context).pop(key, None)
    return END


def conversation(**parts: Any) -> ConversationHandler[Context]:
    """One conversation per person and chat, re-entered by its command."""
    # per_message=False is what we want (the conversation follows the person, whichever
    # message its buttons are on); PTB warns about it for each CallbackQueryHandler.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "If 'per_message=False'", PTBUserWarning)
        return ConversationHandler(per_user=True, per_chat=True, allow_reentry=True, **parts)
