"""The parse pool in real worker processes: deadlines that start when a worker starts a
document, workers replaced without failing the documents around them, a memory ceiling."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from feeds.errors import NotAFeedError
from feeds.fetch import Fetcher
from feeds.reader import read_source
from relay.parsing import (
    ParseCrashError,
    ParsedDocument,
    ParseJob,
    ParseMemoryError,
    ParserPool,
    ParseTimeoutError,
)
from tests.relay.parse_hooks import fatal_parse, greedy_parse, slow_parse
from tests.support.builders import entries, relay_settings, rss
from tests.support.httpserver import LocalServer, Reply

BURST = 200
DEADLINE = 1.0  # tight on purpose: the production deadline is 10 s


def job(n: int = 0, body: bytes | None = None) -> ParseJob:
    content = body if body is not None else rss(entries(3, site=f"https://s{n}.example"))
    return ParseJob(f"https://s{n}.example/feed", content, "application/rss+xml", "utf-8", False)


@pytest.fixture
def cpu_load() -> Iterator[None]:
    """Two busy loops: on a 2-core machine the workers get about half the CPU they want."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield
    for spinner in spinners:
        spinner.kill()
        spinner.wait()


@pytest.fixture
def pool() -> Iterator[ParserPool]:
    parsers = ParserPool(1, deadline=20, memory_mb=256)
    yield parsers
    parsers.close()


async def test_a_burst_under_cpu_load_meets_every_deadline_but_the_slow_document(
    cpu_load: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # 200 first reads (fingerprints computed) queued at once through 2 workers that are
    # each replaced after 100 documents, while one document dawdles far past its deadline.
    jobs = [replace(job(n, rss(entries(8, prefix=f"s{n}x"))), fingerprints=True)
            for n in range(BURST)]  # fmt: skip
    started_file = tmp_path / "started"
    pool = ParserPool(2, deadline=DEADLINE, max_tasks=100)
    failed_at: list[float] = []
    began = time.perf_counter()
    try:
        slow = asyncio.create_task(pool.call(slow_parse, jobs[0], str(started_file), 30, url="s"))
        slow.add_done_callback(lambda _: failed_at.append(time.monotonic()))
        outcomes = await asyncio.gather(*(pool.parse(j) for j in jobs), return_exceptions=True)
        with pytest.raises(ParseTimeoutError):
            await slow
    finally:
        pool.close()
    burst_seconds = time.perf_counter() - began
    assert [o for o in outcomes if not isinstance(o, ParsedDocument)] == []
    assert burst_seconds > 2 * DEADLINE  # documents waited in the queue longer than that
    ran = failed_at[0] - float(started_file.read_text())
    # The deadline runs from the worker's "started" report, a moment before the document
    # wrote its file: a little under DEADLINE from the file is still "at its deadline".
    assert DEADLINE - 0.25 <= ran < DEADLINE + 3
    assert pool.restarts == 1  # the slow document's worker
    assert pool.retirements >= 1  # and workers were replaced mid-burst
    gc.collect()
    assert "never retrieved" not in caplog.text


async def test_a_document_over_the_memory_ceiling_fails_alone(
    pool: ParserPool, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ParseMemoryError) as failure:
        await pool.call(greedy_parse, job(), 1024, url="https://greedy.example/feed")
    assert failure.value.code == "parse_memory"
    assert failure.value.url == "https://greedy.example/feed"
    assert len((await pool.parse(job(1))).feed.items) == 3
    assert pool.restarts == 1
    gc.collect()
    assert "never retrieved" not in caplog.text


async def test_a_worker_killed_mid_document_fails_that_document_only(pool: ParserPool) -> None:
    with pytest.raises(ParseCrashError) as failure:
        await pool.call(fatal_parse, job(), url="https://killed.example/feed")
    assert failure.value.code == "parse_crashed"
    assert len((await pool.parse(job(1))).feed.items) == 3


async def test_feed_errors_come_back_from_the_worker_as_they_were_raised(
    pool: ParserPool,
) -> None:
    with pytest.raises(NotAFeedError) as failure:
        await pool.parse(job(body=b"\x00\x01garbage<<<"))
    assert failure.value.url == "https://s0.example/feed"
    assert failure.value.detail
    assert pool.restarts == 0  # a bad document is not a bad worker


async def test_a_cancelled_parse_costs_its_worker_not_the_next_document(
    pool: ParserPool, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    task = asyncio.create_task(pool.call(slow_parse, job(), str(started), 30, url="s"))
    await wait_for_file(started)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len((await pool.parse(job(1))).feed.items) == 3


async def test_a_site_read_for_registration_parses_in_the_pool_with_its_deadline(
    server: LocalServer,
) -> None:
    server.route("/feed.xml", Reply(200, rss(entries(3)), {"Content-Type": "application/rss+xml"}))
    pool = ParserPool(1, deadline=20)
    try:
        async with Fetcher(relay_settings().fetch) as fetcher:
            url = server.url("/feed.xml")
            reading = await read_source(fetcher, url, parse=pool.parse_fetched)
            assert len(reading.feed.items) == 3
            pool.deadline = 1e-6
            with pytest.raises(ParseTimeoutError):
                await read_source(fetcher, url, parse=pool.parse_fetched)
    finally:
        pool.close()


async def wait_for_file(path: Path) -> None:
    for _ in range(600):  # the worker writes it from another process: poll
        if await asyncio.to_thread(path.exists):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


async def test_closing_stops_every_worker(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    pool = ParserPool(2, deadline=20)
    await asyncio.gather(pool.parse(job(1)), pool.parse(job(2)))
    processes = [w.process for w in pool._idle]
    pool.close()
    assert processes
    assert not any(p.is_alive() for p in processes)
