"""The feed farm: N distinct French RSS 2.0 feeds on 127.0.0.1, in a process of its own.

Bodies are generated up front (about 20 items, 30–60 KB each) and served by a minimal
asyncio HTTP/1.1 keep-alive server with ETag / Last-Modified and 304 answers, so the farm is
not the bottleneck and does not share an event loop with the code under test. Between cycles
`change(fraction)` publishes one new item in that fraction of the feeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, formatdate
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any
from xml.sax.saxutils import escape

import httpx

ITEMS = 20
# Recent news: items fall within the last week, as a live feed's do.
EPOCH = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=6)


def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_ROOTS = _split(
    "boulangerie pain levain croissant farine four marché brioche tarte fromage légume fruit "
    "fleur bouquet rose tulipe jardin graine librairie livre roman auteur lecture atelier "
    "enfant famille quartier village place rue mairie fête concert musique danse exposition "
    "peinture artiste galerie vin cave dégustation vigneron bière brasserie café terrasse "
    "boucherie charcuterie volaille poisson marée épicerie huile miel confiture chocolat "
    "pâtisserie gâteau crème beurre lait œuf saison printemps été automne hiver semaine "
    "dimanche samedi matin soir horaire ouverture fermeture vacances congé nouveauté arrivage "
    "promotion remise solde carte fidélité client voisin commerce artisan producteur local "
    "circuit court recette conseil atelier cours réparation vélo couture retouche coiffure "
    "beauté soin santé pharmacie optique lunette chaussure vêtement mode cadeau jouet "
    "papeterie"
)
_TAILS = ("", "s", "e", "es", "ment", "ier", "erie", "ette", "eau", "ais", "ons", "ez")
_FILLERS = _split("le la les un une des du de et à au pour avec sur dans chez notre nos votre")
VOCABULARY = tuple(sorted({r + t for r in _ROOTS for t in _TAILS})) + tuple(_FILLERS)


def _words(rng: random.Random, count: int) -> list[str]:
    return rng.choices(VOCABULARY, k=count)


def render_item(feed: int, number: int, scale: float) -> bytes:
    """Item `number` of feed `feed`: the same bytes every time (seeded by both)."""
    rng = random.Random(feed * 1_000_003 + number)
    title = " ".join(_words(rng, rng.randint(6, 11))).capitalize()
    slug = "-".join(title.split()[:5])
    link = f"https://commerce-{feed}.example/actualites/{number}-{slug}"
    when = format_datetime(EPOCH + timedelta(hours=number * 6 + feed % 6))
    paragraphs = [" ".join(_words(rng, int(rng.randint(40, 70) * scale))) for _ in range(3)]
    html = "".join(f"<p>{p.capitalize()}.</p>" for p in paragraphs)
    summary = paragraphs[0].capitalize() + "."
    return (
        f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
        f'<guid isPermaLink="true">{escape(link)}</guid><pubDate>{when}</pubDate>'
        f"<dc:creator>Équipe {feed}</dc:creator><category>{_words(rng, 1)[0]}</category>"
        f"<description>{escape(summary)}</description>"
        f"<content:encoded><![CDATA[{html}]]></content:encoded></item>\n"
    ).encode()


def render_feed(feed: int, version: int) -> bytes:
    """Feed `feed` at `version`: items version+ITEMS-1 … version, newest first."""
    scale = 0.58 + (feed % 7) * 0.075  # 30–60 KB across feeds
    items = b"".join(
        render_item(feed, n, scale) for n in range(version + ITEMS - 1, version - 1, -1)
    )
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>\n'
        f"<title>Commerce {feed} — actualités</title>"
        f"<link>https://commerce-{feed}.example/</link>"
        f"<description>Les nouvelles du commerce {feed} du quartier</description>"
        "<language>fr-FR</language>\n"
    ).encode()
    return head + items + b"</channel></rss>\n"


class _Feeds:
    """The farm's state, inside the serving process."""

    def __init__(self, count: int, seed: int) -> None:
        self.versions = [0] * count
        self.bodies = [render_feed(i, 0) for i in range(count)]
        self.rng = random.Random(seed)
        self.stats = {"requests": 0, "ok": 0, "not_modified": 0, "not_found": 0}

    def validators(self, feed: int) -> tuple[str, str]:
        version = self.versions[feed]
        modified = EPOCH + timedelta(hours=version)
        return f'"f{feed}-v{version}"', format_datetime(modified, usegmt=True)

    def change(self, fraction: float) -> list[int]:
        count = round(fraction * len(self.versions))
        chosen = sorted(self.rng.sample(range(len(self.versions)), count))
        for feed in chosen:
            self.versions[feed] += 1
            self.bodies[feed] = render_feed(feed, self.versions[feed])
        return chosen

    def respond(self, target: bytes, headers: dict[bytes, bytes]) -> bytes:
        self.stats["requests"] += 1
        feed = _feed_index(target, len(self.bodies))
        date = formatdate(usegmt=True)
        if feed is None:
            self.stats["not_found"] += 1
            return f"HTTP/1.1 404 Not Found\r\nDate: {date}\r\nContent-Length: 0\r\n\r\n".encode()
        etag, modified = self.validators(feed)
        common = f"Date: {date}\r\nETag: {etag}\r\nLast-Modified: {modified}\r\n"
        match = headers.get(b"if-none-match")
        since = headers.get(b"if-modified-since")
        if (match is not None and match.decode() == etag) or (
            match is None and since is not None and since.decode() == modified
        ):
            self.stats["not_modified"] += 1
            return f"HTTP/1.1 304 Not Modified\r\n{common}\r\n".encode()
        self.stats["ok"] += 1
        body = self.bodies[feed]
        head = (
            f"HTTP/1.1 200 OK\r\n{common}Content-Type: application/rss+xml; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body


def _feed_index(target: bytes, count: int) -> int | None:
    """/feeds/<n>.xml → n."""
    name = target.partition(b"?")[0]
    if not (name.startswith(b"/feeds/") and name.endswith(b".xml")):
        return None
    digits = name[7:-4]
    if not digits.isdigit() or int(digits) >= count:
        return None
    return int(digits)


async def _serve_client(
    feeds: _Feeds, latency: float, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Minimal HTTP/1.1 keep-alive: GET requests without bodies, one after another."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name:
                    headers[name.strip().lower()] = value.strip()
            if latency:
                await asyncio.sleep(latency)
            writer.write(feeds.respond(parts[1] if len(parts) > 1 else b"/", headers))
            await writer.drain()
            if headers.get(b"connection", b"").lower() == b"close":
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


async def _run(count: int, latency: float, seed: int, control: Connection) -> None:
    feeds = _Feeds(count, seed)
    server = await asyncio.start_server(
        lambda r, w: _serve_client(feeds, latency, r, w), "127.0.0.1", 0, backlog=4096
    )
    control.send(server.sockets[0].getsockname()[1])
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def on_command() -> None:
        command, argument = control.recv()
        if command == "change":
            control.send(feeds.change(argument))
        elif command == "stats":
            control.send(dict(feeds.stats))
        elif command == "body":
            control.send(feeds.bodies[argument])
        elif not done.done():
            control.send(None)
            done.set_result(None)

    loop.add_reader(control.fileno(), on_command)
    async with server:
        await done
    loop.remove_reader(control.fileno())


def _farm_main(count: int, latency: float, seed: int, control: Connection) -> None:
    asyncio.run(_run(count, latency, seed, control))


class FeedFarm:
    """``with FeedFarm(1000) as farm:`` then poll ``farm.url(i)``; ``farm.change(0.05)``."""

    def __init__(self, feeds: int, *, latency: float = 0.0, seed: int = 7) -> None:
        self.feeds = feeds
        self._context = multiprocessing.get_context("spawn")
        self._control, child = self._context.Pipe()
        self._process = self._context.Process(
            target=_farm_main, args=(feeds, latency, seed, child), daemon=True
        )
        self._child = child
        self.port = 0

    def start(self) -> FeedFarm:
        self._process.start()
        self._child.close()
        self.port = self._control.recv()  # sent once every body is generated
        return self

    def url(self, feed: int) -> str:
        return f"http://127.0.0.1:{self.port}/feeds/{feed}.xml"

    def urls(self) -> list[str]:
        return [self.url(i) for i in range(self.feeds)]

    def _ask(self, command: str, argument: Any = None) -> Any:
        self._control.send((command, argument))
        return self._control.recv()

    def change(self, fraction: float) -> list[int]:
        """Publish one new item in `fraction` of the feeds; returns their indices."""
        return list(self._ask("change", fraction))

    def stats(self) -> dict[str, int]:
        return dict(self._ask("stats"))

    def body(self, feed: int) -> bytes:
        return bytes(self._ask("body", feed))

    def peak_rss_mb(self) -> float:
        """The farm process's peak resident memory (VmHWM), in MB."""
        status = Path(f"/proc/{self._process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            self._ask("stop")
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._process.close()
        self._control.close()

    def __enter__(self) -> FeedFarm:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- the bare-httpx baseline --------------------------------------------------------------


async def conditional_get_loop(
    urls: Sequence[str], etags: dict[str, str], concurrency: int, *, keepalive: bool = True
) -> tuple[float, int, int]:
    """GET every URL with If-None-Match, `concurrency` at a time, bodies read in full.

    Returns (seconds, 200 answers, 304 answers); `etags` is updated from the 200s.
    """
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency if keepalive else 0
    )
    counts = {200: 0, 304: 0}
    async with httpx.AsyncClient(limits=limits, trust_env=False, timeout=30) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(url: str) -> None:
            async with gate:
                etag = etags.get(url)
                response = await client.get(url, headers={"If-None-Match": etag} if etag else {})
                counts[response.status_code] = counts.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    etags[url] = response.headers["etag"]

        started = time.perf_counter()
        await asyncio.gather(*(one(url) for url in urls))
        seconds = time.perf_counter() - started
    return seconds, counts[200], counts[304]
