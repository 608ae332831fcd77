"""Soak: the real relay (`python bot.py`) killed with SIGKILL at random moments while it
sends digests and channel posts through a fake Bot API that answers 429s, 502/503s and
slow answers (client timeouts). Everything is counted from what the fake received.

    python -m bench.soak                 # 1,200 digests + 30 posts, 12 kills
    python -m bench.soak --quick         # 80 + 5, 4 kills
    python -m bench.soak --db postgres

Per kill: how many deliveries the dead process left `sending` (they become `unknown`), and
how many of those never reached the fake (a request not really in flight: should be ≤ 1).
At the end: lost (neither received nor unknown), doubled (received twice), unknown.
"""

from __future__ import annotations

import os

os.environ.setdefault("PTB_TIMEDELTA", "1")

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.common import fresh_database, print_json, print_table
from bench.deliver import CHANNEL, outbox_rows, outbox_states
from relay.clock import utcnow
from storage import outbox
from storage.engine import Database
from storage.tables import DELIVERIES
from tests.support.fake_telegram import TOKEN, FakeTelegram
from tests.support.worker_process import process_database_url

ROOT = Path(__file__).parents[1]
ADMIN = 1000


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1200)
    parser.add_argument("--posts", type=int, default=30)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args(argv)
    if args.quick:
        args.subscribers, args.posts, args.kills = 80, 5, 4
    return args


def start_relay(
    db: Database, fake: FakeTelegram, workdir: Path, log: Any
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": fake.base_url,
        "RELAY_DATABASE_URL": process_database_url(db),
        "RELAY_ADMINS": str(ADMIN),
        "RELAY_CHANNEL": str(CHANNEL),
    }
    return subprocess.Popen(
        [sys.executable, str(ROOT / "bot.py")], cwd=workdir, env=env, stdout=log, stderr=log
    )


