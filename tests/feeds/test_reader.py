"""Reading a source from its URL against a real local server: feeds, homepages, slow sites,
the candidate limit, the deadline and the injectable parser."""

from __future__ import annotations

import pickle
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from feeds.config import FetchSettings
from feeds.errors import NoFeedFoundError, SiteTooSlowError
from feeds.fetch import Fetcher
from feeds.models import FetchResult, ParsedFeed
from feeds.reader import discover_source, parse_fetched, read_source
from tests.support.httpserver import LocalServer, Reply

HTML = {"Content-Type": "text/html; charset=utf-8"}
RSS = {"Content-Type": "application/rss+xml"}
SLOW = 5.0  # seconds a never-answering feed sleeps (the client gives up long before)
FETCH_TIMEOUT = 0.3
Read = Callable[..., Awaitable[Any]]


def rss(title: str) -> bytes:
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title>'
        "<link>https://shop.example/</link><item><title>News</title>"
        "<link>https://shop.example/news</link></item></channel></rss>"
    ).encode()


def homepage(feeds: list[str], body: str = "Bienvenue") -> bytes:
    links = "".join(
        f'<link rel="alternate" type="application/rss+xml" href="{href}">' for href in feeds
    )
    return (
        f"<!DOCTYPE html><html><head><title>Shop</title>{links}</head><body>{body}</body></html>"
    ).encode()


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    settings = FetchSettings(allowed_networks=("127.0.0.0/8",), total_timeout=FETCH_TIMEOUT)
    async with Fetcher(settings) as f:
        yield f


def slow_feeds(server: LocalServer, count: int) -> list[str]:
    """`count` advertised feeds that never answer in time."""
    paths = [f"/feed{i}.xml" for i in range(count)]
    for path in paths:
        server.route(path, Reply(200, rss(path), RSS, delay=SLOW))
    return paths


async def test_a_feed_url_is_read_as_a_feed(server: LocalServer, fetcher: Fetcher) -> None:
    server.route("/feed.xml", Reply(200, rss("Shop news"), RSS))
    reading = await read_source(fetcher, server.url("/feed.xml"))
    assert (reading.kind, reading.feed.title, reading.feeds) == ("rss", "Shop news", ())


async def test_the_first_advertised_feed_that_answers_is_read(
    server: LocalServer, fetcher: Fetcher
) -> None:
    server.route("/", Reply(200, homepage(["/broken.xml", "/feed.xml"]), HTML))
    server.route("/broken.xml", Reply(500))
    server.route("/feed.xml", Reply(200, rss("Shop news"), RSS))
    reading = await read_source(fetcher, server.url("/"))
    assert reading.source_url == server.url("/feed.xml")
    assert [link.url for link in reading.feeds] == [
        server.url("/broken.xml"),
        server.url("/feed.xml"),
    ]


@pytest.mark.parametrize(
    ("advertised", "max_probes", "tried"),
    [
        pytest.param(8, 4, 4, id="8 advertised, 4 tried"),
        pytest.param(2, 4, 2, id="2 advertised, 2 tried"),
        pytest.param(8, 1, 1, id="max_probes=1"),
    ],
)
async def test_at_most_max_probes_candidates_are_tried(
    server: LocalServer, fetcher: Fetcher, advertised: int, max_probes: int, tried: int
) -> None:
    paths = slow_feeds(server, advertised)
    server.route("/", Reply(200, homepage(paths), HTML))
    with pytest.raises(NoFeedFoundError):  # every candidate timed out; the page has no news
        await read_source(fetcher, server.url("/"), max_probes=max_probes, deadline=10.0)
    assert sum(len(server.hits(path)) for path in paths) == tried


async def test_well_known_probes_are_capped_too(server: LocalServer, fetcher: Fetcher) -> None:
    server.route("/", Reply(200, homepage([]), HTML))
    assert await discover_source(fetcher, server.url("/"), max_probes=2) == []
    assert len([r for r in server.requests if r.path != "/"]) == 2


