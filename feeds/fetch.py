"""Fetch one source URL: conditional GET, redirects by hand through the SSRF guard, size and time
caps, and every network failure turned into the `feeds.errors` tree at this one boundary.

Semantics worth knowing:
- A 304, or a 200 whose body hashes to ``previous_hash``, gives ``not_modified=True`` and
  ``content=b""``: the caller skips parsing. ``body_hash`` is set on the 200 case only.
- Timeouts of any kind (connect, read, the total limit on the whole fetch) are
  `FetchTimeoutError`; refused, DNS, TLS and broken connections are `UnreachableError`.
- The size cap counts DECODED bytes, decoded here with bounded decompressors: httpx's own
  decoder inflates a whole 64 KB network read at once (89 bytes of brotli became 50 MB).
- With a proxy, the socket goes to the proxy, so each hop's host is resolved and checked
  before the request; the proxy resolves it again, which leaves a DNS-rebinding window that
  the direct path (see `feeds.netguard`) does not have.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import zlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType

import httpcore
import httpx

from feeds.config import FetchSettings
from feeds.errors import (
    BlockedAddressError,
    FeedError,
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
from feeds.models import FetchResult, Validators
from feeds.netguard import AddressPolicy, guarded_transport, resolve_checked

try:
    import brotli as _brotli  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover
    _brotli = None

# Bounded brotli output needs Brotli >= 1.2 (`output_buffer_limit`); without it, don't ask for br.
BROTLI = _brotli is not None and hasattr(_brotli.Decompressor, "can_accept_more_data")
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.8, */*;q=0.5"
)
ACCEPT_ENCODING = "gzip, deflate, br" if BROTLI else "gzip, deflate"
# Feeds of distinct hosts rarely share connections; big pools only slow httpx down (docs/facts.md).
# Feeds live on distinct hosts: kept-alive connections are rarely reused, and httpx's pool
# scans them on every request (measured faster without, docs/facts.md and bench/poll.py).
LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=0)
REDIRECTS = frozenset({301, 302, 303, 307, 308})
PERMANENT = frozenset({301, 308})
_HOST_CHARS = re.compile(r"[a-z0-9_.-]+")  # httpx hands back IDNA hosts lower-cased

Clock = Callable[[], datetime]


# --- Pure helpers -------------------------------------------------------------------------


def check_url(url: str) -> httpx.URL:
    """Parse `url`; only http(s) with a host may be fetched."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise InvalidURLError(url, f"malformed URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidURLError(url, "only http and https URLs with a host are fetched")
    if ":" not in parsed.host and not _HOST_CHARS.fullmatch(parsed.host):
        raise InvalidURLError(url, f"not a host name: {parsed.host}")
    return parsed


def is_permanent_chain(statuses: Sequence[int]) -> bool:
    """True when there were redirects and every one of them was permanent."""
    return bool(statuses) and all(status in PERMANENT for status in statuses)


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP-date as an aware UTC datetime, or None when absent or garbage."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), never negative."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    when = parse_http_date(value)
    return None if when is None else max(0.0, (when - now).total_seconds())


def _cache_directives(value: str) -> dict[str, str]:
    """Cache-Control directives, names lower-cased, values unquoted ("" when none)."""
    directives = {}
    for part in value.split(","):
        name, _, arg = part.partition("=")
        if name.strip():
            directives[name.strip().lower()] = arg.strip().strip('"')
    return directives


def parse_max_age(headers: Mapping[str, str], now: datetime) -> float | None:
    """A polling hint in seconds: Cache-Control max-age, else Expires minus Date (or `now`).

    `headers` needs lower-case keys (httpx.Headers qualifies). s-maxage is for shared HTTP
    caches and is ignored; no-cache / no-store give None, like an absent header.
    """
    directives = _cache_directives(headers.get("cache-control", ""))
    if "no-store" in directives or "no-cache" in directives:
        return None
    if "max-age" in directives:
        arg = directives["max-age"]
        return float(int(arg)) if arg.isdigit() else None
    expires = parse_http_date(headers.get("expires"))
    if expires is None:
        return None
    date = parse_http_date(headers.get("date")) or now
    return max(0.0, (expires - date).total_seconds())


def parse_content_type(value: str | None) -> tuple[str | None, str | None]:
    """(media type lower-cased without parameters, charset) from a Content-Type header."""
    if not value:
        return None, None
    media, *params = value.split(";")
    charset = None
    for param in params:
        name, _, arg = param.partition("=")
        if name.strip().lower() == "charset" and arg.strip():
            charset = arg.strip().strip("\"'").lower()
    return media.strip().lower() or None, charset


def conditional_headers(validators: Validators) -> dict[str, str]:
    """If-None-Match / If-Modified-Since for the validators we hold."""
    headers = {}
    if validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    return headers