class Faults(threading.Thread):
    """Every now and then: a burst of 429s, a 502 or 503, or answers slower than the
    sender's read timeout (the request took effect; the answer is lost)."""

    def __init__(self, fake: FakeTelegram, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.fake, self.rng, self.stop = fake, rng, threading.Event()
        self.injected: Counter[str] = Counter()

    def run(self) -> None:
        failed_at = 0  # sendMessage calls seen when the last refusal was scripted
        while not self.stop.wait(self.rng.uniform(0.5, 2.0)):
            kind = self.rng.choice(["429", "429", "502", "503", "slow"])
            if kind == "slow":
                # Past the sender's 15 s read timeout: the message is delivered, the answer
                # lost. Only once the scripted refusals are used up (3 calls at most), so
                # that "unknown" means "received" here.
                while len(self.fake.calls_to("sendMessage")) < failed_at + 3:
                    if self.stop.wait(0.2):
                        return
                self.fake.delay("sendMessage", 16.0, times=2)
                self.stop.wait(17.0)
            else:
                failed_at = len(self.fake.calls_to("sendMessage"))
                if kind == "429":
                    self.fake.fail_next("sendMessage", error_code=429, retry_after=1, times=3)
                else:
                    self.fake.fail_next("sendMessage", error_code=int(kind), times=2)
            self.injected[kind] += 1


def received(fake: FakeTelegram) -> Counter[tuple[int, str]]:
    """(chat, text) of every sendMessage the fake took effect on."""
    return Counter((m.chat_id, m.text or "") for m in fake.sent() if m.method == "sendMessage")


def arrived(fake: FakeTelegram) -> Counter[tuple[int, str]]:
    """(chat, text) of every sendMessage request that reached the fake, whatever it answered
    (a request refused with a 429 was in flight all the same)."""
    calls = [p for p in fake.calls_to("sendMessage") if "chat_id" in p]  # not a cut-off body
    return Counter((int(p["chat_id"]), str(p.get("text", ""))) for p in calls)


def in_state(db: Database, state: str) -> list[tuple[int, str]]:
    with db.read() as session:
        return [(d.chat_id, d.text) for d in outbox.deliveries_for(session) if d.state == state]


def kill_once(
    db: Database, fake: FakeTelegram, relay: subprocess.Popen[bytes], rng: random.Random
) -> dict[str, Any]:
    sends_before = len(fake.calls_to("sendMessage"))
    up_since = time.monotonic()
    while len(fake.calls_to("sendMessage")) == sends_before and time.monotonic() - up_since < 60:
        time.sleep(0.05)  # start-up: the kill must land while this life sends
    time.sleep(rng.uniform(0.0, 3.0))
    relay.send_signal(signal.SIGKILL)
    relay.wait()
    time.sleep(0.5)  # let the fake finish reading what was already on the wire
    cut = in_state(db, "sending")
    got = arrived(fake)
    return {"left_sending": len(cut), "never_arrived": sum(1 for d in cut if d not in got)}


def wait_until_drained(db: Database, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = outbox_states(db)
        if not states.get("pending") and not states.get("claimed") and not states.get("sending"):
            return True
        time.sleep(1)
    return False


def unknown_reasons(db: Database) -> dict[str, int]:
    """Why deliveries ended unknown (their last error, shortened)."""
    with db.read() as session:
        rows = session.execute(
            select(DELIVERIES.c.last_error).where(DELIVERIES.c.state == "unknown")
        ).all()
    return dict(Counter((error or "")[:40] for (error,) in rows))


def audit(db: Database, fake: FakeTelegram) -> dict[str, Any]:
    got = received(fake)
    unknown = set(in_state(db, "unknown"))
    with db.read() as session:
        wanted = [(d.chat_id, d.text) for d in outbox.deliveries_for(session) if d.chat_id != ADMIN]
    return {
        "deliveries": len(wanted),
        "received": sum(1 for d in wanted if d in got),
        "doubled": sum(got[d] - 1 for d in wanted if got[d] > 1),
        "lost": sum(1 for d in wanted if d not in got and d not in unknown),
        "unknown": len(unknown),
        "unknown_never_arrived": sum(1 for d in unknown if d not in arrived(fake)),
        "unknown_why": unknown_reasons(db),
        "admin_reports": sum(1 for m in fake.sent(ADMIN) if "⚠️" in (m.text or "")),
        "count_429": fake.count_429,
    }


def tracebacks(log: Path) -> list[str]:
    """Each traceback in the relay's log, with the line before it (what was being done)."""
    lines = log.read_text(errors="replace").splitlines()
    found = []
    for n, line in enumerate(lines):
        if line.startswith("Traceback"):
            end = next((m for m in range(n + 1, len(lines)) if not lines[m].startswith(" ")), n)
            found.append("\n".join(lines[max(n - 1, 0) : end + 1]))
    return found


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    with FakeTelegram(enforce_limits=True) as fake, fresh_database(args.db, workdir) as db:
        fake.add_chat(CHANNEL, "channel", bot_admin=True)  # the relay's start-up checks ask
        with db.write() as session:
            outbox.enqueue(session, outbox_rows(args.subscribers, args.posts), utcnow())
        faults = Faults(fake, rng)
        faults.start()
        kills = []
        started = time.monotonic()
        with (workdir / "relay.log").open("ab") as log:
            for _ in range(args.kills):
                relay = start_relay(db, fake, workdir, log)
                kills.append(kill_once(db, fake, relay, rng))
            faults.stop.set()
            relay = start_relay(db, fake, workdir, log)
            drained = wait_until_drained(db, timeout=600)
            relay.send_signal(signal.SIGTERM)
            relay.wait(timeout=60)
        figures = {
            **audit(db, fake),
            "drained": drained,
            "seconds": time.monotonic() - started,
            "kills": len(kills),
            "faults": dict(faults.injected),
            "tracebacks_in_log": len(tracebacks(workdir / "relay.log")),
        }
        for trace in tracebacks(workdir / "relay.log")[:3]:
            print(trace, file=sys.stderr)
    return {"figures": figures, "kills": kills}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args, Path(tmp))
    figures, kills = result["figures"], result["kills"]
    print_table("Per kill (deliveries the dead relay left `sending`)", kills)
    print_table(f"Soak: {args.subscribers} digests + {args.posts} posts ({args.db})", [figures])
    return print_json(
        "soak",
        {
            **figures,
            "per_kill": kills,
            "targets": {
                "zero_lost": figures["lost"] == 0,
                "zero_doubled": figures["doubled"] == 0,
                "unknown_only_in_flight": all(k["never_arrived"] <= 1 for k in kills),
                "drained": figures["drained"],
            },
        },
    )


if __name__ == "__main__":
    main()
