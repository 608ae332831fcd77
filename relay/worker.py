"""The worker: APScheduler jobs that poll, publish, compose digests and tidy up, and the
sender's loop that drains the outbox.

APScheduler's AsyncIOScheduler is the scheduler python-telegram-bot's job queue runs on;
we use it directly so the worker runs with or without the bot. With the bot in the same
process, the worker is handed the job queue's scheduler: one scheduler, not two.
Every job is idempotent and safe to run in several processes sharing PostgreSQL, and
runs once at start: a relay restarted more often than a job's interval still does it.
The sender is a loop of its own, not a job: a long drain is normal, and only the process
holding the sending lease sends (see `relay.sender`). Each job and the send loop run
`watched`: a failure is logged, and one that keeps recurring reaches the admins (see
`relay.job_health`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from telegram import Bot

from feeds.fetch import Fetcher
from relay.clock import Clock, utcnow
from relay.digest_job import compose_due_digests, send_weekly_roundup
from relay.job_health import JobHealth, Verdict, failure_reason
from relay.logs import redact
from relay.notices import enqueue_job_health, enqueue_unknown_report
from relay.parsing import ParserPool
from relay.poller import Poller, PollReport
from relay.publisher import publish_next
from relay.sender import Sender, SendReport
from relay.settings import Settings
from storage import outbox
from storage.engine import Database

log = logging.getLogger(__name__)

KEEP_DELIVERIES = timedelta(days=30)
SEND_IDLE = 1.0  # seconds between drains when the outbox is empty
STANDBY = 3.0  # seconds between lease checks while another process sends
STOP_GRACE = 20.0  # seconds for the requests in flight to be answered on stop


@dataclass
class Worker:
    """The relay's background work, wired once; `start()` schedules the jobs."""

    settings: Settings
    db: Database
    bot: Bot
    clock: Clock = utcnow
    channel_id: int | None = None
    scheduler: AsyncIOScheduler = field(default_factory=lambda: AsyncIOScheduler(timezone="UTC"))
    fetcher: Fetcher = field(init=False)
    parsers: ParserPool = field(init=False)
    poller: Poller = field(init=False)
    sender: Sender = field(init=False)
    health: JobHealth = field(init=False, default_factory=JobHealth)
    _sending: asyncio.Task[None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        polling = self.settings.polling
        self.fetcher = Fetcher(self.settings.fetch)
        self.parsers = ParserPool.from_settings(polling)
        self.poller = Poller(self.db, self.fetcher, self.parsers, self.settings, self.clock)
        self.sender = Sender(self.db, self.bot, self.clock, channel=self.settings.channel)

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
        """Schedule every job (each runs once now), and start the sender's loop."""
        await self.resolve_channel()
        jobs = [
            (self.poll, 30),
            (self.publish, 60),
            (self.digests, 60),
            (self.maintain, 300),
        ]
        first = datetime.now(UTC)
        for job, seconds in jobs:
            self.scheduler.add_job(
                self.watched(job.__name__, job),
                "interval",
                seconds=seconds,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=seconds * 10,
                next_run_time=first,
            )
        if not self.scheduler.running:  # the bot's job queue may have started it
            self.scheduler.start()
        self._sending = asyncio.create_task(self._send_forever())

    async def stop(self) -> None:
        """Let the requests in flight be answered, give the sending lease up, stop."""
        if self._sending is not None:
            self.sender.stop_soon()
            try:
                await asyncio.wait_for(self._sending, STOP_GRACE)
            except TimeoutError:
                log.warning("stopped with sends in flight: they will be reported as unknown")
            self.sender.release()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.parsers.close()
        await self.fetcher.__aexit__(None, None, None)

    async def _send_forever(self) -> None:
        """Drain, pause, drain…: until `stop()`; a failure costs a pause, not the loop."""
        send = self.watched("send", self.send)
        while not self.sender.stopping:
            report = await send() or SendReport(standby=True)  # failed: a pause
            if not self.sender.stopping:
                await asyncio.sleep(STANDBY if report.standby else SEND_IDLE)

    def watched(self, name: str, job: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        """`job`, its failures logged and counted: the admins hear of one that keeps failing
        the same way, and of its recovery. A failed run returns None; the next one tries again."""

        async def run() -> Any:
            try:
                result = await job()
            except Exception as exc:
                log.exception("job failed", extra={"job": name})
                self._tell_admins(name, self.health.failed(name, failure_reason(exc)))
                return None
            self._tell_admins(name, self.health.succeeded(name))
            return result

        return run

    def _tell_admins(self, job: str, verdict: Verdict) -> None:
        if verdict is Verdict.NOTHING:
            return
        last = self.health.last_reason(job) if verdict is Verdict.ALERT else None
        if last is not None:
            last = redact(last)
            log.error("job keeps failing; telling the admins", extra={"job": job, "reason": last})
        else:
            log.info("job works again; telling the admins", extra={"job": job})
        try:
            with self.db.write() as session:
                enqueue_job_health(
                    session, job, self.clock(), reason=last, runs=self.health.alert_after
                )
        except Exception:
            # The database itself may be what fails: then the log is all there is.
            log.exception("could not tell the admins", extra={"job": job})

    async def poll(self) -> PollReport:
        report = await self.poller.poll_once()
        if report.claimed:
            log.info("poll cycle", extra=poll_fields(report))
        return report

    async def publish(self) -> None:
        if self.channel_id is not None:
            publish_next(self.db, self.settings, self.channel_id, self.clock())

    async def digests(self) -> None:
        now = self.clock()
        await compose_due_digests(self.db, now)
        if self.channel_id is not None:
            send_weekly_roundup(self.db, self.settings, self.channel_id, now)

    async def send(self) -> SendReport:
        """One drain of the outbox; then the admins hear of sends that may be lost."""
        report = await self.sender.drain(max_seconds=60)
        if report.failures or report.unknown or report.interrupted:
            log.info("send failures", extra=send_failure_fields(report))
        if report.interrupted or report.unknown:
            with self.db.write() as session:
                enqueue_unknown_report(session, self.clock())
        return report

    async def maintain(self) -> None:
        now = self.clock()
        self.db.optimize()
        removed = outbox.delete_finished_before(self.db, now - KEEP_DELIVERIES)
        if removed:
            log.info("old deliveries removed", extra={"removed": removed})


def poll_fields(report: PollReport) -> dict[str, Any]:
    """A poll cycle's counts, for one log line (not the raw dataclass)."""
    return {
        "claimed": report.claimed,
        "changed": report.changed,
        "not_modified": report.not_modified,
        "failed": report.failed,
        "failed_by_code": dict(sorted(report.errors.items())),
        "new": report.new_items,
        "queued": report.queued,
        "seconds": round(report.seconds, 2),
    }


def send_failure_fields(report: SendReport) -> dict[str, Any]:
    """One drain's failed sends by kind, and those whose fate is unknown."""
    return {
        "failed_by_kind": dict(sorted(report.failures.items())),
        "unknown": report.unknown + sum(report.interrupted.values()),
        "sent": report.sent,
    }
