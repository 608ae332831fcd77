"""Fetching against a real local server, plus table tests of the pure header helpers."""

from __future__ import annotations

import gzip
import hashlib
import socket
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import brotli  # type: ignore[import-untyped]
import httpcore
import httpx
import pytest

from feeds.config import FetchSettings
from feeds.errors import (
    BlockedAddressError,
    FetchError,
    FetchTimeoutError,
    GoneError,
    HTTPStatusError,
    InvalidURLError,
    RetryLaterError,
    TooLargeError,
    TooManyRedirectsError,
    UnreachableError,
)
from feeds.fetch import (
    Fetcher,
    convert_error,
    is_permanent_chain,
    parse_content_type,
    parse_max_age,
    parse_retry_after,
)
from feeds.models import Validators
from tests.support.httpserver import LocalServer, Reply, Request

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Bakery</title></channel></rss>'
LOOPBACK = FetchSettings(allowed_networks=("127.0.0.0/8",), total_timeout=5.0)
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher(LOOPBACK) as f:
        yield f


def small(max_bytes: int = 1024 * 1024, **kw: object) -> FetchSettings:
    """Loopback-allowed settings with overrides."""
    return FetchSettings(allowed_networks=("127.0.0.0/8",), max_bytes=max_bytes, **kw)  # type: ignore[arg-type]


# --- Pure helpers -------------------------------------------------------------------------

RETRY_AFTER = [
    (None, None),
    ("120", 120.0),
    (" 0 ", 0.0),
    ("-5", None),
    ("soon", None),
    ("1.5", None),
    (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
    (format_datetime(NOW - timedelta(hours=1), usegmt=True), 0.0),  # past: clamp
    ("Sat, 01 Mar 2025 12:02:00 GMT", 120.0),
]


@pytest.mark.parametrize(("value", "expected"), RETRY_AFTER)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


MAX_AGE = [
    ({}, None),
    ({"cache-control": "max-age=300"}, 300.0),
    ({"cache-control": "public, MAX-AGE=60, s-maxage=900"}, 60.0),
    ({"cache-control": 's-maxage=900, max-age="30"'}, 30.0),
    ({"cache-control": "s-maxage=900"}, None),
    ({"cache-control": "max-age=abc"}, None),
    ({"cache-control": "no-cache, max-age=300"}, None),
    ({"cache-control": "no-store"}, None),
    ({"expires": "Sat, 01 Mar 2025 13:00:00 GMT"}, 3600.0),
    ({"expires": "Sat, 01 Mar 2025 13:00:00 GMT", "date": "Sat, 01 Mar 2025 12:30:00 GMT"}, 1800.0),
    ({"expires": "Sat, 01 Mar 2025 11:00:00 GMT"}, 0.0),
    ({"expires": "0"}, None),
    ({"cache-control": "max-age=10", "expires": "Sat, 01 Mar 2025 13:00:00 GMT"}, 10.0),
]


@pytest.mark.parametrize(("headers", "expected"), MAX_AGE)
def test_parse_max_age(headers: dict[str, str], expected: float | None) -> None:
    assert parse_max_age(headers, NOW) == expected


CONTENT_TYPES = [
    (None, (None, None)),
    ("", (None, None)),
    ("application/rss+xml", ("application/rss+xml", None)),
    ("Text/XML; Charset=ISO-8859-1", ("text/xml", "iso-8859-1")),
    ('text/html; boundary=x; charset="utf-8"', ("text/html", "utf-8")),
    ("text/html; charset=", ("text/html", None)),
]


@pytest.mark.parametrize(("value", "expected"), CONTENT_TYPES)
def test_parse_content_type(value: str | None, expected: tuple[str | None, str | None]) -> None:
    assert parse_content_type(value) == expected


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [([], False), ([301], True), ([301, 308], True), ([301, 302], False), ([307], False)],
)
def test_is_permanent_chain(statuses: list[int], expected: bool) -> None:
    assert is_permanent_chain(statuses) is expected


# --- Success, conditional GET, hashing ------------------------------------------------------


