"""Getting one encoded message to many sockets cheaply.

python-socketio sends a room message by creating one task per recipient, each of which queues
the packet for that socket's writer task, which encodes it and hands it to the ASGI server,
which frames it: several tasks and copies per recipient and message. For a room's deltas this
module does the work once: the message is encoded once as a Socket.IO packet and framed once
as a WebSocket frame, and each socket gets the same bytes written straight to its connection
(`FramingProtocol`, uvicorn's sans-I/O WebSocket protocol with one extra door for that). Where
that door is missing (another ASGI server, or the socket's own queue still holds packets that
must go first), the packet goes into Engine.IO's queue for that socket, still without a task
and still encoded once.

Either way a reader that stops reading cannot make the server hold an unbounded backlog: past
`BACKLOG_LIMIT` bytes (or `QUEUE_LIMIT` queued packets) the socket is reported as behind, and
the fan-out stops sending it deltas until it has caught up, then sends it a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import msgspec
from engineio import packet as eio_packet
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

# Bytes a socket may have waiting in its connection's write buffer before it counts as behind,
# and how far it must drain before it gets a snapshot and deltas again.
BACKLOG_LIMIT = 512 * 1024
BACKLOG_RESUME = 64 * 1024
QUEUE_LIMIT = 64
# Messages from one client waiting for the app, beyond which reading that client pauses.
PAUSE_READING_AT = 32

EXTENSION = "stackvote.framing"

_encode = msgspec.json.Encoder().encode


class Mailbox:
    """A queue with one reader, for a connection's incoming messages and outgoing packets.

    asyncio.Queue keeps three deques and an Event per queue (~3 KiB); a connection has two of
    them and a server holds thousands of connections, mostly idle. This keeps one list (a
    connection's queue is nearly always empty, so taking from its front costs nothing) and, at
    most, the one future its reader waits on; it offers what uvicorn and Engine.IO use.
    """

    __slots__ = ("_drained", "_items", "_unfinished", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None
        self._unfinished = 0
        self._drained: asyncio.Future[None] | None = None

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        self._unfinished += 1
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def task_done(self) -> None:
        self._unfinished = max(0, self._unfinished - 1)
        if self._unfinished == 0 and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def join(self) -> None:
        if self._unfinished:
            if self._drained is None or self._drained.done():
                self._drained = asyncio.get_running_loop().create_future()
            await self._drained


class FramingProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, offering the app a way to write a frame that was
    built once for many connections (through the ASGI scope's extensions)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Mailbox()  # type: ignore[assignment]

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = self

    def send_receive_event_to_app(self) -> None:
        # uvicorn stops reading the socket after every message until the app has taken it (two
        # system calls per message); here reading pauses only if messages pile up.
        paused = self.read_paused
        self.read_paused = True
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        if not self.read_paused and self.queue.qsize() > PAUSE_READING_AT:
            self.read_paused = True
            self.transport.pause_reading()

    def start_keepalive(self) -> None:
        # Called once the handshake is answered: the request and the response are not needed
        # any more (a thousand idle connections would keep ~3 KiB of headers each).
        super().start_keepalive()
        self.request = self.response = None  # type: ignore[assignment]

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

    def backlog(self) -> int:
        """Bytes written but not yet taken by the network."""
        return int(self.transport.get_write_buffer_size())


def websocket_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented WebSocket text frame (server to client, RFC 6455 §5.2)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


class Message:
    """One server-to-client Socket.IO event, encoded once for any number of recipients."""

    __slots__ = ("_frame", "_packet", "text")

    def __init__(self, event: str, data: Any) -> None:
        # Engine.IO message (4) holding a Socket.IO event (2) for the default namespace.
        body = b'2["' + event.encode() + b'",' + _encode(data) + b"]"
        self.text = body.decode()
        self._frame: bytes | None = None
        self._packet: Any = None

    @property
    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = websocket_frame(b"4" + self.text.encode())
        return self._frame

    @property
    def packet(self) -> Any:
        if self._packet is None:
            self._packet = eio_packet.Packet(eio_packet.MESSAGE, data=self.text)
        return self._packet


class Outlet:
    """The way to one socket: its Engine.IO socket (always) and the framing door (if any)."""

    __slots__ = ("framing", "socket")

    def __init__(self, socket: Any, framing: FramingProtocol | None) -> None:
        self.socket = socket
        self.framing = framing

    def send(self, message: Message) -> bool:
        """Send `message`; False if the socket is gone or too far behind (nothing is sent to
        a socket that is behind: it needs a snapshot once it has caught up)."""
        socket = self.socket
        if socket.closed or socket.closing:
            return False
        queue = socket.queue
        framing = self.framing
        if framing is not None and queue.empty() and framing.open_for_frames():
            if framing.backlog() > BACKLOG_LIMIT:
                return False
            framing.write_frame(message.frame)
            return True
        if queue.qsize() > QUEUE_LIMIT:
            return False
        queue.put_nowait(message.packet)
        return True

    def behind(self) -> bool:
        if self.socket.queue.qsize() > QUEUE_LIMIT:
            return True
        return self.framing is not None and self.framing.backlog() > BACKLOG_LIMIT

    def caught_up(self) -> bool:
        if self.socket.queue.qsize() > 0:
            return False
        return self.framing is None or self.framing.backlog() < BACKLOG_RESUME
