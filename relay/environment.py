"""The environment as the operator writes it: every `RELAY_*` name checked at once.

`read_environment(values)` validates raw strings (the process environment over a `.env` file)
with one pydantic-settings model and returns it, or raises `SettingsError` listing every bad
value, every unknown name and every missing webhook secret together, in the operator's words.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from relay.i18n import text

WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what Telegram accepts as secret_token
SECRETS = frozenset({"TELEGRAM_BOT_TOKEN", "RELAY_WEBHOOK_SECRET"})
# Read elsewhere (the CLI's language; the tests', CI's and benchmarks' own variables):
# known, but not settings, so never "unknown".
OTHER_NAMES = frozenset({"RELAY_LANG"})
OTHER_PREFIXES = ("RELAY_TEST_", "RELAY_BENCH_")
SHOWN_CHARACTERS = 40

# name → an example value; the order is the order of `.env.example` and of the help.
EXAMPLES: dict[str, str] = {
    "TELEGRAM_BOT_TOKEN": "123456:ABC-DEF",
    "TELEGRAM_API_BASE_URL": "http://127.0.0.1:8081/bot",
    "RELAY_CHANNEL": "@mon_canal_solidaire",
    "RELAY_ADMINS": "11111111,22222222",
    "RELAY_MODERATION_CHAT": "-1001234567890",
    "RELAY_DATABASE_URL": "postgresql+psycopg://relay@localhost/relay",
    "RELAY_POSTS_PER_HOUR": "6",
    "RELAY_DAILY_CAP": "3",
    "RELAY_QUIET_START": "22h",
    "RELAY_QUIET_END": "7h",
    "RELAY_TIMEZONE": "Europe/Paris",
    "RELAY_WEEKLY_ROUNDUP": "1",
    "RELAY_WEEKLY_EXPOSURE_RATIO": "2.5",
    "RELAY_POLL_MINUTES": "15",
    "RELAY_POLL_CONCURRENCY": "10",
    "RELAY_PARSE_MEMORY_MB": "512",
    "RELAY_ALLOW_PRIVATE_NETWORKS": "0",
    "RELAY_PROXY": "http://proxy.example.org:3128",
    "RELAY_WEBHOOK_URL": "https://relay.example.org/telegram",
    "RELAY_WEBHOOK_LISTEN": "0.0.0.0",
    "RELAY_WEBHOOK_PORT": "8443",
    "RELAY_WEBHOOK_SECRET": "a-long-random-secret",
    "RELAY_LOG_LEVEL": "INFO",
    "RELAY_LOG_FORMAT": "json",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing to fix: `key` is a catalogue message, `value` what was given (if shown)."""

    name: str
    key: str
    value: str | None = None
    suggestion: str | None = None

    def render(self, lang: str) -> str:
        """One line: the name, the value given, what is expected, an example."""
        if self.key == "env.unknown":
            hint = "env.did_you_mean" if self.suggestion else "env.no_suggestion"
            return text(lang, "env.line_unknown", name=self.name) + text(
                lang, hint, suggestion=self.suggestion
            )
        if not self.key.startswith("env.expect."):
            return text(lang, "env.line_message", name=self.name, message=text(lang, self.key))
        return text(
            lang,
            "env.line",
            name=self.name,
            value=self.value,
            expected=text(lang, self.key),
            example=f"{self.name}={EXAMPLES[self.name]}",
        )


class SettingsError(ValueError):
    """Settings the relay must not start with: every problem, rendered in one message."""

    def __init__(self, problems: str | Iterable[Problem]) -> None:
        if isinstance(problems, str):  # one catalogue message, as before
            problems = [Problem(name="", key=problems)]
        self.problems = tuple(problems)
        super().__init__(self.render("en"))

    @property
    def key(self) -> str:
        """The catalogue key of the first problem."""
        return self.problems[0].key

    def render(self, lang: str) -> str:
        """The whole message in `lang`: one line for one problem, else a header and a list."""
        if len(self.problems) == 1:
            return f"{text(lang, 'env.header_one')} {self.problems[0].render(lang)}"
        lines = [text(lang, "env.header", count=len(self.problems))]
        lines += [f"• {problem.render(lang)}" for problem in self.problems]
        lines.append(text(lang, "env.footer"))
        return "\n".join(lines)


