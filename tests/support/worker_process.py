"""Worker processes for the crash and multi-worker tests: `python -m tests.support.worker_process`.

poll DB_URL SCHEMA                  one poll cycle; prints the report as JSON
crash-after-claim DB_URL SCHEMA     take the sending lease, claim deliveries, die (SIGKILL)
crash-while-sending DB_URL SCHEMA   take the lease, claim, mark one as sending, then die
send DB_URL SCHEMA BASE_URL         drain the outbox like the relay's sender loop until it is
                                    empty (standing by while another process sends); prints
                                    the totals as JSON
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import timedelta

from sqlalchemy import func, select

from feeds.fetch import Fetcher
from relay.clock import utcnow
from relay.parsing import ParserPool
from relay.poller import Poller
from relay.sender import SENDER_LEASE, Sender, this_process
from relay.settings import PollingSettings
from relay.wire import sender_bot, token_key
from storage import leases, outbox
from storage.engine import Database
from storage.tables import DELIVERIES
from storage.values import DeliveryState
from tests.support.builders import relay_settings
from tests.support.fake_telegram import TOKEN


def process_database_url(db: Database) -> str:
    """The test database as a URL another process can open (schema included on PostgreSQL)."""
    if db.is_sqlite:
        return db.url
    with db.engine.connect() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
    return f"{db.url}?options=-csearch_path%3D{schema}"


async def poll(db: Database) -> None:
    settings = relay_settings(polling=PollingSettings(parse_workers=0, batch_size=4))
    async with Fetcher(settings.fetch) as fetcher:
        report = await Poller(db, fetcher, ParserPool(0, 10), settings, utcnow).poll_once()
    print(json.dumps({"claimed": report.claimed, "changed": report.changed}))


def crash(db: Database, *, sending: bool) -> None:
    me = this_process()
    taken = leases.acquire(
        db, f"sender:{token_key(TOKEN)}", me, utcnow(), SENDER_LEASE, lambda _lease: False
    )
    claimed = outbox.claim_ready(db, utcnow(), 10, timedelta(minutes=2), me.owner)
    if sending and claimed:
        outbox.mark_sending(db, claimed[0].id, utcnow(), timedelta(minutes=2), me.owner)
    print(json.dumps({"lease": taken.value, "claimed": len(claimed)}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def _open_deliveries(db: Database) -> int:
    open_states = [DeliveryState.PENDING.value, DeliveryState.CLAIMED.value]
    with db.read() as session:
        query = select(func.count()).where(DELIVERIES.c.state.in_(open_states))
        return int(session.execute(query).scalar_one())


async def send(db: Database, base_url: str) -> None:
    totals = {"sent": 0, "drains": 0, "standby": 0}
    async with sender_bot(TOKEN, base_url) as bot:
        sender = Sender(db, bot, utcnow)
        while _open_deliveries(db):
            report = await sender.drain(max_seconds=30)
            totals["drains"] += 1
            totals["sent"] += report.sent
            totals["standby"] += report.standby
            await asyncio.sleep(0.3 if report.standby else 0.05)
    print(json.dumps(totals), flush=True)


def main(argv: list[str]) -> None:
    command, url, schema, *rest = argv
    db = Database(url, schema=schema or None)
    if command == "poll":
        asyncio.run(poll(db))
    elif command == "send":
        asyncio.run(send(db, rest[0]))
    else:
        crash(db, sending=command == "crash-while-sending")


if __name__ == "__main__":
    main(sys.argv[1:])
