"""One `Settings` object, read once from the environment (and a `.env` file), passed down."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from feeds.config import FetchSettings
from relay.i18n import text

DEFAULT_DATABASE_URL = "sqlite:///relay.db"
WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what Telegram accepts as secret_token


class SettingsError(ValueError):
    """Settings the relay must not start with; `key` names the catalogue message to print."""

    def __init__(self, key: str) -> None:
        super().__init__(text("en", key))
        self.key = key


@dataclass(frozen=True, kw_only=True, slots=True)
class PacingSettings:
    """How fast and when the public channel is fed."""

    posts_per_hour: int = 6
    quiet_start_hour: int = 22  # local time in `timezone`
    quiet_end_hour: int = 7
    daily_cap_per_business: int = 3
    # Optional: a business's posts over 7 days ≤ ratio × the median business's (0 = off).
    # Off by default: with one very busy business it conflicts with "everyone within 24 h".
    weekly_exposure_ratio: float = 0.0
    timezone: str = "Europe/Paris"
    weekly_roundup: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class PollingSettings:
    """How sources are polled."""

    interval_minutes: int = 15
    min_interval_minutes: int = 5
    max_interval_hours: int = 24
    jitter_fraction: float = 0.1
    concurrency: int = 10  # httpx's pool slows down beyond ≈10–20 (FACTS.md)
    batch_size: int = 200
    failure_threshold: int = 10  # consecutive failures before a source is paused
    initial_items: int = 3  # newest items queued when a source is added
    initial_max_age_days: int = 14  # ... only if that recent
    parse_workers: int = 2
    parse_deadline_seconds: float = 10.0
    parse_memory_mb: int = 512  # address space of one parse worker (RLIMIT_AS); 0: no cap


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """Everything the relay reads from its environment."""

    database_url: str = DEFAULT_DATABASE_URL
    telegram_token: str | None = None
    telegram_api_base_url: str | None = None  # PTB base_url form, e.g. http://127.0.0.1:8081/bot
    channel: str | None = None  # id or @name
    admins: tuple[int, ...] = ()
    moderation_chat: int | None = None
    webhook_url: str | None = None  # public HTTPS URL: webhook mode instead of long polling
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = 8443
    webhook_secret: str | None = None
    fetch: FetchSettings = field(default_factory=FetchSettings)
    pacing: PacingSettings = field(default_factory=PacingSettings)
    polling: PollingSettings = field(default_factory=PollingSettings)
    log_level: str = "INFO"  # DEBUG | INFO | WARNING | ERROR
    log_format: str = "text"  # text | json (one JSON object per line)

    def __post_init__(self) -> None:
        # Without a secret, anyone who finds the webhook's address can forge updates.
        if self.webhook_url and not self.webhook_secret:
            raise SettingsError("cli.no_webhook_secret")
        if self.webhook_secret is not None and not WEBHOOK_SECRET.fullmatch(self.webhook_secret):
            raise SettingsError("cli.bad_webhook_secret")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, dotenv: Path | None = None
    ) -> Settings:
        """Read settings; real environment variables win over the `.env` file."""
        env = {
            **read_dotenv(dotenv or Path(".env")),
            **(os.environ if environ is None else environ),
        }
        return cls(
            database_url=env.get("RELAY_DATABASE_URL") or DEFAULT_DATABASE_URL,
            telegram_token=env.get("TELEGRAM_BOT_TOKEN") or None,
            telegram_api_base_url=env.get("TELEGRAM_API_BASE_URL") or None,
            channel=env.get("RELAY_CHANNEL") or None,
            admins=_int_list(env.get("RELAY_ADMINS", "")),
            moderation_chat=_opt_int(env.get("RELAY_MODERATION_CHAT")),
            webhook_url=env.get("RELAY_WEBHOOK_URL") or None,
            webhook_listen=env.get("RELAY_WEBHOOK_LISTEN", "0.0.0.0"),
            webhook_port=int(env.get("RELAY_WEBHOOK_PORT", 8443)),
            webhook_secret=env.get("RELAY_WEBHOOK_SECRET") or None,
            log_level=(env.get("RELAY_LOG_LEVEL") or "INFO").upper(),
            log_format=(env.get("RELAY_LOG_FORMAT") or "text").lower(),
            fetch=FetchSettings(
                allow_private_networks=_flag(env.get("RELAY_ALLOW_PRIVATE_NETWORKS")),
                proxy=env.get("RELAY_PROXY") or None,
            ),
            pacing=PacingSettings(
                posts_per_hour=int(env.get("RELAY_POSTS_PER_HOUR", 6)),
                daily_cap_per_business=int(env.get("RELAY_DAILY_CAP", 3)),
                quiet_start_hour=int(env.get("RELAY_QUIET_START", 22)),
                quiet_end_hour=int(env.get("RELAY_QUIET_END", 7)),
                timezone=env.get("RELAY_TIMEZONE", "Europe/Paris"),
                weekly_roundup=_flag(env.get("RELAY_WEEKLY_ROUNDUP", "1")),
                weekly_exposure_ratio=float(env.get("RELAY_WEEKLY_EXPOSURE_RATIO", 0)),
            ),
            polling=PollingSettings(
                interval_minutes=max(5, int(env.get("RELAY_POLL_MINUTES", 15))),
                concurrency=int(env.get("RELAY_POLL_CONCURRENCY", 10)),
                parse_memory_mb=int(env.get("RELAY_PARSE_MEMORY_MB", 512)),
            ),
        )


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments ignored; surrounding quotes removed."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("'\"")
    return values


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _int_list(value: str) -> tuple[int, ...]:
    return tuple(int(part) for part in value.replace(" ", "").split(",") if part)


def _opt_int(value: str | None) -> int | None:
    return int(value) if value else None