def _hour(value: str) -> int:
    """`22`, `22:00`, `22h` or `22h00` → 22."""
    found = re.fullmatch(r"(\d{1,2})(?:[:hH](?:00)?)?", value.strip())
    if not found or int(found[1]) > 23:
        raise ValueError("hour")
    return int(found[1])


def _flag(value: str) -> bool:
    word = value.strip().lower()
    if word not in {"1", "true", "yes", "on", "oui", "0", "false", "no", "off", "non"}:
        raise ValueError("flag")
    return word in {"1", "true", "yes", "on", "oui"}


def _ids(value: str) -> tuple[int, ...]:
    parts = [part for part in re.split(r"[,\s]+", value.strip()) if part]
    if not all(re.fullmatch(r"\d{1,20}", part) for part in parts):
        raise ValueError("ids")
    return tuple(int(part) for part in parts)


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a too-long name
        raise ValueError("zone") from exc
    return value


def _matching(pattern: str) -> AfterValidator:
    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise ValueError("pattern")
        return value

    return AfterValidator(check)


def _memory(value: int) -> int:
    # Below this a parse worker cannot even start; 0 lifts the ceiling.
    if value != 0 and value < 128:
        raise ValueError("memory")
    return value


def _listen(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9.-]+", value):
            raise
    return value


HTTP_URL = r"https?://[^\s/?#]+[^\s]*"
Hour = Annotated[int, BeforeValidator(_hour)]
Flag = Annotated[bool, BeforeValidator(_flag)]


