"""uvicorn's protocols with the doors this server needs: a WebSocket connection that takes a
frame built once for a whole room, and an HTTP connection with a deadline for its headers.

These subclass uvicorn's own protocol classes and touch their internals (each name is listed
in server.sio.internals and checked at start-up); without them, uvicorn's stock protocols run.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from typing import Any

from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets import http11
from websockets.datastructures import Headers
from websockets.http11 import Request
from websockets.protocol import OPEN, Protocol
from websockets.version import version as websockets_version

from server.sio.mailbox import Flag, Mailbox
from server.sio.outlet import BEHIND, DOOR, SHUT, WRITTEN

# Messages from one client waiting for the app, beyond which reading that client pauses.
PAUSE_READING_AT = 32
# The largest client frame read here rather than by websockets (see `data_received`): a
# 16-bit length, which every message of this app's clients fits (a vote is ~100 bytes).
OWN_FRAME_LIMIT = 0xFFFF
# A client's first byte of a whole text frame without extension bits (FIN, opcode 1), and of
# whole close, ping and pong frames (opcodes 8 to 10).
_TEXT, _CONTROL = 0x81, range(0x88, 0x8B)


class FramingProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, offering the app a way to write a frame that was
    built once for many connections (through the ASGI scope's extensions), and to go on
    serving the connection after its ASGI call has returned (`detach`)."""

    # The app serves this connection from a task of its own (see `detach`).
    detached = False
    # Whether the client's frames are read here (see `data_received`), and the start of a
    # frame not yet whole.
    own_frames = False
    unread = b""
    own_limit = OWN_FRAME_LIMIT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Mailbox()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()

    def take_over(
        self,
        transport: asyncio.Transport,
        server: tuple[str, int | None] | None,
        client: tuple[str, int] | None,
        scheme: str | None,
    ) -> None:
        """uvicorn's `connection_made`, for a connection the HTTP protocol has been serving:
        its addresses and scheme as that protocol found them (uvicorn asks the socket again,
        two system calls). tests/test_upgrade.py checks it sets what `connection_made` sets."""
        self.connections.add(self)
        self.transport = transport
        self.server = server
        self.client = client
        self.scheme = "wss" if scheme == "https" else "ws"

    def open_parsed(self, request: Request) -> None:
        """Open the WebSocket for a request the HTTP protocol has parsed already (see
        HeaderDeadline.handle_websocket_upgrade): what websockets would have parsed from it
        again, handed over as parsed, and its frame parser from now on."""
        conn = self.conn
        conn.parser = Protocol.parse(conn)  # (its own parser starts with the request)
        next(conn.parser)
        self.own_frames = True  # (its parser waits at a frame's start: see data_received)
        self.own_limit = own_frame_limit(conn)
        self.handle_connect(request)

    def data_received(self, data: bytes) -> None:
        """The client's frames. websockets' parser reads a frame through a chain of
        generators, then uvicorn sorts the events it made; a whole, masked text frame without
        extension bits is read here instead, as websockets reads it (9 against 14 µs a frame,
        bench/RESULTS.md). Whole control frames (close, ping, pong) go to websockets one by
        one, so its parser always starts at a frame's start; at anything else (a fragment, a
        binary or a larger frame, bits of an extension, bytes before the handshake is
        answered, an error), the rest of the stream goes its way for good."""
        if not self.own_frames:
            super().data_received(data)
            return
        if self.unread:
            data, self.unread = self.unread + data, b""
        conn = self.conn
        limit = self.own_limit
        at, end = 0, len(data)
        while end - at >= 2:
            first, second = data[at], data[at + 1]
            if 0x80 <= second < 0x80 + 126:  # masked, a 7-bit length
                size, head = second - 0x80, at + 6
            elif second == 0x80 + 126 and end - at >= 4:  # masked, a 16-bit length
                size, head = data[at + 2] << 8 | data[at + 3], at + 8
            elif second == 0x80 + 126:
                break  # (the length is not here yet)
            else:  # unmasked (websockets refuses it), or a 64-bit length
                self._hand_over(data[at:])
                return
            whole = head + size
            ours = first == _TEXT and size <= limit
            if not (ours or (first in _CONTROL and size < 126)) or conn.state is not OPEN:
                self._hand_over(data[at:])
                return
            if end < whole:
                break
            if not ours:
                super().data_received(data[at:whole])
                if not self.own_frames or conn.state is not OPEN:
                    self._hand_over(data[whole:])
                    return
            else:
                try:
                    text = _unmasked(data[head - 4 : head], data[head:whole]).decode()
                except UnicodeDecodeError:
                    self._hand_over(data[at:])  # (websockets closes with 1007, as before)
                    return
                self._received(text)
            at = whole
        if at < end:
            self.unread = data[at:]

    def _hand_over(self, rest: bytes) -> None:
        """websockets' parser reads the client's frames from here on, starting with `rest`."""
        self.own_frames = False
        self.unread = b""
        if rest:
            super().data_received(rest)

    def _received(self, text: str) -> None:
        # What uvicorn does with a text message (send_receive_event_to_app, below).
        if self.close_sent:
            return
        self.queue.put_nowait({"type": "websocket.receive", "text": text})
        self._pause_if_piling_up()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][DOOR] = self

    def send_receive_event_to_app(self) -> None:
        # uvicorn stops reading the socket after every message until the app has taken it (two
        # system calls per message); here reading pauses only if messages pile up.
        paused = self.read_paused
        self.read_paused = True
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        self._pause_if_piling_up()

    def _pause_if_piling_up(self) -> None:
        if not self.read_paused and self.queue.qsize() > PAUSE_READING_AT:
            self.read_paused = True
            self.transport.pause_reading()

    def start_keepalive(self) -> None:
        # Called once the handshake is answered: the request and the response are not needed
        # any more (a thousand idle connections would keep ~3 KiB of headers each). Their
        # headers are emptied, not only let go: websockets' parser keeps the request for the
        # connection's life (a local of its parsing generator).
        super().start_keepalive()
        for message in (self.request, self.response):
            headers = getattr(message, "headers", None)
            if headers is not None:
                headers.clear()
        self.request = self.response = None  # type: ignore[assignment]

    def detach(self, task: asyncio.Future[None]) -> None:
        """The app's read loop goes on in `task`, and the ASGI call that started it returns:
        the chain of coroutines that led to it (the middleware, Engine.IO's request handling,
        ~5 KiB a connection) is let go. The connection stays open until the task ends, and
        uvicorn's shutdown waits for the task as for its own."""
        self.detached = True
        self.tasks.add(task)  # type: ignore[arg-type]
        task.add_done_callback(self.tasks.discard)

    def finished(self) -> None:
        """The detached task ended: close, as uvicorn does when an ASGI call returns."""
        if self.close_timer is None and not self.transport.is_closing():
            self.transport.close()

    async def run_asgi(self) -> None:
        # uvicorn's own, except that a detached connection stays open when the call returns.
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if self.close_timer is None and not self.detached:
            self.transport.close()

    def open_for_frames(self) -> bool:
        """Whether a frame written now goes out in order and is not piling up."""
        return (
            self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and self.writable.is_set()
            and not self.transport.is_closing()
        )

    def write_frame(self, frame: bytes) -> None:
        self.transport.write(frame)

    def offer(self, frame: bytes, limit: int) -> int:
        """`open_for_frames`, `backlog` and `write_frame` in one call (the fan-out makes one
        per person and delta): WRITTEN; BEHIND (more than `limit` bytes wait, nothing
        written); or SHUT (the door does not take frames now, nothing written)."""
        if not self.open_for_frames():
            return SHUT
        transport = self.transport
        if transport.get_write_buffer_size() > limit:
            return BEHIND
        transport.write(frame)
        return WRITTEN

    def backlog(self) -> int:
        """Bytes written but not yet taken by the network."""
        return int(self.transport.get_write_buffer_size())

    def pong_missed(self) -> None:
        """Close as uvicorn closes a connection whose keep-alive ping went unanswered."""
        self.keepalive_timeout()

    def hang_up(self, why: str, drop: bool = False) -> None:
        """Close the connection now (1008: policy violation), without waiting for the client to
        answer; `drop`: also drop what is still unsent (a client that does not read)."""
        if self.close_sent or self.transport.is_closing():
            return
        self.conn.fail(1008, why[:100])
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if drop:
            self.transport.abort()
        else:
            self.transport.close()


