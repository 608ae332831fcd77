"""Know when a Telegram request has left, and how it was answered.

The outbox marks a delivery `sending` (committed) just before its request: a crash after
that mark is ambiguous. To keep that window to one request at a time, the sender waits
until the request's body is written before it marks the next delivery. `WireTransport`
wraps httpx's transport; for a request made under a `WireWatch` it signals when the body
is on the wire (httpcore's trace events) and records the answer's HTTP status, which
python-telegram-bot otherwise folds into an error message. A request whose body was never
fully written cannot have been processed: the sender may retry it safely.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from telegram import Bot
from telegram.request import HTTPXRequest

T = TypeVar("T")

_WATCH: contextvars.ContextVar[WireWatch | None] = contextvars.ContextVar("wire", default=None)
_BODY_WRITTEN = ("http11.send_request_body.complete", "http2.send_request_body.complete")

SEND_READ_TIMEOUT = 15.0  # a slow answer is still an answer: fewer sends end `unknown`
SEND_POOL = 64


@dataclass(slots=True)
class WireWatch:
    """What the transport saw of one request."""

    written: asyncio.Event = field(default_factory=asyncio.Event)  # on the wire, or over
    watched: bool = False  # a WireTransport saw the request (else the flags below say nothing)
    on_wire: bool = False  # the whole body was written
    status: int | None = None  # the HTTP status of the answer, if one came

    def start(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run `coro` (one Bot API call) as a task whose requests report to this watch."""
        context = contextvars.copy_context()
        context.run(_WATCH.set, self)
        return asyncio.get_running_loop().create_task(coro, context=context)

    async def until_written(self, request: asyncio.Future[Any]) -> None:
        """Wait until the body is written or the request is over, whichever comes first."""
        waiter = asyncio.ensure_future(self.written.wait())
        try:
            await asyncio.wait({waiter, request}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()


class WireTransport(httpx.AsyncBaseTransport):
    """httpx's transport, reporting to the current `WireWatch` (if any)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        watch = _WATCH.get()
        if watch is None:
            return await self._inner.handle_async_request(request)

        async def trace(event: str, _info: dict[str, Any]) -> None:
            if event in _BODY_WRITTEN:
                watch.on_wire = True
                watch.written.set()

        watch.watched = True
        request.extensions = {**request.extensions, "trace": trace}
        try:
            response = await self._inner.handle_async_request(request)
            watch.status = response.status_code
            return response
        finally:
            watch.written.set()

    async def aclose(self) -> None:
        await self._inner.aclose()


def sender_bot(
    token: str, base_url: str | None = None, *, read_timeout: float = SEND_READ_TIMEOUT
) -> Bot:
    """A Bot for the outbox's sender: its own connection pool, watched requests."""
    inner = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=SEND_POOL, max_keepalive_connections=SEND_POOL)
    )
    request = HTTPXRequest(
        connection_pool_size=SEND_POOL,
        read_timeout=read_timeout,
        httpx_kwargs={"transport": WireTransport(inner)},
    )
    if base_url:
        return Bot(token, base_url=base_url, request=request)
    return Bot(token, request=request)


def token_key(token: str) -> str:
    """A stable, non-secret name for a bot token (the sender's lease is per token)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]
