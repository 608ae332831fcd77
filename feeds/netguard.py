"""The SSRF guard: which IP addresses a fetch may reach, enforced where the socket is opened.

`GuardedBackend` is an httpcore network backend that resolves each host itself, checks every
address against an `AddressPolicy`, then connects to the checked IP literal. The address that
was checked is the address that is dialled, so DNS rebinding has no window; TLS SNI and the
Host header still use the host name (httpcore passes them from the URL, not from the socket).

Rule: a host is refused when ANY of its addresses is refused. Connecting only to the allowed
ones would be just as safe (we dial what we checked), but a public name that also publishes a
private address is misconfigured or hostile, and the strict rule gives the same answer whatever
order the resolver returns.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import httpcore
import httpx

from feeds.config import FetchSettings
from feeds.errors import BlockedAddressError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_net = ipaddress.ip_network

# Explicit tables, so the answer does not depend on the Python patch release
# (`is_global` has changed between 3.11.x releases).
_BLOCKED_V4 = tuple(
    _net(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes broadcast
    )
)
_BLOCKED_V6 = tuple(
    _net(n)
    for n in (
        "::/96",  # unspecified, loopback, deprecated IPv4-compatible
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215): never a public server
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments: Teredo, benchmarking, ORCHID
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_NAT64 = _net("64:ff9b::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address really leads to: mapped, NAT64 or 6to4."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def is_public_address(ip: IPAddress) -> bool:
    """True when `ip` is a globally routable unicast address a feed may live on."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            return is_public_address(inner)
        blocked: tuple[IPNetwork, ...] = _BLOCKED_V6
    else:
        blocked = _BLOCKED_V4
    if any(ip in net for net in blocked):
        return False
    # Belt and braces for ranges the tables may have missed.
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which addresses a fetch may connect to: public ones, plus what the settings let in."""

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: FetchSettings) -> AddressPolicy:
        """Build the policy; a malformed CIDR string fails here, at start-up."""
        networks = tuple(_net(cidr, strict=False) for cidr in settings.allowed_networks)
        return cls(allow_private=settings.allow_private_networks, allowed_networks=networks)

    def allowed(self, ip: IPAddress) -> bool:
        """True when a connection to `ip` is permitted."""
        if self.allow_private or is_public_address(ip):
            return True
        # An IPv4-mapped address is dialled as its IPv4 address: judge that one too.
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        return any(
            candidate in net
            for candidate in (ip, mapped)
            if candidate is not None
            for net in self.allowed_networks
        )


def _literal(host: str) -> IPAddress | None:
    """The IP address `host` spells, or None for a host name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in resolver order; literals skip DNS."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for info in infos:
        # Drop any IPv6 zone ("%eth0") the resolver may add.
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if ip not in found:
            found.append(ip)
    return found


def check_addresses(
    url: str, host: str, addresses: Iterable[IPAddress], policy: AddressPolicy
) -> None:
    """Raise BlockedAddressError unless every address of `host` is allowed."""
    for ip in addresses:
        if not policy.allowed(ip):
            named = f"{host} ({ip})" if _literal(host) is None else str(ip)
            raise BlockedAddressError(url, f"{named} is not a public address")


async def resolve_checked(url: str, host: str, port: int, policy: AddressPolicy) -> list[IPAddress]:
    """Resolve `host` and check it; DNS failures surface as httpcore.ConnectError."""
    try:
        addresses = await resolve(host, port)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    if not addresses:
        raise httpcore.ConnectError(f"{host} has no address")
    check_addresses(url, host, addresses, policy)
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks, then dials the checked IP literal through the real backend."""

    def __init__(
        self, policy: AddressPolicy, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Open a connection to the first reachable allowed address of `host`."""
        # Only host and port are known down here; fetch.py re-raises with the full URL.
        where = f"{host}:{port}"
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve_checked(where, host, port, self._policy)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        last: Exception | None = None
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:  # try the next address, like a browser
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Refused: a feed URL can never name a local socket."""
        raise BlockedAddressError(path, "unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        """Delegate: httpcore sleeps between connection retries."""
        await self._inner.sleep(seconds)


def guarded_transport(settings: FetchSettings, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection goes through the guard.

    With a proxy, the socket goes to the proxy, which may well be private: the guard cannot
    sit here, and `fetch` checks each hop's host before the request instead (see there).
    """
    if settings.proxy:
        return httpx.AsyncHTTPTransport(limits=limits, trust_env=False, proxy=settings.proxy)
    ssl_context = httpx.create_ssl_context(trust_env=False)
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, limits=limits, trust_env=False)
    # httpx has no public hook for the network backend; swap in an identical pool that has one.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=False,
        network_backend=GuardedBackend(AddressPolicy.from_settings(settings)),
    )
    return transport
