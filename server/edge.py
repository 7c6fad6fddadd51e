"""What the server believes about a request before the app sees it: the client's address (only
trusted proxies may name it), whether the Host it asked for names this server (links are built
from it), and how many WebSockets one address holds open.

These are plain ASGI middleware and functions, so they hold under any ASGI server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from server.throttle import address_key

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(text: str) -> list[Network]:
    """'10.0.0.5, 172.20.0.0/24' -> the networks (Settings has checked the text)."""
    return [ipaddress.ip_network(p.strip(), strict=False) for p in text.split(",") if p.strip()]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [2001:db8::1]:443
        text = text[1 : text.index("]")]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def forwarded_client(peer: str, header: str, trusted: list[Network]) -> str:
    """The client a request comes from: `peer` (who opened the connection), unless `peer` is a
    trusted proxy, in which case the right-most address of `X-Forwarded-For` that is not a
    trusted proxy. A value that is not an IP address ends the walk: what lies to its left was
    written by someone no trusted proxy vouches for, and the last trusted hop is the client."""
    client = peer
    here = _ip(peer)
    if here is None or not any(here in net for net in trusted):
        return peer
    for hop in reversed([h for h in header.split(",") if h.strip()]):
        ip = _ip(hop)
        if ip is None:
            break
        client = str(ip)
        if not any(ip in net for net in trusted):
            break
    return client


class ForwardedFor:
    """ASGI middleware: the scope's client becomes the address a trusted proxy names (see
    `forwarded_client`), and the scheme the one it says (http/https only). Untrusted peers'
    headers change nothing."""

    def __init__(self, app: ASGIApp, trusted: list[Network]) -> None:
        self.app = app
        self.trusted = trusted

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Only the scope changes, so the next layer's call is returned, not awaited here: a
        # WebSocket keeps no frame of this for its lifetime.
        client = scope.get("client") if scope["type"] in ("http", "websocket") else None
        peer = _ip(str(client[0])) if client else None
        if client and peer is not None and any(peer in net for net in self.trusted):
            forwarded: list[str] = []
            proto = None
            for name, value in scope.get("headers", ()):
                if name == b"x-forwarded-for":
                    forwarded.append(value.decode("latin-1"))
                elif name == b"x-forwarded-proto":
                    proto = value.decode("latin-1").split(",")[-1].strip().lower()
            scope = dict(scope)
            named = forwarded_client(str(client[0]), ",".join(forwarded), self.trusted)
            if named != client[0]:
                scope["client"] = (named, 0)
            if proto in ("http", "https"):
                secure = proto == "https"
                if scope["type"] == "websocket":
                    scope["scheme"] = "wss" if secure else "ws"
                else:
                    scope["scheme"] = "https" if secure else "http"
        return self.app(scope, receive, send)


class OpenPerAddress:
    """How many WebSockets each client address (an IPv6 /64 counts as one) holds open, and the
    most it may: an office of a few hundred behind one address fits, a script opening
    thousands does not."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}
        self.refused = 0

    def enter(self, client: Any) -> str | None:
        """Count a new WebSocket from `client` (the ASGI scope's); the key to `leave` with, or
        None if that address holds its limit already (the socket is to be refused)."""
        key = address_key(str(client[0])) if client else "unknown"
        held = self.open.get(key, 0)
        if held >= self.limit:
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                log.warning("refused WebSockets from %s: %d open already", key, held)
            return None
        self.open[key] = held + 1
        return key

    def leave(self, key: str) -> None:
        left = self.open.get(key, 1) - 1
        if left > 0:
            self.open[key] = left
        else:
            self.open.pop(key, None)


class ConnectionCap:
    """ASGI middleware (for the stock connection path; the fast one counts in its
    connections): WebSockets past an address's limit are refused at the handshake (HTTP 403)."""

    def __init__(self, app: ASGIApp, counter: OpenPerAddress) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        key = self.counter.enter(scope.get("client"))
        if key is None:
            await send({"type": "websocket.close", "code": 1008})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.counter.leave(key)


async def drain(receive: Receive, seconds: float = 2.0) -> None:
    """After the app closed a WebSocket: take what the ASGI server still holds for it, briefly.
    Some servers (hypercorn) finish a close only once the app has read what they hold."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "websocket.disconnect":
                pass


# Where the stock connection path finds how to end a WebSocket (see Cutoff).
CUT = "stackvote.cut"


class Cutoff:
    """ASGI middleware for the stock connection path: lets the app end a WebSocket the library
    would keep reading (Engine.IO's close only asks the client to go; a client that ignores it
    and keeps sending is read on). Once cut, the connection's next read says it is gone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        cut = False

        def hang_up() -> None:
            nonlocal cut
            cut = True

        async def guarded() -> Any:
            if cut:
                return {"type": "websocket.disconnect", "code": 1008}
            return await receive()

        await self.app({**scope, CUT: hang_up}, guarded, send)
        if cut:
            await drain(receive)


class Here:
    """Which host names are this server's own, for building links from a request's Host when
    no public address is configured: localhost, this machine's names, and any IP address of
    one of its interfaces (an address a socket can be bound to)."""

    def __init__(self) -> None:
        names = {"localhost", socket.gethostname().lower(), socket.getfqdn().lower()}
        self.names = {n for n in names if n}

    def names_this_server(self, host: str) -> bool:
        """Whether `host` (as in a Host header, with or without a port) is this server."""
        hostname = urlsplit("//" + host).hostname if host else None
        if not hostname:
            return False
        hostname = hostname.lower().rstrip(".")
        if hostname in self.names or hostname.endswith(".localhost"):
            return True
        ip = _ip(hostname)
        return ip is not None and _is_local(str(ip))


@functools.lru_cache(maxsize=256)
def _is_local(ip: str) -> bool:
    """Whether `ip` is one of this machine's addresses (only those can be bound to)."""
    address = ipaddress.ip_address(ip)
    if address.is_loopback:
        return True
    if address.is_multicast or address.is_unspecified:
        return False
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((ip, 0))
        except OSError:
            return False
    return True


class Origins:
    """`allowed_origin` for one server, remembered per origin: every WebSocket's handshake asks,
    and an origin's answer stays the same while the server runs. At most `remember` origins are
    remembered (a client can send any Origin it likes)."""

    def __init__(self, public: Iterable[str], here: Here, remember: int = 256) -> None:
        self.public = tuple(public)
        self.here = here
        self.allowed = functools.lru_cache(maxsize=remember)(self._allowed)

    def _allowed(self, origin: str | None) -> bool:
        return allowed_origin(origin, self.public, self.here)


def allowed_origin(origin: str | None, public: Iterable[str], here: Here) -> bool:
    """Whether a browser page at `origin` may create sessions and open sockets: one of the
    configured public origins, or, with none configured, a page served by this server."""
    if origin is None:
        return True  # not a browser page (a script, curl): origins are a browser's defence
    configured = list(public)
    if configured:
        return origin in configured
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and here.names_this_server(parts.netloc)
