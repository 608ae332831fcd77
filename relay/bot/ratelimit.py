"""The bot's replies within Telegram's flood limits, and updates handled chat by chat.

`ChatRateLimiter` is python-telegram-bot's rate limiter for the bot. Every message-sending
call (sendMessage, sendPhoto, editMessageText, …) waits its turn under the policy of
`relay.limits.SendBudget`: one message a second per chat (private chats too), twenty a
minute per group, 29 a second overall — where a message on its way counts as sent now
(`OverallWindow`: Telegram counts it somewhere between its request and its answer).
Calls to one chat go one at a time, in order. A 429 pauses that chat for `retry_after` and
the call is made once more; a second 429 reaches the caller. Other calls
(answerCallbackQuery, getMe, setMyCommands…) pass straight through: Telegram does not
count them as messages.

`PerChatProcessor` handles the updates of one chat in order and different chats at the same
time: handled one by one, a chat whose reply must wait (a group at its twenty a minute)
would hold up everybody else. One chat's updates still come one at a time, which PTB's
conversations need.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from telegram import Update
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter, BaseUpdateProcessor

from relay.limits import GLOBAL_PER_SECOND, SendBudget

log = logging.getLogger(__name__)

SENDING = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendAudio",
        "sendDocument",
        "sendVideo",
        "sendAnimation",
        "sendVoice",
        "sendVideoNote",
        "sendPaidMedia",
        "sendMediaGroup",
        "sendLocation",
        "sendVenue",
        "sendContact",
        "sendPoll",
        "sendChecklist",
        "sendDice",
        "sendSticker",
        "sendInvoice",
        "sendGame",
        "copyMessage",
        "copyMessages",
        "forwardMessage",
        "forwardMessages",
        "editMessageText",
        "editMessageCaption",
        "editMessageMedia",
        "editMessageReplyMarkup",
        "editMessageLiveLocation",
        "editMessageChecklist",
        "stopMessageLiveLocation",
        "stopPoll",
    }
)
# Targets without a numeric chat id (an @channel, an inline message) share one queue.
OTHER_TARGETS = 0
# A longer pause is passed on to the caller: a handler should not hang that long.
MAX_RETRY_WAIT = 60.0
MAX_CONCURRENT_UPDATES = 64  # handlers running at once (different chats)
UNBOUNDED = 1_000_000

JSONDict = dict[str, Any]
Result = bool | JSONDict | list[JSONDict]
Request = Callable[..., Coroutine[Any, Any, Result]]


@dataclass
class _Queue:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0


class ChatTurns:
    """One holder at a time per chat, first come first served; idle chats are forgotten."""

    def __init__(self) -> None:
        self._chats: dict[int, _Queue] = {}

    @property
    def idle(self) -> bool:
        """True when nobody holds or waits for a turn."""
        return not self._chats

    @contextlib.asynccontextmanager
    async def turn(self, chat: int) -> AsyncIterator[None]:
        queue = self._chats.setdefault(chat, _Queue())
        queue.waiting += 1
        try:
            async with queue.lock:
                yield
        finally:
            queue.waiting -= 1
            if not queue.waiting:
                del self._chats[chat]


class OverallWindow:
    """At most `per_second` messages in any second as Telegram may have counted them: each
    from its request until a second after its answer."""

    def __init__(self, per_second: int = GLOBAL_PER_SECOND) -> None:
        self.per_second = per_second
        self._on_their_way = 0
        self._answered: deque[float] = deque()  # answer times, oldest first

    def ready_at(self, now: float) -> float | None:
        """When the next message may go; None until one on its way is answered."""
        while self._answered and self._answered[0] <= now - 1.0:
            self._answered.popleft()
        excess = self._on_their_way + len(self._answered) - self.per_second
        if excess < 0:
            return now
        if self._on_their_way >= self.per_second:
            return None
        return self._answered[excess] + 1.0  # once that many answers are a second old

    def start(self) -> None:
        self._on_their_way += 1

    def answered(self, now: float) -> None:
        self._on_their_way -= 1
        self._answered.append(now)


class ChatRateLimiter(BaseRateLimiter[None]):
    """Waits rather than fails: per chat, overall, and once more after a 429."""

    def __init__(
        self,
        budget: SendBudget | None = None,
        *,
        max_retry_wait: float = MAX_RETRY_WAIT,
    ) -> None:
        self.budget = budget or SendBudget()
        self.max_retry_wait = max_retry_wait
        self._turns = ChatTurns()
        self._overall = OverallWindow(self.budget.global_per_second)
        self._overall_turn = asyncio.Lock()
        self._answer = asyncio.Event()  # set (and replaced) whenever a message is answered

    async def initialize(self) -> None:
        """Nothing to set up: the budget lives in memory."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    @property
    def idle(self) -> bool:
        """True when no message is waiting for its turn or on its way."""
        return self._turns.idle

    async def process_request(
        self,
        callback: Request,
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> Result:
        """Make the call in its chat's turn; after one 429, wait as told and make it again."""
        if endpoint not in SENDING:
            return await callback(*args, **kwargs)
        chat = chat_key(data.get("chat_id"))
        async with self._turns.turn(chat):
            try:
                return await self._send(chat, callback, args, kwargs)
            except RetryAfter as flood:
                wait = seconds(flood.retry_after)
                if wait > self.max_retry_wait:
                    raise
                log.info("%s to %s refused (429): again in %.0f s", endpoint, chat, wait)
                self.budget.penalise(chat, wait, time.monotonic())
                return await self._send(chat, callback, args, kwargs)

    async def _send(
        self, chat: int, callback: Request, args: Any, kwargs: dict[str, Any]
    ) -> Result:
        started = await self._wait_for_budget(chat)
        try:
            return await callback(*args, **kwargs)
        finally:
            # Telegram counted it somewhere before the answer: count it from the answer.
            self._answered(chat, started)

    async def _wait_for_budget(self, chat: int) -> float:
        """Sleep until `chat` may receive a message; the send is counted from that moment."""
        now = time.monotonic()
        await asyncio.sleep(max(0.0, self.budget.ready_at(chat, now) - now))  # its own pace first
        async with self._overall_turn:  # then the overall budget, first come first served
            while True:
                now = time.monotonic()
                overall = self._overall.ready_at(now)
                if overall is None:
                    await self._answer.wait()
                    continue
                ready = max(overall, self.budget.ready_at(chat, now))
                if ready <= now:
                    self.budget.record(chat, now)
                    self._overall.start()
                    return now
                await asyncio.sleep(ready - now)

    def _answered(self, chat: int, started: float) -> None:
        now = time.monotonic()
        self.budget.complete(chat, started, now)
        self._overall.answered(now)
        self._answer.set()
        self._answer = asyncio.Event()


def chat_key(chat_id: object) -> int:
    """The chat a call goes to, as the budget counts it."""
    if isinstance(chat_id, int):
        return chat_id
    if isinstance(chat_id, str) and chat_id.lstrip("-").isascii() and chat_id.lstrip("-").isdigit():
        return int(chat_id)
    return OTHER_TARGETS


def seconds(retry_after: timedelta | float) -> float:
    """RetryAfter.retry_after in seconds (a timedelta with PTB_TIMEDELTA, else a number)."""
    if isinstance(retry_after, timedelta):
        return retry_after.total_seconds()
    return float(retry_after)


class PerChatProcessor(BaseUpdateProcessor):
    """Updates of one chat in order; up to `max_running` chats' handlers at the same time."""

    def __init__(self, max_running: int = MAX_CONCURRENT_UPDATES) -> None:
        # PTB's own bound is taken before our per-chat turn: a chat with many updates
        # waiting would hold every slot. It is left wide open; ours comes after the turn.
        super().__init__(UNBOUNDED)
        self._running = asyncio.Semaphore(max_running)
        self._turns = ChatTurns()

    @property
    def idle(self) -> bool:
        """True when no update is being handled or waiting for its chat."""
        return self._turns.idle

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Handle the update in its chat's turn, when a slot is free."""
        async with self._turns.turn(update_chat(update)), self._running:
            await coroutine

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


def update_chat(update: object) -> int:
    """The chat an update belongs to (the person's, when it has no chat)."""
    if isinstance(update, Update):
        if update.effective_chat is not None:
            return update.effective_chat.id
        if update.effective_user is not None:
            return update.effective_user.id
    return OTHER_TARGETS
