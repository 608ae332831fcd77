"""`python bot.py` as people run it: a real process, reaching the fake Telegram API through
TELEGRAM_API_BASE_URL; it answers, publishes its commands, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from storage.engine import Database
from tests.support.fake_telegram import TOKEN, FakeTelegram
from tests.support.worker_process import process_database_url

ROOT = Path(__file__).parents[2]


async def test_bot_py_answers_and_stops_cleanly(
    db: Database, telegram: FakeTelegram, tmp_path: Path
) -> None:
    telegram.add_chat(-1001234567890, "channel", bot_admin=True)  # the start-up checks ask
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": telegram.base_url,
        "RELAY_DATABASE_URL": process_database_url(db),
        "RELAY_ADMINS": "1000",
        "RELAY_CHANNEL": "-1001234567890",
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
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            raw, _ = await process.communicate()
    output = raw.decode()
    assert process.returncode == 0, output
    assert "Traceback" not in output
