"""What the server believes about a request (server.edge): the client's address only from a
trusted proxy, links only to this server, and a cap on one address's open WebSockets."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server import edge

TRUSTED = edge.networks("10.0.0.5, 172.20.0.0/24")


@pytest.mark.parametrize(
    ("peer", "header", "client"),
    [
        # An untrusted peer's header changes nothing.
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),
        # A trusted proxy names the client.
        ("10.0.0.5", "198.51.100.1", "198.51.100.1"),
        # The right-most hop that is not a trusted proxy is the client.
        ("10.0.0.5", "1.2.3.4, 198.51.100.1, 172.20.0.7", "198.51.100.1"),
        # What a client wrote on the left of what the proxy appended is ignored.
        ("172.20.0.3", "6.6.6.6, 198.51.100.2", "198.51.100.2"),
        # A value that is not an address ends the walk: the last trusted hop is the client.
        ("10.0.0.5", "198.51.100.1, garbage0", "10.0.0.5"),
        ("10.0.0.5", "198.51.100.1, 172.20.0.7, unknown", "10.0.0.5"),
        ("10.0.0.5", "", "10.0.0.5"),
        # IPv6, bracketed or not; IPv4-mapped counts as IPv4.
        ("10.0.0.5", "[2001:db8::1]", "2001:db8::1"),
        ("10.0.0.5", "::ffff:198.51.100.4", "198.51.100.4"),
        # Only proxies: the left-most of them.
        ("10.0.0.5", "172.20.0.9, 172.20.0.8", "172.20.0.9"),
    ],
)
def test_the_client_is_the_right_most_untrusted_address(
    peer: str, header: str, client: str
) -> None:
    assert edge.forwarded_client(peer, header, TRUSTED) == client


@given(st.text(max_size=80))
def test_whatever_a_forwarded_header_says_the_client_is_an_address_or_the_peer(
    header: str,
) -> None:
    client = edge.forwarded_client("10.0.0.5", header, TRUSTED)
    assert client == "10.0.0.5" or edge._ip(client) is not None


def test_nothing_is_trusted_without_proxies() -> None:
    assert edge.forwarded_client("127.0.0.1", "198.51.100.1", []) == "127.0.0.1"


@pytest.fixture
def here() -> edge.Here:
    return edge.Here()


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:8000", "localhost:8000", "localhost", "[::1]:9090", "LOCALHOST", "127.0.0.2"],
)
def test_names_of_this_server(here: edge.Here, host: str) -> None:
    assert here.names_this_server(host)


def test_this_machines_own_name_and_address_are_this_server(here: edge.Here) -> None:
    assert here.names_this_server(socket.gethostname())
    try:
        address = socket.gethostbyname(socket.gethostname())
    except OSError:
        pytest.skip("this machine's name does not resolve")
    assert here.names_this_server(f"{address}:8000")


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8000", "198.51.100.1:8000", "", "[::]", "0.0.0.0", "a@b"],
)
def test_other_hosts_are_not_this_server(here: edge.Here, host: str) -> None:
    assert not here.names_this_server(host)


def test_origins_are_this_servers_pages_or_the_configured_ones(here: edge.Here) -> None:
    assert edge.allowed_origin("http://localhost:9090", [], here)
    assert edge.allowed_origin("http://127.0.0.1:8000", [], here)
    assert not edge.allowed_origin("http://evil.example", [], here)
    assert not edge.allowed_origin("file://", [], here)
    assert not edge.allowed_origin("null", [], here)
    public = ["https://vote.example.com"]
    assert edge.allowed_origin("https://vote.example.com", public, here)
    assert not edge.allowed_origin("http://localhost:8000", public, here)
    assert edge.allowed_origin(None, public, here)  # no browser page: origins do not apply


def test_the_origin_check_remembers_answers_but_only_so_many() -> None:
    here = edge.Here()
    origins = edge.Origins([], here, remember=4)
    for origin in ("http://localhost:9090", "http://evil.example", None, "file://"):
        assert origins.allowed(origin) == edge.allowed_origin(origin, [], here)
    # A client sending a new Origin with every handshake fills no more than `remember`.
    for n in range(100):
        assert not origins.allowed(f"http://evil{n}.example")
    assert origins.allowed.cache_info().currsize == 4
    configured = edge.Origins(["https://vote.example.org"], here)
    assert configured.allowed("https://vote.example.org")
    assert not configured.allowed("http://localhost:9090")
