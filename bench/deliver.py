"""Benchmark the sender: a digest to every subscriber plus channel posts, through a fake Bot API
that enforces Telegram's limits, against a bare send loop measured in the same run.

    python -m bench.deliver                # 3,000 subscribers + 50 channel posts (≈2.5 min)
    python -m bench.deliver --quick        # 600 + 10

Checks from the fake's own records: no 429, no duplicate, nothing lost, and no window over
≈30 messages/s overall, 1/s per private chat, 20/min per channel.
"""

from __future__ import annotations

import os

os.environ.setdefault("PTB_TIMEDELTA", "1")  # PTB 22: retry_after as a timedelta, quietly

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from telegram import Bot
from telegram.error import RetryAfter

from bench.common import fresh_database, print_json, print_table
from relay.clock import utcnow
from relay.sender import Sender
from relay.wire import sender_bot
from storage.engine import Database
from storage.outbox import NewDelivery, enqueue
from storage.tables import DELIVERIES
from tests.support.fake_telegram import TOKEN, FakeTelegram, SentMessage

CHANNEL = -1001234567890
FIRST_CHAT = 200_000
TARGET_RATE = 28.5  # 95% of Telegram's ≈30 messages/s


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=3000)
    parser.add_argument("--posts", type=int, default=50, help="channel posts")
    parser.add_argument("--quick", action="store_true", help="600 subscribers + 10 posts")
    parser.add_argument("--baseline", type=int, default=None, help="messages in the bare loop")
    parser.add_argument("--baseline-concurrency", type=int, default=30)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args(argv)
    if args.quick:
        args.subscribers, args.posts = 600, 10
    if args.baseline is None:
        args.baseline = min(args.subscribers, 900)
    return args


def digest_text(n: int) -> str:
    """A digest of a few items, in Telegram HTML, about 1.5 KB."""
    lines = [f"<b>Les nouvelles de votre quartier</b> — lettre n° {n}\n"]
    for i in range(8):
        lines.append(
            f'• <b>Commerce {i}</b> : <a href="https://commerce-{i}.example/actualites/{n}">'
            f"Arrivage de saison, atelier du samedi et horaires d'ouverture n° {i}</a>\n"
            "  Venez découvrir nos nouveautés et nos conseils de la semaine.\n"
        )
    return "".join(lines)


