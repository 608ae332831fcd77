"""Settings for fetching untrusted URLs: time limits, size limits, who we say we are."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_USER_AGENT = (
    "SolidarityRelay/0.1 (news relay for local businesses; "
    "+https://github.com/solidarity-relay/relay)"
)


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchSettings:
    """How politely and how defensively we fetch. Defaults suit production."""

    user_agent: str = DEFAULT_USER_AGENT
    connect_timeout: float = 5.0
    total_timeout: float = 20.0  # whole request, body included
    max_bytes: int = 5 * 1024 * 1024  # decoded body cap
    max_redirects: int = 5
    allow_private_networks: bool = False  # RELAY_ALLOW_PRIVATE_NETWORKS=1: tests, local use
    allowed_networks: tuple[
        str, ...
    ] = ()  # CIDRs let through even when private, e.g. "127.0.0.1/32"
    proxy: str | None = None  # when set, environment proxies are still ignored
    max_probes: int = 4  # well-known feed paths tried on a homepage without <link>
