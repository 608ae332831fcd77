"""Test-only parse functions for the pool's workers, which import them by name.

They stand for hostile documents without needing one: a parse that takes too long, one
that wants more memory than a worker has, one whose worker is killed mid-way.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from relay.parsing import ParsedDocument, ParseJob, parse_document


def slow_parse(job: ParseJob, started_file: str, seconds: float) -> ParsedDocument:
    """Note when the worker started (its monotonic clock), then dawdle."""
    Path(started_file).write_text(repr(time.monotonic()))
    time.sleep(seconds)
    return parse_document(job)


def greedy_parse(job: ParseJob, megabytes: int) -> ParsedDocument:
    hoard = bytearray(megabytes * 1024 * 1024)
    return parse_document(job) if hoard else parse_document(job)


def fatal_parse(job: ParseJob) -> ParsedDocument:
    os.kill(os.getpid(), signal.SIGKILL)
    return parse_document(job)
