"""`relay preview` and `relay discover` as a person uses them, against a local web server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from storage.engine import Database
from tests.support.builders import entries, rss
from tests.support.cli import relay_in as run_relay_in
from tests.support.fake_telegram import BOT_USERNAME, TOKEN, FakeTelegram
from tests.support.httpserver import LocalServer, Reply
from tests.support.worker_process import process_database_url

HTML = {"Content-Type": "text/html; charset=utf-8"}
RSS = {"Content-Type": "application/rss+xml"}


def relay(
    *args: str, allow_private: bool = True, lang: str = "en"
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RELAY_LANG": lang,
        "RELAY_ALLOW_PRIVATE_NETWORKS": "1" if allow_private else "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "relay.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).parent.parent,
        check=False,
    )


def homepage(feed_href: str | None) -> bytes:
    link = (
        f'<link rel="alternate" type="application/rss+xml" title="Actus" href="{feed_href}">'
        if feed_href
        else ""
    )
    head = f"<title>Boulangerie</title>{link}"
    return f"<!doctype html><html><head>{head}</head><body>Bienvenue</body></html>".encode()


def test_preview_of_a_homepage_reads_its_advertised_feed(server: LocalServer) -> None:
    server.route("/", Reply(200, homepage("/actus/feed.xml"), HTML))
    server.route("/actus/feed.xml", Reply(200, rss(entries(3)), RSS))
    result = relay("preview", server.url("/"), "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["url"] == server.url("/")
    assert out["source_url"] == server.url("/actus/feed.xml")
    assert out["kind"] == "rss"
    assert out["feeds"] == [server.url("/actus/feed.xml")]
    assert out["title"] == "Boulangerie Martin"
    assert [i["title"] for i in out["items"]][0].startswith("Nouvelle p0")
    assert out["items"][0]["published"] == "2026-11-23T09:00:00Z"
    assert set(out["items"][0]) == {"title", "link", "guid", "published", "summary", "image"}


def test_preview_probes_well_known_paths_when_nothing_is_advertised(server: LocalServer) -> None:
    page = b'<html><head><meta name="generator" content="WordPress 6.5"></head><body></body></html>'
    server.route("/", Reply(200, page, HTML))
    server.route("/feed/", Reply(200, rss(entries(2)), RSS))
    out = json.loads(relay("preview", server.url("/"), "--json").stdout)
    assert out["source_url"] == server.url("/feed/")
    assert len(out["items"]) == 2
    assert len([r for r in server.requests if r.path != "/"]) == 1  # found at the first probe


def test_preview_reads_a_page_without_feed_as_a_page_feed(server: LocalServer) -> None:
    page = (
        b'<html><head><meta property="og:title" content="Atelier poterie du samedi">'
        b'<meta property="og:description" content="Venez modeler"></head><body></body></html>'
    )
    server.route("/", Reply(200, page, HTML))
    result = relay("preview", server.url("/"), "--json")
    out = json.loads(result.stdout)
    assert out["kind"] == "page"
    assert out["items"][0]["title"] == "Atelier poterie du samedi"
    assert len(server.requests) <= 1 + 4  # the page, then at most four polite probes


def test_preview_table_is_readable(server: LocalServer) -> None:
    server.route("/feed.xml", Reply(200, rss(entries(2)), RSS))
    result = relay("preview", server.url("/feed.xml"))
    assert result.returncode == 0
    assert "Boulangerie Martin" in result.stdout
    assert "2026-11-23 09:00" in result.stdout


@pytest.mark.parametrize(
    ("url", "code", "words"),
    [
        ("pas une adresse", "invalid_url", "not a valid web address"),
        ("ftp://example.org/feed", "invalid_url", "not a valid web address"),
    ],
)
def test_bad_input_gets_one_clear_sentence(url: str, code: str, words: str) -> None:
    result = relay("preview", url, "--json")
    assert result.returncode != 0
    assert json.loads(result.stdout)["error"]["code"] == code
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_errors_speak_french_to_french_users(server: LocalServer) -> None:
    server.route("/", Reply(200, b"<html><body>rien</body></html>", HTML))
    result = relay("preview", server.url("/"), lang="fr_FR.UTF-8")
    assert result.returncode != 0
    assert "Aucun flux ni actualité" in result.stderr


def test_private_addresses_are_refused_unless_allowed(server: LocalServer) -> None:
    server.route("/feed.xml", Reply(200, rss(entries(1)), RSS))
    result = relay("preview", server.url("/feed.xml"), "--json", allow_private=False)
    assert json.loads(result.stdout)["error"]["code"] == "blocked_address"
    assert server.requests == []


def test_garbage_and_error_pages_are_errors(server: LocalServer) -> None:
    server.route(
        "/junk", Reply(200, b"\x89PNG\r\n\x1a\n\x00\x00garbage", {"Content-Type": "image/png"})
    )
    junk = relay("preview", server.url("/junk"), "--json")
    assert json.loads(junk.stdout)["error"]["code"] == "not_a_feed"
    missing = relay("preview", server.url("/nothing-here.xml"), "--json")
    assert json.loads(missing.stdout)["error"]["code"] == "http_status"


def test_discover_lists_feeds_in_document_order(server: LocalServer) -> None:
    page = (
        b"<html><head>"
        b'<link rel="alternate" type="application/rss+xml" title="Articles" href="/feed/">'
        b'<link rel="alternate" type="application/json" href="/wp-json/wp/v2/pages/2">'
        b'<link rel="alternate" type="application/atom+xml" title="Commentaires" '
        b'href="comments.atom">'
        b"</head><body></body></html>"
    )
    server.route("/blog/", Reply(200, page, HTML))
    result = relay("discover", server.url("/blog/"), "--json")
    out = json.loads(result.stdout)
    assert out["feeds"] == [
        {"url": server.url("/feed/"), "type": "rss", "title": "Articles"},
        {"url": server.url("/blog/comments.atom"), "type": "atom", "title": "Commentaires"},
    ]


@pytest.mark.parametrize(("lang", "words"), [("fr", "RELAY_WEBHOOK_SECRET"), ("en", "SECRET")])
def test_a_webhook_without_its_secret_is_refused_in_one_sentence(
    lang: str, words: str, tmp_path: Path
) -> None:
    done = run_relay_in(
        tmp_path,
        "run",
        RELAY_LANG=lang,
        TELEGRAM_BOT_TOKEN="123456:TEST-TOKEN",
        RELAY_WEBHOOK_URL="https://relay.example/",
        RELAY_WEBHOOK_SECRET="",
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


# --- relay check: the start-up checks, against the fake Telegram API --------------------------

CHANNEL = -1001234567890
WRONG_TOKEN = "654321:WRONG-SECRET-abcdefghij"


def relay_in(
    tmp_path: Path, *args: str, lang: str = "en", **env_values: str
) -> subprocess.CompletedProcess[str]:
    """`relay ARGS` run from an empty folder (no .env) with exactly these settings."""
    return run_relay_in(tmp_path, *args, RELAY_LANG=lang, **env_values)


def check_env(telegram: FakeTelegram, db: Database, **changes: str) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": telegram.base_url,
        "RELAY_DATABASE_URL": process_database_url(db),
        "RELAY_CHANNEL": str(CHANNEL),
        "RELAY_ADMINS": "1000",
        **changes,
    }


def test_relay_check_passes_when_the_bot_is_admin_of_the_channel(
    telegram: FakeTelegram, db: Database, tmp_path: Path
) -> None:
    telegram.add_chat(CHANNEL, "channel", bot_admin=True)
    done = relay_in(tmp_path, "check", **check_env(telegram, db))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4
    assert all(line.startswith("✓ ") for line in lines)
    assert f"✓ Telegram accepts the token of @{BOT_USERNAME}." in lines
    assert f"✓ The bot can post in {CHANNEL}." in lines


@pytest.mark.parametrize(
    ("bot_admin", "lang", "sentence"),
    [
        (None, "en", f"✗ Telegram does not know the chat {CHANNEL}, or the bot is not in it"),
        (False, "en", f"✗ The bot is not an administrator of the channel {CHANNEL}"),
        (False, "fr", f"✗ Le bot n'est pas administrateur du canal {CHANNEL}"),
    ],
)
def test_relay_check_fails_when_the_bot_cannot_post_in_the_channel(
    telegram: FakeTelegram,
    db: Database,
    tmp_path: Path,
    bot_admin: bool | None,
    lang: str,
    sentence: str,
) -> None:
    if bot_admin is not None:
        telegram.add_chat(CHANNEL, "channel", bot_admin=bot_admin)
    done = relay_in(tmp_path, "check", lang=lang, **check_env(telegram, db))
    assert done.returncode == 1
    assert sentence in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("lang", "sentence"),
    [
        ("en", "✗ Telegram refuses the bot token: copy it again from @BotFather"),
        ("fr", "✗ Telegram refuse le jeton du bot : recopiez-le depuis @BotFather"),
    ],
)
def test_relay_check_with_a_refused_token_never_shows_it(
    telegram: FakeTelegram, db: Database, tmp_path: Path, lang: str, sentence: str
) -> None:
    env = check_env(telegram, db, TELEGRAM_BOT_TOKEN=WRONG_TOKEN)
    done = relay_in(tmp_path, "check", lang=lang, **env)
    assert done.returncode == 1
    assert sentence in done.stdout
    output = done.stdout + done.stderr
    assert WRONG_TOKEN not in output
    assert WRONG_TOKEN.partition(":")[2] not in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("lang", "sentence"),
    [
        ("en", "✗ Cannot open the database postgresql+psycopg://relay:***@127.0.0.1:"),
        ("fr", "✗ Impossible d'ouvrir la base de données postgresql+psycopg://relay:***@"),
    ],
)
def test_relay_check_says_when_the_database_is_unreachable(
    telegram: FakeTelegram, db: Database, tmp_path: Path, lang: str, sentence: str
) -> None:
    telegram.add_chat(CHANNEL, "channel", bot_admin=True)
    url = f"postgresql+psycopg://relay:s3cret@127.0.0.1:{closed_port()}/relay"
    done = relay_in(tmp_path, "check", lang=lang, **check_env(telegram, db, RELAY_DATABASE_URL=url))
    assert done.returncode == 1
    assert sentence in done.stdout
    assert "s3cret" not in done.stdout + done.stderr


def test_relay_check_warns_without_channel_or_admin(
    telegram: FakeTelegram, db: Database, tmp_path: Path
) -> None:
    env = check_env(telegram, db, RELAY_CHANNEL="", RELAY_ADMINS="")
    done = relay_in(tmp_path, "check", **env)
    assert done.returncode == 0
    assert sum(line.startswith("⚠ ") for line in done.stdout.splitlines()) == 2


def test_relay_run_stops_with_status_2_when_a_check_fails(
    telegram: FakeTelegram, db: Database, tmp_path: Path
) -> None:
    done = relay_in(tmp_path, "run", **check_env(telegram, db, TELEGRAM_BOT_TOKEN=WRONG_TOKEN))
    assert done.returncode == 2
    output = done.stdout + done.stderr
    assert "Telegram refuses the bot token" in output
    assert "The relay did not start" in output
    assert "Traceback" not in output
    assert WRONG_TOKEN.partition(":")[2] not in output
    assert not telegram.calls_to("getUpdates")


def closed_port() -> int:
    """A local port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the command line itself: version, help and language -------------------------------------


