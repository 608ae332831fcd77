"""Benchmark one poll cycle of the real pipeline over a feed farm, against bare httpx and
bare feedparser measured in the same run.

    python -m bench.poll --sources 10000 --changed 0.05 --db sqlite --cycles 3

A warm-up cycle records every source's items; then each measured cycle makes every source
due again after the farm changed `--changed` of its feeds (the steady state).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import feedparser
from sqlalchemy import insert, select, update

from bench.common import (
    Stopwatch,
    children_peak_mb,
    current_peak_mb,
    fresh_database,
    peak_rss_mb,
    print_json,
    print_table,
    reset_peak_rss,
)
from bench.farm import FeedFarm, conditional_get_loop
from feeds.config import FetchSettings
from feeds.fetch import Fetcher
from relay.clock import utcnow
from relay.parsing import ParseJob, ParserPool, parse_document
from relay.poller import Poller, PollReport
from relay.settings import PollingSettings, Settings
from storage import people
from storage.engine import Database
from storage.tables import BUSINESSES, SOURCES

MODERATOR = 900
TRUSTED_EVERY = 5  # one business in five is trusted: its news skips moderation


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--changed", type=float, default=0.05, help="fraction changed per cycle")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--cycles", type=int, default=3, help="measured steady-state cycles")
    parser.add_argument(
        "--all-changed", action=argparse.BooleanOptionalAction, default=True,
        help="also measure a cycle where every feed changed",
    )  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=16, help="settings.polling")
    parser.add_argument("--baseline-concurrency", type=int, nargs="+", default=[10, 20, 50])
    parser.add_argument("--latency", type=float, default=0.0, help="farm's added latency, s")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--workdir", type=Path, default=None)
    return parser.parse_args(argv)


def seed_sources(db: Database, urls: Sequence[str]) -> None:
    """One active business per source, all due now, with Core batch inserts."""
    now = utcnow()
    businesses = [
        {
            "id": n + 1,
            "name": f"Commerce {n}",
            "owner_id": 10_000 + n,
            "owner_language": "fr",
            "status": "active",
            "trusted": n % TRUSTED_EVERY == 0,
            "created_at": now,
        }
        for n in range(len(urls))
    ]
    sources = [
        {
            "id": n + 1,
            "business_id": n + 1,
            "url": url,
            "kind": "rss",
            "next_check_at": now,
            "interval_seconds": 900,
            "failures": 0,
            "paused": False,
            "created_at": now,
        }
        for n, url in enumerate(urls)
    ]
    with db.write() as session:
        session.execute(insert(BUSINESSES), businesses)
        session.execute(insert(SOURCES), sources)
        people.add_moderator(session, MODERATOR, "admin", None, now)


def make_all_due(db: Database) -> None:
    with db.write() as session:
        session.execute(update(SOURCES).values(next_check_at=utcnow() - timedelta(seconds=1)))


def etags_by_url(db: Database) -> dict[str, str]:
    with db.read() as session:
        rows = session.execute(select(SOURCES.c.url, SOURCES.c.etag)).all()
    return {url: etag for url, etag in rows if etag}


def cycle_row(label: str, report: PollReport, seconds: float) -> dict[str, Any]:
    return {
        "cycle": label,
        "claimed": report.claimed,
        "changed": report.changed,
        "304": report.not_modified,
        "failed": report.failed,
        "new_items": report.new_items,
        "queued": report.queued,
        "seconds": seconds,
        "sources/s": report.claimed / seconds if seconds else 0.0,
    }


async def measured_cycle(poller: Poller, farm: FeedFarm, fraction: float, label: str) -> Any:
    changed = farm.change(fraction)
    make_all_due(poller.db)
    with Stopwatch() as watch:
        report = await poller.poll_once()
    return cycle_row(label, report, watch.seconds), changed


async def profiled_cycle(poller: Poller, farm: FeedFarm, fraction: float) -> str:
    """Top 15 functions by cumulative time of one steady cycle (this process only)."""
    farm.change(fraction)
    make_all_due(poller.db)
    profiler = cProfile.Profile()
    profiler.enable()
    await poller.poll_once()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(15)
    return out.getvalue()


def parse_costs(farm: FeedFarm, feeds: Sequence[int]) -> dict[str, float]:
    """Per-feed ms of bare feedparser and of our parse_document, in this process."""
    bodies = [(farm.url(i), farm.body(i)) for i in feeds]
    with Stopwatch() as bare:
        for _url, body in bodies:
            feedparser.parse(io.BytesIO(body), sanitize_html=False, resolve_relative_uris=False)
    with Stopwatch() as ours:
        for url, body in bodies:
            parse_document(ParseJob(url, body, "application/rss+xml", "utf-8", False))
    count = max(len(bodies), 1)
    return {
        "feedparser_ms": bare.seconds / count * 1000,
        "parse_document_ms": ours.seconds / count * 1000,
        "parse_ratio": ours.seconds / bare.seconds if bare.seconds else 0.0,
    }


async def baselines(
    farm: FeedFarm, db: Database, fraction: float, levels: Sequence[int]
) -> list[dict[str, Any]]:
    """Bare httpx conditional GETs over the same farm, same fraction changed each run."""
    etags, rows = etags_by_url(db), []
    for concurrency in levels:
        for keepalive in (True, False):
            farm.change(fraction)
            seconds, ok, not_modified = await conditional_get_loop(
                farm.urls(), etags, concurrency, keepalive=keepalive
            )
            rows.append(
                {
                    "concurrency": concurrency,
                    "keepalive": keepalive,
                    "200": ok,
                    "304": not_modified,
                    "seconds": seconds,
                    "req/s": farm.feeds / seconds,
                }
            )
    return rows


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    settings = Settings(
        fetch=FetchSettings(allowed_networks=("127.0.0.0/8",)),
        polling=PollingSettings(concurrency=args.concurrency, parse_workers=2),
    )
    with (
        FeedFarm(args.sources, latency=args.latency) as farm,
        fresh_database(args.db, workdir) as db,
    ):
        seed_sources(db, farm.urls())
        parsers = ParserPool(
            settings.polling.parse_workers, settings.polling.parse_deadline_seconds
        )
        try:
            async with Fetcher(settings.fetch) as fetcher:
                poller = Poller(db, fetcher, parsers, settings, utcnow)
                figures = await _cycles(args, farm, poller)
                workers = children_peak_mb(exclude=[farm_pid(farm)])
        finally:
            parsers.close()
        figures["memory"]["parse_workers_peak_mb"] = max(workers.values(), default=0.0)
        figures["memory"]["farm_peak_mb"] = farm.peak_rss_mb()
        figures["baseline_httpx"] = await baselines(
            farm, db, args.changed, args.baseline_concurrency
        )
    return figures


def farm_pid(farm: FeedFarm) -> int:
    return farm._process.pid or 0


async def _cycles(args: argparse.Namespace, farm: FeedFarm, poller: Poller) -> dict[str, Any]:
    make_all_due(poller.db)
    with Stopwatch() as warm:
        report = await poller.poll_once()
    rows = [cycle_row("warm-up", report, warm.seconds)]
    warm_peak = peak_rss_mb()
    resettable = reset_peak_rss()
    changed: list[int] = []
    for n in range(args.cycles):
        row, changed = await measured_cycle(poller, farm, args.changed, f"steady {n + 1}")
        rows.append(row)
    steady_peak = current_peak_mb() if resettable else peak_rss_mb()
    if args.all_changed:
        row, _ = await measured_cycle(poller, farm, 1.0, "all changed")
        rows.append(row)
    profile = await profiled_cycle(poller, farm, args.changed) if args.profile else ""
    return {
        "cycles": rows,
        "parse": parse_costs(farm, changed[:300]),
        "profile": profile,
        "memory": {
            "worker_peak_mb": peak_rss_mb(),
            "worker_peak_after_warmup_mb": warm_peak,
            "worker_steady_peak_mb": steady_peak,
        },
    }


def summarise(args: argparse.Namespace, figures: dict[str, Any]) -> dict[str, Any]:
    """The headline figures and the targets they meet."""
    steady = [r for r in figures["cycles"] if r["cycle"].startswith("steady")]
    every = [r for r in figures["cycles"] if r["cycle"] == "all changed"]
    wall = statistics.median(r["seconds"] for r in steady) if steady else 0.0
    best = max(figures["baseline_httpx"], key=lambda r: r["req/s"])
    rate = args.sources / wall if wall else 0.0
    increment = None
    if every and steady:
        extra = every[0]["changed"] - statistics.median(r["changed"] for r in steady)
        increment = (every[0]["seconds"] - wall) / extra * 1000 if extra else None
    parse, memory = figures["parse"], figures["memory"]
    return {
        "sources": args.sources,
        "changed_fraction": args.changed,
        "db": args.db,
        "concurrency": args.concurrency,
        "steady_wall_s": wall,
        "steady_sources_per_s": rate,
        "bare_httpx_best_req_per_s": best["req/s"],
        "bare_httpx_best_concurrency": best["concurrency"],
        "bare_httpx_best_keepalive": best["keepalive"],
        "rate_vs_bare_httpx": rate / best["req/s"],
        "all_changed_wall_s": every[0]["seconds"] if every else None,
        "changed_feed_increment_ms": increment,
        **parse,
        **memory,
        "targets": {
            "wall_le_12s_at_10k": wall <= 12.0 * args.sources / 10_000,
            "rate_ge_60pct_bare_httpx": rate >= 0.6 * best["req/s"],
            "parse_le_1_2x_feedparser": parse["parse_ratio"] <= 1.2,
            "worker_peak_le_200mb": memory["worker_peak_mb"] <= 200,
        },
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(run(args, args.workdir or Path(tmp)))
    print_table(f"Poll cycles: {args.sources} sources, {args.db}", figures["cycles"])
    print_table("Bare httpx conditional GETs (same farm)", figures["baseline_httpx"])
    print_table("Parsing, per changed feed (in-process)", [figures["parse"]])
    print_table("Memory (MB)", [figures["memory"]])
    if figures["profile"]:
        print("\nProfile of one steady cycle (event-loop process, cumulative):")
        print(figures["profile"])
    summary = summarise(args, figures)
    summary["cycles"] = figures["cycles"]
    summary["bench_seconds"] = time.perf_counter() - started
    return print_json("poll", summary)


if __name__ == "__main__":
    main()