def never_answering_site(server: LocalServer, *, advertised: bool) -> None:
    """A homepage whose feeds, advertised or at the usual paths, never answer in time."""
    if advertised:
        server.route("/", Reply(200, homepage(slow_feeds(server, 8)), HTML))
        return
    server.route("/", Reply(200, homepage([]), HTML))
    for path in ("/feed/", "/rss.xml", "/feed.xml", "/atom.xml", "/index.xml", "/rss"):
        server.route(path, Reply(200, rss(path), RSS, delay=SLOW))


@pytest.mark.parametrize(
    ("read", "advertised"),
    [
        pytest.param(read_source, True, id="read, advertised feeds"),
        pytest.param(read_source, False, id="read, well-known paths"),
        # Discovery does not fetch advertised feeds: only its probes can be slow.
        pytest.param(discover_source, False, id="discover, well-known paths"),
    ],
)
async def test_a_site_whose_feeds_never_answer_ends_at_the_deadline(
    server: LocalServer, fetcher: Fetcher, read: Read, advertised: bool
) -> None:
    never_answering_site(server, advertised=advertised)
    deadline = 2.5 * FETCH_TIMEOUT  # room for two candidates, not for four
    started = time.monotonic()
    with pytest.raises(SiteTooSlowError) as caught:
        await read(fetcher, server.url("/"), deadline=deadline)
    assert time.monotonic() - started < deadline + 0.5
    assert (caught.value.code, caught.value.url) == ("site_too_slow", server.url("/"))


async def test_the_parser_can_be_injected(server: LocalServer, fetcher: Fetcher) -> None:
    page_body = '<meta property="og:title" content="Open today">'
    server.route("/", Reply(200, homepage(["/feed.xml"], page_body), HTML))
    server.route("/feed.xml", Reply(200, b"<html><body>not a feed</body></html>", HTML))
    calls: list[tuple[str, bool]] = []

    async def parse(result: FetchResult, page: bool) -> ParsedFeed:
        calls.append((result.final_url, page))
        return parse_fetched(result, page)

    reading = await read_source(fetcher, server.url("/"), parse=parse)
    assert reading.kind == "page"
    assert [item.title for item in reading.feed.items] == ["Open today"]
    assert calls == [(server.url("/"), True)]  # the HTML "feed" was never handed to the parser


async def test_the_injected_parser_reads_feeds_too(server: LocalServer, fetcher: Fetcher) -> None:
    server.route("/", Reply(200, homepage(["/feed.xml"]), HTML))
    server.route("/feed.xml", Reply(200, rss("Shop news"), RSS))
    calls: list[tuple[str, bool]] = []

    async def parse(result: FetchResult, page: bool) -> ParsedFeed:
        calls.append((result.final_url, page))
        return parse_fetched(result, page)

    reading = await read_source(fetcher, server.url("/"), parse=parse)
    links = await discover_source(fetcher, server.url("/feed.xml"), parse=parse)
    assert reading.feed.title == "Shop news"
    assert [link.title for link in links] == ["Shop news"]
    assert calls == [(server.url("/feed.xml"), False), (server.url("/feed.xml"), False)]


@pytest.mark.parametrize(
    ("content", "page", "kind"),
    [
        (rss("Shop news"), False, "rss"),
        (rss("Shop news"), True, "rss"),  # a feed stays a feed
        (homepage([], '<meta property="og:title" content="Open today">'), True, "page"),
    ],
)
def test_parse_fetched_is_a_pure_picklable_function(content: bytes, page: bool, kind: str) -> None:
    url = "https://shop.example/"
    result = FetchResult(url=url, final_url=url, status=200, content=content)
    # What a process pool does with the call: arguments and result cross a pipe.
    parse, result = pickle.loads(pickle.dumps((parse_fetched, result)))
    parsed = pickle.loads(pickle.dumps(parse(result, page)))
    assert parsed.kind == kind
