"""The worker: APScheduler jobs that poll, publish, compose digests, send and tidy up.

APScheduler's AsyncIOScheduler is the scheduler python-telegram-bot's job queue runs on;
we use it directly so the worker runs with or without the bot in the same process.
Every job is idempotent and safe to run in several processes sharing PostgreSQL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from telegram import Bot

from feeds.fetch import Fetcher
from relay.clock import Clock, utcnow
from relay.digest_job import send_due_digests, send_weekly_roundup
from relay.parsing import ParserPool
from relay.poller import Poller, PollReport
from relay.publisher import publish_next
from relay.sender import Sender
from relay.settings import Settings
from storage import outbox
from storage.engine import Database

log = logging.getLogger(__name__)

KEEP_DELIVERIES = timedelta(days=30)


@dataclass
class Worker:
    """The relay's background work, wired once; `start()` schedules the jobs."""

    settings: Settings
    db: Database
    bot: Bot
    clock: Clock = utcnow
    channel_id: int | None = None
    fetcher: Fetcher = field(init=False)
    parsers: ParserPool = field(init=False)
    poller: Poller = field(init=False)
    sender: Sender = field(init=False)
    scheduler: AsyncIOScheduler = field(init=False)

    def __post_init__(self) -> None:
        polling = self.settings.polling
        self.fetcher = Fetcher(self.settings.fetch)
        self.parsers = ParserPool(polling.parse_workers, polling.parse_deadline_seconds)
        self.poller = Poller(self.db, self.fetcher, self.parsers, self.settings, self.clock)
        self.sender = Sender(self.db, self.bot, self.clock, channel=self.settings.channel)
        self.scheduler = AsyncIOScheduler(timezone="UTC")

    async def resolve_channel(self) -> int | None:
        """The channel's numeric id (an @name is looked up once)."""
        channel = self.settings.channel
        if channel and self.channel_id is None:
            if channel.lstrip("-").isdigit():
                self.channel_id = int(channel)
            else:
                self.channel_id = (await self.bot.get_chat(channel)).id
        return self.channel_id

    async def start(self) -> None:
        """Recover what a crash left in flight, then schedule every job."""
        self.recover()
        await self.resolve_channel()
        jobs = [
            (self.poll, 30),
            (self.publish, 60),
            (self.digests, 60),
            (self.send, 1),
            (self.maintain, 300),
        ]
        for job, seconds in jobs:
            self.scheduler.add_job(
                job,
                "interval",
                seconds=seconds,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=seconds * 10,
            )
        self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.parsers.close()
        await self.fetcher.__aexit__(None, None, None)

    def recover(self) -> None:
        """Claims that expired go back to the queue; sends cut mid-way become unknown."""
        back, unknown = outbox.recover_expired(self.db, self.clock())
        if back or unknown:
            log.warning("recovered deliveries: %d requeued, %d unknown", back, unknown)

    async def poll(self) -> PollReport:
        report = await self.poller.poll_once()
        if report.claimed:
            log.info("poll: %s", report)
        return report

    async def publish(self) -> None:
        if self.channel_id is not None:
            publish_next(self.db, self.settings, self.channel_id, self.clock())

    async def digests(self) -> None:
        now = self.clock()
        send_due_digests(self.db, now)
        if self.channel_id is not None:
            send_weekly_roundup(self.db, self.settings, self.channel_id, now)

    async def send(self) -> None:
        await self.sender.drain(max_seconds=60)

    async def maintain(self) -> None:
        self.recover()
        now = self.clock()
        self.db.optimize()
        removed = outbox.delete_finished_before(self.db, now - KEEP_DELIVERIES)
        if removed:
            log.info("removed %d old deliveries", removed)