async def test_ok_returns_body_validators_and_metadata(
    server: LocalServer, fetcher: Fetcher
) -> None:
    headers = {
        "Content-Type": "application/rss+xml; charset=UTF-8",
        "ETag": '"v1"',
        "Last-Modified": "Sat, 01 Mar 2025 10:00:00 GMT",
        "Cache-Control": "max-age=600",
    }
    server.route("/feed.xml", Reply(body=FEED, headers=headers))
    result = await fetcher.fetch(server.url("/feed.xml"))
    assert result.status == 200
    assert result.content == FEED
    assert result.content_type == "application/rss+xml"
    assert result.charset == "utf-8"
    assert result.validators == Validators('"v1"', "Sat, 01 Mar 2025 10:00:00 GMT")
    assert result.body_hash == hashlib.sha256(FEED).hexdigest()
    assert result.max_age == 600.0
    assert not result.not_modified
    assert result.permanent_redirect is None
    assert result.final_url == result.url == server.url("/feed.xml")


async def test_request_headers(server: LocalServer, fetcher: Fetcher) -> None:
    server.route("/feed.xml", Reply(body=FEED))
    await fetcher.fetch(server.url("/feed.xml"))
    sent = server.requests[0].headers
    assert sent["user-agent"] == LOOPBACK.user_agent
    assert sent["accept"].startswith("application/rss+xml, application/atom+xml")
    assert sent["accept-encoding"] == "gzip, deflate, br"
    assert "if-none-match" not in sent


def conditional(req: Request) -> Reply:
    """304 when the client proves it holds version "v1"."""
    if req.headers.get("if-none-match") == '"v1"':
        return Reply(304, headers={"ETag": '"v1"'})
    return Reply(
        body=FEED, headers={"ETag": '"v1"', "Last-Modified": "Sat, 01 Mar 2025 10:00:00 GMT"}
    )


async def test_conditional_get_gives_not_modified(server: LocalServer, fetcher: Fetcher) -> None:
    server.route("/feed.xml", conditional)
    first = await fetcher.fetch(server.url("/feed.xml"))
    second = await fetcher.fetch(server.url("/feed.xml"), validators=first.validators)
    sent = server.requests[1].headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == "Sat, 01 Mar 2025 10:00:00 GMT"
    assert second.not_modified
    assert second.status == 304
    assert second.content == b""
    assert second.body_hash is None
    assert second.validators == first.validators  # Last-Modified kept though the 304 omitted it


async def test_same_hash_is_not_modified(server: LocalServer, fetcher: Fetcher) -> None:
    server.route("/feed.xml", Reply(body=FEED))
    first = await fetcher.fetch(server.url("/feed.xml"))
    second = await fetcher.fetch(server.url("/feed.xml"), previous_hash=first.body_hash)
    assert second.not_modified
    assert second.status == 200
    assert second.content == b""  # nothing to parse
    assert second.body_hash == first.body_hash


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send
        ("br", brotli.compress),
    ],
)
async def test_compressed_bodies_are_decoded(
    server: LocalServer, fetcher: Fetcher, encoding: str, encode: object
) -> None:
    body = FEED * 200
    server.route("/z", Reply(body=encode(body), headers={"Content-Encoding": encoding}))  # type: ignore[operator]
    result = await fetcher.fetch(server.url("/z"))
    assert result.content == body
    assert result.body_hash == hashlib.sha256(body).hexdigest()


async def test_chunked_body(server: LocalServer, fetcher: Fetcher) -> None:
    server.route("/chunked", Reply(body=iter([FEED[:10], FEED[10:]])))
    assert (await fetcher.fetch(server.url("/chunked"))).content == FEED


async def test_broken_gzip_is_a_fetch_error(server: LocalServer, fetcher: Fetcher) -> None:
    server.route("/bad", Reply(body=b"not gzip at all", headers={"Content-Encoding": "gzip"}))
    with pytest.raises(FetchError, match="undecodable") as info:
        await fetcher.fetch(server.url("/bad"))
    assert type(info.value) is FetchError


async def test_unknown_encoding_is_a_fetch_error(server: LocalServer, fetcher: Fetcher) -> None:
    server.route("/zstd", Reply(body=b"\x28\xb5\x2f\xfd", headers={"Content-Encoding": "zstd"}))
    with pytest.raises(FetchError, match="Content-Encoding"):
        await fetcher.fetch(server.url("/zstd"))


# --- Size caps ----------------------------------------------------------------------------

ZEROS = b"\0" * (50 * 1024 * 1024)
BOMBS = {"gzip": gzip.compress(ZEROS, 6), "br": brotli.compress(ZEROS, quality=5)}


