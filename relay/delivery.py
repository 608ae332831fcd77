"""What to do when a send fails: pure rules, handed a plain description of the failure.

The sender converts python-telegram-bot's exceptions into a `Failure` at its boundary;
the rules here decide, and are tested with tables:

    rate_limited (429)    wait retry_after, retry; never dropped
    blocked (403)         the chat is gone for us: failed, subscriber marked inactive
    migrated              follow the new chat id, retry at once
    bad_markup (400)      resend once as plain text, then give up
    not_modified (400)    an edit that changes nothing: done
    bad_request (400)     permanent: failed (chat not found, message to edit not found...)
    not_sent              the request never left, or its body was never fully written
                          (connect/pool/write failure, refused): retry with backoff
    unavailable (502/503) retry with backoff: Telegram's front servers answer these when no
                          backend took the request (Bad Gateway: none reachable; Service
                          Unavailable: overloaded or restarting), so it was not processed.
                          The residual risk (a backend that died after sending) is small next
                          to losing every message of an outage.
    ambiguous             the request was written and no usable answer came: a read timeout,
                          a cut connection, 500 (the backend failed while handling it) or 504
                          (the backend took it and did not answer in time). Telegram may have
                          delivered it and has no idempotency key, so never retried blindly:
                          unknown, and the admins are told
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class FailureKind(StrEnum):
    RATE_LIMITED = "rate_limited"
    BLOCKED = "blocked"
    MIGRATED = "migrated"
    BAD_MARKUP = "bad_markup"
    NOT_MODIFIED = "not_modified"
    BAD_REQUEST = "bad_request"
    NOT_SENT = "not_sent"
    UNAVAILABLE = "unavailable"
    AMBIGUOUS = "ambiguous"


class Action(StrEnum):
    RETRY = "retry"  # back to pending at `at`
    RETRY_PLAIN = "retry_plain"  # back to pending now, as plain text
    RETRY_ELSEWHERE = "retry_elsewhere"  # back to pending now, to `new_chat_id`
    DONE = "done"  # treat as sent
    FAIL = "fail"  # permanent failure
    BLOCKED = "blocked"  # permanent, and the chat must cost nothing afterwards
    UNKNOWN = "unknown"  # may have been delivered: stop, record, tell no one twice


@dataclass(frozen=True, slots=True)
class Failure:
    kind: FailureKind
    description: str = ""
    retry_after: float | None = None
    new_chat_id: int | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    action: Action
    at: datetime | None = None
    new_chat_id: int | None = None


MAX_NOT_SENT_BACKOFF = timedelta(minutes=10)
_MARKUP_ERRORS = ("can't parse entities", "can't find end", "unsupported start tag")


def resolve(failure: Failure, *, attempts: int, plain_already: bool, now: datetime) -> Resolution:
    """The next step for a delivery whose send failed with `failure`."""
    kind = failure.kind
    if kind is FailureKind.RATE_LIMITED:
        return Resolution(Action.RETRY, at=now + timedelta(seconds=failure.retry_after or 1))
    if kind is FailureKind.BLOCKED:
        return Resolution(Action.BLOCKED)
    if kind is FailureKind.MIGRATED and failure.new_chat_id is not None:
        return Resolution(Action.RETRY_ELSEWHERE, at=now, new_chat_id=failure.new_chat_id)
    if kind is FailureKind.BAD_MARKUP and not plain_already:
        return Resolution(Action.RETRY_PLAIN, at=now)
    if kind is FailureKind.NOT_MODIFIED:
        return Resolution(Action.DONE)
    if kind in (FailureKind.NOT_SENT, FailureKind.UNAVAILABLE):
        return Resolution(Action.RETRY, at=now + not_sent_backoff(attempts))
    if kind is FailureKind.AMBIGUOUS:
        return Resolution(Action.UNKNOWN)
    return Resolution(Action.FAIL)


def not_sent_backoff(attempts: int) -> timedelta:
    """2, 4, 8 … seconds, capped: Telegram or the network is down, not the message."""
    return min(timedelta(seconds=2 ** min(max(attempts, 1), 10)), MAX_NOT_SENT_BACKOFF)


RETRYABLE_STATUSES = frozenset({502, 503})


def classify_server_error(status: int) -> FailureKind:
    """A 5xx answer: retry only what was certainly not processed (see the table above)."""
    return FailureKind.UNAVAILABLE if status in RETRYABLE_STATUSES else FailureKind.AMBIGUOUS


def classify_bad_request(description: str) -> FailureKind:
    """Which 400 this is, from Telegram's description."""
    text = description.lower()
    if any(marker in text for marker in _MARKUP_ERRORS):
        return FailureKind.BAD_MARKUP
    if "message is not modified" in text:
        return FailureKind.NOT_MODIFIED
    return FailureKind.BAD_REQUEST


def post_url(channel: str | None, channel_id: int, message_id: int) -> str | None:
    """The public link of a channel post: t.me/<name>/<id>, or t.me/c/<id>/<id> if private."""
    if channel and channel.startswith("@"):
        return f"https://t.me/{channel[1:]}/{message_id}"
    raw = str(channel_id)
    if raw.startswith("-100"):
        return f"https://t.me/c/{raw[4:]}/{message_id}"
    return None