def relay_with_locale(*args: str, **locale: str) -> subprocess.CompletedProcess[str]:
    """`relay ARGS` with no language setting but these locale variables."""
    names = ("RELAY_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")
    env = {k: v for k, v in os.environ.items() if k not in names}
    return subprocess.run(
        [sys.executable, "-m", "relay.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, **locale},
        cwd=Path(__file__).parent.parent,
        check=False,
    )


def test_relay_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    done = relay_with_locale("--version", LANG="C")
    assert done.returncode == 0
    assert done.stdout.strip() == f"relay {version('solidarity-relay')}"


def test_help_is_french_under_a_french_locale() -> None:
    done = relay_with_locale("--help", LANG="fr_FR.UTF-8")
    assert done.returncode == 0
    assert "utilisation : relay" in done.stdout
    assert "seulement le bot Telegram" in done.stdout
    assert ".env.example" in done.stdout


def test_help_is_english_under_the_c_locale() -> None:
    done = relay_with_locale("--help", LANG="C")
    assert done.returncode == 0
    assert "usage: relay" in done.stdout
    assert "only the Telegram bot" in done.stdout


def test_each_command_s_help_lists_the_settings_it_reads() -> None:
    done = relay_with_locale("db", "--help", LANG="fr_FR.UTF-8")
    assert "Réglages lus : RELAY_DATABASE_URL" in done.stdout
    done = relay_with_locale("preview", "--help", LANG="C")
    assert "Settings read: RELAY_ALLOW_PRIVATE_NETWORKS, RELAY_PROXY" in done.stdout


@pytest.mark.parametrize(
    ("locale", "words"),
    [
        ({"LANGUAGE": "fr:en", "LANG": "C"}, "seulement le bot"),
        ({"LC_ALL": "fr_BE.UTF-8", "LANG": "en_GB.UTF-8"}, "seulement le bot"),
        ({"LC_MESSAGES": "fr_CA.UTF-8"}, "seulement le bot"),
        ({"RELAY_LANG": "en", "LANGUAGE": "fr", "LC_ALL": "fr_FR.UTF-8"}, "only the Telegram bot"),
        ({"LANGUAGE": "", "LC_ALL": "", "LANG": "fr_FR.UTF-8"}, "seulement le bot"),
    ],
)
def test_the_language_follows_relay_lang_then_the_locale(
    locale: dict[str, str], words: str
) -> None:
    assert words in relay_with_locale("--help", **locale).stdout