@pytest.mark.parametrize("encoding", ["gzip", "br"])
async def test_compression_bomb_stops_early(server: LocalServer, encoding: str) -> None:
    bomb = BOMBS[encoding]  # 50 MB of zeros in ~50 KB (gzip) or ~90 bytes (brotli)
    server.route("/bomb", Reply(body=bomb, headers={"Content-Encoding": encoding}))
    async with Fetcher(small(1024 * 1024)) as f:
        started = time.monotonic()
        tracemalloc.start()
        try:
            with pytest.raises(TooLargeError):
                await f.fetch(server.url("/bomb"))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert time.monotonic() - started < 1.0
    assert peak < 8 * 1024 * 1024  # never near the 50 MB a whole-chunk decoder would hold


async def test_oversized_plain_body(server: LocalServer) -> None:
    server.route("/big", Reply(body=iter([b"x" * 4096] * 64)))  # chunked: no Content-Length
    async with Fetcher(small(100_000)) as f:
        with pytest.raises(TooLargeError, match="body over"):
            await f.fetch(server.url("/big"))


async def test_body_at_the_cap_is_fine(server: LocalServer) -> None:
    server.route("/exact", Reply(body=iter([b"x" * 1000] * 10)))
    async with Fetcher(small(10_000)) as f:
        assert len((await f.fetch(server.url("/exact"))).content) == 10_000


async def test_oversized_content_length_refused_before_reading(server: LocalServer) -> None:
    # The header lies: only the header check can catch this one.
    server.route("/cl", Reply(body=b"x", headers={"Content-Length": "20000000"}, close=True))
    async with Fetcher(small(1024 * 1024)) as f:
        with pytest.raises(TooLargeError, match="Content-Length"):
            await f.fetch(server.url("/cl"))


# --- Time limits ------------------------------------------------------------------------


def trickle() -> Iterator[bytes]:
    """A chunk every 0.3 s, forever: each read succeeds, the whole never ends."""
    while True:
        time.sleep(0.3)
        yield b"<item>"


async def test_slow_trickle_is_cut_by_total_timeout(server: LocalServer) -> None:
    server.route("/slow", Reply(body=trickle()))
    async with Fetcher(small(total_timeout=1.0)) as f:
        started = time.monotonic()
        with pytest.raises(FetchTimeoutError):
            await f.fetch(server.url("/slow"))
    assert 0.9 < time.monotonic() - started < 1.5


async def test_slow_headers_time_out(server: LocalServer) -> None:
    server.route("/late", Reply(body=FEED, delay=1.0))
    async with Fetcher(small(total_timeout=0.3)) as f:
        with pytest.raises(FetchTimeoutError):
            await f.fetch(server.url("/late"))


# --- Redirects ------------------------------------------------------------------------------


def redirect(status: int, location: str) -> Reply:
    return Reply(status, headers={"Location": location})


async def test_permanent_chain_sets_permanent_redirect(
    server: LocalServer, fetcher: Fetcher
) -> None:
    server.route("/old", redirect(301, "/older"))
    server.route("/older", redirect(308, server.url("/feed.xml")))
    server.route("/feed.xml", Reply(body=FEED))
    result = await fetcher.fetch(server.url("/old"))
    assert result.content == FEED
    assert result.final_url == server.url("/feed.xml")
    assert result.permanent_redirect == server.url("/feed.xml")
    assert result.url == server.url("/old")


@pytest.mark.parametrize("temporary", [302, 303, 307])
async def test_temporary_hop_clears_permanent_redirect(
    server: LocalServer, fetcher: Fetcher, temporary: int
) -> None:
    server.route("/a", redirect(301, "/b"))
    server.route("/b", redirect(temporary, "dir/feed.xml"))  # relative to /b
    server.route("/dir/feed.xml", Reply(body=FEED))
    result = await fetcher.fetch(server.url("/a"))
    assert result.final_url == server.url("/dir/feed.xml")
    assert result.permanent_redirect is None


async def test_validators_sent_on_every_hop_and_304_after_redirect(
    server: LocalServer, fetcher: Fetcher
) -> None:
    server.route("/moved", redirect(301, "/feed.xml"))
    server.route("/feed.xml", conditional)
    result = await fetcher.fetch(server.url("/moved"), validators=Validators(etag='"v1"'))
    assert result.not_modified
    assert result.permanent_redirect == server.url("/feed.xml")