def response_validators(headers: Mapping[str, str], previous: Validators) -> Validators:
    """Validators from a response; a 304 that omits one keeps the one we had."""
    return Validators(
        etag=headers.get("etag") or previous.etag,
        last_modified=headers.get("last-modified") or previous.last_modified,
    )


def status_error(url: str, status: int, headers: Mapping[str, str], now: datetime) -> FeedError:
    """The error for a non-2xx, non-304 final status."""
    if status == 410:
        return GoneError(url)
    if status in (429, 503):
        return RetryLaterError(url, status, parse_retry_after(headers.get("retry-after"), now))
    return HTTPStatusError(url, status)


def convert_error(url: str, exc: Exception) -> FeedError:
    """Map an httpx / httpcore / OS failure onto the feeds error tree."""
    if isinstance(exc, (httpx.TimeoutException, httpcore.TimeoutException, TimeoutError)):
        return FetchTimeoutError(url, str(exc) or "timed out")
    if isinstance(exc, (httpx.InvalidURL, httpx.UnsupportedProtocol)):
        return InvalidURLError(url, str(exc))
    if isinstance(exc, httpx.DecodingError):
        return FetchError(url, f"undecodable body: {exc}")
    if isinstance(exc, (httpx.TransportError, httpcore.NetworkError, OSError)):
        return UnreachableError(url, str(exc) or type(exc).__name__)
    return FetchError(url, str(exc) or type(exc).__name__)


# --- Bounded decoding ---------------------------------------------------------------------

Step = Callable[[bytes, int], bytes]  # (compressed chunk, max output) -> decoded bytes
DECODE_ERRORS: tuple[type[Exception], ...] = (zlib.error,) + ((_brotli.error,) if _brotli else ())


def _zlib_step(wbits: int) -> Step:
    """gzip (wbits 31) or zlib-wrapped deflate (15); zlib stops at `room` output bytes."""
    decompressor = zlib.decompressobj(wbits)
    return lambda data, room: decompressor.decompress(data, room)


def _deflate_step() -> Step:
    """ "deflate" is zlib-wrapped by the RFC but raw on some servers: fall back once."""
    decompressor = zlib.decompressobj(zlib.MAX_WBITS)
    first = True

    def step(data: bytes, room: int) -> bytes:
        nonlocal decompressor, first
        try:
            return decompressor.decompress(data, room)
        except zlib.error:
            if not first:
                raise
            decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
            return decompressor.decompress(data, room)
        finally:
            first = first and not data

    return step


def _brotli_step() -> Step:
    """Brotli with a bounded output buffer, drained until it wants input again."""
    decompressor = _brotli.Decompressor()

    def step(data: bytes, room: int) -> bytes:
        parts = [decompressor.process(data, output_buffer_limit=room)]
        got = len(parts[0])
        while got < room and not decompressor.can_accept_more_data():
            parts.append(decompressor.process(b"", output_buffer_limit=room - got))
            got += len(parts[-1])
            if not parts[-1]:
                break
        return b"".join(parts)

    return step


def _make_step(url: str, content_encoding: str) -> Step:
    """The decoding step for a Content-Encoding header; stacked codings are refused."""
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return lambda data, room: data
    if codings in (["gzip"], ["x-gzip"]):
        return _zlib_step(16 + zlib.MAX_WBITS)
    if codings == ["deflate"]:
        return _deflate_step()
    if codings == ["br"] and BROTLI:
        return _brotli_step()
    raise FetchError(url, f"unsupported Content-Encoding: {content_encoding}")


class BodyDecoder:
    """Decodes a response body chunk by chunk and stops once it exceeds `limit` bytes."""

    def __init__(self, url: str, content_encoding: str, limit: int) -> None:
        self._url, self._limit, self._total = url, limit, 0
        self._step = _make_step(url, content_encoding)

    def feed(self, data: bytes) -> bytes:
        """Decode one chunk; TooLargeError as soon as the running total passes the cap."""
        try:
            # One byte over the room left is enough to know the cap is exceeded.
            out = self._step(data, self._limit - self._total + 1)
        except DECODE_ERRORS as exc:
            raise FetchError(self._url, f"undecodable body: {exc}") from exc
        self._total += len(out)
        if self._total > self._limit:
            raise TooLargeError(self._url, f"body over {self._limit} bytes")
        return out


# --- I/O ----------------------------------------------------------------------------------


