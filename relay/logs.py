"""How the relay logs: one line per business event, as readable text or as JSON objects.

Events carry their ids and counts as structured fields (`extra={...}`): the JSON format
writes them as keys, the text format appends them as `key=value`. Message text and tokens
are never logged; a filter scrubs anything shaped like a bot token all the same.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

# Libraries that are chatty at INFO: APScheduler logs every run of every job (twice a second
# here, ≈170,000 lines a day), httpx every request.
QUIET_LOGGERS = ("apscheduler", "httpx", "httpcore")
BOT_TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]{30,}")
REDACTED = "[token]"

# What every LogRecord has; anything else on a record came from `extra={...}`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields an event was logged with, in the order given."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


def redact(value: str) -> str:
    """`value` with anything shaped like a bot token replaced."""
    return BOT_TOKEN.sub(REDACTED, value)


class RedactTokens(logging.Filter):
    """Scrubs bot tokens from the message, its arguments, its fields and its traceback.

    Tokens reach logs by accident: in a URL httpx reports, in an exception's text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        for key, value in event_fields(record).items():
            if isinstance(value, str):
                setattr(record, key, redact(value))
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in event_fields(record).items():
            entry.setdefault(key, value)
        if record.exc_text or record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value …` on one line (a traceback follows if any)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (stdlib's name)
        line = super().formatMessage(record)
        fields = " ".join(f"{k}={_text_value(v)}" for k, v in event_fields(record).items())
        return f"{line} {fields}" if fields else line


def _text_value(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items()) or "-"
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if not text or " " in text else text


def configure_logging(
    level: str = "INFO", fmt: str = "text", *, stream: TextIO | None = None
) -> None:
    """Route every log record to `stream` (stderr) at `level`, as `json` or readable text."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactTokens())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
