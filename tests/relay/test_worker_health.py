"""A scheduled job that keeps failing reaches the admins once, through the outbox and the
real sender; its recovery once more. Moderators who are not admins hear nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from telegram import Bot

from relay.worker import Worker
from storage import people
from storage.engine import Database
from tests.support.builders import T0, Clock, relay_settings
from tests.support.fake_telegram import TOKEN, FakeTelegram

ADMIN, MOD = 900, 901


class Flaky:
    """A job that fails (the same way) until told to work."""

    def __init__(self) -> None:
        self.broken = True

    async def __call__(self) -> str:
        if self.broken:
            raise RuntimeError("database <locked>")
        return "done"


async def test_a_job_failing_three_times_is_reported_once_then_its_recovery(
    db: Database, telegram: FakeTelegram
) -> None:
    with db.write() as s:
        people.add_moderator(s, ADMIN, "admin", None, T0)
        people.add_moderator(s, MOD, "moderator", ADMIN, T0)
    clock = Clock(T0)
    job = Flaky()
    async with Bot(TOKEN, base_url=telegram.base_url) as bot:
        worker = Worker(relay_settings(channel=None), db, bot, clock)
        try:
            told = []
            for _ in range(4):
                assert await worker.watched("poll", job)() is None
                await worker.send()
                told.append(len(telegram.sent(ADMIN)))
                clock.advance(seconds=30)
            job.broken = False
            assert await worker.watched("poll", job)() == "done"
            await worker.watched("poll", job)()
            await worker.send()
        finally:
            await worker.stop()
    assert told == [0, 0, 1, 1]
    failing, recovered = (m.text or "" for m in telegram.sent(ADMIN))
    assert "lecture des sources" in failing
    assert "RuntimeError: database &lt;locked&gt;" in failing
    assert "3" in failing
    assert "lecture des sources" in recovered
    assert "fonctionne de nouveau" in recovered
    assert telegram.sent(MOD) == []


async def test_when_the_database_is_down_the_alert_is_only_logged(
    tmp_path: Path, telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    down = Database(f"sqlite:///{tmp_path}/missing/folder/relay.db")
    job = Flaky()
    async with Bot(TOKEN, base_url=telegram.base_url) as bot:
        worker = Worker(relay_settings(channel=None), down, bot, Clock(T0))
        try:
            for _ in range(3):
                assert await worker.watched("maintain", job)() is None
        finally:
            await worker.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("job keeps failing; telling the admins") == 1
    assert messages.count("could not tell the admins") == 1