def outbox_rows(subscribers: int, posts: int) -> list[NewDelivery]:
    """Digest messages with the channel posts spread among them, as jobs would enqueue them."""
    every = max(subscribers // max(posts, 1), 1)
    rows: list[NewDelivery] = []
    post = 0
    for n in range(subscribers):
        if n % every == 0 and post < posts:
            rows.append(NewDelivery(f"post:{post}", "channel_post", CHANNEL, f"Annonce {post}"))
            post += 1
        rows.append(NewDelivery(f"digest:{n}", "digest", FIRST_CHAT + n, digest_text(n)))
    rows += [
        NewDelivery(f"post:{p}", "channel_post", CHANNEL, f"Annonce {p}")
        for p in range(post, posts)
    ]
    return rows


def rate(stamps: Sequence[float]) -> float:
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0


def max_in_window(stamps: Sequence[float], span: float) -> int:
    """The most stamps in any window of `span` seconds (half-open, as the fake counts)."""
    ordered, best, start = sorted(stamps), 0, 0
    for end, stamp in enumerate(ordered):
        while ordered[start] <= stamp - span:
            start += 1
        best = max(best, end - start + 1)
    return best


def min_gap(stamps: Sequence[float]) -> float | None:
    ordered = sorted(stamps)
    return min((b - a for a, b in zip(ordered, ordered[1:], strict=False)), default=None)


def audit(sent: Sequence[SentMessage], subscribers: int, posts: int) -> dict[str, Any]:
    """What the fake saw: rates, duplicates, losses and the limits' worst windows."""
    private = [m for m in sent if m.chat_id > 0]
    channel = [m for m in sent if m.chat_id == CHANNEL]
    copies = Counter((m.chat_id, m.text) for m in sent)
    per_chat = Counter(m.chat_id for m in private)
    got_posts = {m.text for m in channel}
    return {
        "digest_sent": len(private),
        "digest_rate_per_s": rate(sorted(m.at for m in private)),
        "channel_sent": len(channel),
        "channel_rate_per_min": rate(sorted(m.at for m in channel)) * 60,
        "duplicates": sum(n - 1 for n in copies.values()),
        "lost": (subscribers - len(per_chat)) + (posts - len(got_posts)),
        "max_overall_in_1s": max_in_window([m.at for m in sent], 1.0),
        "max_private_chat_in_1s": max(per_chat.values(), default=0),
        "max_channel_in_60s": max_in_window([m.at for m in channel], 60.0),
        "min_channel_gap_s": min_gap([m.at for m in channel]),
    }


def outbox_states(db: Database) -> dict[str, int]:
    with db.read() as session:
        rows = session.execute(
            select(DELIVERIES.c.state, func.count()).group_by(DELIVERIES.c.state)
        ).all()
    return {state: count for state, count in rows}


async def run_sender(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    with FakeTelegram(enforce_limits=True) as fake, fresh_database(args.db, workdir) as db:
        with db.write() as session:
            enqueue(session, outbox_rows(args.subscribers, args.posts), utcnow())
        started = time.monotonic()
        async with sender_bot(TOKEN, fake.base_url) as bot:
            sender = Sender(db, bot, utcnow, channel=str(CHANNEL))
            report = await sender.drain()
            while outbox_states(db).get("pending"):  # like the worker's send job, every second
                await asyncio.sleep(1)
                more = await sender.drain()
                report.sent += more.sent
                report.retried += more.retried
        elapsed = time.monotonic() - started
        figures = audit(fake.sent(), args.subscribers, args.posts)
        figures.update(
            seconds=elapsed,
            count_429=fake.count_429,
            calls=len(fake.calls),
            sender_sent=report.sent,
            sender_retried=report.retried,
            outbox=outbox_states(db),
        )
    return figures


async def bare_loop(count: int, concurrency: int, *, enforce: bool) -> dict[str, Any]:
    """`count` sends to distinct chats, `concurrency` at a time, no limiter, no retry."""
    with FakeTelegram(enforce_limits=enforce) as fake:
        gate = asyncio.Semaphore(concurrency)
        refused = 0

        async def one(n: int) -> None:
            nonlocal refused
            async with gate:
                try:
                    await bot.send_message(FIRST_CHAT + n, digest_text(n), parse_mode="HTML")
                except RetryAfter:
                    refused += 1

        async with Bot(TOKEN, base_url=fake.base_url) as bot:
            started = time.monotonic()
            await asyncio.gather(*(one(n) for n in range(count)))
            seconds = time.monotonic() - started
        return {
            "fake": "limits enforced" if enforce else "no limits",
            "attempts": count,
            "accepted": len(fake.sent()),
            "count_429": fake.count_429,
            "seconds": seconds,
            "attempts/s": count / seconds,
            "accepted/s": len(fake.sent()) / seconds,
        }


def targets(figures: dict[str, Any], args: argparse.Namespace) -> dict[str, bool]:
    return {
        "digest_rate_ge_28_5": figures["digest_rate_per_s"] >= TARGET_RATE,
        "zero_429": figures["count_429"] == 0,
        "zero_duplicates": figures["duplicates"] == 0,
        "zero_lost": figures["lost"] == 0
        and figures["outbox"].get("sent", 0) == args.subscribers + args.posts,
        "limits_kept": figures["max_overall_in_1s"] <= 30
        and figures["max_private_chat_in_1s"] <= 1
        and figures["max_channel_in_60s"] <= 20,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(run_sender(args, Path(tmp)))
    baseline = [
        asyncio.run(bare_loop(args.baseline, args.baseline_concurrency, enforce=True)),
        asyncio.run(bare_loop(args.baseline, args.baseline_concurrency, enforce=False)),
    ]
    shown = {k: v for k, v in figures.items() if k != "outbox"}
    title = f"Sender: {args.subscribers} digests + {args.posts} channel posts ({args.db})"
    print_table(title, [shown])
    print_table("Outbox states after the run", [figures["outbox"]])
    print_table("Baseline: bare send loop, no limiter", baseline)
    return print_json(
        "deliver",
        {
            "subscribers": args.subscribers,
            "posts": args.posts,
            "db": args.db,
            **figures,
            "baseline": baseline,
            "targets": targets(figures, args),
        },
    )


if __name__ == "__main__":
    main()
