"""Start-up checks: what a volunteer must fix before the relay can serve, one sentence each.

`run_checks` asks Telegram and the database; the verdicts (`token_result`, `chat_result`,
`database_result`, ...) are pure functions of the answers, so they are easy to table-test.
`relay check` prints the results; `run_relay` refuses to serve when one failed. The bot's
token never appears in a result: exception texts are scrubbed before they are shown.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from telegram import Bot, ChatMember
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError

from relay.i18n import text
from relay.settings import Settings
from storage.engine import Database
from storage.migrate import current_revisions, head_revisions, known_revisions

DEFAULT_API_HOST = "api.telegram.org"
SYMBOLS = {"ok": "✓", "warning": "⚠", "failure": "✗"}


class Status(StrEnum):
    """How one check ended: only a failure stops the relay."""

    OK = "ok"
    WARNING = "warning"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: its name, how it ended, and the catalogue sentence that says what to do."""

    name: str
    status: Status
    key: str  # in the catalogues: under [check], or [env.warn] for what is merely missing
    values: dict[str, object] = field(default_factory=dict)

    def sentence(self, lang: str) -> str:
        """The sentence in `lang`."""
        return text(lang, self.key, **self.values)

    def line(self, lang: str) -> str:
        """✓, ⚠ or ✗, then the sentence."""
        return f"{SYMBOLS[self.status.value]} {self.sentence(lang)}"


@dataclass(frozen=True, slots=True)
class ChatView:
    """What Telegram said about a chat and the bot's place in it (None: chat not found)."""

    chat_type: str | None
    bot_status: str = ChatMember.LEFT
    can_post: bool = False


def failed(results: list[CheckResult]) -> bool:
    """Whether any check failed."""
    return any(result.status is Status.FAILURE for result in results)


# --- Verdicts: pure -----------------------------------------------------------------------------


def scrub(message: str, token: str | None) -> str:
    """`message` without the token (nor the bot's secret half, in case it was cut)."""
    if not token:
        return message
    secret = token.partition(":")[2]
    for part in (token, secret):
        if len(part) >= 8:
            message = message.replace(part, "<token>")
    return message


def api_host(base_url: str | None) -> str:
    """The host the Bot API is reached at (the official one unless a base URL is set)."""
    return (urlsplit(base_url).netloc if base_url else "") or DEFAULT_API_HOST


def telegram_failure(error: Exception, host: str, token: str | None) -> CheckResult:
    """A Telegram error met while checking, as a failure of the token check."""
    if isinstance(error, InvalidToken):
        return CheckResult("token", Status.FAILURE, "check.token_refused")
    if isinstance(error, NetworkError) and not isinstance(error, BadRequest):
        return CheckResult("token", Status.FAILURE, "check.api_unreachable", {"host": host})
    detail = scrub(str(error), token)
    return CheckResult("token", Status.FAILURE, "check.api_error", {"host": host, "detail": detail})


def token_result(username: str) -> CheckResult:
    """Telegram accepted the token."""
    return CheckResult("token", Status.OK, "check.token_ok", {"username": username})


def chat_result(name: str, chat: str, view: ChatView) -> CheckResult:
    """The channel (`name` "channel") or moderation chat (`name` "moderation") verdict."""
    prefix = "channel" if name == "channel" else "moderation"
    values: dict[str, object] = {"chat": chat}
    if view.chat_type is None:
        return CheckResult(name, Status.FAILURE, f"check.{prefix}_not_found", values)
    if view.chat_type == "private":  # a person's chat with the bot: nothing to be granted
        return CheckResult(name, Status.OK, f"check.{prefix}_ok", values)
    key = _channel_verdict(view) if name == "channel" else _moderation_verdict(view)
    status = Status.OK if key.endswith("_ok") else Status.FAILURE
    return CheckResult(name, status, key, values)


def _channel_verdict(view: ChatView) -> str:
    """A channel needs the bot as an administrator allowed to post; a group, as a member."""
    if view.chat_type == "channel":
        if view.bot_status != ChatMember.ADMINISTRATOR:
            return "check.channel_not_admin"
        return "check.channel_ok" if view.can_post else "check.channel_cannot_post"
    if not _is_member(view.bot_status):
        return "check.channel_not_member"
    return "check.channel_ok" if view.can_post else "check.channel_cannot_post"


def _moderation_verdict(view: ChatView) -> str:
    if not _is_member(view.bot_status):
        return "check.moderation_not_member"
    return "check.moderation_ok" if view.can_post else "check.moderation_cannot_post"


def _is_member(status: str) -> bool:
    """In the chat (a restricted member too: `can_post` says whether it may write)."""
    return status in (
        ChatMember.OWNER,
        ChatMember.ADMINISTRATOR,
        ChatMember.MEMBER,
        ChatMember.RESTRICTED,
    )


def unset_channel_result() -> CheckResult:
    """No channel: the relay runs, but publishes nowhere."""
    return CheckResult("channel", Status.WARNING, "env.warn.no_channel")


