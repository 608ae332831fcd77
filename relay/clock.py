"""The one clock of the relay: injected wherever a decision depends on the time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The real clock (aware UTC)."""
    return datetime.now(UTC)
