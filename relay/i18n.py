"""User-facing text: one catalogue per language (relay/locales/<lang>.toml), French first.

`text(lang, key, **values)` formats a message. Keys are dotted ("error.timeout").
A key missing from a catalogue falls back to French, then to the key itself, so a
forgotten translation shows up visibly instead of crashing a handler.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"
LOCALES = Path(__file__).with_name("locales")


def language_for(code: str | None) -> str:
    """Telegram/locale language code → "fr" or "en" (French when it starts with fr)."""
    return "fr" if (code or "").lower().startswith("fr") else "en"


@cache
def catalogue(lang: str) -> dict[str, str]:
    """The flattened catalogue of one language."""
    raw = (LOCALES / f"{lang}.toml").read_text("utf-8")
    return _flatten(tomllib.loads(raw))


def text(lang: str, key: str, **values: object) -> str:
    """The message `key` in `lang`, formatted with `values`."""
    template = catalogue(lang if lang in LANGUAGES else DEFAULT_LANGUAGE).get(key)
    if template is None:
        template = catalogue(DEFAULT_LANGUAGE).get(key, key)
    return template.format(**values) if values else template


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat
