"""Start-up checks: the verdicts as tables, then the checks against the fake Telegram API and a
real database."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from telegram.error import BadRequest, InvalidToken, NetworkError, TimedOut

from relay.checks import (
    ChatView,
    CheckResult,
    Status,
    admins_result,
    api_host,
    chat_result,
    check_database,
    database_result,
    failed,
    run_checks,
    scrub,
    telegram_failure,
)
from storage.engine import Database
from storage.migrate import head_revisions
from tests.support.builders import relay_settings
from tests.support.fake_telegram import BOT_USERNAME, TOKEN, FakeTelegram

CHANNEL = -1001234567890
OK, WARNING, FAILURE = Status.OK, Status.WARNING, Status.FAILURE


@pytest.mark.parametrize(
    ("name", "view", "status", "key"),
    [
        ("channel", ChatView(None), FAILURE, "channel_not_found"),
        ("channel", ChatView("channel", "administrator", True), OK, "channel_ok"),
        ("channel", ChatView("channel", "administrator", False), FAILURE, "channel_cannot_post"),
        ("channel", ChatView("channel"), FAILURE, "channel_not_admin"),
        ("channel", ChatView("channel", "member", True), FAILURE, "channel_not_admin"),
        ("channel", ChatView("supergroup", "member", True), OK, "channel_ok"),
        ("channel", ChatView("group", "administrator", True), OK, "channel_ok"),
        ("channel", ChatView("supergroup", "restricted", False), FAILURE, "channel_cannot_post"),
        ("channel", ChatView("supergroup", "kicked"), FAILURE, "channel_not_member"),
        ("channel", ChatView("group", "left"), FAILURE, "channel_not_member"),
        ("moderation", ChatView(None), FAILURE, "moderation_not_found"),
        ("moderation", ChatView("supergroup", "member", True), OK, "moderation_ok"),
        ("moderation", ChatView("group", "left"), FAILURE, "moderation_not_member"),
        ("moderation", ChatView("group", "restricted"), FAILURE, "moderation_cannot_post"),
        ("moderation", ChatView("private"), OK, "moderation_ok"),
    ],
)
def test_chat_verdicts(name: str, view: ChatView, status: Status, key: str) -> None:
    expected = CheckResult(name, status, f"check.{key}", {"chat": "@chan"})
    assert chat_result(name, "@chan", view) == expected


@pytest.mark.parametrize(
    ("error", "key"),
    [
        (InvalidToken(f"The token `{TOKEN}` was rejected by the server."), "token_refused"),
        (TimedOut(), "api_unreachable"),
        (NetworkError("httpx.ConnectError: All connection attempts failed"), "api_unreachable"),
        (BadRequest("Not Found"), "api_error"),
        (ValueError(f"http://example/bot{TOKEN}/getMe: bad"), "api_error"),
    ],
)
def test_telegram_errors_become_one_failure_without_the_token(error: Exception, key: str) -> None:
    result = telegram_failure(error, "example", TOKEN)
    assert (result.status, result.key) == (FAILURE, f"check.{key}")
    for lang in ("fr", "en"):
        assert TOKEN not in result.sentence(lang)
        assert TOKEN.partition(":")[2] not in result.sentence(lang)


def test_scrub_removes_the_token_and_its_secret_half() -> None:
    assert scrub(f"a {TOKEN} b TEST-TOKEN c", TOKEN) == "a <token> b <token> c"
    assert scrub("nothing", None) == "nothing"


@pytest.mark.parametrize(
    ("base_url", "host"),
    [
        (None, "api.telegram.org"),
        ("http://127.0.0.1:8081/bot", "127.0.0.1:8081"),
        ("https://tg.example.org/bot", "tg.example.org"),
    ],
)
def test_api_host(base_url: str | None, host: str) -> None:
    assert api_host(base_url) == host


@pytest.mark.parametrize(
    ("current", "will_migrate", "status", "key"),
    [
        ({"b"}, False, OK, "database_ok"),
        (set(), False, FAILURE, "database_not_migrated"),
        ({"a"}, False, FAILURE, "database_not_migrated"),
        ({"a"}, True, OK, "database_ok"),
        (set(), True, OK, "database_ok"),
        ({"z"}, False, FAILURE, "database_unknown_revision"),
        ({"z"}, True, FAILURE, "database_unknown_revision"),
    ],
)
def test_database_verdicts(current: set[str], will_migrate: bool, status: Status, key: str) -> None:
    result = database_result(current, {"b"}, {"a", "b"}, "db", will_migrate=will_migrate)
    assert (result.status, result.key) == (status, f"check.{key}")


def test_no_admin_is_a_warning() -> None:
    assert admins_result(()).status is WARNING
    assert admins_result((1, 2)).values == {"count": 2}
    assert admins_result(()).key == "env.warn.no_admins"  # the sentence the settings warn with
    assert not failed([admins_result(()), CheckResult("x", OK, "check.admins_ok")])


# --- against the fake Telegram API and a real database -------------------------------------------


def keys(results: list[CheckResult]) -> dict[str, str]:
    return {result.name: result.key.removeprefix("check.") for result in results}


async def test_all_checks_pass_with_a_channel_where_the_bot_is_admin(
    telegram: FakeTelegram, db: Database
) -> None:
    telegram.add_chat(CHANNEL, "channel", bot_admin=True)
    telegram.add_chat(-1005, "supergroup")
    settings = relay_settings(
        telegram_token=TOKEN,
        telegram_api_base_url=telegram.base_url,
        channel=str(CHANNEL),
        moderation_chat=-1005,
        admins=(1000,),
        database_url=db.url,
    )
    results = await run_checks(settings, db)
    assert keys(results) == {
        "token": "token_ok",
        "channel": "channel_ok",
        "moderation": "moderation_ok",
        "admins": "admins_ok",
        "database": "database_ok",
    }
    assert not failed(results)
    assert results[0].sentence("en") == f"Telegram accepts the token of @{BOT_USERNAME}."


@pytest.mark.parametrize(
    ("declare", "key"),
    [
        ({}, "channel_not_found"),
        ({"bot_admin": False}, "channel_not_admin"),
        ({"bot_admin": True, "bot_can_post": False}, "channel_cannot_post"),
    ],
)
async def test_channel_problems(
    telegram: FakeTelegram, db: Database, declare: dict[str, bool], key: str
) -> None:
    if declare:
        telegram.add_chat(CHANNEL, "channel", username="relay_news", **declare)
    settings = relay_settings(
        telegram_token=TOKEN, telegram_api_base_url=telegram.base_url, channel="@relay_news"
    )
    results = await run_checks(settings, db)
    assert keys(results)["channel"] == key
    assert failed(results)


async def test_moderation_chat_without_the_bot(telegram: FakeTelegram, db: Database) -> None:
    telegram.add_chat(-1005, "supergroup")
    telegram.delete_chat(-1005)  # the bot was removed: Telegram no longer shows it the chat
    settings = relay_settings(
        telegram_token=TOKEN,
        telegram_api_base_url=telegram.base_url,
        channel=None,
        moderation_chat=-1005,
    )
    results = await run_checks(settings, db)
    assert keys(results)["channel"] == "env.warn.no_channel"
    assert keys(results)["moderation"] == "moderation_not_found"


async def test_a_refused_token_stops_the_telegram_checks(
    telegram: FakeTelegram, db: Database
) -> None:
    wrong = "654321:WRONG-SECRET-abcdefgh"
    settings = relay_settings(telegram_token=wrong, telegram_api_base_url=telegram.base_url)
    results = await run_checks(settings, db)
    assert keys(results) == {
        "token": "token_refused",
        "admins": "env.warn.no_admins",
        "database": "database_ok",
    }
    assert all(wrong not in result.sentence("en") for result in results)


async def test_an_unreachable_api_names_its_host(db: Database) -> None:
    port = closed_port()
    settings = relay_settings(
        telegram_token=TOKEN, telegram_api_base_url=f"http://127.0.0.1:{port}/bot"
    )
    (token, *_) = await run_checks(settings, db)
    assert token.key == "check.api_unreachable"
    assert f"127.0.0.1:{port}" in token.sentence("fr")


def test_database_unreachable_hides_the_password() -> None:
    url = f"postgresql+psycopg://relay:s3cret@127.0.0.1:{closed_port()}/relay"
    result = check_database(url)
    assert (result.status, result.key) == (FAILURE, "check.database_unreachable")
    assert "s3cret" not in result.sentence("en")
    assert "Cannot open the database" in result.sentence("en")
    assert "Impossible d'ouvrir la base de données" in result.sentence("fr")


def test_a_missing_database_driver_says_what_to_install() -> None:
    result = check_database(
        "postgresql+pg8000://relay:s3cret@127.0.0.1:5432/relay"
    )  # not installed
    assert (result.status, result.key) == (FAILURE, "check.database_driver_missing")
    assert 'pip install "solidarity-relay[postgres]"' in result.sentence("en")
    assert "s3cret" not in result.sentence("fr")


def test_a_fresh_sqlite_file_is_not_migrated_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    result = check_database(f"sqlite:///{path}")
    assert result.key == "check.database_not_migrated"
    assert not path.exists()


def test_a_database_behind_head_is_not_migrated(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'relay.db'}")
    with database.engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")  # a file, but no migration
    assert check_database(database).key == "check.database_not_migrated"
    assert check_database(database, will_migrate=True).key == "check.database_ok"
    assert head_revisions(database)
    database.dispose()


def closed_port() -> int:
    """A local port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