def admins_result(admins: tuple[int, ...]) -> CheckResult:
    """No admin: nobody can moderate from Telegram."""
    if not admins:
        return CheckResult("admins", Status.WARNING, "env.warn.no_admins")
    return CheckResult("admins", Status.OK, "check.admins_ok", {"count": len(admins)})


def database_result(
    current: set[str], heads: set[str], known: set[str], url: str, *, will_migrate: bool = False
) -> CheckResult:
    """At the latest revision; behind is fine only when migrations are about to run."""
    values: dict[str, object] = {"url": url}
    if current == heads:
        return CheckResult("database", Status.OK, "check.database_ok", values)
    if current - known:  # migrated by a newer version of the relay
        return CheckResult("database", Status.FAILURE, "check.database_unknown_revision", values)
    if will_migrate:
        return CheckResult("database", Status.OK, "check.database_ok", values)
    return CheckResult("database", Status.FAILURE, "check.database_not_migrated", values)


# --- Asking: I/O --------------------------------------------------------------------------------


async def run_checks(settings: Settings, db: Database | None = None) -> list[CheckResult]:
    """Every check, in the order a volunteer fixes them: Telegram, chats, admins, database."""
    results = await check_telegram(settings)
    results.append(admins_result(settings.admins))
    results.append(await asyncio.to_thread(check_database, db or settings.database_url))
    return results


async def check_telegram(settings: Settings) -> list[CheckResult]:
    """The token, then the channel and the moderation chat (skipped if the token failed)."""
    token = settings.telegram_token
    if not token:
        return [CheckResult("token", Status.FAILURE, "check.token_missing")]
    host = api_host(settings.telegram_api_base_url)
    try:
        async with _bot(token, settings.telegram_api_base_url) as bot:
            return await _check_chats(bot, settings)
    except Exception as error:  # whatever it was, one sentence without the token
        return [telegram_failure(error, host, token)]


def _bot(token: str, base_url: str | None) -> Bot:
    return Bot(token, base_url=base_url) if base_url else Bot(token)


async def _check_chats(bot: Bot, settings: Settings) -> list[CheckResult]:
    results = [token_result(bot.username)]
    if settings.channel:
        view = await chat_view(bot, settings.channel)
        results.append(chat_result("channel", settings.channel, view))
    else:
        results.append(unset_channel_result())
    if settings.moderation_chat is not None:
        chat = str(settings.moderation_chat)
        results.append(chat_result("moderation", chat, await chat_view(bot, chat)))
    return results


async def chat_view(bot: Bot, chat: str) -> ChatView:
    """getChat, then getChatMember of the bot itself; "not found" and "no access" are answers."""
    chat_id: str | int = int(chat) if chat.lstrip("-").isdigit() else chat
    try:
        found = await bot.get_chat(chat_id)
    except (BadRequest, Forbidden):  # chat not found; bot kicked from it
        return ChatView(None)
    try:
        member = await bot.get_chat_member(found.id, bot.id)
    except (BadRequest, Forbidden):  # member list is inaccessible, user not found: not in it
        return ChatView(found.type)
    return ChatView(found.type, member.status, _can_post(member))


def _can_post(member: ChatMember) -> bool:
    if member.status == ChatMember.ADMINISTRATOR:
        return getattr(member, "can_post_messages", None) is not False
    if member.status == ChatMember.RESTRICTED:
        return bool(getattr(member, "can_send_messages", False))
    return True


def check_database(target: str | Database, *, will_migrate: bool = False) -> CheckResult:
    """Reachable, and at the latest migration (or about to be, with `will_migrate`).

    `target` is a URL (an engine is made, then disposed of) or an open `Database`."""
    url = target if isinstance(target, str) else target.url
    values: dict[str, object] = {"url": shown_url(url)}
    if _missing_sqlite_file(url) and not will_migrate:  # don't create it just to look
        return CheckResult("database", Status.FAILURE, "check.database_not_migrated", values)
    try:
        database = Database(url) if isinstance(target, str) else target
    except ImportError:  # e.g. PostgreSQL without the [postgres] extra
        return CheckResult("database", Status.FAILURE, "check.database_driver_missing", values)
    except SQLAlchemyError:  # a malformed URL
        return CheckResult("database", Status.FAILURE, "check.database_unreachable", values)
    try:
        current = current_revisions(database)
        heads, known = head_revisions(database), known_revisions(database)
    except (SQLAlchemyError, OSError):
        return CheckResult("database", Status.FAILURE, "check.database_unreachable", values)
    finally:
        if isinstance(target, str):
            database.dispose()
    return database_result(current, heads, known, str(values["url"]), will_migrate=will_migrate)


def shown_url(url: str) -> str:
    """The database URL without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "?"


def _missing_sqlite_file(url: str) -> bool:
    try:
        parsed = make_url(url)
    except SQLAlchemyError:
        return False
    name = parsed.database
    if not parsed.drivername.startswith("sqlite") or not name or name == ":memory:":
        return False
    return not Path(name).exists()
