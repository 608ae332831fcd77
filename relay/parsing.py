"""Parse fetched bodies off the event loop, in worker processes, each with a deadline and a
memory ceiling.

A hostile document (quadratic regex paths, gigantic trees, entity bombs) must not stall
the relay. Each worker is a process of its own, spoken to through a pipe: it says when it
starts a document, and the deadline runs from then, so time spent queued behind other
documents or waiting for a fresh worker to start never counts against one. A document
past its deadline has its worker killed and replaced; the other workers and their
documents are not touched. A worker's address space is capped (RLIMIT_AS): a document
that needs more fails alone with ParseMemoryError. Workers are also replaced every
`max_tasks` documents (bounds slow leaks), always between two documents, never during one.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from feeds.errors import ParseError
from feeds.keys import fingerprint, identity_keys, story_key
from feeds.models import FetchResult, ParsedFeed
from feeds.pages import parse_page
from feeds.parse import detect_kind, parse_feed
from feeds.reader import parse_fetched
from relay.settings import PollingSettings

T = TypeVar("T")

DEFAULT_MEMORY_MB = 512  # a worker idles at ≈90 MB of address space once imports are done
MAX_TASKS = 1000  # documents per worker before it is replaced
STARTUP_SECONDS = 60.0  # a fresh worker imports the parsers first (seconds on a busy host)


class ParseTimeoutError(ParseError):
    code = "parse_timeout"


class ParseMemoryError(ParseError):
    """Reading the document needed more memory than a worker may use."""

    code = "parse_memory"


class ParseCrashError(ParseError):
    """The worker died while reading the document (killed by the system, or crashed)."""

    code = "parse_crashed"


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
    """`await pool.parse(job)`; `workers=0` parses in a thread (no isolation: dev, tests).

    `restarts` counts workers replaced after a timeout, a memory overrun or a crash;
    `retirements` those replaced in the normal course, after `max_tasks` documents.
    """

    def __init__(
        self,
        workers: int,
        deadline: float,
        *,
        memory_mb: int = DEFAULT_MEMORY_MB,
        max_tasks: int = MAX_TASKS,
    ) -> None:
        self.workers = workers
        self.deadline = deadline
        self.memory_mb = memory_mb
        self.max_tasks = max_tasks
        self.restarts = 0
        self.retirements = 0
        self._slots = asyncio.Semaphore(max(workers, 1))
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._closed = False

    @classmethod
    def from_settings(cls, polling: PollingSettings, *, workers: int | None = None) -> ParserPool:
        """The pool `polling` describes (`workers` overrides its size: 1 for the CLI)."""
        return cls(
            polling.parse_workers if workers is None else workers,
            polling.parse_deadline_seconds,
            memory_mb=polling.parse_memory_mb,
        )

    async def parse(self, job: ParseJob) -> ParsedDocument:
        """Parse `job` within the deadline (ParseTimeoutError when it takes too long)."""
        return await self.call(parse_document, job, url=job.url)

    async def parse_fetched(self, result: FetchResult, page: bool) -> ParsedFeed:
        """Read a fetched document as `feeds.reader` does, in a worker: registration and
        `relay preview` get the poller's deadline and memory ceiling, off the event loop."""
        return await self.call(parse_fetched, result, page, url=result.final_url)

    async def call(self, function: Callable[..., T], *args: Any, url: str) -> T:
        """`function(*args)` in a worker, within the deadline and the memory ceiling.

        `function` must be a module-level function (workers receive it by name). Feed
        errors it raises come back as they are; `url` names the document in ours.
        """
        if self.workers <= 0:
            return await asyncio.to_thread(function, *args)
        self._closed = False
        async with self._slots:
            for _attempt in range(2):
                worker = self._idle.pop() if self._idle else self._spawn()
                self._busy.add(worker)
                try:
                    kind, value = await worker.run(function, args, self.deadline)
                except _NotStartedError:
                    self._replace(worker, abnormal=True)
                    continue  # it never started the document: a fresh worker may
                except BaseException as exc:  # past the deadline, crashed, or cancelled
                    self._replace(worker, abnormal=True)
                    failure = _failure(exc, url, self.deadline)
                    if failure is exc:
                        raise
                    raise failure from None
                self._finish(worker, abnormal=kind == "memory")
                result: T = _result(kind, value, url)
                return result
        raise ParseCrashError(url, "no parse worker could start")

    def close(self) -> None:
        """Stop every worker (a document being read fails with ParseCrashError)."""
        self._closed = True
        for worker in [*self._idle, *self._busy]:
            worker.stop()
        self._idle.clear()
        self._busy.clear()

    def _spawn(self) -> _Worker:
        return _Worker(self.memory_mb)

    def _finish(self, worker: _Worker, *, abnormal: bool) -> None:
        """Back to the idle workers, unless it is due for retirement or went wrong."""
        if abnormal or worker.tasks >= self.max_tasks:
            self._replace(worker, abnormal=abnormal)
        else:
            self._busy.discard(worker)
            self._idle.append(worker)

    def _replace(self, worker: _Worker, *, abnormal: bool) -> None:
        """Stop `worker` and start its successor now: it imports while others parse."""
        self._busy.discard(worker)
        worker.stop()
        if abnormal:
            self.restarts += 1
        else:
            self.retirements += 1
        if not self._closed:
            self._idle.append(self._spawn())


