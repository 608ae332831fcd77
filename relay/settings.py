"""One `Settings` object, read once from the environment (and a `.env` file), passed down.

`relay.environment` reads and checks the raw values; the frozen dataclasses here are what
the rest of the relay receives (and what tests build with `dataclasses.replace`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from feeds.config import FetchSettings
from relay.environment import WEBHOOK_SECRET, RelayEnvironment, SettingsError, read_environment

__all__ = ["PacingSettings", "PollingSettings", "Settings", "SettingsError", "read_dotenv"]

DEFAULT_DATABASE_URL = "sqlite:///relay.db"


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
    concurrency: int = 10  # httpx's pool slows down beyond ≈10–20 (docs/facts.md)
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
        """Read settings; real environment variables win over the `.env` file.

        Raises `SettingsError` listing every bad value and unknown `RELAY_*` name at once.
        """
        env = {
            **read_dotenv(dotenv or Path(".env")),
            **(os.environ if environ is None else environ),
        }
        return cls.from_environment(read_environment(env))

    @classmethod
    def from_environment(cls, env: RelayEnvironment) -> Settings:
        """The frozen settings the relay receives, from the validated environment."""
        return cls(
            database_url=env.database_url,
            telegram_token=env.telegram_token,
            telegram_api_base_url=env.telegram_api_base_url,
            channel=env.channel,
            admins=env.admins,
            moderation_chat=env.moderation_chat,
            webhook_url=env.webhook_url,
            webhook_listen=env.webhook_listen,
            webhook_port=env.webhook_port,
            webhook_secret=env.webhook_secret,
            log_level=env.log_level,
            log_format=env.log_format,
            fetch=FetchSettings(allow_private_networks=env.allow_private_networks, proxy=env.proxy),
            pacing=PacingSettings(
                posts_per_hour=env.posts_per_hour,
                daily_cap_per_business=env.daily_cap,
                quiet_start_hour=env.quiet_start,
                quiet_end_hour=env.quiet_end,
                timezone=env.timezone,
                weekly_roundup=env.weekly_roundup,
                weekly_exposure_ratio=env.weekly_exposure_ratio,
            ),
            polling=PollingSettings(
                interval_minutes=env.poll_minutes,
                concurrency=env.poll_concurrency,
                parse_memory_mb=env.parse_memory_mb,
            ),
        )

    def warnings(self) -> list[str]:
        """Catalogue keys of what the relay can start without, but should not run without."""
        missing = {"env.warn.no_channel": not self.channel, "env.warn.no_admins": not self.admins}
        return [key for key, is_missing in missing.items() if is_missing]


def read_dotenv(path: Path) -> dict[str, str]:
    """The `.env` file as python-dotenv reads it: quotes, `export` and inline `# comments`."""
    if not path.is_file():
        return {}
    return {key: value or "" for key, value in dotenv_values(path, encoding="utf-8").items()}
