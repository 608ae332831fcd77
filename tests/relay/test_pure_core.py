"""The decision core does no I/O: importing it loads no HTTP, Telegram or database library."""

from __future__ import annotations

import subprocess
import sys

import pytest

PURE = [
    "relay.scheduling",
    "relay.fairness",
    "relay.telegram_html",
    "relay.digest",
    "relay.limits",
    "relay.intake",
    "relay.delivery",
    "relay.subscriptions",
    "relay.categories",
]
IO_LIBRARIES = ["httpx", "httpcore", "telegram", "sqlalchemy", "sqlmodel", "psycopg", "feedparser"]


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io_library(module: str) -> None:
    probe = (
        f"import sys, {module}; print(','.join(m for m in {IO_LIBRARIES!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
