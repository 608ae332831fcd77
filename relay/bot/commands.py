"""Everyone's commands: /start, /language, /help, and the command menus Telegram shows.

/help and the menus list what a person may do: everyone's commands, plus those of business
owners, moderators and admins. Descriptions come from the [commands] catalogue table.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, BaseHandler, CallbackQueryHandler, CommandHandler

from relay.bot.common import (
    BUTTON_DATA,
    Context,
    excerpt,
    language,
    reply,
    role,
    services,
    user_id,
)
from relay.bot.subscribers import confirm_subscription, edit_in_place, send
from relay.i18n import LANGUAGES, text
from relay.settings import Settings
from relay.telegram_html import escape
from storage import people, sources
from storage.engine import Database

log = logging.getLogger(__name__)

EVERYONE: tuple[str, ...] = (
    "start",
    "subscribe",
    "settings",
    "latest",
    "unsubscribe",
    "language",
    "register",
    "help",
)
OWNERS: tuple[str, ...] = ("post", "sources", "remove")
MODERATORS: tuple[str, ...] = ("queue", "trust", "untrust", "suspend", "stats")
ADMINS: tuple[str, ...] = ("addmod", "delmod")
LANGUAGE_PREFIX = "lang:"
NAME_EXCERPT = 64  # Telegram's longest first name
Handler = BaseHandler[Update, Context, Any]


def handlers() -> list[Handler]:
    return [
        CommandHandler("start", start),
        CommandHandler("help", show_help),
        CommandHandler("language", ask_language),
        CallbackQueryHandler(on_language, pattern=f"^{LANGUAGE_PREFIX}"),
    ]


# --- What each person may do --------------------------------------------------------------------


def sections(*, owner: bool, role: str | None) -> list[tuple[str, tuple[str, ...]]]:
    """(catalogue key of the heading, command names) for a person's roles, everyone's first."""
    found: list[tuple[str, tuple[str, ...]]] = [("help.everyone", EVERYONE)]
    if owner:
        found.append(("help.owners", OWNERS))
    if role in ("moderator", "admin"):
        found.append(("help.moderators", MODERATORS))
    if role == "admin":
        found.append(("help.admins", ADMINS))
    return found


def help_text(lang: str, *, owner: bool, role: str | None) -> str:
    """The /help message: a title, then one block of "/command — what it does" per role."""
    lines = [text(lang, "help.title")]
    for heading, names in sections(owner=owner, role=role):
        lines += ["", text(lang, heading)]
        lines += [_help_line(lang, name) for name in names]
    return "\n".join(lines)


def _help_line(lang: str, name: str) -> str:
    return text(lang, "help.line", command=name, description=escape(_description(lang, name)))


def _description(lang: str, name: str) -> str:
    return text(lang, f"commands.{name}")


def menu(lang: str, role: str | None = None) -> list[BotCommand]:
    """The command menu of everyone, or of a moderator / admin (`role`), in `lang`."""
    names = [n for _, group in sections(owner=False, role=role) for n in group]
    return [BotCommand(name, _description(lang, name)) for name in names]


# --- Handlers ----------------------------------------------------------------------------------


async def start(update: Update, context: Context) -> None:
    """/start: what the relay is, in three lines; in a group, the group subscribes too."""
    user = update.effective_user
    assert user is not None
    assert update.effective_chat is not None
    await reply(update, context, "start.welcome", name=excerpt(user.first_name, NAME_EXCERPT))
    if update.effective_chat.type != ChatType.PRIVATE:
        await confirm_subscription(update, context)


async def show_help(update: Update, context: Context) -> None:
    """/help: the commands this person may use, grouped by role."""
    uid = user_id(update)
    with services(context).db.read() as session:
        owner = bool(sources.businesses_of(session, uid))
    body = help_text(language(update, context), owner=owner, role=role(context, uid))
    await send(update, context, body)


async def ask_language(update: Update, context: Context) -> None:
    """/language: a button per language, each labelled in its own language."""
    buttons = [
        InlineKeyboardButton(text(lang, "language.name"), callback_data=LANGUAGE_PREFIX + lang)
        for lang in LANGUAGES
    ]
    body = text(language(update, context), "language.ask")
    await send(update, context, body, InlineKeyboardMarkup([buttons]))


async def on_language(update: Update, context: Context) -> None:
    """A language button: remember it everywhere, confirm in the new language."""
    query = update.callback_query
    assert query is not None
    chosen = (query.data or "").removeprefix(LANGUAGE_PREFIX)
    if chosen not in LANGUAGES:
        await query.answer(text(language(update, context), "language.invalid"), show_alert=True)
        return
    uid, found = user_id(update), services(context)
    with found.db.write() as session:
        people.choose_language(session, uid, chosen, found.clock())
    confirmed = text(chosen, "language.chosen")
    shown = await edit_in_place(query, confirmed)
    await query.answer(None if shown else confirmed)  # a deleted menu: said in the answer
    team_role = role(context, uid)
    if team_role:  # a moderator's own menu follows their language
        await publish_for(context.bot, uid, team_role, chosen)


async def check_button(update: Update, context: Context) -> None:
    """Every press first: data of a button the bot never drew is answered here and stops."""
    query = update.callback_query
    assert query is not None
    if isinstance(query.data, str) and BUTTON_DATA.fullmatch(query.data):
        return  # on to the button's own handler
    await unknown_button(update, context)
    raise ApplicationHandlerStop


async def unknown_button(update: Update, context: Context) -> None:
    """A press no handler takes (old, forged or empty data): say the button no longer works."""
    query = update.callback_query
    assert query is not None
    log.info("unknown button data %r", (query.data or "")[:64])
    await query.answer(text(language(update, context), "button.unknown"), show_alert=True)


# --- Menus (setMyCommands) -----------------------------------------------------------------------


async def publish(bot: Bot, db: Database, settings: Settings) -> None:
    """Everyone's menu in French and (by default) English; each moderator's in their language."""
    await bot.set_my_commands(menu("fr"), language_code="fr")
    await bot.set_my_commands(menu("en"))
    with db.read() as session:
        team = people.moderators(session)
    for uid, team_role, lang in team:
        await publish_for(bot, uid, "admin" if uid in settings.admins else team_role, lang)


async def publish_for(bot: Bot, uid: int, team_role: str | None, lang: str) -> None:
    """One person's private menu: extended for a moderator or admin, everyone's when None."""
    scope = BotCommandScopeChat(uid)
    try:
        if team_role is None:
            await bot.delete_my_commands(scope=scope)
        else:
            await bot.set_my_commands(menu(lang, team_role), scope=scope)
    except TelegramError as error:  # e.g. a moderator who never opened the bot: no chat yet
        log.warning("commands menu for %s not set: %s", uid, error)
