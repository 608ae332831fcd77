"""Shared handler plumbing: services, the user's language, roles, replies.

A person's language is what they chose with /language, else French when their Telegram
language starts with "fr", else English.
"""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from relay.bot.services import Services
from relay.i18n import language_for, text
from storage import people

Context = ContextTypes.DEFAULT_TYPE


def services(context: Context) -> Services:
    """The wired services (set once in bot_data)."""
    found: Services = context.application.bot_data["services"]
    return found


def user_id(update: Update) -> int:
    user = update.effective_user
    assert user is not None
    return user.id


def language(update: Update, context: Context) -> str:
    """The language to answer this person in."""
    user = update.effective_user
    if user is None:
        return "fr"
    with services(context).db.read() as session:
        chosen = people.chosen_language(session, user.id)
    return chosen or language_for(user.language_code)


def role(context: Context, uid: int) -> str | None:
    """ "admin", "moderator", or None. Admins from the settings are always admins."""
    found = services(context)
    if uid in found.settings.admins:
        return "admin"
    with found.db.read() as session:
        return people.moderator_role(session, uid)


async def reply(update: Update, context: Context, key: str, **values: Any) -> None:
    """Answer in the chat the update came from, in the person's language (HTML)."""
    message = text(language(update, context), key, **values)
    chat = update.effective_chat
    assert chat is not None
    await context.bot.send_message(
        chat.id, message, parse_mode=ParseMode.HTML, disable_web_page_preview=True
    )


def argument(context: Context) -> str:
    """The text after a command (`/register https://…` → the URL)."""
    return " ".join(context.args or []).strip()
