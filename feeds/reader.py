"""Read a source the way a business gives it to us: a feed URL or just a homepage.

fetch → is it a feed? parse it. Is it a page? use its advertised feed, else probe the
well-known paths of its platform (a few, politely), else read the page itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from feeds.discover import discover_feed_links, well_known_feed_urls
from feeds.errors import FeedError, NoFeedFoundError, NotAFeedError
from feeds.fetch import Fetcher
from feeds.models import FeedKind, FeedLink, FetchResult, ParsedFeed
from feeds.pages import parse_page
from feeds.parse import detect_kind, parse_feed

Progress = Callable[[str, int, int], None]  # (url being tried, index from 1, total)

FEED_KINDS = ("rss", "atom", "rdf", "json")


@dataclass(frozen=True, slots=True)
class SourceReading:
    """What reading a URL produced: the document actually read and how."""

    url: str  # as given
    source_url: str  # the feed or page actually read (after redirects)
    kind: FeedKind
    feed: ParsedFeed
    feeds: tuple[FeedLink, ...]  # feeds found, when `url` was a homepage
    fetch: FetchResult


async def read_source(
    fetcher: Fetcher, url: str, *, max_probes: int = 4, progress: Progress | None = None
) -> SourceReading:
    """Read `url` as a feed, or as a homepage with a feed, or as a page feed."""
    page = await fetcher.fetch(url)
    kind = detect_kind(page.content, page.content_type)
    if kind in FEED_KINDS:
        return _reading(url, page, parse_feed_result(page), ())
    if kind != "html":
        raise NotAFeedError(url, "neither a feed nor an HTML page")
    advertised = discover_feed_links(page.content, page.final_url)
    for link in advertised:
        try:
            result = await fetcher.fetch(link.url)
            return _reading(url, result, parse_feed_result(result), tuple(advertised))
        except FeedError:
            continue  # an advertised feed may be broken; the next one, or the page, may do
    if not advertised:
        found = await _probe_well_known(fetcher, page, max_probes, progress)
        if found:
            link, result, parsed = found
            return _reading(url, result, parsed, (link,))
    parsed = parse_page(page.content, page.final_url)
    if not parsed.items:
        raise NoFeedFoundError(url, "no feed advertised or found, and no readable news")
    return _reading(url, page, parsed, tuple(advertised))


async def discover_source(
    fetcher: Fetcher, url: str, *, max_probes: int = 4, progress: Progress | None = None
) -> list[FeedLink]:
    """The feeds `url` offers: itself when it is a feed, else what its page advertises,
    else the first well-known path of its platform that answers with a feed."""
    page = await fetcher.fetch(url)
    if detect_kind(page.content, page.content_type) in FEED_KINDS:
        parsed = parse_feed_result(page)
        return [FeedLink(url=page.final_url, type=_link_type(parsed.kind), title=parsed.title)]
    advertised = discover_feed_links(page.content, page.final_url)
    if advertised:
        return advertised
    found = await _probe_well_known(fetcher, page, max_probes, progress)
    return [found[0]] if found else []


def parse_feed_result(result: FetchResult) -> ParsedFeed:
    """Parse a fetched feed body."""
    return parse_feed(
        result.content, result.final_url, content_type=result.content_type, charset=result.charset
    )


Probed = tuple[FeedLink, FetchResult, ParsedFeed]


async def _probe_well_known(
    fetcher: Fetcher, page: FetchResult, max_probes: int, progress: Progress | None
) -> Probed | None:
    """Try the platform's usual feed paths, one at a time, stopping at the first feed."""
    candidates = well_known_feed_urls(page.content, page.final_url)[:max_probes]
    for index, candidate in enumerate(candidates, start=1):
        if progress:
            progress(candidate, index, len(candidates))
        found = await _probe(fetcher, candidate)
        if found:
            return found
    return None


async def _probe(fetcher: Fetcher, url: str) -> Probed | None:
    """A well-known path is a feed only if it answers 200 with a parseable feed."""
    try:
        result = await fetcher.fetch(url)
        if detect_kind(result.content, result.content_type) not in FEED_KINDS:
            return None
        parsed = parse_feed_result(result)
    except FeedError:
        return None
    link = FeedLink(url=result.final_url, type=_link_type(parsed.kind), title=parsed.title)
    return link, result, parsed


def _link_type(kind: FeedKind) -> str:
    return "rss" if kind == "rdf" else kind


def _reading(
    url: str, result: FetchResult, parsed: ParsedFeed, feeds: tuple[FeedLink, ...]
) -> SourceReading:
    return SourceReading(url, result.final_url, parsed.kind, parsed, feeds, result)
