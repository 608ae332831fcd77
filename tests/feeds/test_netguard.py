"""The SSRF guard: which addresses are public, the policy, and the guarded network backend."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import httpcore
import pytest

from feeds.config import FetchSettings
from feeds.errors import BlockedAddressError
from feeds.netguard import AddressPolicy, GuardedBackend, is_public_address
from tests.support.httpserver import LocalServer, Reply

ip = ipaddress.ip_address

PUBLIC = [
    "1.1.1.1",
    "8.8.8.8",
    "93.184.216.34",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above CGNAT
    "172.15.255.255",
    "172.32.0.0",
    "192.169.0.1",
    "198.20.0.1",
    "2606:4700:4700::1111",
    "2a00:1450:4007:80e::200e",
    "::ffff:8.8.8.8",  # mapped: judged as 8.8.8.8
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]

BLOCKED = [
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "this network"),
    ("10.0.0.1", "private"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("169.254.169.254", "link-local, cloud metadata"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.0.0.8", "IETF protocol assignments"),
    ("192.0.2.1", "documentation"),
    ("192.88.99.1", "6to4 relay"),
    ("192.168.1.1", "private"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("::a00:1", "IPv4-compatible"),
    ("::8.8.8.8", "IPv4-compatible, even of a public address"),
    ("::ffff:10.0.0.1", "mapped private"),
    ("::ffff:127.0.0.1", "mapped loopback"),
    ("::ffff:169.254.169.254", "mapped metadata"),
    ("64:ff9b::a00:1", "NAT64 of 10.0.0.1"),
    ("64:ff9b::7f00:1", "NAT64 of 127.0.0.1"),
    ("64:ff9b:1::808:808", "local-use NAT64"),
    ("100::1", "discard"),
    ("2001::1", "Teredo"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("2001:2::1", "benchmarking"),
    ("2001:db8::1", "documentation"),
    ("2002:a00:1::1", "6to4 of 10.0.0.1"),
    ("2002:7f00:1::1", "6to4 of 127.0.0.1"),
    ("3fff::1", "documentation"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fe80::1", "link-local"),
    ("febf::1", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert is_public_address(ip(address))


@pytest.mark.parametrize(("address", "why"), BLOCKED)
def test_blocked_addresses(address: str, why: str) -> None:
    assert not is_public_address(ip(address)), why


POLICY_CASES = [
    # (settings, address, allowed)
    (FetchSettings(), "8.8.8.8", True),
    (FetchSettings(), "127.0.0.1", False),
    (FetchSettings(allow_private_networks=True), "127.0.0.1", True),
    (FetchSettings(allow_private_networks=True), "169.254.169.254", True),
    (FetchSettings(allowed_networks=("127.0.0.0/8",)), "127.0.0.1", True),
    (FetchSettings(allowed_networks=("127.0.0.0/8",)), "::ffff:127.0.0.1", True),
    (FetchSettings(allowed_networks=("127.0.0.0/8",)), "::1", False),
    (FetchSettings(allowed_networks=("127.0.0.0/8",)), "10.0.0.1", False),
    (FetchSettings(allowed_networks=("127.0.0.0/8",)), "169.254.169.254", False),
    (FetchSettings(allowed_networks=("10.1.2.3/24",)), "10.1.2.200", True),  # host bits ok
    (FetchSettings(allowed_networks=("fd00::/8",)), "fd00::5", True),
    (FetchSettings(allowed_networks=("fd00::/8",)), "10.0.0.1", False),
]


@pytest.mark.parametrize(("settings", "address", "allowed"), POLICY_CASES)
def test_policy(settings: FetchSettings, address: str, allowed: bool) -> None:
    assert AddressPolicy.from_settings(settings).allowed(ip(address)) is allowed


def test_policy_rejects_malformed_cidr_at_start() -> None:
    with pytest.raises(ValueError, match="does not appear"):
        AddressPolicy.from_settings(FetchSettings(allowed_networks=("not-a-network",)))


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands in for the socket layer: records what would have been dialled."""

    def __init__(self) -> None:
        self.dialled: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.dialled.append((host, port))
        raise httpcore.ConnectError("recorded only")


LOOPBACK_ONLY = AddressPolicy.from_settings(FetchSettings(allowed_networks=("127.0.0.0/8",)))


@pytest.mark.parametrize(
    "host", ["169.254.169.254", "10.0.0.1", "::ffff:10.0.0.1", "0.0.0.0", "fe80::1"]
)
async def test_backend_refuses_before_dialling(host: str) -> None:
    inner = RecordingBackend()
    with pytest.raises(BlockedAddressError):
        await GuardedBackend(LOOPBACK_ONLY, inner).connect_tcp(host, 80)
    assert inner.dialled == []


async def test_backend_dials_the_checked_literal_not_the_name() -> None:
    inner = RecordingBackend()
    with pytest.raises(httpcore.ConnectError):
        await GuardedBackend(LOOPBACK_ONLY, inner).connect_tcp("localhost", 8080)
    # Whatever localhost resolves to here, only checked IP literals reach the socket layer.
    assert inner.dialled
    assert all(ip(host).is_loopback and port == 8080 for host, port in inner.dialled)


async def test_backend_checks_host_names() -> None:
    inner = RecordingBackend()
    with pytest.raises(BlockedAddressError, match="localhost"):
        await GuardedBackend(AddressPolicy(), inner).connect_tcp("localhost", 80)
    assert inner.dialled == []


async def test_backend_dns_failure_is_a_connect_error() -> None:
    with pytest.raises(httpcore.ConnectError, match="resolve"):
        await GuardedBackend(AddressPolicy()).connect_tcp("no-such-host.invalid", 80)


async def test_backend_connects_for_real(server: LocalServer) -> None:
    server.route("/", Reply(body=b"hi"))
    backend = GuardedBackend(LOOPBACK_ONLY)
    stream = await backend.connect_tcp("127.0.0.1", server.port, timeout=2)
    await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await stream.read(4096)).startswith(b"HTTP/1.1 200")
    await stream.aclose()


async def test_unix_sockets_refused() -> None:
    with pytest.raises(BlockedAddressError):
        await GuardedBackend(AddressPolicy(allow_private=True)).connect_unix_socket("/tmp/x")
