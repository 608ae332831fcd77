"""The /settings panel: its text and its buttons, drawn from the subscriber's row."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from relay.categories import CATEGORIES
from relay.i18n import text
from relay.subscriptions import PREFIX
from relay.telegram_html import escape
from storage.values import Frequency, Subscriber

COMMON_HOURS = (7, 8, 12, 18, 20)
SELECTED = "✅ "


def summary(lang: str, subscriber: Subscriber) -> str:
    """The subscriber's settings in three lines (HTML)."""
    hour = text(lang, "settings.hour", hour=subscriber.hour)
    when = subscriber.frequency if subscriber.active else Frequency.OFF
    names = [text(lang, f"business.category_{c}") for c in subscriber.categories if c in CATEGORIES]
    return text(
        lang,
        "settings.summary",
        frequency=text(lang, f"settings.when_{when.value}", hour=hour, zone=subscriber.timezone),
        categories=", ".join(names) or text(lang, "settings.all_categories"),
        cities=escape(", ".join(subscriber.cities)) or text(lang, "settings.all_cities"),
    )


def panel_text(lang: str, subscriber: Subscriber) -> str:
    return f"{text(lang, 'settings.title')}\n\n{summary(lang, subscriber)}"


def panel_keyboard(lang: str, subscriber: Subscriber) -> InlineKeyboardMarkup:
    """Frequency, hour, categories, cities, done: every button says what it sets."""
    return InlineKeyboardMarkup(
        [
            _frequency_row(lang, subscriber),
            _hours_row(lang, subscriber),
            _hour_step_row(lang, subscriber),
            *_category_rows(lang, subscriber),
            [_button(text(lang, "settings.cities_button"), "city")],
            [_button(text(lang, "settings.done_button"), "done")],
        ]
    )


def _button(label: str, data: str, *, selected: bool = False) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        SELECTED + label if selected else label, callback_data=PREFIX + data
    )


def _frequency_row(lang: str, s: Subscriber) -> list[InlineKeyboardButton]:
    current = s.frequency if s.active else Frequency.OFF
    return [
        _button(text(lang, f"settings.freq_{f.value}"), f"freq:{f.value}", selected=f == current)
        for f in Frequency
    ]


def _hours_row(lang: str, s: Subscriber) -> list[InlineKeyboardButton]:
    return [
        _button(text(lang, "settings.hour", hour=h), f"hour:{h}", selected=h == s.hour)
        for h in COMMON_HOURS
    ]


def _hour_step_row(lang: str, s: Subscriber) -> list[InlineKeyboardButton]:
    # Absolute targets, not "+1": pressing a stale panel twice lands on what it showed.
    return [
        _button(text(lang, "settings.earlier"), f"hour:{(s.hour - 1) % 24}"),
        _button(text(lang, "settings.hour", hour=s.hour), f"hour:{s.hour}"),
        _button(text(lang, "settings.later"), f"hour:{(s.hour + 1) % 24}"),
    ]


def _category_rows(lang: str, s: Subscriber) -> list[list[InlineKeyboardButton]]:
    buttons = [
        _button(
            text(lang, f"business.category_{c}"),
            f"cat:{c}:{0 if c in s.categories else 1}",
            selected=c in s.categories,
        )
        for c in CATEGORIES
    ]
    everything = _button(
        text(lang, "settings.all_categories_button"), "cat:all", selected=not s.categories
    )
    return [buttons[i : i + 2] for i in range(0, len(buttons), 2)] + [[everything]]
