"""Read a source the way a business gives it to us: a feed URL or just a homepage.

fetch → is it a feed? parse it. Is it a page? use its advertised feed, else probe the
well-known paths of its platform (a few, politely), else read the page itself.

Limits: at most `max_probes` candidate feeds are tried (the advertised ones, else the
well-known paths), and the whole reading, homepage and candidates together, has one
`deadline`; past it, `SiteTooSlowError`. Parsing is inline unless the caller passes a
`DocumentParser` (the relay runs `parse_fetched` in its parse-worker processes); an inline
parse runs to its end, the deadline is checked when it returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from feeds.discover import discover_feed_links, well_known_feed_urls
from feeds.errors import FeedError, NoFeedFoundError, NotAFeedError, SiteTooSlowError
from feeds.fetch import Fetcher
from feeds.models import FeedKind, FeedLink, FetchResult, ParsedFeed
from feeds.pages import parse_page
from feeds.parse import detect_kind, parse_feed

Progress = Callable[[str, int, int], None]  # (url being tried, index from 1, total)
# (fetched document, page) → its reading; page=True reads an HTML page as a page feed.
DocumentParser = Callable[[FetchResult, bool], Awaitable[ParsedFeed]]

FEED_KINDS = ("rss", "atom", "rdf", "json")
DEFAULT_DEADLINE = 45.0  # seconds for a homepage and all its candidate feeds
DEFAULT_MAX_PROBES = 4

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class SourceReading:
    """What reading a URL produced: the document actually read and how."""

    url: str  # as given
    source_url: str  # the feed or page actually read (after redirects)
    kind: FeedKind
    feed: ParsedFeed
    feeds: tuple[FeedLink, ...]  # feeds found, when `url` was a homepage
    fetch: FetchResult


def parse_fetched(result: FetchResult, page: bool) -> ParsedFeed:
    """Parse a fetched body: as a page feed when `page` and it is HTML, else as a feed.

    Pure, with picklable arguments: the relay's parse workers call this very function.
    """
    if page and detect_kind(result.content, result.content_type) == "html":
        return parse_page(result.content, result.final_url)
    return parse_feed(
        result.content, result.final_url, content_type=result.content_type, charset=result.charset
    )


async def _parse_inline(result: FetchResult, page: bool) -> ParsedFeed:
    return parse_fetched(result, page)


async def read_source(
    fetcher: Fetcher,
    url: str,
    *,
    max_probes: int = DEFAULT_MAX_PROBES,
    progress: Progress | None = None,
    parse: DocumentParser | None = None,
    deadline: float = DEFAULT_DEADLINE,
) -> SourceReading:
    """Read `url` as a feed, or as a homepage with a feed, or as a page feed."""
    reader = _Reader(fetcher, parse or _parse_inline, max_probes, progress)
    return await _within(deadline, url, reader.read(url))


async def discover_source(
    fetcher: Fetcher,
    url: str,
    *,
    max_probes: int = DEFAULT_MAX_PROBES,
    progress: Progress | None = None,
    parse: DocumentParser | None = None,
    deadline: float = DEFAULT_DEADLINE,
) -> list[FeedLink]:
    """The feeds `url` offers: itself when it is a feed, else what its page advertises,
    else the first well-known path of its platform that answers with a feed."""
    reader = _Reader(fetcher, parse or _parse_inline, max_probes, progress)
    return await _within(deadline, url, reader.discover(url))


async def _within(deadline: float, url: str, work: Awaitable[_T]) -> _T:
    """`work` done within `deadline` seconds, else SiteTooSlowError."""
    timeout = asyncio.timeout(deadline)
    try:
        async with timeout:
            return await work
    except TimeoutError as exc:
        if not timeout.expired():
            raise
        detail = f"the site and its feeds did not answer within {deadline:g}s"
        raise SiteTooSlowError(url, detail) from exc


Probed = tuple[FeedLink, FetchResult, ParsedFeed]


class _Reader:
    """One reading: the fetcher, the parser and the candidate limit it works with."""

    def __init__(
        self, fetcher: Fetcher, parse: DocumentParser, max_probes: int, progress: Progress | None
    ) -> None:
        self.fetcher = fetcher
        self.parse = parse
        self.max_probes = max_probes
        self.progress = progress

    async def read(self, url: str) -> SourceReading:
        page = await self.fetcher.fetch(url)
        kind = detect_kind(page.content, page.content_type)
        if kind in FEED_KINDS:
            return _reading(url, page, await self.parse(page, False), ())
        if kind != "html":
            raise NotAFeedError(url, "neither a feed nor an HTML page")
        advertised = tuple(discover_feed_links(page.content, page.final_url))
        found = await self.first_feed(page, advertised)
        if found:
            link, result, parsed = found
            return _reading(url, result, parsed, advertised or (link,))
        parsed = await self.parse(page, True)
        if not parsed.items:
            raise NoFeedFoundError(url, "no feed advertised or found, and no readable news")
        return _reading(url, page, parsed, advertised)

    async def discover(self, url: str) -> list[FeedLink]:
        page = await self.fetcher.fetch(url)
        if detect_kind(page.content, page.content_type) in FEED_KINDS:
            parsed = await self.parse(page, False)
            return [FeedLink(url=page.final_url, type=_link_type(parsed.kind), title=parsed.title)]
        advertised = discover_feed_links(page.content, page.final_url)
        if advertised:
            return advertised
        found = await self.first_feed(page, ())
        return [found[0]] if found else []

    async def first_feed(
        self, page: FetchResult, advertised: tuple[FeedLink, ...]
    ) -> Probed | None:
        """The first candidate that is a feed: the advertised ones, else the well-known paths
        of the page's platform; at most `max_probes`, one at a time."""
        if advertised:
            candidates = [link.url for link in advertised]
        else:
            candidates = well_known_feed_urls(page.content, page.final_url)
        candidates = candidates[: self.max_probes]
        for index, candidate in enumerate(candidates, start=1):
            if self.progress:
                self.progress(candidate, index, len(candidates))
            found = await self.probe(candidate, advertised=bool(advertised))
            if found:
                return found
        return None

    async def probe(self, url: str, *, advertised: bool) -> Probed | None:
        """A candidate is a feed only if it answers 200 with a parseable feed. A guessed one
        must also look like a feed; an advertised one is only refused for being HTML."""
        try:
            result = await self.fetcher.fetch(url)
            kind = detect_kind(result.content, result.content_type)
            if kind == "html" or (not advertised and kind not in FEED_KINDS):
                return None
            parsed = await self.parse(result, False)
        except FeedError:
            return None  # a broken candidate; the next one, or the page itself, may do
        link = FeedLink(url=result.final_url, type=_link_type(parsed.kind), title=parsed.title)
        return link, result, parsed


def _link_type(kind: FeedKind) -> str:
    return "rss" if kind == "rdf" else kind


def _reading(
    url: str, result: FetchResult, parsed: ParsedFeed, feeds: tuple[FeedLink, ...]
) -> SourceReading:
    return SourceReading(url, result.final_url, parsed.kind, parsed, feeds, result)
