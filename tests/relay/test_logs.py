"""The relay's logs: JSON lines that parse and carry the event's fields, readable one-line
text, quiet libraries, no bot token ever written."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from telegram import Bot

from relay.logs import QUIET_LOGGERS, configure_logging
from relay.poller import PollReport
from relay.worker import Worker, poll_fields
from storage.engine import Database
from storage.sources import NewBusiness, create_business, create_source
from storage.values import BusinessStatus
from tests.support.builders import T0, Clock, entries, relay_settings, rss
from tests.support.fake_telegram import TOKEN, FakeTelegram
from tests.support.httpserver import LocalServer, Reply

TOKEN_LIKE = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw-x"
log = logging.getLogger("relay.test")


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """Where `configure_logging` writes; the root logger is put back afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield io.StringIO()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_lines_parse_and_carry_the_events_fields(output: io.StringIO) -> None:
    configure_logging("INFO", "json", stream=output)
    log.info("channel post", extra={"item_id": 7, "message_id": 42})
    log.info("poll cycle", extra=poll_fields(PollReport(claimed=3, errors={"timeout": 1})))
    first, second = (json.loads(line) for line in lines(output))
    assert first["message"] == "channel post"
    assert (first["level"], first["logger"]) == ("INFO", "relay.test")
    assert (first["item_id"], first["message_id"]) == (7, 42)
    assert first["time"].endswith("+00:00")
    assert second["claimed"] == 3
    assert second["failed_by_code"] == {"timeout": 1}


def test_an_exception_stays_inside_its_json_line(output: io.StringIO) -> None:
    configure_logging("INFO", "json", stream=output)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("job failed", extra={"job": "poll"})
    (line,) = lines(output)
    entry = json.loads(line)
    assert entry["job"] == "poll"
    assert "RuntimeError: boom" in entry["exception"]


def test_the_text_format_is_one_readable_line_per_event(output: io.StringIO) -> None:
    configure_logging("INFO", "text", stream=output)
    report = PollReport(claimed=12, changed=3, not_modified=9, new_items=4, seconds=1.5183)
    log.info("poll cycle", extra=poll_fields(report))
    log.info("business registered", extra={"business_id": 5, "source_kind": "rss"})
    first, second = lines(output)
    assert first.endswith(
        "INFO relay.test: poll cycle claimed=12 changed=3 not_modified=9 failed=0"
        " failed_by_code=- new=4 queued=0 seconds=1.52"
    )
    assert "PollReport(" not in first
    assert second.endswith("business registered business_id=5 source_kind=rss")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_bot_token_never_reaches_the_output(output: io.StringIO, fmt: str) -> None:
    configure_logging("DEBUG", fmt, stream=output)
    url = f"https://api.telegram.org/bot{TOKEN_LIKE}/sendMessage"
    log.info("request to %s", url, extra={"url": url})
    try:
        raise ValueError(f"bad answer from {url}")
    except ValueError:
        log.exception("failed")
    written = output.getvalue()
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in written
    assert "bot[token]/sendMessage" in written


async def test_apschedulers_info_lines_are_not_written_at_info(output: io.StringIO) -> None:
    configure_logging("INFO", "text", stream=output)
    ran = asyncio.Event()

    async def job() -> None:
        ran.set()

    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(job)
    scheduler.start()
    try:
        await asyncio.wait_for(ran.wait(), 5)
        await asyncio.sleep(0.05)  # APScheduler logs the run's end after the job returns
    finally:
        scheduler.shutdown(wait=False)
    log.info("after")
    assert lines(output)[-1].endswith("relay.test: after")
    assert "apscheduler" not in output.getvalue()


def test_debug_is_not_written_at_info(output: io.StringIO) -> None:
    configure_logging("info", "text", stream=output)
    log.debug("hidden")
    assert output.getvalue() == ""


async def test_a_poll_cycle_and_its_channel_post_are_one_line_each(
    db: Database, server: LocalServer, telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    server.route("/feed.xml", Reply(200, rss(entries(2)), {"Content-Type": "application/rss+xml"}))
    with db.write() as s:
        b = create_business(s, NewBusiness("Chez Lou", 77, status=BusinessStatus.ACTIVE), T0)
        create_source(s, b.id, server.url("/feed.xml"), "rss", T0)
    caplog.set_level(logging.INFO, logger="relay")
    async with Bot(TOKEN, base_url=telegram.base_url) as bot:
        worker = Worker(relay_settings(channel=None), db, bot, Clock(T0))
        try:
            await worker.poll()
        finally:
            await worker.stop()
    (cycle,) = [r for r in caplog.records if r.getMessage() == "poll cycle"]
    assert (cycle.claimed, cycle.changed, cycle.failed) == (1, 1, 0)  # type: ignore[attr-defined]
    assert "Nouvelle" not in caplog.text  # counts and ids, never the news itself