async def test_redirect_loop(server: LocalServer, fetcher: Fetcher) -> None:
    server.route("/ping", redirect(302, "/pong"))
    server.route("/pong", redirect(302, "/ping"))
    with pytest.raises(TooManyRedirectsError, match="loop"):
        await fetcher.fetch(server.url("/ping"))
    assert len(server.requests) == 2


@pytest.mark.parametrize(("hops", "ok"), [(5, True), (6, False)])
async def test_max_redirects(server: LocalServer, fetcher: Fetcher, hops: int, ok: bool) -> None:
    for n in range(hops):
        server.route(f"/r{n}", redirect(302, f"/r{n + 1}"))
    server.route(f"/r{hops}", Reply(body=FEED))
    if ok:
        assert (await fetcher.fetch(server.url("/r0"))).content == FEED
    else:
        with pytest.raises(TooManyRedirectsError):
            await fetcher.fetch(server.url("/r0"))


@pytest.mark.parametrize(
    "target", ["javascript:alert(1)", "ftp://example.com/feed", "file:///etc/passwd"]
)
async def test_redirect_to_other_scheme(server: LocalServer, fetcher: Fetcher, target: str) -> None:
    server.route("/evil", redirect(302, target))
    with pytest.raises(InvalidURLError) as info:
        await fetcher.fetch(server.url("/evil"))
    assert info.value.url == server.url("/evil")


async def test_redirect_without_location_is_a_status_error(
    server: LocalServer, fetcher: Fetcher
) -> None:
    server.route("/nowhere", Reply(302))
    with pytest.raises(HTTPStatusError) as info:
        await fetcher.fetch(server.url("/nowhere"))
    assert info.value.status == 302


# --- HTTP errors ----------------------------------------------------------------------------


async def test_gone(server: LocalServer, fetcher: Fetcher) -> None:
    server.route("/gone", Reply(410))
    with pytest.raises(GoneError):
        await fetcher.fetch(server.url("/gone"))


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_seconds(server: LocalServer, fetcher: Fetcher, status: int) -> None:
    server.route("/busy", Reply(status, headers={"Retry-After": "120"}))
    with pytest.raises(RetryLaterError) as info:
        await fetcher.fetch(server.url("/busy"))
    assert info.value.status == status
    assert info.value.retry_after == 120.0


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_date(server: LocalServer, fetcher: Fetcher, status: int) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    server.route("/busy", Reply(status, headers={"Retry-After": later}))
    with pytest.raises(RetryLaterError) as info:
        await fetcher.fetch(server.url("/busy"))
    assert info.value.retry_after is not None
    assert 118 <= info.value.retry_after <= 121  # measured against the server's Date


async def test_retry_after_absent(server: LocalServer, fetcher: Fetcher) -> None:
    server.route("/busy", Reply(503))
    with pytest.raises(RetryLaterError) as info:
        await fetcher.fetch(server.url("/busy"))
    assert info.value.retry_after is None


@pytest.mark.parametrize("status", [404, 403, 500])
async def test_other_statuses(server: LocalServer, fetcher: Fetcher, status: int) -> None:
    server.route("/err", Reply(status, b"<html>sorry</html>", {"Content-Type": "text/html"}))
    with pytest.raises(HTTPStatusError) as info:
        await fetcher.fetch(server.url("/err"))
    assert type(info.value) is HTTPStatusError
    assert info.value.status == status


# --- Network failures ---------------------------------------------------------------------


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused(fetcher: Fetcher) -> None:
    with pytest.raises(UnreachableError):
        await fetcher.fetch(f"http://127.0.0.1:{unused_port()}/feed.xml")


async def test_dns_failure(fetcher: Fetcher) -> None:
    with pytest.raises(UnreachableError, match="resolve"):
        await fetcher.fetch("http://no-such-host.invalid/feed.xml")


async def test_tls_failure(server: LocalServer, fetcher: Fetcher) -> None:
    with pytest.raises(UnreachableError):  # https to a plain-HTTP port
        await fetcher.fetch(f"https://127.0.0.1:{server.port}/feed.xml")


async def test_server_dying_mid_body(server: LocalServer, fetcher: Fetcher) -> None:
    server.route("/cut", Reply(body=b"<rss>", headers={"Content-Length": "1000"}, close=True))
    with pytest.raises(UnreachableError):
        await fetcher.fetch(server.url("/cut"))


