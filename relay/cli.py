"""The `relay` command: run the relay, try a source, manage the database.

relay run                 bot and worker in one process (what `python bot.py` does)
relay preview URL [--json]   read a feed or homepage and show its items
relay discover URL [--json]  list the feeds a homepage offers
relay --version | --help     (the help is in the operator's language)
relay check               check the token, the channel and the database, then stop
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from feeds.errors import FeedError, NoFeedFoundError
from feeds.fetch import Fetcher
from feeds.models import FeedItem, FeedLink
from feeds.reader import Progress, SourceReading, discover_source, read_source
from relay.cli_help import build_parser, language_from
from relay.i18n import text
from relay.parsing import ParserPool
from relay.settings import Settings, SettingsError

T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen command; returns the exit status."""
    # python-telegram-bot 22: durations as timedelta, without deprecation warnings.
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    args = build_parser(cli_language(), COMMANDS).parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:  # every problem at once, in the user's language, no traceback
        print(exc.render(cli_language()), file=sys.stderr)
        return 2
    handler = COMMANDS[args.command]
    return handler(args, settings)


def run_relay_command(args: argparse.Namespace, settings: Settings) -> int:
    """`relay run | bot | worker`: until SIGINT/SIGTERM."""
    if not settings.telegram_token:
        print(text(cli_language(), "cli.no_token"), file=sys.stderr)
        return 2
    from relay.bot.app import run_relay
    from relay.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    return asyncio.run(
        run_relay(
            settings,
            bot=args.command in ("run", "bot"),
            worker=args.command in ("run", "worker"),
            lang=cli_language(),
        )
    )


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    """`relay check`: one line per start-up check; 1 if one failed."""
    from relay.checks import failed, run_checks

    results = asyncio.run(run_checks(settings))
    lang = cli_language()
    for result in results:
        print(result.line(lang))
    return 1 if failed(results) else 0


def run_db(args: argparse.Namespace, settings: Settings) -> int:
    """`relay db upgrade`: bring the schema up to date."""
    from storage.engine import Database
    from storage.migrate import upgrade

    database = Database(settings.database_url)
    upgrade(database)
    database.dispose()
    print(text(cli_language(), "cli.db_upgraded", url=_safe_url(settings.database_url)))
    return 0


def _safe_url(url: str) -> str:
    """The database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def cli_language() -> str:
    """The operator's language: RELAY_LANG, then LANGUAGE, LC_ALL, LC_MESSAGES, LANG."""
    return language_from(os.environ)


def run_preview(args: argparse.Namespace, settings: Settings) -> int:
    """`relay preview URL`: what the relay would read from this source."""
    try:
        reading = asyncio.run(_read(args.url, settings))
    except FeedError as exc:
        return report_error(exc, as_json=args.json)
    except Exception as exc:  # a bug must still end in one sentence, not a traceback
        return report_unexpected(exc, as_json=args.json)
    if args.json:
        print(json.dumps(preview_json(reading), ensure_ascii=False))
    else:
        print(render_preview(reading, cli_language()))
    return 0


def run_discover(args: argparse.Namespace, settings: Settings) -> int:
    """`relay discover URL`: the feeds a homepage offers, in document order."""
    try:
        feeds = asyncio.run(_discover(args.url, settings))
    except FeedError as exc:
        return report_error(exc, as_json=args.json)
    except Exception as exc:
        return report_unexpected(exc, as_json=args.json)
    if args.json:
        print(json.dumps({"url": args.url, "feeds": [_link_json(f) for f in feeds]}))
    else:
        print(render_feeds(feeds, cli_language()))
    return 0


async def _read(url: str, settings: Settings) -> SourceReading:
    return await _with_reader(read_source, url, settings)


async def _discover(url: str, settings: Settings) -> list[FeedLink]:
    return await _with_reader(discover_source, url, settings)


