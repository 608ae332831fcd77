"""The sender: drains the outbox into Telegram within our own rate limits.

Each delivery is marked `sending` (committed) right before its request, and resolved
right after by the rules of `relay.delivery`. Messages to one chat go one at a time and
in order; python-telegram-bot's exceptions are converted to `Failure` here, at the edge.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from telegram import Bot, InlineKeyboardMarkup, Message
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from relay import notices
from relay.clock import Clock
from relay.delivery import Action, Failure, FailureKind, classify_bad_request, post_url, resolve
from relay.limits import SendBudget, pick_sendable
from relay.telegram_html import to_plain_message
from storage import items as item_queries
from storage import outbox, people
from storage.engine import Database
from storage.values import Delivery, DeliveryState

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=2)
DEFER_AFTER = 1.0  # seconds: a delivery that must wait longer goes back to the queue


@dataclass(slots=True)
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unknown: int = 0
    rate_limited: int = 0
    failures: dict[str, int] = field(default_factory=dict)


class Sender:
    """`await sender.drain()` sends everything due now, within the limits."""

    def __init__(
        self,
        db: Database,
        bot: Bot,
        clock: Clock,
        *,
        channel: str | None = None,
        budget: SendBudget | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        batch: int = 200,
    ) -> None:
        self.db = db
        self.bot = bot
        self.clock = clock
        self.channel = channel
        self.budget = budget or SendBudget()
        self.monotonic = monotonic
        self.batch = batch
        self._busy_chats: set[int] = set()
        self._dead_chats: set[int] = set()  # blocked us during this run: send nothing more

    async def drain(self, *, max_seconds: float | None = None) -> SendReport:
        """Send until nothing is due (or `max_seconds` passed)."""
        report = SendReport()
        deadline = None if max_seconds is None else self.monotonic() + max_seconds
        while deadline is None or self.monotonic() < deadline:
            claimed = outbox.claim_ready(self.db, self.clock(), self.batch, CLAIM_LEASE)
            if not claimed:
                break
            await self._send_batch(claimed, report, deadline)
        return report

    async def _send_batch(
        self, claimed: list[Delivery], report: SendReport, deadline: float | None
    ) -> None:
        waiting = list(claimed)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while waiting:
                if deadline is not None and self.monotonic() >= deadline:
                    break
                now = self.monotonic()
                free = [(d.id, d.chat_id) for d in waiting if d.chat_id not in self._busy_chats]
                picks = {pid for pid, _chat in pick_sendable(free, self.budget, now)}
                for delivery in [d for d in waiting if d.id in picks]:
                    waiting.remove(delivery)
                    self._busy_chats.add(delivery.chat_id)
                    task = asyncio.create_task(self._send_one(delivery, report, now))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                waiting = self._defer_slow(waiting, now)
                await asyncio.sleep(self._pause(waiting, now, bool(picks)))
        finally:
            if tasks:
                await asyncio.gather(*tasks)
            outbox.release_claims(self.db, [d.id for d in waiting])

    def _defer_slow(self, waiting: list[Delivery], now: float) -> list[Delivery]:
        """Hand back what cannot go within a second (a channel at its 20 a minute, a chat
        paused by a 429) with the time it may go, so it never holds up the batch behind it."""
        slow = {
            d.id: ready - now
            for d in waiting
            if d.chat_id not in self._busy_chats
            and (ready := self.budget.ready_at(d.chat_id, now)) - now > DEFER_AFTER
        }
        if not slow or len(slow) == len(waiting) and not self._busy_chats:
            return waiting  # nothing else to do meanwhile: just wait for them
        wall = self.clock()
        outbox.defer(self.db, [(i, wall + timedelta(seconds=wait)) for i, wait in slow.items()])
        return [d for d in waiting if d.id not in slow]

    def _pause(self, waiting: list[Delivery], now: float, progressed: bool) -> float:
        """Sleep until the earliest waiting chat may receive a message (short, bounded)."""
        if not waiting:
            return 0
        ready = min(self.budget.ready_at(d.chat_id, now) for d in waiting)
        return min(max(ready - now, 0.005 if not progressed else 0), 0.5)

    async def _send_one(self, delivery: Delivery, report: SendReport, picked: float) -> None:
        if delivery.chat_id in self._dead_chats:
            self._busy_chats.discard(delivery.chat_id)
            report.failed += 1
            self._fail(delivery, "chat blocked the bot", blocked=False)
            return
        try:
            outbox.mark_sending(self.db, delivery.id, self.clock(), CLAIM_LEASE)
            try:
                message = await self._request(delivery)
            except TelegramError as exc:
                self.budget.complete(delivery.chat_id, picked, self.monotonic())
                self._failed(delivery, to_failure(exc), report)
            else:
                self.budget.complete(delivery.chat_id, picked, self.monotonic())
                self._succeeded(delivery, message, report)
        except Exception:
            log.exception("delivery %s: unexpected error", delivery.id)
            with self.db.write() as session:
                outbox.mark(
                    session,
                    delivery.id,
                    DeliveryState.UNKNOWN,
                    last_error="unexpected error while sending",
                )
            report.unknown += 1
        finally:
            self._busy_chats.discard(delivery.chat_id)

    async def _request(self, delivery: Delivery) -> Message | bool:
        text = delivery.text
        markup = _markup(delivery.reply_markup)
        parse_mode = delivery.parse_mode
        if delivery.edit_message_id is not None:
            return await self.bot.edit_message_text(
                text,
                chat_id=delivery.chat_id,
                message_id=delivery.edit_message_id,
                parse_mode=parse_mode,
                reply_markup=markup,
                disable_web_page_preview=True,
            )
        return await self.bot.send_message(
            delivery.chat_id,
            text,
            parse_mode=parse_mode,
            reply_markup=markup,
            disable_web_page_preview=delivery.kind != "channel_post",
        )

    def _succeeded(self, delivery: Delivery, message: Message | bool, report: SendReport) -> None:
        report.sent += 1
        now = self.clock()
        message_id = message.message_id if isinstance(message, Message) else None
        with self.db.write() as session:
            outbox.mark(
                session,
                delivery.id,
                DeliveryState.SENT,
                sent_at=now,
                message_id=message_id or delivery.edit_message_id,
                last_error=None,
            )
            if delivery.kind == "channel_post" and delivery.item_id and message_id:
                self._after_channel_post(session, delivery, message_id, now)

    def _after_channel_post(
        self, session: Any, delivery: Delivery, message_id: int, now: datetime
    ) -> None:
        assert delivery.item_id is not None
        item_queries.set_channel_message(session, delivery.item_id, message_id)
        items = item_queries.items_by_id(session, [delivery.item_id])
        if items:
            link = post_url(self.channel, delivery.chat_id, message_id)
            notices.enqueue_published(
                session, items[0].business_id, items[0].id, items[0].title, link, now
            )

    def _failed(self, delivery: Delivery, failure: Failure, report: SendReport) -> None:
        now = self.clock()
        report.failures[failure.kind.value] = report.failures.get(failure.kind.value, 0) + 1
        if failure.kind is FailureKind.RATE_LIMITED:
            report.rate_limited += 1
            self.budget.pause_all(failure.retry_after or 1, self.monotonic())
        result = resolve(
            failure, attempts=delivery.attempts + 1, plain_already=delivery.plain_fallback, now=now
        )
        error = f"{failure.kind.value}: {failure.description}"[:1000]
        self._apply(delivery, result.action, result.at or now, result.new_chat_id, error, report)

    def _apply(
        self,
        delivery: Delivery,
        action: Action,
        at: datetime,
        new_chat: int | None,
        error: str,
        report: SendReport,
    ) -> None:
        if action is Action.RETRY:
            report.retried += 1
            outbox.retry_later(self.db, delivery.id, at, error)
        elif action is Action.RETRY_PLAIN:
            report.retried += 1
            outbox.retry_later(
                self.db,
                delivery.id,
                at,
                error,
                plain_fallback=True,
                parse_mode=None,
                text=to_plain_message(delivery.text),
            )
        elif action is Action.RETRY_ELSEWHERE and new_chat is not None:
            report.retried += 1
            with self.db.write() as session:
                people.move_chat(session, delivery.chat_id, new_chat)
            outbox.retry_later(self.db, delivery.id, at, error, chat_id=new_chat)
        elif action is Action.DONE:
            self._succeeded(delivery, True, report)
        elif action is Action.UNKNOWN:
            report.unknown += 1
            with self.db.write() as session:
                outbox.mark(session, delivery.id, DeliveryState.UNKNOWN, last_error=error)
        else:
            report.failed += 1
            self._fail(delivery, error, blocked=action is Action.BLOCKED)

    def _fail(self, delivery: Delivery, error: str, *, blocked: bool) -> None:
        """Permanent failure; a blocked chat's other pending messages are dropped too."""
        now = self.clock()
        with self.db.write() as session:
            outbox.mark(session, delivery.id, DeliveryState.FAILED, last_error=error)
            if blocked:
                self._dead_chats.add(delivery.chat_id)
                people.mark_blocked(session, delivery.chat_id, now)
                outbox.fail_pending_for_chat(session, delivery.chat_id, "chat blocked the bot")


