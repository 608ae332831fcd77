"""A running bot for end-to-end tests: the real Application, polling the fake Telegram API,
with the relay's database and a worker whose jobs the tests run by hand.

After each message or press, the harness waits until the bot has settled (the update fetched,
every handler finished, every reply delivered) rather than for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from feeds.fetch import Fetcher
from relay.bot.app import App, build_application, ensure_admins
from relay.bot.ratelimit import ChatRateLimiter
from relay.bot.services import Services
from relay.limits import SendBudget
from relay.settings import Settings
from relay.wire import sender_bot
from relay.worker import Worker
from storage.engine import Database
from tests.support.builders import T0, Clock, relay_settings
from tests.support.fake_telegram import TOKEN, FakeTelegram, SentMessage

CHANNEL = -1001234567890
ADMIN = 1000
SETTLE_TIMEOUT = 30.0  # generous: a loaded CI machine is slow, a settled bot returns at once


@dataclass
class Harness:
    """Drive the bot like people do: `await h.say(user, "/start")` returns the bot's replies."""

    fake: FakeTelegram
    app: App
    services: Services
    worker: Worker
    clock: Clock
    db: Database
    settings: Settings
    limiter: ChatRateLimiter
    _seen: dict[int, int] = field(default_factory=dict)

    async def say(
        self,
        user_id: int,
        text: str,
        *,
        lang: str = "fr",
        name: str = "Marie",
        chat_id: int | None = None,
        **extra: Any,
    ) -> list[SentMessage]:
        """Send a message as `user_id`; the bot's new messages to that chat."""
        self.fake.user_sends(
            user_id, text, language_code=lang, first_name=name, chat_id=chat_id, **extra
        )
        return await self.replies(chat_id or user_id)

    async def press(
        self,
        user_id: int,
        message: SentMessage,
        data: str,
        *,
        lang: str = "fr",
        name: str = "Marie",
    ) -> list[SentMessage]:
        """Press an inline button of `message`; the bot's new messages to that chat."""
        self.fake.user_presses(user_id, message, data, language_code=lang, first_name=name)
        return await self.replies(message.chat_id)

    async def replies(self, chat_id: int, *, wait: float = SETTLE_TIMEOUT) -> list[SentMessage]:
        """Once the bot has settled, its new messages in `chat_id`."""
        await self.settled(wait)
        return self.new_messages(chat_id)

    async def settled(self, timeout: float = SETTLE_TIMEOUT) -> None:  # noqa: ASYNC109
        """Wait until every update is fetched and handled and every reply delivered."""
        await self.fake.wait_for_async(self._idle, timeout)

    def _idle(self) -> bool:
        # Checked in one go on the event loop: an update is in the fake, in PTB's queue or in
        # a handler's task, and a reply is waiting in the limiter or on its way.
        return (
            self.fake.pending_updates == 0
            and self.app.update_queue.empty()
            and not any(_handling(task) for task in asyncio.all_tasks())
            and self.limiter.idle
        )

    def new_messages(self, chat_id: int) -> list[SentMessage]:
        sent = self.fake.sent(chat_id)
        seen = self._seen.get(chat_id, 0)
        self._seen[chat_id] = len(sent)
        return sent[seen:]

    async def work(self) -> None:
        """One round of the worker's jobs: poll, send, publish, digests, send."""
        await self.worker.poll()
        await self.worker.send()
        await self.worker.publish()
        await self.worker.digests()
        await self.worker.send()


def _handling(task: asyncio.Task[Any]) -> bool:
    """A task of python-telegram-bot handling an update (its names say so)."""
    name = task.get_name()
    return name.startswith("ConversationHandler:") or (
        name.startswith("Application:") and ":process_" in name
    )


def harness_settings(fake: FakeTelegram, **changes: Any) -> Settings:
    return relay_settings(
        telegram_token=TOKEN,
        telegram_api_base_url=fake.base_url,
        channel=str(CHANNEL),
        admins=(ADMIN,),
        **changes,
    )


@contextlib.asynccontextmanager
async def running_bot(
    db: Database, telegram: FakeTelegram, limiter: ChatRateLimiter | None = None
) -> AsyncIterator[Harness]:
    """The bot polling `telegram`, replies paced by `limiter` (by default without the pause
    of a second between two messages to one chat: test_limits.py checks the real pacing
    against the fake enforcing Telegram's limits; here it would only slow every test)."""
    settings = harness_settings(telegram)
    clock = Clock(T0)
    limiter = limiter or ChatRateLimiter(SendBudget(chat_interval=0.0))
    ensure_admins(db, settings)
    async with Fetcher(settings.fetch) as fetcher:
        services = Services(settings, db, fetcher, clock, channel_id=CHANNEL)
        app = build_application(services, limiter)
        # As in run_relay: the outbox has its own bot, outside the replies' rate limiter.
        outbox_bot = sender_bot(TOKEN, telegram.base_url)
        async with app, outbox_bot:
            worker = Worker(settings, db, outbox_bot, clock, channel_id=CHANNEL)
            await app.start()
            assert app.updater is not None
            await app.updater.start_polling(poll_interval=0.0, timeout=timedelta(seconds=1))
            try:
                yield Harness(telegram, app, services, worker, clock, db, settings, limiter)
            finally:
                await app.updater.stop()
                await app.stop()
                await worker.stop()


@pytest.fixture
async def bot(db: Database, telegram: FakeTelegram) -> AsyncIterator[Harness]:
    async with running_bot(db, telegram) as harness:
        yield harness
