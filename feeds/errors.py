"""The relay's error tree, rooted here because `feeds` is the lowest layer.

    RelayError
     └── FeedError                 carries the URL and a message key (`code`)
          ├── InvalidURLError      (also ValueError) not an http(s) URL  code "invalid_url"
          ├── BlockedAddressError  private / loopback / reserved target  code "blocked_address"
          ├── FetchError           the network or the server failed us
          │    ├── FetchTimeoutError  code "timeout"
          │    │    └── SiteTooSlowError  a homepage and its feeds over the deadline
          │    │                          code "site_too_slow"
          │    ├── UnreachableError  DNS, refused, TLS  code "unreachable"
          │    ├── TooLargeError     body over the size cap  code "too_large"
          │    ├── TooManyRedirectsError  code "too_many_redirects"
          │    ├── HTTPStatusError   4xx / 5xx (``status``)  code "http_status"
          │    ├── GoneError         410: the source is gone for good  code "gone"
          │    └── RetryLaterError   429 / 503 (``retry_after`` seconds)  code "retry_later"
          └── ParseError           the document is not a feed or readable page
               ├── NotAFeedError  code "not_a_feed"
               ├── NoFeedFoundError  a homepage with no feed and no items  code "no_feed"
               └── EntitiesRefusedError  DTD entities too large or nested
                                         code "entities_refused"

"Not modified" is a result (``FetchResult.not_modified``), not an error.
The relay layer adds its own branches (delivery, storage) under ``RelayError``.
"""

from __future__ import annotations


class RelayError(Exception):
    """Root of every error the relay raises on purpose."""

    code = "error"


class FeedError(RelayError):
    """Something about one source URL went wrong; ``code`` is a message key."""

    code = "feed_error"

    def __init__(self, url: str, detail: str = "") -> None:
        self.url = url
        self.detail = detail
        super().__init__(f"{url}: {detail}" if detail else url)


class InvalidURLError(FeedError, ValueError):
    code = "invalid_url"


class BlockedAddressError(FeedError):
    code = "blocked_address"


class FetchError(FeedError):
    code = "fetch_error"


class FetchTimeoutError(FetchError):
    code = "timeout"


class SiteTooSlowError(FetchTimeoutError):
    code = "site_too_slow"


class UnreachableError(FetchError):
    code = "unreachable"


class TooLargeError(FetchError):
    code = "too_large"


class TooManyRedirectsError(FetchError):
    code = "too_many_redirects"


class HTTPStatusError(FetchError):
    code = "http_status"

    def __init__(self, url: str, status: int, detail: str = "") -> None:
        self.status = status
        super().__init__(url, detail or f"HTTP {status}")


class GoneError(HTTPStatusError):
    code = "gone"

    def __init__(self, url: str) -> None:
        super().__init__(url, 410, "HTTP 410 Gone")


class RetryLaterError(HTTPStatusError):
    code = "retry_later"

    def __init__(self, url: str, status: int, retry_after: float | None) -> None:
        self.retry_after = retry_after
        super().__init__(url, status, f"HTTP {status}, retry after {retry_after}s")


class ParseError(FeedError):
    code = "parse_error"


class NotAFeedError(ParseError):
    code = "not_a_feed"


class NoFeedFoundError(ParseError):
    code = "no_feed"


class EntitiesRefusedError(ParseError):
    code = "entities_refused"
