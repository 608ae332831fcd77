"""Webhook mode: the relay never starts without a secret, and updates without it are refused."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from feeds.fetch import Fetcher
from relay.bot.app import _receive_updates, build_application
from relay.bot.services import Services
from relay.i18n import text
from relay.settings import Settings, SettingsError
from storage.engine import Database
from tests.bot.conftest import harness_settings
from tests.bot.test_business import unused_port
from tests.support.builders import T0, Clock
from tests.support.fake_telegram import TOKEN, FakeTelegram

USER = 901
SECRET = "s3cret_Token-1"
NO_DOTENV = Path("/nonexistent/.env")


def start_update(update_id: int) -> dict[str, object]:
    """A private /start, as Telegram would post it to the webhook."""
    user = {"id": USER, "is_bot": False, "first_name": "Marie", "language_code": "fr"}
    message = {
        "message_id": update_id,
        "date": int(time.time()),
        "chat": {"id": USER, "type": "private", "first_name": "Marie"},
        "from": user,
        "text": "/start",
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
    }
    return {"update_id": update_id, "message": message}


def test_webhook_mode_without_a_secret_refuses_to_start() -> None:
    environ = {"TELEGRAM_BOT_TOKEN": TOKEN, "RELAY_WEBHOOK_URL": "https://relay.example.org"}
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(environ, dotenv=NO_DOTENV)
    assert "RELAY_WEBHOOK_SECRET" in str(refused.value)
    for lang in ("fr", "en"):
        assert "RELAY_WEBHOOK_SECRET" in text(lang, refused.value.key)


@pytest.mark.parametrize("secret", ["with space", "clé", "x" * 257])
def test_a_secret_telegram_would_refuse_is_refused_at_start(secret: str) -> None:
    environ = {"RELAY_WEBHOOK_URL": "https://relay.example.org", "RELAY_WEBHOOK_SECRET": secret}
    with pytest.raises(SettingsError, match="RELAY_WEBHOOK_SECRET"):
        Settings.from_env(environ, dotenv=NO_DOTENV)


def test_long_polling_needs_no_secret() -> None:
    assert Settings.from_env({"TELEGRAM_BOT_TOKEN": TOKEN}, dotenv=NO_DOTENV).webhook_url is None


async def test_an_update_without_the_secret_is_turned_away(
    db: Database, telegram: FakeTelegram
) -> None:
    port = unused_port()
    settings = harness_settings(
        telegram,
        webhook_url=f"http://127.0.0.1:{port}",
        webhook_listen="127.0.0.1",
        webhook_port=port,
        webhook_secret=SECRET,
    )
    url = f"http://127.0.0.1:{port}/telegram"
    async with Fetcher(settings.fetch) as fetcher:
        app = build_application(Services(settings, db, fetcher, Clock(T0)))
        async with app:
            await app.start()
            await _receive_updates(app, settings)
            try:
                async with httpx.AsyncClient() as client:
                    forged = await client.post(url, json=start_update(1))
                    genuine = await client.post(
                        url,
                        json=start_update(2),
                        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
                    )
                [welcome] = await telegram.wait_for_sent(1, chat_id=USER)
            finally:
                assert app.updater is not None
                await app.updater.stop()
                await app.stop()
    assert (forged.status_code, genuine.status_code) == (403, 200)
    assert "Bonjour Marie" in (welcome.visible_text or "")
    assert telegram.calls_to("setWebhook")[-1]["secret_token"] == SECRET
    assert len(telegram.sent(USER)) == 1
