"""Settings as a volunteer writes them: a `.env` file, mistakes included, and what is read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from relay.environment import EXAMPLES
from relay.i18n import text
from relay.settings import Settings, SettingsError
from tests.support.cli import relay_in

ROOT = Path(__file__).parent.parent
NO_DOTENV = Path("/nonexistent/.env")
TOKEN = "123456:SECRET-token-value"


def refusal(environ: dict[str, str]) -> SettingsError:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(environ, dotenv=NO_DOTENV)
    return refused.value


def from_dotenv(tmp_path: Path, content: str, **environ: str) -> Settings:
    dotenv = tmp_path / ".env"
    dotenv.write_text(content, encoding="utf-8")
    return Settings.from_env(environ, dotenv=dotenv)


# name, value given, what the French and the English sentences must say
BAD_VALUES = [
    ("RELAY_QUIET_START", "25h", "de 0 à 23", "from 0 to 23"),
    ("RELAY_QUIET_END", "7:30", "heure pleine", "whole hour"),
    ("RELAY_ADMINS", "abc", "identifiants d'utilisateurs", "user ids"),
    ("RELAY_DATABASE_URL", "mysql://relay@db/relay", "postgresql", "postgresql"),
    ("RELAY_TIMEZONE", "Mars/Phobos", "fuseau horaire", "time zone"),
    ("RELAY_POLL_MINUTES", "2", "au moins 5", "at least 5"),
    ("RELAY_POSTS_PER_HOUR", "-1", "de 1 à 60", "from 1 to 60"),
    ("RELAY_POSTS_PER_HOUR", "six", "de 1 à 60", "from 1 to 60"),
    ("RELAY_WEBHOOK_URL", "http://relay.example.org", "https://", "https://"),
    ("RELAY_WEBHOOK_PORT", "99999", "1 à 65535", "1 to 65535"),
    ("RELAY_CHANNEL", "mon canal", "@nom", "@name"),
    ("RELAY_MODERATION_CHAT", "@groupe", "identifiant numérique", "numeric id"),
    ("RELAY_WEEKLY_ROUNDUP", "peut-être", "1 (oui) ou 0 (non)", "1 (yes) or 0 (no)"),
    ("RELAY_PARSE_MEMORY_MB", "10", "au moins 128", "at least 128"),
    ("RELAY_PROXY", "proxy:3128", "https://", "https://"),
    ("RELAY_LOG_LEVEL", "LOUD", "DEBUG, INFO, WARNING ou ERROR", "DEBUG, INFO, WARNING or ERROR"),
    ("RELAY_LOG_FORMAT", "xml", "text ou json", "text or json"),
]


@pytest.mark.parametrize(("name", "value", "french", "english"), BAD_VALUES)
def test_a_bad_value_gets_its_sentence_in_both_languages(
    name: str, value: str, french: str, english: str
) -> None:
    environ = {name: value, "RELAY_WEBHOOK_SECRET": "s3cret"}
    problem = refusal(environ)
    for lang, words in (("fr", french), ("en", english)):
        message = problem.render(lang)
        assert name in message
        assert value in message
        assert words in message
        assert f"{name}={EXAMPLES[name]}" in message  # an example to copy


@pytest.mark.parametrize(("written", "hour"), [("22", 22), ("22:00", 22), ("22h", 22), ("7h00", 7)])
def test_hours_are_read_as_people_write_them(written: str, hour: int) -> None:
    pacing = Settings.from_env({"RELAY_QUIET_START": written}, dotenv=NO_DOTENV).pacing
    assert pacing.quiet_start_hour == hour


def test_several_mistakes_are_reported_together() -> None:
    problem = refusal(
        {"RELAY_ADMINS": "abc", "RELAY_POLL_MINUTES": "2", "RELAY_TIMEZONE": "Mars/Phobos"}
    )
    message = problem.render("fr")
    assert "3 réglage(s)" in message
    for name in ("RELAY_ADMINS", "RELAY_POLL_MINUTES", "RELAY_TIMEZONE"):
        assert sum(line.startswith(f"• {name}") for line in message.splitlines()) == 1


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("RELAY_CHANEL", "RELAY_CHANNEL"),
        ("RELAY_ADMIN", "RELAY_ADMINS"),
        ("RELAY_TIMEZONNE", "RELAY_TIMEZONE"),
    ],
)
def test_a_misspelt_name_gets_a_did_you_mean(written: str, meant: str) -> None:
    problem = refusal({written: "x"})
    assert f"{written} : ce réglage n'existe pas. Vouliez-vous dire {meant} ?" in problem.render(
        "fr"
    )
    assert f"{written}: there is no such setting. Did you mean {meant}?" in problem.render("en")


def test_the_token_and_passwords_never_appear_in_the_message() -> None:
    problem = refusal(
        {
            "TELEGRAM_BOT_TOKEN": "123456:SECRET token",
            "RELAY_WEBHOOK_SECRET": "SECRET with spaces",
            "RELAY_DATABASE_URL": "mysql://relay:SECRET@db/relay",
        }
    )
    for lang in ("fr", "en"):
        message = problem.render(lang)
        assert "TELEGRAM_BOT_TOKEN" in message
        assert "RELAY_WEBHOOK_SECRET" in message
        assert "SECRET" not in message.replace("_SECRET", "")


def test_a_long_value_is_shortened() -> None:
    message = refusal({"RELAY_TIMEZONE": "Europe/" + "x" * 500}).render("en")
    assert "x" * 100 not in message
    assert "…" in message


def test_a_webhook_without_secret_is_reported_with_the_other_mistakes() -> None:
    problem = refusal({"RELAY_WEBHOOK_URL": "https://relay.example.org", "RELAY_POLL_MINUTES": "1"})
    assert {p.name for p in problem.problems} == {"RELAY_WEBHOOK_SECRET", "RELAY_POLL_MINUTES"}
    assert "RELAY_WEBHOOK_SECRET" in text("fr", "cli.no_webhook_secret")


def test_dotenv_comments_and_quotes_are_understood(tmp_path: Path) -> None:
    settings = from_dotenv(
        tmp_path,
        "# my relay\n"
        "RELAY_ADMINS=11111111   # your id\n"
        'RELAY_CHANNEL="@mon_canal"  # public\n'
        "RELAY_TIMEZONE='Europe/Brussels'\n"
        "export RELAY_POLL_MINUTES=30\n"
        "RELAY_PROXY=\n",
    )
    assert settings.admins == (11111111,)
    assert settings.channel == "@mon_canal"
    assert settings.pacing.timezone == "Europe/Brussels"
    assert settings.polling.interval_minutes == 30
    assert settings.fetch.proxy is None


def test_the_environment_wins_over_the_dotenv_file(tmp_path: Path) -> None:
    settings = from_dotenv(tmp_path, "RELAY_POLL_MINUTES=30\n", RELAY_POLL_MINUTES="45")
    assert settings.polling.interval_minutes == 45


def test_the_shipped_env_example_loads_and_lists_every_setting() -> None:
    example = ROOT / ".env.example"
    settings = Settings.from_env({}, dotenv=example)
    assert settings.channel == "@mon_canal_solidaire"
    assert settings.admins == (11111111, 22222222)
    written = example.read_text(encoding="utf-8")
    for name in EXAMPLES:
        assert re.search(rf"^(# )?{name}=", written, re.MULTILINE), name


def test_the_readme_env_example_loads(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Running the bot with a real token", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None
    settings = from_dotenv(tmp_path, "\n".join(line.strip() for line in block[1].splitlines()))
    assert settings.telegram_token
    assert settings.channel
    assert settings.admins == (11111111,)
    assert settings.warnings() == []


def test_the_readme_settings_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    for name in EXAMPLES:
        assert f"`{name}`" in table, name


def test_a_relay_without_channel_or_admins_is_warned() -> None:
    settings = Settings.from_env({}, dotenv=NO_DOTENV)
    assert settings.warnings() == ["env.warn.no_channel", "env.warn.no_admins"]
    assert "RELAY_CHANNEL" in text("fr", "env.warn.no_channel")
    assert "RELAY_ADMINS" in text("en", "env.warn.no_admins")


@pytest.mark.parametrize(
    ("lang", "words"),
    [("fr", "Vouliez-vous dire RELAY_CHANNEL ?"), ("en", "Did you mean RELAY_CHANNEL?")],
)
def test_the_relay_command_reports_a_broken_dotenv_and_exits_2(
    tmp_path: Path, lang: str, words: str
) -> None:
    (tmp_path / ".env").write_text(
        f"TELEGRAM_BOT_TOKEN={TOKEN}\n"
        "RELAY_CHANEL=@mon_canal\n"
        "RELAY_QUIET_START=22:00  # fine\n"
        "RELAY_POLL_MINUTES=2\n"
        "RELAY_DATABASE_URL=mysql://relay@db/relay\n",
        encoding="utf-8",
    )
    done = relay_in(tmp_path, "run", RELAY_LANG=lang)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert words in done.stderr
    assert "RELAY_POLL_MINUTES" in done.stderr
    assert "RELAY_DATABASE_URL" in done.stderr
    assert "RELAY_QUIET_START" not in done.stderr
    assert TOKEN not in done.stderr


def test_the_relay_command_speaks_the_locale_s_language(tmp_path: Path) -> None:
    done = relay_in(tmp_path, "db", "upgrade", LANG="fr_FR.UTF-8", RELAY_TIMEZONE="Mars/Phobos")
    assert done.returncode == 2
    assert "Le relais ne démarre pas. RELAY_TIMEZONE = « Mars/Phobos »" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_name_like_no_setting_points_to_the_example_file() -> None:
    message = refusal({"RELAY_QWZKJV_BBB": "1"}).render("en")
    assert (
        "RELAY_QWZKJV_BBB: there is no such setting. The known names are in .env.example."
        in message
    )


def test_the_test_and_benchmark_variables_are_not_settings_mistakes() -> None:
    environ = {
        "RELAY_TEST_PG_URL": "postgresql://x",
        "RELAY_BENCH_DATABASE_URL": "",
        "RELAY_LANG": "fr",
    }
    assert Settings.from_env(environ, dotenv=NO_DOTENV).channel is None
