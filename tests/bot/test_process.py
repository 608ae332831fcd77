"""`python bot.py` as people run it: a real process, reaching the fake Telegram API through
TELEGRAM_API_BASE_URL; it answers, publishes its commands, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from storage.engine import Database
from storage.sources import NewBusiness, create_business, create_source
from storage.values import BusinessStatus
from tests.support.builders import T0, entries, rss
from tests.support.fake_telegram import TOKEN, FakeTelegram
from tests.support.httpserver import LocalServer, Reply
from tests.support.worker_process import process_database_url

ROOT = Path(__file__).parents[2]


async def test_bot_py_answers_and_stops_cleanly(
    db: Database, telegram: FakeTelegram, tmp_path: Path, server: LocalServer
) -> None:
    telegram.add_chat(-1001234567890, "channel", bot_admin=True)  # the start-up checks ask
    # A source waiting to be read: its moderation card must reach the admin within seconds of
    # the start (every job runs once at start, on the bot's one scheduler), not minutes later.
    server.route("/feed.xml", Reply(200, rss(entries(1)), {"Content-Type": "application/rss+xml"}))
    with db.write() as s:
        business = create_business(
            s, NewBusiness(name="Boulangerie", owner_id=77, status=BusinessStatus.ACTIVE), T0
        )
        create_source(s, business.id, server.url("/feed.xml"), "rss", T0)
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": telegram.base_url,
        "RELAY_DATABASE_URL": process_database_url(db),
        "RELAY_ADMINS": "1000",
        "RELAY_CHANNEL": "-1001234567890",
        "RELAY_ALLOW_PRIVATE_NETWORKS": "1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        telegram.user_sends(7, "/start", language_code="en")
        (greeting,) = await telegram.wait_for_sent(1, chat_id=7, timeout=30)
        assert "/subscribe" in (greeting.visible_text or "")
        assert telegram.commands(language_code="fr")
        assert telegram.commands()
        (card,) = await telegram.wait_for_sent(1, chat_id=1000, timeout=15)
        assert "Boulangerie" in (card.visible_text or "")
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            raw, _ = await process.communicate()
    output = raw.decode()
    assert process.returncode == 0, output
    assert "Traceback" not in output
