"""A subscriber's settings, decided from what they typed or pressed: pure functions.

`changes_for` turns a settings-panel button ("set:hour:17") into column values;
`shortcut_changes` does the same for "/settings ville Lyon" and "/settings tz Europe/Paris".
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from relay.categories import CATEGORIES
from relay.digest import fold
from storage.values import Frequency, Subscriber

PREFIX = "set:"
MAX_CALLBACK_BYTES = 64
MAX_CITIES = 10  # 10 × 60 characters stays within the 1,000-character column
MAX_CITY_CHARS = 60
MAX_ZONE_CHARS = 64
CLEAR_WORDS = frozenset({"tout", "tous", "toutes", "all", "everything"})
CITY_WORDS = frozenset({"ville", "villes", "city", "cities"})
ZONE_WORDS = frozenset({"tz", "fuseau", "timezone"})


def parse_cities(typed: str) -> tuple[str, ...] | None:
    """City names typed as "Lyon, Villeurbanne": () clears ("*", "tout", "all"), None if none."""
    if typed.strip() == "*" or fold(typed) in CLEAR_WORDS:
        return ()
    unique: dict[str, str] = {}
    for part in typed.replace(";", ",").split(","):
        name = " ".join(part.split())[:MAX_CITY_CHARS].strip()
        if fold(name):
            unique.setdefault(fold(name), name)
    return tuple(unique.values())[:MAX_CITIES] or None


def valid_zone(name: str) -> str | None:
    """`name` if it is an IANA time zone ("Europe/Brussels"), else None."""
    if not name or len(name) > MAX_ZONE_CHARS:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder of tzdata
        return None
    return name


def changes_for(data: str, subscriber: Subscriber) -> dict[str, Any] | None:
    """The settings a panel button asks for, or None when the data is no valid button."""
    if len(data.encode()) > MAX_CALLBACK_BYTES or not data.startswith(PREFIX):
        return None
    match data.removeprefix(PREFIX).split(":"):
        case ["freq", value] if value in set(Frequency):
            # Asking for digests again also revives a chat once marked as blocked.
            revive = {"active": True, "blocked_at": None} if value != Frequency.OFF else {}
            return {"frequency": value, **revive}
        case ["hour", value] if value.isascii() and value.isdigit() and int(value) < 24:
            return {"hour": int(value)}
        case ["cat", "all"]:
            return {"categories": ()}
        case ["cat", name, on] if name in CATEGORIES and on in ("0", "1"):
            chosen = {c for c in subscriber.categories if c != name} | (
                {name} if on == "1" else set()
            )
            return {"categories": tuple(c for c in CATEGORIES if c in chosen)}
    return None


def shortcut_changes(word: str, value: str) -> dict[str, Any] | None:
    """`/settings ville Lyon, …` or `/settings tz Europe/Brussels` as changes; None if invalid."""
    if word in CITY_WORDS:
        cities = parse_cities(value)
        return None if cities is None else {"cities": cities}
    zone = valid_zone(value.strip())
    return None if zone is None else {"timezone": zone}
