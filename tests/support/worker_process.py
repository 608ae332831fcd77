"""Worker processes for the crash and multi-worker tests: `python -m tests.support.worker_process`.

poll DB_URL SCHEMA            one poll cycle; prints the report as JSON
crash-after-claim DB_URL SCHEMA     claim deliveries, then die (SIGKILL) before sending
crash-while-sending DB_URL SCHEMA   claim, mark one as sending, then die
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import timedelta

from feeds.fetch import Fetcher
from relay.clock import utcnow
from relay.parsing import ParserPool
from relay.poller import Poller
from relay.settings import PollingSettings
from storage import outbox
from storage.engine import Database
from tests.support.builders import relay_settings


async def poll(db: Database) -> None:
    settings = relay_settings(polling=PollingSettings(parse_workers=0, batch_size=4))
    async with Fetcher(settings.fetch) as fetcher:
        report = await Poller(db, fetcher, ParserPool(0, 10), settings, utcnow).poll_once()
    print(json.dumps({"claimed": report.claimed, "changed": report.changed}))


def crash(db: Database, *, sending: bool) -> None:
    claimed = outbox.claim_ready(db, utcnow(), 10, timedelta(seconds=1))
    if sending and claimed:
        outbox.mark_sending(db, claimed[0].id, utcnow(), timedelta(seconds=1))
    print(json.dumps({"claimed": len(claimed)}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> None:
    command, url, schema = argv
    db = Database(url, schema=schema or None)
    if command == "poll":
        asyncio.run(poll(db))
    else:
        crash(db, sending=command == "crash-while-sending")


if __name__ == "__main__":
    main(sys.argv[1:])