async def _with_reader(reader: Callable[..., Awaitable[T]], url: str, settings: Settings) -> T:
    """Run `read_source` or `discover_source` with one parse worker: the site's documents
    get the relay's deadline and memory ceiling, never the CLI's own process."""
    parsers = ParserPool.from_settings(settings.polling, workers=1)
    try:
        async with Fetcher(settings.fetch) as fetcher:
            return await reader(
                fetcher,
                url,
                max_probes=settings.fetch.max_probes,
                progress=_progress(),
                parse=parsers.parse_fetched,
            )
    finally:
        parsers.close()


def _progress() -> Progress | None:
    if not sys.stderr.isatty():
        return None
    lang = cli_language()

    def show(url: str, index: int, total: int) -> None:
        print(text(lang, "cli.trying", url=url, index=index, total=total), file=sys.stderr)

    return show


def report_error(exc: FeedError, *, as_json: bool) -> int:
    """One clear sentence on stderr (and a JSON error object on stdout with --json)."""
    message = error_message(exc, cli_language())
    print(message, file=sys.stderr)
    if as_json:
        print(json.dumps({"error": {"code": exc.code, "message": message}}, ensure_ascii=False))
    return 2 if isinstance(exc, NoFeedFoundError) else 1


def report_unexpected(exc: Exception, *, as_json: bool) -> int:
    """An unexpected failure: one sentence for the person, details in the log."""
    logging.getLogger("relay").debug("unexpected error", exc_info=exc)
    message = text(cli_language(), "error.internal")
    print(message, file=sys.stderr)
    if as_json:
        print(json.dumps({"error": {"code": "internal", "message": message}}, ensure_ascii=False))
    return 3


def error_message(exc: FeedError, lang: str) -> str:
    """The user-facing sentence for a feed error, in `lang`."""
    return text(lang, f"error.{exc.code}", url=exc.url, detail=exc.detail)


def preview_json(reading: SourceReading) -> dict[str, Any]:
    """The documented JSON shape of `relay preview --json`."""
    return {
        "url": reading.url,
        "source_url": reading.source_url,
        "kind": reading.kind,
        "title": reading.feed.title,
        "feeds": [f.url for f in reading.feeds],
        "items": [item_json(item) for item in reading.feed.items],
    }


def item_json(item: FeedItem) -> dict[str, Any]:
    """One item as preview JSON."""
    return {
        "title": item.title,
        "link": item.link,
        "guid": item.guid,
        "published": format_utc(item.published),
        "summary": item.summary,
        "image": item.image,
    }


def format_utc(moment: datetime | None) -> str | None:
    """ "YYYY-MM-DDTHH:MM:SSZ" or None."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def render_preview(reading: SourceReading, lang: str) -> str:
    """A readable table of the items."""
    lines = [
        reading.feed.title or reading.source_url,
        text(lang, "cli.source", url=reading.source_url, kind=reading.kind),
        "",
    ]
    if not reading.feed.items:
        lines.append(text(lang, "cli.no_items"))
    for item in reading.feed.items:
        date = item.published.strftime("%Y-%m-%d %H:%M") if item.published else "—"
        lines.append(f"{date:16}  {_shorten(item.title or '—', 60):60}  {item.link or ''}")
    return "\n".join(lines)


def render_feeds(feeds: list[FeedLink], lang: str) -> str:
    """Discovered feeds, one per line."""
    if not feeds:
        return text(lang, "cli.no_feeds_found")
    rows = [f"{f.type:5}  {f.url}  {f.title or ''}".rstrip() for f in feeds]
    return "\n".join([text(lang, "cli.feeds_found"), *rows])


def _shorten(value: str, width: int) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


def _link_json(link: FeedLink) -> dict[str, Any]:
    return {"url": link.url, "type": link.type, "title": link.title}


COMMANDS = {
    "preview": run_preview,
    "discover": run_discover,
    "run": run_relay_command,
    "bot": run_relay_command,
    "worker": run_relay_command,
    "db": run_db,
    "check": run_check,
}

if __name__ == "__main__":
    sys.exit(main())
