"""Parse fetched bodies off the event loop, in worker processes, with a deadline each.

A hostile document (quadratic regex paths, gigantic trees) must not stall the worker:
each parse runs in a process pool and is abandoned after its deadline; the pool is then
torn down (the stuck process killed) and rebuilt, and the other parses that were in
flight are retried once in the new pool.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from dataclasses import dataclass
from multiprocessing.pool import Pool
from typing import Any

from feeds.errors import ParseError
from feeds.keys import fingerprint, identity_keys, story_key
from feeds.models import ParsedFeed
from feeds.pages import parse_page
from feeds.parse import detect_kind, parse_feed


class ParseTimeoutError(ParseError):
    code = "parse_timeout"


class _PoolRestartedError(Exception):
    """The pool was rebuilt while this parse was in flight: try again."""


@dataclass(frozen=True, slots=True)
class ParseJob:
    url: str
    content: bytes
    content_type: str | None
    charset: str | None
    page: bool  # a page feed (read the HTML itself) rather than a feed
    fingerprints: bool = False  # a source's first read: every item is new, fingerprint here


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """A parsed document with the identity and story keys of its items, in document order.

    Content fingerprints cost more (≈0.3 ms an item) and only matter for new items: they
    are computed here, off the event loop, on a source's first read (every item is new),
    and otherwise by the ingest step for the few new items alone.
    """

    feed: ParsedFeed
    identities: tuple[str, ...]
    story_keys: tuple[str | None, ...]
    fingerprints: tuple[int | None, ...] | None = None


def parse_document(job: ParseJob) -> ParsedDocument:
    """Parse a body and compute its keys (runs in a worker process)."""
    if job.page and detect_kind(job.content, job.content_type) == "html":
        feed = parse_page(job.content, job.url)
    else:
        feed = parse_feed(
            job.content,
            job.url,
            content_type=job.content_type,
            charset=job.charset,
            with_content=False,
        )
    prints = None
    if job.fingerprints:
        prints = tuple(fingerprint(item.title, item.summary) for item in feed.items)
    return ParsedDocument(
        feed=feed,
        identities=tuple(identity_keys(feed.items)),
        story_keys=tuple(story_key(item.link) for item in feed.items),
        fingerprints=prints,
    )


class ParserPool:
    """`await pool.parse(job)`; `workers=0` parses in a thread (no isolation: dev, tests)."""

    def __init__(self, workers: int, deadline: float) -> None:
        self.workers = workers
        self.deadline = deadline
        self._pool: Pool | None = None
        self._in_flight: set[asyncio.Future[Any]] = set()
        self.restarts = 0

    async def parse(self, job: ParseJob) -> ParsedDocument:
        """Parse `job` within the deadline; ParseTimeoutError when it takes too long."""
        if self.workers <= 0:
            return await asyncio.to_thread(parse_document, job)
        try:
            return await self._run(job)
        except _PoolRestartedError:
            return await self._run(job)

    async def _run(self, job: ParseJob) -> ParsedDocument:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ParsedDocument] = loop.create_future()
        self._in_flight.add(future)
        self._ensure().apply_async(
            parse_document,
            (job,),
            callback=lambda r: loop.call_soon_threadsafe(_settle, future, r, None),
            error_callback=lambda e: loop.call_soon_threadsafe(_settle, future, None, e),
        )
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.deadline)
        except TimeoutError:
            self._restart(except_for=future)
            raise ParseTimeoutError(job.url, f"parsing took over {self.deadline:g}s") from None
        finally:
            self._in_flight.discard(future)

    def _ensure(self) -> Pool:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = context.Pool(self.workers, maxtasksperchild=1000)
        return self._pool

    def _restart(self, except_for: asyncio.Future[Any]) -> None:
        """Kill the stuck process (with its pool); parses in flight are retried."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None
            self.restarts += 1
        for future in list(self._in_flight):
            if future is not except_for and not future.done():
                future.set_exception(_PoolRestartedError())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