class RelayEnvironment(BaseSettings):
    """The environment, typed: one field per name of `EXAMPLES`."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, validate_default=False)

    telegram_token: Annotated[str | None, _matching(r"\d+:[A-Za-z0-9_-]+")] = Field(
        None, alias="TELEGRAM_BOT_TOKEN"
    )
    telegram_api_base_url: Annotated[str | None, _matching(HTTP_URL)] = Field(
        None, alias="TELEGRAM_API_BASE_URL"
    )
    channel: Annotated[str | None, _matching(r"@[A-Za-z][A-Za-z0-9_]{3,31}|-?\d{1,20}")] = Field(
        None, alias="RELAY_CHANNEL"
    )
    admins: Annotated[tuple[int, ...], BeforeValidator(_ids)] = Field((), alias="RELAY_ADMINS")
    moderation_chat: int | None = Field(None, alias="RELAY_MODERATION_CHAT")
    database_url: Annotated[str, _matching(r"(sqlite|postgresql)(\+\w+)?://\S*")] = Field(
        "sqlite:///relay.db", alias="RELAY_DATABASE_URL"
    )
    posts_per_hour: int = Field(6, ge=1, le=60, alias="RELAY_POSTS_PER_HOUR")
    daily_cap: int = Field(3, ge=1, le=100, alias="RELAY_DAILY_CAP")
    quiet_start: Hour = Field(22, alias="RELAY_QUIET_START")
    quiet_end: Hour = Field(7, alias="RELAY_QUIET_END")
    timezone: Annotated[str, AfterValidator(_zone)] = Field("Europe/Paris", alias="RELAY_TIMEZONE")
    weekly_roundup: Flag = Field(True, alias="RELAY_WEEKLY_ROUNDUP")
    weekly_exposure_ratio: float = Field(0.0, ge=0, le=100, alias="RELAY_WEEKLY_EXPOSURE_RATIO")
    poll_minutes: int = Field(15, ge=5, le=1440, alias="RELAY_POLL_MINUTES")
    poll_concurrency: int = Field(10, ge=1, le=100, alias="RELAY_POLL_CONCURRENCY")
    parse_memory_mb: Annotated[int, AfterValidator(_memory)] = Field(
        512, alias="RELAY_PARSE_MEMORY_MB"
    )
    allow_private_networks: Flag = Field(False, alias="RELAY_ALLOW_PRIVATE_NETWORKS")
    proxy: Annotated[str | None, _matching(r"https?://[^\s/?#]+[^\s]*")] = Field(
        None, alias="RELAY_PROXY"
    )
    webhook_url: Annotated[str | None, _matching(r"https://[^\s/?#]+[^\s]*")] = Field(
        None, alias="RELAY_WEBHOOK_URL"
    )
    webhook_listen: Annotated[str, AfterValidator(_listen)] = Field(
        "0.0.0.0", alias="RELAY_WEBHOOK_LISTEN"
    )
    webhook_port: int = Field(8443, ge=1, le=65535, alias="RELAY_WEBHOOK_PORT")
    webhook_secret: Annotated[str | None, _matching(WEBHOOK_SECRET.pattern)] = Field(
        None, alias="RELAY_WEBHOOK_SECRET"
    )
    log_level: Annotated[str, BeforeValidator(str.upper), _matching("DEBUG|INFO|WARNING|ERROR")] = (
        Field("INFO", alias="RELAY_LOG_LEVEL")
    )
    log_format: Annotated[str, BeforeValidator(str.lower), _matching("text|json")] = Field(
        "text", alias="RELAY_LOG_FORMAT"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The caller merges the environment and `.env` itself: tests hand in a mapping.
        return (init_settings,)


def read_environment(values: Mapping[str, str]) -> RelayEnvironment:
    """The validated environment; `SettingsError` with every problem at once otherwise."""
    given = {name: value.strip() for name, value in values.items() if name in EXAMPLES}
    given = {name: value for name, value in given.items() if value}  # `NAME=` means the default
    problems = [*_unknown_names(values), *_webhook_problems(given)]
    try:
        fields: dict[str, Any] = dict(given)  # strings in, typed values out
        environment = RelayEnvironment(**fields)
    except ValidationError as exc:
        problems = _value_problems(exc, given) + problems
    if problems:
        raise SettingsError(problems)
    return environment


def _value_problems(error: ValidationError, given: Mapping[str, str]) -> list[Problem]:
    names = dict.fromkeys(str(detail["loc"][0]) for detail in error.errors())
    bad = [name for name in EXAMPLES if name in names]  # in the documented order
    webhook_secret = "cli.bad_webhook_secret"
    return [
        Problem(name, webhook_secret)
        if name == "RELAY_WEBHOOK_SECRET"
        else Problem(name, f"env.expect.{name}", shown_value(name, given[name]))
        for name in bad
    ]


def _unknown_names(values: Iterable[str]) -> list[Problem]:
    known = [*EXAMPLES, *OTHER_NAMES]
    return [
        Problem(
            name,
            "env.unknown",
            suggestion=next(iter(difflib.get_close_matches(name, known, 1)), None),
        )
        for name in sorted(values)
        if name.startswith("RELAY_") and name not in known and not name.startswith(OTHER_PREFIXES)
    ]


def _webhook_problems(given: Mapping[str, str]) -> list[Problem]:
    # Without a secret, anyone who finds the webhook's address can forge updates.
    if "RELAY_WEBHOOK_URL" in given and "RELAY_WEBHOOK_SECRET" not in given:
        return [Problem("RELAY_WEBHOOK_SECRET", "cli.no_webhook_secret")]
    return []


def shown_value(name: str, value: str) -> str:
    """What may be printed of a value: never a secret, never a password, never a screenful."""
    if name in SECRETS:
        return "…"
    value = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", value)
    return value if len(value) <= SHOWN_CHARACTERS else value[: SHOWN_CHARACTERS - 1] + "…"
