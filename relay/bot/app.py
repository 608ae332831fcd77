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
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder

from feeds.fetch import Fetcher
from relay.bot import business, commands, moderators, subscribers
from relay.bot.common import Context, reply
from relay.bot.services import Services
from relay.clock import utcnow
from relay.settings import Settings
from relay.wire import sender_bot
from relay.worker import Worker
from storage import people
from storage.engine import Database
from storage.migrate import upgrade

log = logging.getLogger(__name__)

App = Application[Any, Any, Any, Any, Any, Any]


def build_application(services: Services) -> App:
    """The Application with every handler, talking to `TELEGRAM_API_BASE_URL` if set."""
    settings = services.settings
    assert settings.telegram_token
    builder = ApplicationBuilder().token(settings.telegram_token)
    if settings.telegram_api_base_url:
        base = settings.telegram_api_base_url
        builder = builder.base_url(base).base_file_url(base.replace("/bot", "/file/bot", 1))
    app = builder.build()
    app.bot_data["services"] = services
    for module in (business, moderators, subscribers, commands):
        app.add_handlers(module.handlers())
    app.add_error_handler(on_error)
    return app


async def on_error(update: object, context: Context) -> None:
    """Log it; tell the person something went wrong, in their language, when we can."""
    log.error("handler failed", exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            await reply(update, context, "error.internal")
        except TelegramError:
            log.warning("could not tell the user about the error")


def ensure_admins(db: Database, settings: Settings) -> None:
    """Admins from RELAY_ADMINS are moderators with the admin role."""
    with db.write() as session:
        for admin in settings.admins:
            people.add_moderator(session, admin, "admin", None, utcnow())


async def run_relay(settings: Settings, *, bot: bool = True, worker: bool = True) -> None:
    """Run until SIGINT/SIGTERM."""
    db = Database(settings.database_url)
    upgrade(db)
    ensure_admins(db, settings)
    async with Fetcher(settings.fetch) as fetcher:
        services = Services(settings, db, fetcher)
        app = build_application(services)
        assert settings.telegram_token
        outbox_bot = sender_bot(settings.telegram_token, settings.telegram_api_base_url)
        async with app, outbox_bot:
            runner = Worker(settings, db, outbox_bot) if worker else None
            services.channel_id = await runner.resolve_channel() if runner else None
            await _start(app, runner, bot=bot)
            await _wait_for_signal()
            await _stop(app, runner, bot=bot)
    db.dispose()


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
