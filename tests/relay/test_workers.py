"""Real processes: a worker killed mid-delivery loses nothing and doubles nothing; two
workers sharing the database fetch each due source exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import timedelta

import pytest

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


def start_sender(db: Database, base_url: str) -> subprocess.Popen[str]:
    schema = _schema(db) if db.engine.dialect.name == "postgresql" else ""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.worker_process", "send", db.url, schema, base_url],
        stdout=subprocess.PIPE,
        text=True,
    )


def enqueue_to_chats(db: Database, chats: int, per_chat: int) -> None:
    with db.write() as s:
        outbox.enqueue(
            s,
            [
                NewDelivery(f"n:{chat}:{n}", "notice", 5000 + chat, f"message {n} to {chat}")
                for n in range(per_chat)
                for chat in range(chats)
            ],
            utcnow(),
        )


def busiest_second(stamps: list[float]) -> int:
    stamps = sorted(stamps)
    return max(sum(1 for t in stamps[i:] if t < start + 1.0) for i, start in enumerate(stamps))


@pytest.mark.serial  # several OS processes against real time: run alone by .ci/run
def test_two_workers_never_exceed_the_shared_sending_budget(db: Database) -> None:
    enqueue_to_chats(db, chats=45, per_chat=2)
    with FakeTelegram(enforce_limits=True) as fake:
        procs = [start_sender(db, fake.base_url) for _ in range(2)]
        reports = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
        calls = fake.calls_to("sendMessage")
        stamps = [c.at for c in fake.calls if c.method == "sendMessage"]
        per_chat: dict[int, list[float]] = {}
        for call in fake.calls:
            if call.method == "sendMessage":
                per_chat.setdefault(int(call.params["chat_id"]), []).append(call.at)
        refused = fake.count_429
        delivered = Counter((m.chat_id, m.text) for m in fake.sent())
    assert sum(r["sent"] for r in reports) == 90
    assert len(delivered) == 90  # every message arrived …
    assert max(delivered.values()) == 1  # … once
    assert (len(calls), refused) == (90, 0)  # and nothing had to be refused on the way
    assert busiest_second(stamps) <= 30  # Telegram's overall limit, both processes together
    gaps = [b - a for times in per_chat.values() for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.9  # never two messages to one chat within the same second


def test_a_sender_killed_mid_drain_leaves_unsent_deliveries_pending(db: Database) -> None:
    """Only a request really on its way may end `unknown`: the fake answers slowly, so many
    are in flight when the sender is killed; what it never received is sent after restart."""
    enqueue_to_chats(db, chats=60, per_chat=1)
    with FakeTelegram() as fake:
        fake.delay("sendMessage", 1.5, times=10_000)
        victim = start_sender(db, fake.base_url)
        fake.wait_for(lambda: len(fake.calls_to("sendMessage")) >= 12, timeout=60)
        victim.kill()
        victim.communicate()
        with db.read() as s:
            cut = {d.chat_id for d in outbox.deliveries_for(s) if d.state.value == "sending"}
        received_before = {int(p["chat_id"]) for p in fake.calls_to("sendMessage")}
        restarted = start_sender(db, fake.base_url)
        restarted.communicate(timeout=120)
        received = [int(p["chat_id"]) for p in fake.calls_to("sendMessage")]
    with db.read() as s:
        final = {d.chat_id: d.state for d in outbox.deliveries_for(s)}
    assert len(received) == len(set(received))  # nothing doubled
    never_received = {chat for chat, state in final.items() if chat not in received}
    assert all(final[chat] == DeliveryState.UNKNOWN for chat in never_received)
    assert len(never_received) <= 1  # at most the one being put on the wire at the kill
    assert len(cut - received_before) <= 1
    assert set(final.values()) <= {DeliveryState.SENT, DeliveryState.UNKNOWN}