def build_client(settings: FetchSettings) -> httpx.AsyncClient:
    """The one shared client: no automatic redirects, no proxy variables from the environment."""
    return httpx.AsyncClient(
        transport=guarded_transport(settings, LIMITS),
        follow_redirects=False,
        trust_env=False,  # HTTP_PROXY & co. would route around the guard
        timeout=httpx.Timeout(settings.total_timeout, connect=settings.connect_timeout),
        headers={
            "User-Agent": settings.user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": ACCEPT_ENCODING,
        },
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Fetcher:
    """Fetches source URLs with one shared client: ``async with Fetcher(settings) as f:``."""

    def __init__(self, settings: FetchSettings, *, clock: Clock = _utcnow) -> None:
        self._settings = settings
        self._policy = AddressPolicy.from_settings(settings)
        self._clock = clock
        self._client = build_client(settings)

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.aclose()

    async def fetch(
        self, url: str, *, validators: Validators | None = None, previous_hash: str | None = None
    ) -> FetchResult:
        """GET `url` within the total time limit; raises only `FeedError` subclasses."""
        check_url(url)
        try:
            async with asyncio.timeout(self._settings.total_timeout):
                return await self._follow(url, validators or Validators(), previous_hash)
        except BlockedAddressError as exc:
            if exc.url == url:
                raise
            # Raised by the network backend, which only knew host:port.
            raise BlockedAddressError(url, exc.detail) from exc
        except FeedError:
            raise
        except TimeoutError as exc:
            raise FetchTimeoutError(url, f"over {self._settings.total_timeout}s in total") from exc
        except (httpx.HTTPError, httpx.InvalidURL, httpcore.NetworkError, OSError) as exc:
            # httpcore errors come from the proxy pre-check, outside httpx's own mapping.
            raise convert_error(url, exc) from exc

    async def _follow(
        self, url: str, validators: Validators, previous_hash: str | None
    ) -> FetchResult:
        """Walk the redirect chain by hand, each hop through the guard."""
        hop, seen = url, {url}
        statuses: list[int] = []
        headers = conditional_headers(validators)
        while True:
            async with self._open(hop, headers) as response:
                location = response.headers.get("location")
                if response.status_code not in REDIRECTS or not location:
                    return await self._finish(url, response, statuses, validators, previous_hash)
            statuses.append(response.status_code)
            hop = self._next_hop(url, response.url.join(location), seen, len(statuses))

    def _next_hop(self, url: str, target: httpx.URL, seen: set[str], count: int) -> str:
        """Validate a redirect target; loops and long chains are errors."""
        hop = str(target)
        try:
            check_url(hop)  # javascript:, file:, ftp: ...
        except InvalidURLError as exc:
            raise InvalidURLError(url, f"redirect to {hop}: {exc.detail}") from exc
        if hop in seen:
            raise TooManyRedirectsError(url, f"redirect loop at {hop}")
        if count > self._settings.max_redirects:
            raise TooManyRedirectsError(url, f"more than {self._settings.max_redirects} redirects")
        seen.add(hop)
        return hop

    @asynccontextmanager
    async def _open(self, hop: str, headers: dict[str, str]) -> AsyncIterator[httpx.Response]:
        """Stream one request; behind a proxy, check the target host first."""
        if self._settings.proxy:
            parsed = httpx.URL(hop)
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            await resolve_checked(hop, parsed.host, port, self._policy)
        async with self._client.stream("GET", hop, headers=headers) as response:
            yield response

    async def _finish(
        self,
        url: str,
        response: httpx.Response,
        statuses: Sequence[int],
        validators: Validators,
        previous_hash: str | None,
    ) -> FetchResult:
        """Turn the final response into a result or an error."""
        headers, status = response.headers, response.status_code
        now = parse_http_date(headers.get("date")) or self._clock()  # the server's clock
        base = FetchResult(
            url=url,
            final_url=str(response.url),
            status=status,
            validators=response_validators(headers, validators),
            permanent_redirect=str(response.url) if is_permanent_chain(statuses) else None,
            max_age=parse_max_age(headers, now),
        )
        if status == 304:
            return replace(base, not_modified=True)
        if not 200 <= status < 300:
            raise status_error(url, status, headers, now)
        content = await self._read_body(url, response)
        digest = hashlib.sha256(content).hexdigest()
        if digest == previous_hash:  # unchanged: nothing to parse
            return replace(base, body_hash=digest, not_modified=True)
        media, charset = parse_content_type(headers.get("content-type"))
        return replace(base, content=content, content_type=media, charset=charset, body_hash=digest)

    async def _read_body(self, url: str, response: httpx.Response) -> bytes:
        """Read the decoded body, refusing it as soon as it exceeds the cap."""
        limit = self._settings.max_bytes
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise TooLargeError(url, f"Content-Length {length} over {limit} bytes")
        decoder = BodyDecoder(url, response.headers.get("content-encoding", ""), limit)
        parts = [decoder.feed(chunk) async for chunk in response.aiter_raw()]
        parts.append(decoder.feed(b""))  # drain what the decompressor still holds
        return b"".join(parts)
