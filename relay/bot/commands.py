"""Handlers (being written)."""

from __future__ import annotations

from telegram.ext import BaseHandler


def handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    return []


async def publish(bot: object) -> None:
    """setMyCommands in both languages (being written)."""
