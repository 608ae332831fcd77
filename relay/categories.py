"""The kinds of business people pick from, stored as codes and shown in the reader's language."""

from __future__ import annotations

from relay.i18n import text

CATEGORIES = ("bakery", "florist", "bookshop", "crafts", "restaurant", "shop", "services", "other")


def category_name(code: str | None, lang: str) -> str:
    """The category's name in `lang` ("—" when there is none)."""
    return text(lang, f"business.category_{code}") if code in CATEGORIES else "—"
