"""The poll job: claim due sources → fetch → skip unchanged → parse changed → dedupe → store.

One shared fetcher, bounded concurrency, parsing in worker processes; each source's
outcome is recorded in its own short write transaction (items, schedule, notices).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from feeds.errors import FeedError, RetryLaterError
from feeds.fetch import Fetcher
from feeds.models import FetchResult, Validators
from relay.clock import Clock
from relay.ingest import is_first_read, record_failure, record_items, record_unchanged
from relay.parsing import ParsedDocument, ParseJob, ParserPool
from relay.settings import Settings
from storage.engine import Database
from storage.sources import claim_due_sources
from storage.values import Source

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=10)


@dataclass(slots=True)
class PollReport:
    """What one poll cycle did, for logs, /stats and the benchmark."""

    claimed: int = 0
    not_modified: int = 0
    changed: int = 0
    failed: int = 0
    new_items: int = 0
    queued: int = 0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Poller:
    """Everything a poll cycle needs, wired once."""

    db: Database
    fetcher: Fetcher
    parsers: ParserPool
    settings: Settings
    clock: Clock
    rand: Callable[[], float] = random.random

    async def poll_once(self, *, limit: int | None = None) -> PollReport:
        """Poll every source due now until none is left (or `limit` were claimed).

        A producer claims batches while `concurrency` checkers work through them, so a slow
        source never holds back the next batch; unchanged sources are recorded in groups.
        """
        report = PollReport()
        started = time.perf_counter()
        queue: asyncio.Queue[Source | None] = asyncio.Queue(self.settings.polling.batch_size)
        unchanged: list[tuple[Source, FetchResult]] = []
        checkers = [
            asyncio.create_task(self._checker(queue, report, unchanged))
            for _ in range(self.settings.polling.concurrency)
        ]
        try:
            await self._claim_into(queue, report, limit)
        finally:
            for _ in checkers:
                await queue.put(None)
            await asyncio.gather(*checkers)
            self._flush(unchanged)
        report.seconds = time.perf_counter() - started
        return report

    async def _claim_into(
        self, queue: asyncio.Queue[Source | None], report: PollReport, limit: int | None
    ) -> None:
        batch = self.settings.polling.batch_size
        while limit is None or report.claimed < limit:
            size = batch if limit is None else min(batch, limit - report.claimed)
            sources = claim_due_sources(self.db, self.clock(), size, CLAIM_LEASE)
            if not sources:
                return
            report.claimed += len(sources)
            for source in sources:
                await queue.put(source)  # waits while a whole batch is still queued

    async def _checker(
        self,
        queue: asyncio.Queue[Source | None],
        report: PollReport,
        unchanged: list[tuple[Source, FetchResult]],
    ) -> None:
        while (source := await queue.get()) is not None:
            await self.check_source(source, report, unchanged)
            if len(unchanged) >= self.settings.polling.batch_size:
                self._flush(unchanged)

    def _flush(self, unchanged: list[tuple[Source, FetchResult]]) -> None:
        """Record the unchanged sources gathered so far, in one transaction."""
        checks = list(unchanged)
        unchanged.clear()
        record_unchanged(self.db, checks, self.clock(), self.settings, self.rand)

    async def check_source(
        self, source: Source, report: PollReport, unchanged: list[tuple[Source, FetchResult]]
    ) -> None:
        """Fetch one source and record what happened (unchanged ones are recorded together,
        by the caller, in one transaction); never raises for bad input."""
        try:
            result = await self.fetcher.fetch(
                source.url,
                validators=_validators(source),
                previous_hash=source.body_hash,
            )
            document = (
                None if result.not_modified else await self.parsers.parse(_job(source, result))
            )
        except FeedError as exc:
            self._failed(source, exc, report)
            return
        except Exception as exc:  # a bug must cost one source, not the cycle
            log.exception("checking source %s failed unexpectedly", source.id)
            self._failed(source, FeedError(source.url, repr(exc)), report)
            return
        if document is None:
            report.not_modified += 1
            unchanged.append((source, result))
            return
        self._changed(source, result, document, report)

    def _changed(
        self, source: Source, result: FetchResult, document: ParsedDocument, report: PollReport
    ) -> None:
        now = self.clock()
        report.changed += 1
        new, queued = record_items(
            self.db, source, result, document, now, self.settings, self.rand()
        )
        report.new_items += new
        report.queued += queued

    def _failed(self, source: Source, exc: FeedError, report: PollReport) -> None:
        report.failed += 1
        report.errors[exc.code] = report.errors.get(exc.code, 0) + 1
        retry_after = exc.retry_after if isinstance(exc, RetryLaterError) else None
        record_failure(self.db, source, exc, retry_after, self.clock(), self.settings, self.rand())


def _validators(source: Source) -> Validators:
    return Validators(etag=source.etag, last_modified=source.last_modified)


def _job(source: Source, result: FetchResult) -> ParseJob:
    return ParseJob(
        url=result.final_url,
        content=result.content,
        content_type=result.content_type,
        charset=result.charset,
        page=source.kind == "page",
        fingerprints=is_first_read(source),
    )
