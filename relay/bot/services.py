"""What the bot's handlers need, wired once in `bot.py` / the CLI and found in bot_data."""

from __future__ import annotations

from dataclasses import dataclass, field

from feeds.fetch import Fetcher
from relay.clock import Clock, utcnow
from relay.parsing import ParserPool
from relay.settings import Settings
from storage.engine import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    fetcher: Fetcher
    clock: Clock = utcnow
    channel_id: int | None = None
    bot_username: str | None = field(default=None)
    # Registration parses sites here, off the event loop; None: inline (tests, tools).
    parsers: ParserPool | None = None
