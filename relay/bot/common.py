"""Shared handler plumbing: services, the user's language, roles, replies, and what
people type checked at the edge (ids, excerpts of their words).

A person's language is what they chose with /language, else French when their Telegram
language starts with "fr", else English.
"""

from __future__ import annotations

import re
from typing import Any

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from relay.bot.services import Services
from relay.i18n import language_for, text
from relay.telegram_html import escape, truncate_text
from storage import people

Context = ContextTypes.DEFAULT_TYPE
MAX_ID = 2**52  # Telegram's ids (and ours) stay within 52 bits
# An id in callback data: 1 to 15 digits, so always below MAX_ID. Use with re.fullmatch
# or as a pattern piece ending with \Z ("$" also matches before a final newline).
ID = r"[1-9][0-9]{0,14}"
EXCERPT = 60  # characters of what someone typed that we show back
# The shape of every button's data the bot draws (registration, /post, /remove, /sources,
# moderation cards, /settings panel, /language); handlers check the details. A press with
# anything else (forged, empty, from an older bot) is answered at the edge and goes no
# further: PTB would hand empty data to the first button handler it finds.
BUTTON_DATA = re.compile(
    rf"reg:(?:nosite|name|ok|no|cat:[a-z_]{{1,32}})|post:{ID}|rm:(?:{ID}(?::y)?|n)|rs:{ID}"
    rf"|m:[ib]:[art]:{ID}|set:[a-z0-9_:]{{1,40}}|lang:[a-z]{{2}}"
)
_DIGITS = re.compile(r"[0-9]+")


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


def excerpt(typed: str, limit: int = EXCERPT) -> str:
    """What someone typed, shown back: one line, at most `limit` characters (…), HTML-escaped."""
    return escape(plain_excerpt(typed, limit))


def plain_excerpt(typed: str, limit: int = EXCERPT) -> str:
    """`excerpt` before escaping, for a sentence that is escaped as a whole."""
    return truncate_text(" ".join(typed.split()), limit)


def typed_id(typed: str) -> int | None:
    """A positive id a person typed (a Telegram user, a business): 1 to 2^52, else None."""
    digits = typed.strip()
    if len(digits) > 16 or not _DIGITS.fullmatch(digits):  # 2^52 has 16 digits
        return None
    number = int(digits)
    return number if 0 < number <= MAX_ID else None
