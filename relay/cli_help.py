"""The `relay` command line as the operator reads it: the language, the help, the version.

The help comes from the catalogues, so `relay --help` speaks French to a French locale; each
command's help ends with the settings it reads.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from relay.environment import EXAMPLES
from relay.i18n import language_for, text

# Where the language is read, first found wins; LANGUAGE may be a list ("fr:en").
LANGUAGE_VARIABLES = ("RELAY_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")
FETCHING = ("RELAY_ALLOW_PRIVATE_NETWORKS", "RELAY_PROXY", "RELAY_PARSE_MEMORY_MB")
TELEGRAM = ("TELEGRAM_BOT_TOKEN", "TELEGRAM_API_BASE_URL", "RELAY_CHANNEL", "RELAY_ADMINS")
WORKER_ONLY = (  # pacing and polling: only the scheduled work reads them
    "RELAY_POSTS_PER_HOUR",
    "RELAY_DAILY_CAP",
    "RELAY_QUIET_START",
    "RELAY_QUIET_END",
    "RELAY_WEEKLY_ROUNDUP",
    "RELAY_WEEKLY_EXPOSURE_RATIO",
    "RELAY_POLL_MINUTES",
    "RELAY_POLL_CONCURRENCY",
)
WEBHOOK = tuple(name for name in EXAMPLES if name.startswith("RELAY_WEBHOOK_"))

# command → the settings it reads (all of them are checked before any command runs).
COMMAND_SETTINGS: dict[str, tuple[str, ...]] = {
    "run": tuple(EXAMPLES),
    "bot": tuple(name for name in EXAMPLES if name not in WORKER_ONLY),
    "worker": tuple(name for name in EXAMPLES if name not in WEBHOOK),
    "check": (*TELEGRAM, "RELAY_MODERATION_CHAT", "RELAY_DATABASE_URL", "RELAY_PROXY"),
    "db": ("RELAY_DATABASE_URL",),
    "preview": FETCHING,
    "discover": FETCHING,
}
WITH_URL = ("preview", "discover")


def language_from(environ: Mapping[str, str]) -> str:
    """ "fr" or "en" from RELAY_LANG, then the locale variables in POSIX order of priority."""
    for name in LANGUAGE_VARIABLES:
        first = next((part for part in environ.get(name, "").split(":") if part), "")
        if first:
            return language_for(first)
    return "en"


def package_version() -> str:
    """The installed version of the relay."""
    try:
        return version("solidarity-relay")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter with "usage:" in the operator's language."""

    def __init__(self, prog: str, *, lang: str) -> None:
        super().__init__(prog)
        self.lang = lang

    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: str | None = None) -> None:
        # argparse passes prefix="" when it only wants a subcommand's name, not a heading.
        heading = text(self.lang, "cli_help.usage") if prefix is None else prefix
        super().add_usage(usage, actions, groups, heading)


def build_parser(lang: str, commands: Iterable[str]) -> argparse.ArgumentParser:
    """The `relay` parser, its help in `lang`, with a subcommand for each of `commands`."""
    formatter = partial(_Formatter, lang=lang)
    parser = _translated(
        argparse.ArgumentParser(
            prog="relay",
            description=text(lang, "cli_help.description"),
            epilog=text(lang, "cli_help.epilog"),
            formatter_class=formatter,
            add_help=False,
        ),
        lang,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"relay {package_version()}",
        help=text(lang, "cli_help.version"),
    )
    sub = parser.add_subparsers(
        dest="command", required=True, title=text(lang, "cli_help.commands")
    )
    for name in (command for command in COMMAND_SETTINGS if command in set(commands)):
        _add_command(sub, name, lang, formatter)
    return parser


def _add_command(
    sub: Any, name: str, lang: str, formatter: Callable[..., argparse.HelpFormatter]
) -> None:
    reads = text(lang, "cli_help.reads", names=", ".join(COMMAND_SETTINGS[name]))
    command = _translated(
        sub.add_parser(
            name,
            help=text(lang, f"cli_help.{name}"),
            description=text(lang, f"cli_help.{name}"),
            epilog=reads,
            formatter_class=formatter,
            add_help=False,
        ),
        lang,
    )
    if name == "db":
        command.add_argument("action", choices=["upgrade"], help=text(lang, "cli_help.db_upgrade"))
    if name in WITH_URL:
        command.add_argument("url", help=text(lang, "cli_help.url"))
        command.add_argument("--json", action="store_true", help=text(lang, "cli_help.json"))


def _translated(parser: argparse.ArgumentParser, lang: str) -> argparse.ArgumentParser:
    """Section titles and -h in `lang` (argparse only speaks English by itself)."""
    parser._positionals.title = text(lang, "cli_help.positionals")
    parser._optionals.title = text(lang, "cli_help.options")
    parser.add_argument("-h", "--help", action="help", help=text(lang, "cli_help.help"))
    return parser
