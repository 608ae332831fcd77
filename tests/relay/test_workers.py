"""Real processes: a worker killed mid-delivery loses nothing and doubles nothing; two
workers sharing the database fetch each due source exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

from relay.clock import utcnow
from relay.sender import Sender
from relay.wire import sender_bot
from storage import outbox
from storage.engine import Database
from storage.outbox import NewDelivery
from storage.sources import NewBusiness, create_business, create_source
from storage.values import BusinessStatus, DeliveryState
from tests.support.builders import T0, entries, rss
from tests.support.fake_telegram import TOKEN, FakeTelegram
from tests.support.httpserver import LocalServer, Reply

CHANNEL = -1001234567890


def run_worker(command: str, db: Database) -> subprocess.CompletedProcess[str]:
    schema = db.engine.dialect.name == "postgresql" and _schema(db) or ""
    return subprocess.run(
        [sys.executable, "-m", "tests.support.worker_process", command, db.url, schema],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _schema(db: Database) -> str:
    with db.engine.connect() as conn:
        return str(conn.exec_driver_sql("SELECT current_schema()").scalar())


async def test_a_restart_takes_back_a_dead_senders_claims_at_once(
    db: Database, telegram: FakeTelegram
) -> None:
    with db.write() as s:
        outbox.enqueue(s, [NewDelivery("post:7", "channel_post", CHANNEL, "la nouvelle")], utcnow())
    crashed = run_worker("crash-after-claim", db)
    assert crashed.returncode == -9
    assert json.loads(crashed.stdout) == {"lease": "taken", "claimed": 1}
    # No waiting for a lease to expire: the dead process was on this host.
    async with sender_bot(TOKEN, telegram.base_url) as bot:
        report = await Sender(db, bot, utcnow).drain()
        await Sender(db, bot, utcnow).drain()
    assert report.standby is False
    assert [m.text for m in telegram.sent(CHANNEL)] == ["la nouvelle"]


async def test_a_worker_killed_while_sending_never_doubles_a_channel_post(
    db: Database, telegram: FakeTelegram
) -> None:
    with db.write() as s:
        outbox.enqueue(
            s, [NewDelivery("post:8", "channel_post", CHANNEL, "une seule fois")], utcnow()
        )
    crashed = run_worker("crash-while-sending", db)
    assert crashed.returncode == -9
    async with sender_bot(TOKEN, telegram.base_url) as bot:
        report = await Sender(db, bot, utcnow).drain()
    assert report.interrupted == {"channel_post": 1}
    assert telegram.sent(CHANNEL) == []  # may have reached Telegram: never resent blindly
    with db.read() as s:
        assert [d.state for d in outbox.deliveries_for(s)] == [DeliveryState.UNKNOWN]


def test_two_workers_fetch_each_due_source_exactly_once(db: Database, server: LocalServer) -> None:
    with db.write() as s:
        business = create_business(
            s, NewBusiness(name="B", owner_id=1, status=BusinessStatus.ACTIVE), T0
        )
        for n in range(40):
            path = f"/feed{n}.xml"
            body = rss(entries(2, prefix=f"s{n}x", site=f"https://s{n}.example"))
            server.route(
                path, Reply(200, body, {"Content-Type": "application/rss+xml"}, delay=0.05)
            )
            create_source(s, business.id, server.url(path), "rss", utcnow() - timedelta(minutes=1))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.worker_process",
                "poll",
                db.url,
                _schema(db) if db.engine.dialect.name == "postgresql" else "",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    reports = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert sum(r["claimed"] for r in reports) == 40
    hits = [len(server.hits(f"/feed{n}.xml")) for n in range(40)]
    assert hits == [1] * 40