class _NotStartedError(Exception):
    """The worker died or never answered before starting the document: try another."""


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, memory_mb: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, memory_mb), daemon=True)
        self.process.start()
        child.close()  # only the worker holds its end: its death reads as end of file
        self.ready = False
        self.tasks = 0

    async def run(
        self, function: Callable[..., Any], args: tuple[Any, ...], deadline: float
    ) -> tuple[str, Any]:
        """Send the call; the deadline runs from the moment the worker says it started."""
        try:
            if not self.ready:
                await self._expect("ready")
                self.ready = True
            self.conn.send((function, args))
            self.tasks += 1
            started: float = (await self._expect("started"))[1]
        except (EOFError, OSError, TimeoutError) as exc:
            raise _NotStartedError from exc
        # time.monotonic is one clock for every process of the machine (CLOCK_MONOTONIC).
        left = started + deadline - time.monotonic()
        message: tuple[str, Any] = await self._receive(left)
        return message

    async def _expect(self, kind: str) -> tuple[Any, ...]:
        message: tuple[Any, ...] = await self._receive(STARTUP_SECONDS)
        if message[0] != kind:
            raise EOFError(f"worker said {message[0]!r}, expected {kind!r}")
        return message

    async def _receive(self, within: float) -> Any:
        """The next message; TimeoutError after `within` s, EOFError if the worker died."""
        if not self.conn.poll():
            loop = asyncio.get_running_loop()
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(self.conn.fileno(), _set_once, readable)
            try:
                await asyncio.wait_for(readable, max(within, 0.0))
            finally:
                loop.remove_reader(self.conn.fileno())
        return self.conn.recv()

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _result(kind: str, value: Any, url: str) -> Any:
    """A worker's answer: its result, or the error it stands for."""
    if kind == "done":
        return value
    if kind == "memory":
        raise ParseMemoryError(url, "reading it needed more memory than a parse worker has")
    raise value


def _failure(exc: BaseException, url: str, deadline: float) -> BaseException:
    """What a call that cost its worker raises: a feed error, or the cancellation itself."""
    if isinstance(exc, TimeoutError):
        return ParseTimeoutError(url, f"parsing took over {deadline:g}s")
    if isinstance(exc, EOFError | OSError):
        return ParseCrashError(url, "the parse worker died while reading it")
    return exc


# The worker process -------------------------------------------------------------------


def _serve(conn: Connection, memory_mb: int) -> None:
    """A worker's life: cap its memory, say it is ready, run calls until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops us
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    conn.send(("ready",))
    try:
        while (call := conn.recv()) is not None:
            function, args = call
            conn.send(("started", time.monotonic()))
            _reply(conn, _outcome(function, args))
    except EOFError:
        return  # the parent went away


def _outcome(function: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, Any]:
    try:
        return "done", function(*args)
    except MemoryError:
        return "memory", None
    except Exception as exc:  # sent back whole: feed errors, and bugs to be logged
        return "failed", exc


def _reply(conn: Connection, outcome: tuple[str, Any]) -> None:
    """Send the outcome; one too big to pickle in our memory is a memory failure too."""
    try:
        conn.send(outcome)
    except MemoryError:
        conn.send(("memory", None))
    except Exception as exc:  # an outcome that cannot be pickled
        conn.send(("failed", RuntimeError(f"unpicklable parse outcome: {exc!r}")))
