"""Wire the bot: python-telegram-bot's Application, our handlers, one error handler.

`run_relay` runs bot and worker in one process (`python bot.py`, `relay run`), or either
alone (`relay bot`, `relay worker`) for the PostgreSQL scale path.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta
from typing import Any

from telegram import Update
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationBuilder, CallbackQueryHandler

from feeds.fetch import Fetcher
from relay.bot import business, commands, moderators, subscribers
from relay.bot.common import Context, language, reply
from relay.bot.ratelimit import ChatRateLimiter, PerChatProcessor
from relay.bot.services import Services
from relay.checks import CheckResult, Status, check_database, failed, run_checks
from relay.clock import utcnow
from relay.i18n import text
from relay.parsing import ParserPool
from relay.settings import Settings
from relay.wire import sender_bot
from relay.worker import Worker
from storage import people
from storage.engine import Database
from storage.migrate import upgrade

log = logging.getLogger(__name__)

App = Application[Any, Any, Any, Any, Any, Any]


def build_application(services: Services, limiter: ChatRateLimiter | None = None) -> App:
    """The Application with every handler, talking to `TELEGRAM_API_BASE_URL` if set.

    Replies wait for their turn within Telegram's limits (`limiter`, by default one message a
    second per chat and 29 a second overall); each chat's updates are handled in order,
    different chats at the same time.
    """
    settings = services.settings
    assert settings.telegram_token
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_token)
        .rate_limiter(limiter or ChatRateLimiter())
        .concurrent_updates(PerChatProcessor())
    )
    if settings.telegram_api_base_url:
        base = settings.telegram_api_base_url
        builder = builder.base_url(base).base_file_url(base.replace("/bot", "/file/bot", 1))
    app = builder.build()
    app.bot_data["services"] = services
    for module in (business, moderators, subscribers, commands):
        app.add_handlers(module.handlers())
    app.add_handler(CallbackQueryHandler(commands.check_button), group=-1)  # at the edge
    app.add_handler(CallbackQueryHandler(commands.unknown_button))  # last: what none took
    app.add_error_handler(on_error)
    return app


async def on_error(update: object, context: Context) -> None:
    """Log it; tell the person something went wrong, in their language, when we can."""
    error = context.error
    if _not_a_bug(error):
        log.warning("could not answer %s: %s", _chat_of(update), error)
        return
    log.error("handler failed", exc_info=error)
    if isinstance(update, Update):
        try:
            await _apologise(update, context)
        except TelegramError:
            log.warning("could not tell the user about the error")


async def _apologise(update: Update, context: Context) -> None:
    """In the button's answer if it is still unanswered, else in a message."""
    query = update.callback_query
    if query is not None:
        try:
            await query.answer(text(language(update, context), "error.internal"), show_alert=True)
            return
        except BadRequest:  # answered already, or too late: say it in the chat
            pass
    if update.effective_chat is not None:
        await reply(update, context, "error.internal")


def _not_a_bug(error: Exception | None) -> bool:
    """Blocked meanwhile, flooded twice, or a button answered too late (the bot was slow)."""
    if isinstance(error, BadRequest):
        return "query is too old" in error.message.lower()
    return isinstance(error, Forbidden | RetryAfter)


def _chat_of(update: object) -> int | None:
    chat = update.effective_chat if isinstance(update, Update) else None
    return chat.id if chat else None


def ensure_admins(db: Database, settings: Settings) -> None:
    """Admins from RELAY_ADMINS are moderators with the admin role."""
    with db.write() as session:
        for admin in settings.admins:
            people.add_moderator(session, admin, "admin", None, utcnow())


async def run_relay(
    settings: Settings, *, bot: bool = True, worker: bool = True, lang: str = "en"
) -> int:
    """Run until SIGINT/SIGTERM: 0. When a start-up check fails, log why and return 2."""
    db = Database(settings.database_url)
    try:
        results = [await asyncio.to_thread(check_database, db, will_migrate=True)]
        if not failed(results):
            upgrade(db)
            results = await run_checks(settings, db)
        log_checks(results, lang)
        if failed(results):
            return 2
        ensure_admins(db, settings)
        await _serve(settings, db, bot=bot, worker=worker)
    finally:
        db.dispose()
    return 0


def log_checks(results: list[CheckResult], lang: str) -> None:
    """One log line per check, in the operator's language; then why the relay stops, if so."""
    levels = {Status.OK: logging.INFO, Status.WARNING: logging.WARNING}
    for result in results:
        log.log(levels.get(result.status, logging.ERROR), "%s", result.sentence(lang))
    if failed(results):
        log.error("%s", text(lang, "check.not_started"))


async def _serve(settings: Settings, db: Database, *, bot: bool, worker: bool) -> None:
    async with Fetcher(settings.fetch) as fetcher:
        services = Services(settings, db, fetcher)
        app = build_application(services)
        assert settings.telegram_token
        outbox_bot = sender_bot(settings.telegram_token, settings.telegram_api_base_url)
        async with app, outbox_bot:
            # One scheduler, the job queue's: the cities conversation's timeout runs on it.
            assert app.job_queue is not None  # python-telegram-bot[job-queue] is installed
            scheduler = app.job_queue.scheduler
            runner = Worker(settings, db, outbox_bot, scheduler=scheduler) if worker else None
            services.channel_id = await runner.resolve_channel() if runner else None
            # Registrations parse in the worker's pool, or in one worker of their own.
            own = None if runner else ParserPool.from_settings(settings.polling, workers=1)
            services.parsers = runner.parsers if runner else own
            await _start(app, runner, bot=bot)
            await _wait_for_signal()
            await _stop(app, runner, bot=bot)
            if own:
                own.close()


async def _start(app: App, runner: Worker | None, *, bot: bool) -> None:
    if runner:
        await runner.start()
    if bot:
        found = services_of(app)
        await commands.publish(app.bot, found.db, found.settings)
        await app.start()
        await _receive_updates(app, services_of(app).settings)


async def _receive_updates(app: App, settings: Settings) -> None:
    """Long polling by default; a webhook when RELAY_WEBHOOK_URL is set."""
    assert app.updater is not None
    if not settings.webhook_url:
        await app.updater.start_polling(timeout=timedelta(seconds=30))
        return
    await app.updater.start_webhook(
        listen=settings.webhook_listen,
        port=settings.webhook_port,
        url_path="telegram",
        webhook_url=settings.webhook_url.rstrip("/") + "/telegram",
        secret_token=settings.webhook_secret,
    )


def services_of(app: App) -> Services:
    found: Services = app.bot_data["services"]
    return found


async def _stop(app: App, runner: Worker | None, *, bot: bool) -> None:
    if bot and app.updater is not None:
        await app.updater.stop()
        await app.stop()
    if runner:
        await runner.stop()


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
