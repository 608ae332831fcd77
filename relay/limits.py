"""Our own Telegram send budget: when may a chat receive its next message, without a 429.

Telegram's limits are unpublished and approximate: ≈30 messages/s overall, ≈1/s per chat,
20 per minute per group or channel. We stay under them with margin:

- overall: at most 29 sends in any rolling second (one below 30; bursts allowed, so a sender
  that wakes a little late catches up instead of losing throughput);
- private chat (chat_id > 0): at least 1 s between two sends;
- group or channel (chat_id < 0): at least 1 s apart and at most 20 in any rolling 60 s.

Times are monotonic seconds (`time.monotonic()`) handed in by the caller; every call is O(1)
amortised (bounded deques, idle chats pruned now and then).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

GLOBAL_PER_SECOND = 29
PRIVATE_INTERVAL = 1.0
GROUP_PER_MINUTE = 20
GROUP_WINDOW = 60.0
_PRUNE_EVERY = 4096  # records between sweeps of idle chats


class SendBudget:
    """The sending history that matters for rate limits, and the pauses imposed by 429s."""

    def __init__(
        self,
        *,
        global_per_second: int = GLOBAL_PER_SECOND,
        chat_interval: float = PRIVATE_INTERVAL,
        group_per_minute: int = GROUP_PER_MINUTE,
        group_window: float = GROUP_WINDOW,
    ) -> None:
        self.global_per_second = global_per_second
        self.chat_interval = chat_interval
        self.group_per_minute = group_per_minute
        self.group_window = group_window
        self._recent: deque[float] = deque(maxlen=global_per_second)
        self._chats: dict[int, deque[float]] = {}  # last sends, newest right
        self._paused_until: dict[int, float] = {}
        self._all_paused_until = float("-inf")
        self._records = 0

    def ready_at(self, chat_id: int, now: float) -> float:
        """The earliest monotonic time ≥ `now` at which `chat_id` may receive a message."""
        return max(self.global_ready_at(now), self._chat_ready_at(chat_id, now))

    def global_ready_at(self, now: float) -> float:
        """The earliest time ≥ `now` at which any chat may receive a message."""
        ready = max(now, self._all_paused_until)
        if len(self._recent) == self.global_per_second:
            ready = max(ready, self._recent[0] + 1.0)
        return ready

    def _chat_ready_at(self, chat_id: int, now: float) -> float:
        ready = max(now, self._paused_until.get(chat_id, now))
        sends = self._chats.get(chat_id)
        if sends:
            ready = max(ready, sends[-1] + self.chat_interval)
            if chat_id < 0 and len(sends) == self.group_per_minute:
                ready = max(ready, sends[0] + self.group_window)
        return ready

    def record(self, chat_id: int, now: float) -> None:
        """Note a send to `chat_id` at `now` (call it when the request starts)."""
        self._recent.append(now)
        sends = self._chats.get(chat_id)
        if sends is None:
            # Private chats only need their last send; groups their last `group_per_minute`.
            sends = deque(maxlen=self.group_per_minute if chat_id < 0 else 1)
            self._chats[chat_id] = sends
        sends.append(now)
        self._records += 1
        if self._records % _PRUNE_EVERY == 0:
            self._prune(now)

    def complete(self, chat_id: int, started: float, finished: float) -> None:
        """A send recorded at `started` got its answer at `finished`: count it from then.

        Telegram counts a message when the request reaches it, somewhere between the two;
        moving the stamp to the answer keeps our windows on the safe side of theirs.
        """
        _move_stamp(self._recent, started, finished)
        sends = self._chats.get(chat_id)
        if sends is not None:
            _move_stamp(sends, started, finished)

    def penalise(self, chat_id: int, retry_after: float, now: float) -> None:
        """A 429 for `chat_id`: nothing more to that chat for `retry_after` seconds."""
        until = now + max(retry_after, 0.0)
        self._paused_until[chat_id] = max(self._paused_until.get(chat_id, until), until)

    def pause_all(self, retry_after: float, now: float) -> None:
        """A 429 that is not about one chat (flood control): everyone waits."""
        self._all_paused_until = max(self._all_paused_until, now + max(retry_after, 0.0))

    def _prune(self, now: float) -> None:
        """Forget chats whose history no longer constrains anything (bounded memory)."""
        horizon = now - max(self.group_window, self.chat_interval)
        idle = [chat for chat, sends in self._chats.items() if sends[-1] < horizon]
        for chat in idle:
            del self._chats[chat]
        self._paused_until = {c: t for c, t in self._paused_until.items() if t > now}


def _move_stamp(stamps: deque[float], old: float, new: float) -> None:
    """Replace one `old` stamp with `new`, keeping the deque sorted (it is short)."""
    try:
        stamps.remove(old)
    except ValueError:
        return  # already pushed out of a full window: nothing to move
    index = len(stamps)
    while index > 0 and stamps[index - 1] > new:
        index -= 1
    stamps.insert(index, new)


def pick_sendable(
    pending: Sequence[tuple[int, int]], budget: SendBudget, now: float
) -> list[tuple[int, int]]:
    """The (delivery_id, chat_id) pairs that may be sent at `now`, in `pending` order.

    Each pick is recorded in `budget` as sent at `now`, so a chat gets at most one message per
    call and the global budget is never exceeded; the caller sends exactly what is returned.
    """
    picked: list[tuple[int, int]] = []
    for delivery_id, chat_id in pending:
        if budget.global_ready_at(now) > now:
            break  # the overall budget is spent: nothing else can go now
        if budget.ready_at(chat_id, now) <= now:
            budget.record(chat_id, now)
            picked.append((delivery_id, chat_id))
    return picked
