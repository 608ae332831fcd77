"""The sender: drains the outbox into Telegram within our own rate limits.

One sender per bot token at a time, across processes: it holds the lease
`sender:<token>` (renewed while it works; a dead holder on the same host is replaced at
once, a silent one elsewhere when its lease expires), so the rate budget below is the
only one spending Telegram's limits. Holding the lease with nothing in flight, it takes
back every claim first (see `storage.outbox.take_back`).

Each delivery is marked `sending` (committed) immediately before its own request, and
the next one is marked only once that request is on the wire (`relay.wire`): a crash
leaves at most one delivery `unknown` that Telegram never received. Answers are resolved
by the rules of `relay.delivery`. Messages to one chat go one at a time and in order;
python-telegram-bot's exceptions are converted to `Failure` here, at the edge.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
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
from relay.delivery import (
    Action,
    Failure,
    FailureKind,
    classify_bad_request,
    classify_server_error,
    post_url,
    resolve,
)
from relay.limits import SendBudget, pick_sendable
from relay.telegram_html import to_plain_message
from relay.wire import WireWatch, token_key
from storage import items as item_queries
from storage import leases, outbox, people
from storage.engine import Database
from storage.leases import Holder, Lease, Outcome
from storage.values import Delivery, DeliveryState

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=2)
SENDER_LEASE = timedelta(seconds=15)
DEFER_AFTER = 1.0  # seconds: a delivery that must wait longer goes back to the queue


@dataclass(slots=True)
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unknown: int = 0
    rate_limited: int = 0
    standby: bool = False  # another process holds the sending lease
    interrupted: dict[str, int] = field(default_factory=dict)  # taken back as unknown, by kind
    failures: dict[str, int] = field(default_factory=dict)


_process: Holder | None = None


def this_process() -> Holder:
    """This process as a lease holder (one name per process, renewed after a fork)."""
    global _process
    if _process is None or _process.pid != os.getpid():
        host = socket.gethostname()[:60]
        _process = Holder(f"{host}:{os.getpid()}:{secrets.token_hex(4)}", host, os.getpid())
    return _process


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def holder_is_gone(lease: Lease, me: Holder, alive: Callable[[int], bool]) -> bool:
    """A holder on our own host whose process is dead need not be waited for."""
    return (
        lease.holder.host == me.host and lease.holder.pid != me.pid and not alive(lease.holder.pid)
    )


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
        holder: Holder | None = None,
        lease_ttl: timedelta = SENDER_LEASE,
        alive: Callable[[int], bool] = pid_alive,
    ) -> None:
        self.db = db
        self.bot = bot
        self.clock = clock
        self.channel = channel
        self.budget = budget or SendBudget()
        self.monotonic = monotonic
        self.batch = batch
        self.holder = holder or this_process()
        self.lease_name = f"sender:{token_key(bot.token)}"
        self.lease_ttl = lease_ttl
        self.alive = alive
        self._renewed_at = float("-inf")
        self.stopping = False
        self._wire = asyncio.Lock()  # held from "marked sending" until "on the wire"
        self._busy_chats: set[int] = set()
        self._dead_chats: set[int] = set()  # blocked us during this run: send nothing more

    async def drain(self, *, max_seconds: float | None = None) -> SendReport:
        """Send until nothing is due (or `max_seconds` passed); idle without the lease."""
        report = SendReport()
        if not self._hold_lease(force=True):
            report.standby = True
            return report
        report.interrupted = outbox.take_back(self.db)
        if report.interrupted:
            fields = {"unknown_by_kind": report.interrupted}
            log.warning("sends cut short by a stop, now unknown", extra=fields)
        deadline = None if max_seconds is None else self.monotonic() + max_seconds
        while not self.stopping and (deadline is None or self.monotonic() < deadline):
            owner = self.holder.owner
            claimed = outbox.claim_ready(self.db, self.clock(), self.batch, CLAIM_LEASE, owner)
            if not claimed:
                break
            if not await self._send_batch(claimed, report, deadline):
                break
        return report

    def stop_soon(self) -> None:
        """Start nothing new; the requests in flight finish and are recorded."""
        self.stopping = True

    def release(self) -> None:
        """Give the sending lease up (clean stop): the next process starts at once."""
        leases.release(self.db, self.lease_name, self.holder)

    def _hold_lease(self, *, force: bool = False) -> bool:
        """Take or renew the lease (at most every third of its life unless `force`)."""
        now = self.monotonic()
        if not force and now - self._renewed_at < self.lease_ttl.total_seconds() / 3:
            return True
        outcome = leases.acquire(
            self.db,
            self.lease_name,
            self.holder,
            self.clock(),
            self.lease_ttl,
            lambda lease: holder_is_gone(lease, self.holder, self.alive),
        )
        if outcome is Outcome.HELD:
            return False
        if outcome is Outcome.TAKEN:
            log.info("this process now sends for the bot (%s)", self.holder.owner)
        self._renewed_at = now
        return True

    async def _send_batch(
        self, claimed: list[Delivery], report: SendReport, deadline: float | None
    ) -> bool:
        """Send a claimed batch; False when the lease was lost (stop sending)."""
        waiting = list(claimed)
        tasks: set[asyncio.Task[None]] = set()
        holding = True
        try:
            while waiting and not self.stopping:
                if deadline is not None and self.monotonic() >= deadline:
                    break
                if not (holding := self._hold_lease()):
                    log.warning("sending lease lost: another process sends now")
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
        return holding

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
            await self._send_marked(delivery, report, picked)
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

    async def _send_marked(self, delivery: Delivery, report: SendReport, picked: float) -> None:
        """Mark `sending`, start the request, and let the next delivery be marked only once
        this request is on the wire (or over): a crash strands at most one unsent mark."""
        watch = WireWatch()
        async with self._wire:
            marked = await asyncio.to_thread(
                outbox.mark_sending,
                self.db,
                delivery.id,
                self.clock(),
                CLAIM_LEASE,
                self.holder.owner,
            )
            if not marked:
                log.warning("delivery %s: claim taken over, not sent here", delivery.id)
                return
            request = watch.start(self._request(delivery))
            await watch.until_written(request)
        try:
            message = await request
        except TelegramError as exc:
            self.budget.complete(delivery.chat_id, picked, self.monotonic())
            self._failed(delivery, to_failure(exc, watch), report)
        else:
            self.budget.complete(delivery.chat_id, picked, self.monotonic())
            self._succeeded(delivery, message, report)

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
        fields = {"item_id": delivery.item_id, "message_id": message_id}
        log.info("channel post", extra=fields | {"delivery_id": delivery.id})
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


def to_failure(exc: TelegramError, watch: WireWatch | None = None) -> Failure:
    """python-telegram-bot's exception (and what the wire saw) → a plain `Failure`."""
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
        return Failure(_network_kind(exc, watch), text)
    return Failure(FailureKind.BAD_REQUEST, text)


def _network_kind(exc: NetworkError, watch: WireWatch | None) -> FailureKind:
    """Did the request reach Telegram? The wire says for sure when it watched the request:
    a body never fully written cannot have been processed; a 5xx answer has its rule."""
    if watch is not None and watch.watched:
        if not watch.on_wire:
            return FailureKind.NOT_SENT
        if watch.status is not None and watch.status >= 500:
            return classify_server_error(watch.status)
        return FailureKind.AMBIGUOUS
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