def own_frame_limit(conn: Protocol) -> int:
    """The largest text frame the framing protocol reads itself on `conn`: OWN_FRAME_LIMIT, or
    less if websockets' limit on a message is lower (its `max_message_size`; `max_size`
    before websockets 14), so that a frame it would refuse still goes its way."""
    size = getattr(conn, "max_message_size", getattr(conn, "max_size", None))
    return OWN_FRAME_LIMIT if size is None else min(size, OWN_FRAME_LIMIT)


def _unmasked(mask: bytes, payload: bytes) -> bytes:
    """A client frame's payload without its mask (RFC 6455 §5.3), as whole-number XORs."""
    size = len(payload)
    if not size:
        return payload
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        size, "little"
    )


class HeaderDeadline(HttpToolsProtocol):
    """uvicorn's HTTP protocol, dropping a connection whose request headers do not arrive in
    time (uvicorn waits for them forever): a client that opens connections and sends a byte now
    and then would otherwise hold each of them, and a file descriptor, for as long as it likes."""

    timeout = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadlines = _deadlines(self.loop)
        self._arm_header_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        # uvicorn writes the request it has parsed out again, for websockets to parse a second
        # time (~7 % of a join's CPU in the profile). A request websockets would take as it is
        # goes to the framing protocol parsed; any other goes uvicorn's way, to be answered (or
        # refused) by websockets as before.
        framing: type[FramingProtocol] | None = None
        if isinstance(self.ws_protocol_class, type) and issubclass(
            self.ws_protocol_class, FramingProtocol
        ):
            framing = self.ws_protocol_class
        request = None if framing is None else parsed_request(self.scope, self.url)
        if framing is None or request is None:
            super().handle_websocket_upgrade()
            return
        if self.logger.level <= TRACE_LOG_LEVEL:
            prefix = f"{self.client[0]}:{self.client[1]} - " if self.client else ""
            self.logger.log(TRACE_LOG_LEVEL, "%sUpgrading to WebSocket", prefix)
        self.connections.discard(self)
        protocol = framing(
            config=self.config, server_state=self.server_state, app_state=self.app_state
        )
        protocol.take_over(self.transport, self.server, self.client, self.scheme)
        self.transport.set_protocol(protocol)
        protocol.open_parsed(request)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._header_deadlines.arm(self, self.timeout)

    def _disarm_header_deadline(self) -> None:
        self._header_deadlines.disarm(self)

    def _headers_late(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


class _HeaderDeadlines:
    """The header deadlines of one event loop's HTTP connections, looked at by one timer a
    quarter of the shortest timeout apart (at most a second): a deadline is a dict entry, not
    a loop timer made and cancelled for every request."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.due: dict[HeaderDeadline, float] = {}
        self.step = 1.0
        self.timer: asyncio.TimerHandle | None = None

    def arm(self, protocol: HeaderDeadline, seconds: float) -> None:
        if protocol in self.due:
            return  # (armed already: the earlier deadline holds)
        self.due[protocol] = self.loop.time() + seconds
        self.step = min(self.step, seconds / 4)
        if self.timer is None:
            self.timer = self.loop.call_later(self.step, self.sweep)

    def disarm(self, protocol: HeaderDeadline) -> None:
        self.due.pop(protocol, None)

    def sweep(self) -> None:
        self.timer = None
        now = self.loop.time()
        late = [protocol for protocol, due in self.due.items() if due <= now]
        for protocol in late:
            del self.due[protocol]
            protocol._headers_late()
        if self.due:
            self.timer = self.loop.call_later(self.step, self.sweep)


_header_deadlines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _HeaderDeadlines] = (
    weakref.WeakKeyDictionary()
)


def _deadlines(loop: asyncio.AbstractEventLoop) -> _HeaderDeadlines:
    found = _header_deadlines.get(loop)
    if found is None:
        found = _header_deadlines[loop] = _HeaderDeadlines(loop)
    return found


# How websockets decodes a header value (and uvicorn encodes it back for the ASGI scope).
_LATIN_1 = tuple(int(n) for n in websockets_version.split(".")[:1]) >= (17,)


def parsed_request(scope: Mapping[str, Any], target: bytes) -> Request | None:
    """The request websockets would parse from what uvicorn writes out for it (an upgrade's
    method, target and headers), or None where websockets would refuse it or might read it
    otherwise: then it should parse it itself."""
    if scope.get("method") != "GET" or len(target) + 16 > http11.MAX_LINE_LENGTH:
        return None
    raw = scope.get("headers", [])
    if len(raw) > http11.MAX_NUM_HEADERS:
        return None
    try:
        path = target.decode("ascii")
        if _LATIN_1:
            pairs = [(n.decode("ascii"), v.decode("latin-1")) for n, v in raw]
        else:
            pairs = [(n.decode("ascii"), v.decode("ascii", "surrogateescape")) for n, v in raw]
    except UnicodeDecodeError:
        return None
    for name, value in pairs:
        if len(name) + len(value) + 4 > http11.MAX_LINE_LENGTH:  # (with the line's end)
            return None
        if name in ("transfer-encoding", "content-length"):
            return None  # (refused, or from websockets 17 let through if 0)
    # Filled as websockets' parser fills it, without checking each value again through its
    # public setter (httptools refused what that would refuse); uvicorn's names are lowercase.
    headers = Headers()
    by_name = headers._dict
    for name, value in pairs:
        by_name.setdefault(name, []).append(value)
    headers._list.extend(pairs)
    return Request(path, headers)


def with_header_timeout(seconds: float) -> type[HeaderDeadline]:
    """HeaderDeadline with its own timeout (uvicorn takes a protocol class, not an instance)."""
    return type("HeaderDeadline", (HeaderDeadline,), {"timeout": seconds})