def to_failure(exc: TelegramError) -> Failure:
    """python-telegram-bot's exception → a plain `Failure` for the rules."""
    text = str(exc)
    if isinstance(exc, RetryAfter):
        return Failure(FailureKind.RATE_LIMITED, text, retry_after=_seconds(exc.retry_after))
    if isinstance(exc, Forbidden):
        return Failure(FailureKind.BLOCKED, text)
    if isinstance(exc, ChatMigrated):
        return Failure(FailureKind.MIGRATED, text, new_chat_id=exc.new_chat_id)
    if isinstance(exc, BadRequest):
        return Failure(classify_bad_request(text), text)
    if isinstance(exc, TimedOut | NetworkError):
        return Failure(_network_kind(exc), text)
    return Failure(FailureKind.BAD_REQUEST, text)


def _network_kind(exc: NetworkError) -> FailureKind:
    """Did the request leave? Only connect/pool failures say for sure that it did not."""
    cause = exc.__cause__
    if isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return FailureKind.NOT_SENT
    if "pool timeout" in str(exc).lower():
        return FailureKind.NOT_SENT
    return FailureKind.AMBIGUOUS


def _seconds(value: Any) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _markup(raw: str | None) -> InlineKeyboardMarkup | None:
    if not raw:
        return None
    data = json.loads(raw)
    return InlineKeyboardMarkup.de_json(data, None)