# --- The guard ------------------------------------------------------------------------------


async def test_default_settings_block_loopback(server: LocalServer) -> None:
    server.route("/feed.xml", Reply(body=FEED))
    async with Fetcher(FetchSettings()) as f:
        with pytest.raises(BlockedAddressError) as info:
            await f.fetch(server.url("/feed.xml"))
    assert info.value.url == server.url("/feed.xml")
    assert server.requests == []


async def test_localhost_name_is_resolved_and_checked(server: LocalServer) -> None:
    server.route("/feed.xml", Reply(body=FEED))
    url = f"http://localhost:{server.port}/feed.xml"
    async with Fetcher(FetchSettings()) as f:
        with pytest.raises(BlockedAddressError, match="localhost"):
            await f.fetch(url)
    assert server.requests == []
    allowed = FetchSettings(allowed_networks=("127.0.0.0/8", "::1/128"))
    async with Fetcher(allowed) as f:
        assert (await f.fetch(url)).content == FEED
    assert server.requests[0].headers["host"] == f"localhost:{server.port}"  # name kept


@pytest.mark.parametrize(
    "target",
    ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[::ffff:10.0.0.1]/"],
)
async def test_redirect_to_private_address_blocked(
    server: LocalServer, fetcher: Fetcher, target: str
) -> None:
    server.route("/hop", redirect(302, target))
    started = time.monotonic()
    with pytest.raises(BlockedAddressError) as info:
        await fetcher.fetch(server.url("/hop"))
    assert time.monotonic() - started < 0.5  # refused, not a connect attempt timing out
    assert info.value.url == server.url("/hop")


async def test_allow_private_networks(server: LocalServer) -> None:
    server.route("/feed.xml", Reply(body=FEED))
    async with Fetcher(FetchSettings(allow_private_networks=True)) as f:
        assert (await f.fetch(server.url("/feed.xml"))).content == FEED


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "ftp://example.com/feed.xml",
        "file:///etc/passwd",
        "http:///feed.xml",
        "feed.xml",
        "http://exa mple.com/",
    ],
)
async def test_invalid_urls(fetcher: Fetcher, url: str) -> None:
    with pytest.raises(InvalidURLError):
        await fetcher.fetch(url)


async def test_proxy_variables_ignored(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{unused_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead)
    server.route("/feed.xml", Reply(body=FEED))
    async with Fetcher(LOOPBACK) as f:
        assert (await f.fetch(server.url("/feed.xml"))).content == FEED


async def test_explicit_proxy_checks_target_first(server: LocalServer) -> None:
    # The local server plays the proxy: it sees absolute-form request targets.
    target = f"http://127.0.0.1:{unused_port()}/feed.xml"
    server.route(target, Reply(body=FEED))
    async with Fetcher(FetchSettings(proxy=server.url())) as f:
        with pytest.raises(BlockedAddressError):
            await f.fetch(target)
    assert server.requests == []
    async with Fetcher(FetchSettings(proxy=server.url(), allowed_networks=("127.0.0.0/8",))) as f:
        assert (await f.fetch(target)).content == FEED
    assert server.requests[0].path == target


CONVERSIONS = [
    (httpx.ConnectTimeout("slow"), FetchTimeoutError),
    (httpx.ReadTimeout("slow"), FetchTimeoutError),
    (httpx.PoolTimeout("busy"), FetchTimeoutError),
    (TimeoutError(), FetchTimeoutError),
    (httpx.ConnectError("refused"), UnreachableError),
    (httpx.ReadError("reset"), UnreachableError),
    (httpx.RemoteProtocolError("garbage"), UnreachableError),
    (httpx.ProxyError("proxy said no"), UnreachableError),
    (httpcore.ConnectError("no DNS"), UnreachableError),
    (ConnectionResetError(), UnreachableError),
    (httpx.UnsupportedProtocol("gopher"), InvalidURLError),
    (httpx.InvalidURL("bad"), InvalidURLError),
    (httpx.DecodingError("bad gzip"), FetchError),
    (httpx.TooManyRedirects("many"), FetchError),
]


@pytest.mark.parametrize(("exc", "expected"), CONVERSIONS)
def test_convert_error(exc: Exception, expected: type[FetchError]) -> None:
    converted = convert_error("http://example.com/", exc)
    assert type(converted) is expected
    assert converted.url == "http://example.com/"
