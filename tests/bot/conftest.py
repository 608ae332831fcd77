"""A running bot for end-to-end tests: the real Application, polling the fake Telegram API,
with the relay's database and a worker whose jobs the tests run by hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from feeds.fetch import Fetcher
from relay.bot.app import App, build_application, ensure_admins
from relay.bot.services import Services
from relay.settings import Settings
from relay.worker import Worker
from storage.engine import Database
from tests.support.builders import T0, Clock, relay_settings
from tests.support.fake_telegram import TOKEN, FakeTelegram, SentMessage

CHANNEL = -1001234567890
ADMIN = 1000


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
        answered = len(self.fake.answered_callbacks)
        self.fake.user_presses(user_id, message, data, language_code=lang, first_name=name)
        await self.fake.wait_for_async(lambda: len(self.fake.answered_callbacks) > answered, 5)
        await asyncio.sleep(0.15)
        return self.new_messages(message.chat_id)

    async def replies(self, chat_id: int, *, wait: float = 5.0) -> list[SentMessage]:
        """Wait for at least one new message in `chat_id`, then for the bot to go quiet."""
        seen = self._seen.get(chat_id, 0)
        await self.fake.wait_for_async(lambda: len(self.fake.sent(chat_id)) > seen, wait)
        count = -1
        while count != len(self.fake.sent(chat_id)):
            count = len(self.fake.sent(chat_id))
            await asyncio.sleep(0.15)
        return self.new_messages(chat_id)

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


def harness_settings(fake: FakeTelegram, **changes: Any) -> Settings:
    return relay_settings(
        telegram_token=TOKEN,
        telegram_api_base_url=fake.base_url,
        channel=str(CHANNEL),
        admins=(ADMIN,),
        **changes,
    )


@pytest.fixture
async def bot(db: Database, telegram: FakeTelegram) -> AsyncIterator[Harness]:
    settings = harness_settings(telegram)
    clock = Clock(T0)
    ensure_admins(db, settings)
    async with Fetcher(settings.fetch) as fetcher:
        services = Services(settings, db, fetcher, clock, channel_id=CHANNEL)
        app = build_application(services)
        async with app:
            worker = Worker(settings, db, app.bot, clock, channel_id=CHANNEL)
            await app.start()
            assert app.updater is not None
            await app.updater.start_polling(poll_interval=0.0, timeout=timedelta(seconds=1))
            try:
                yield Harness(telegram, app, services, worker, clock, db, settings)
            finally:
                await app.updater.stop()
                await app.stop()
                await worker.stop()
