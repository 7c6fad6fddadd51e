"""One client's WebSocket connection, as Engine.IO sees it (the fast path): frames checked and
budgeted before they are decoded, a lean loop reading and writing them, and the fan-out's way
to the socket.

Engine.IO decodes a frame before any handler runs, outside its own error handling, so a frame
like `x` would end the connection with a traceback in the log: frames of a kind clients never
send become no-ops until there are too many, then the connection ends. Every frame costs the
client a token of its budget, whatever it holds; a pong nobody asked for is malformed.

Engine.IO's own loop starts a task and a `wait_for` for every frame it reads, and passes each
message through two dispatchers; this one waits for frames under one timeout each and hands a
message straight to Socket.IO. On the way out, a packet is written straight to the connection
when nothing is queued before it (the framing door of server.sio.framing), instead of going
through a queue and a writer task; pings are timers, not sleeping tasks. What a ping, a pong or
a close means, and the order of what is sent, stay Engine.IO's rules.

This module subclasses Engine.IO's ASGI WebSocket driver and sets attributes of its sockets:
each name it relies on is listed in server.sio.internals and checked at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio.async_drivers import asgi as engineio_asgi

from server import i18n
from server.edge import OpenPerAddress, drain
from server.sio import wire
from server.sio.outlet import BACKLOG_LIMIT, BACKLOG_RESUME, DOOR, QUEUE_LIMIT, SHUT, WRITTEN
from server.sio.wheel import Wheel
from server.throttle import FrameBudget, Refills

log = logging.getLogger(__name__)

# Packets queued for one socket (only what could not be written at once) before it is let go.
QUEUE_HANG_UP = 256


class Door(Protocol):
    """A connection's framing door (server.sio.framing, under uvicorn): frames built once for a
    room are written straight to the connection."""

    def open_for_frames(self) -> bool: ...

    def write_frame(self, frame: bytes) -> None: ...

    def offer(self, frame: bytes, limit: int) -> int: ...

    def backlog(self) -> int: ...

    def pong_missed(self) -> None: ...

    def hang_up(self, why: str, drop: bool = False) -> None: ...

    def detach(self, task: asyncio.Future[None]) -> None: ...

    def finished(self) -> None: ...


class Gatekeeper(Protocol):
    """What a connection asks of the Socket.IO server it serves (server.sio.gate)."""

    websockets: dict[str, Any]
    frame_rates: Refills
    strike_rates: Refills
    connect_within: float
    max_backlog: int
    # Bytes all connections' transports held when last looked at, and the most they may.
    backlog_total: int
    max_backlog_total: int
    open_per_address: OpenPerAddress
    handle_message: Callable[[str, str], Awaitable[None]]
    # Every connection's ping and pong deadline (server.sio.wheel).
    wheel: Wheel

    def too_many_bad(self, eio_sid: str, why: str) -> bool: ...

    def joined(self, eio_sid: str) -> bool: ...

    def slow_down(self, eio_sid: str) -> str: ...


# What a connection's WSGI-style environ still needs once the WebSocket is open: the ASGI scope
# (for the client's address, in the Socket.IO connect handler) and the ASGI channels.
_KEPT = frozenset({"asgi.scope", "asgi.receive", "asgi.send"})


def _forget_the_request(environ: dict[str, Any]) -> None:
    """Drop the request's headers from a connection that lives on: python-socketio keeps the
    environ for the whole connection, and a thousand idle ones would hold ~4 KiB each. The
    language its headers ask for is kept, decided now (server.i18n)."""
    kept = {k: environ[k] for k in _KEPT if k in environ}
    kept[i18n.ENVIRON_KEY] = i18n.from_environ(environ)
    environ.clear()  # (deleting keys one by one would keep the dict's full size)
    environ.update(kept)
    scope = environ.get("asgi.scope")
    if isinstance(scope, dict):
        scope["headers"] = []


def connection_class(server: Gatekeeper) -> type:
    """Engine.IO's ASGI WebSocket class for `server` (Engine.IO makes one per connection)."""

    class Connection(engineio_asgi.WebSocket):  # type: ignore[misc]
        framing: Door | None = None
        # What this connection's transport held when last looked at (see `overflowing`).
        backlog = 0
        # Closes the connection unless it joins the namespace in time.
        connect_due: asyncio.TimerHandle | None = None
        # Writes what had to be queued; runs only while something is (see `write_all`).
        writer: asyncio.Future[None] | None = None

        def __init__(self, handler: Any, eio_server: Any) -> None:
            super().__init__(handler, eio_server)
            # The Engine.IO socket this connection serves (the handler is its bound method).
            self.socket: Any = getattr(handler, "__self__", None)
            self.eio_sid: str = getattr(self.socket, "sid", "")

        async def __call__(self, environ: dict[str, Any]) -> Any:
            self.asgi_receive = environ["asgi.receive"]
            self.asgi_send = environ["asgi.send"]
            counted = server.open_per_address.enter(environ.get("asgi.scope", {}).get("client"))
            if counted is None:
                # Refused at the handshake (HTTP 403): this address holds enough sockets.
                await self.asgi_send({"type": "websocket.close", "code": 1008})
                if self.socket is not None:
                    await self.socket.close(wait=False, abort=True)
                return ""
            server.websockets[self.eio_sid] = self
            detached = False
            try:
                await self.asgi_send({"type": "websocket.accept"})
                if self.socket is None or self.socket.connected:
                    # An upgrade from long-polling (not offered here): Engine.IO's own path.
                    await self.handler(self)
                else:
                    scope = environ.get("asgi.scope", {})
                    _forget_the_request(environ)
                    door = scope.get("extensions", {}).get(DOOR)
                    if door is None:
                        await self.serve(None)
                    else:
                        # One task holds the read loop; the calls that led here return.
                        door.detach(asyncio.ensure_future(self.serve_detached(door, counted)))
                        detached = True
                return ""
            finally:
                if not detached:
                    server.websockets.pop(self.eio_sid, None)
                    server.open_per_address.leave(counted)

        async def serve_detached(self, door: Door, counted: Any) -> None:
            """`serve`, in a task of its own, then what the ASGI calls would have done after
            it: forget the connection, and close it."""
            socket = self.socket
            try:
                await self.serve(door)
            except Exception:
                log.exception("serving connection %s failed", self.eio_sid)
            finally:
                server.websockets.pop(self.eio_sid, None)
                server.open_per_address.leave(counted)
                sockets = socket.server.sockets
                if socket.closed and sockets.get(self.eio_sid) is socket:
                    del sockets[self.eio_sid]  # (Engine.IO's connect does this on return)
                door.finished()

        async def wait(self) -> Any:
            frame = await super().wait()
            if wire.well_formed(frame):
                return frame
            if server.too_many_bad(self.eio_sid, "malformed Engine.IO frame"):
                self.hang_up("malformed frames")
                raise OSError("too many malformed frames")
            return wire.NOOP

        async def serve(self, framing: Door | None) -> None:
            socket = self.socket
            eio = socket.server
            socket.connected = True
            socket.upgraded = True
            # A client that stops answering pings is let go. With the framing door, the ping
            # itself arms the deadline (see `deliver`); otherwise every read has a timeout.
            silence: float | None = eio.ping_interval + eio.ping_timeout
            if framing is not None:
                self.framing = framing
                socket.send = self.send_packet
                socket.schedule_ping = self.schedule_ping
                silence = None
                self.schedule_ping()  # the first ping (see server.sio.gate)
            else:
                del socket.schedule_ping  # Engine.IO's own, then
                socket.schedule_ping()
            socket.queue.on_put = self._start_writer
            self._write_queued()  # Engine.IO's open packet, queued before this
            limit = eio.max_http_buffer_size
            message = server.handle_message
            budget = FrameBudget(server.frame_rates, server.strike_rates)
            self.connect_due = asyncio.get_running_loop().call_later(
                server.connect_within, self._connect_due
            )
            try:
                while True:
                    try:
                        if silence is None:  # (a timeout per frame costs its context manager)
                            frame = await self.wait()
                        else:
                            async with asyncio.timeout(silence):
                                frame = await self.wait()
                    except (OSError, TimeoutError):
                        break  # gone, or silent for longer than pings allow
                    if frame is None:
                        break
                    if len(frame) > limit:
                        self.hang_up("message too large")
                        break
                    if not budget.take():
                        if not budget.strike():
                            # Cut off at once: a graceful close would wait for a client that
                            # only sends to answer it.
                            log.warning("closing connection %s: too many frames", self.eio_sid)
                            self.hang_up("too many frames")
                            break
                        self.refuse(frame)
                        continue
                    if frame[0] == wire.PONG:
                        if not socket.last_ping:
                            # A pong for no ping: nothing a client library sends.
                            if server.too_many_bad(self.eio_sid, "pong without a ping"):
                                self.hang_up("malformed frames")
                                break
                        else:
                            # Engine.IO's rule for a pong (AsyncSocket.receive), without
                            # decoding it into a packet: the next ping is due.
                            socket.schedule_ping()
                        continue
                    try:
                        if frame[0] == wire.MESSAGE:
                            await message(self.eio_sid, frame[1:])
                        else:
                            await socket.receive(eio_packet.Packet(encoded_packet=frame))
                    except eio_exceptions.UnknownPacketError:
                        pass
                    except eio_exceptions.SocketIsClosedError:
                        break
                    except Exception:
                        log.exception("handling a frame from %s failed", self.eio_sid)
            finally:
                server.backlog_total -= self.backlog
                self.backlog = 0
                self.joined()
                await socket.queue.put(None)  # the writer closes the connection
                with contextlib.suppress(Exception):
                    if self.writer is not None:
                        await self.writer
                socket.queue.on_put = None  # nothing more to write
                await socket.close(wait=False, abort=True, reason=eio.reason.TRANSPORT_CLOSE)
                if framing is None:
                    await drain(self.asgi_receive)  # (another ASGI server than uvicorn)

        def refuse(self, frame: str) -> None:
            """A frame over the budget: an event that asked for an answer is told to slow
            down (not counted); anything else is dropped."""
            ack_id = wire.ack_id_of(frame)
            if ack_id is not None:
                self.deliver_text("3" + ack_id + server.slow_down(self.eio_sid))

        def joined(self) -> None:
            """The socket joined the namespace (or is gone): no deadline any more."""
            if self.connect_due is not None:
                self.connect_due.cancel()
                self.connect_due = None

        def _connect_due(self) -> None:
            """A WebSocket that has not joined the namespace in time holds a seat for nothing."""
            self.connect_due = None
            if not server.joined(self.eio_sid) and not self.socket.closed:
                log.info("closing connection %s: no Socket.IO connect in time", self.eio_sid)
                self.hang_up("no Socket.IO connect in time")

        def hang_up(self, why: str, drop: bool = False) -> None:
            """End the connection now; `drop`: whatever is still waiting to be sent too."""
            if self.framing is not None:
                self.framing.hang_up(why, drop)
            else:
                self.socket.queue.put_nowait(None)  # the writer stops and closes it

        def overflowing(self) -> bool:
            """Whether the client has stopped taking what it is sent: then it is let go (it
            comes back as the same person) rather than held in memory. Past its own limit, or,
            while the server's sockets together hold more than theirs, once it is behind."""
            framing = self.framing
            waiting = self.socket.queue.qsize()
            if framing is not None:
                backlog = framing.backlog()
                server.backlog_total += backlog - self.backlog
                self.backlog = backlog
                over = backlog > server.max_backlog or (
                    backlog > BACKLOG_LIMIT and server.backlog_total > server.max_backlog_total
                )
            else:
                over = False
            if waiting <= QUEUE_HANG_UP and not over:
                return False
            log.warning("closing connection %s: it does not read what it is sent", self.eio_sid)
            self.hang_up("not reading", drop=True)
            return True

        def _through_door(self, pkt: Any) -> bool:
            """Write a text packet straight to the connection if the framing door takes
            frames now (an ASGI send costs several times the write); False: not written."""
            framing = self.framing
            if framing is None or pkt.binary or not framing.open_for_frames():
                return False
            framing.write_frame(wire.websocket_frame(pkt.encode().encode()))
            return True

        def _write_queued(self) -> None:
            """What was queued before the connection was served (Engine.IO's open packet):
            written at once if the door takes it, else by the writer."""
            queue = self.socket.queue
            while not queue.empty():
                pkt = queue.peek()
                if pkt is None or not self._through_door(pkt):
                    break
                queue.get_nowait()
                queue.task_done()
            if not queue.empty():
                self._start_writer()

        def _start_writer(self) -> None:
            if self.writer is None or self.writer.done():
                self.writer = asyncio.ensure_future(self.write_all())

        async def write_all(self) -> None:
            """Whatever is queued for this socket, in order, then it ends (queued packets are
            rare: only what could not be written at once, see `send_packet`; an idle
            connection holds no writer task). None in the queue: close the connection."""
            queue = self.socket.queue
            while not queue.empty():
                pkt = queue.get_nowait()
                queue.task_done()
                if pkt is None:
                    break
                if self._through_door(pkt):
                    continue
                try:
                    await self.send(pkt.encode())
                except Exception:  # the client went away mid-write
                    break
            else:
                self.writer = None  # (a finished task would be kept for nothing)
                return
            await self.close()

        async def send_packet(self, pkt: Any) -> None:
            """Engine.IO's `send` for this socket."""
            self.deliver(pkt)

        def deliver(self, pkt: Any) -> None:
            """Written now if nothing waits before it and the connection takes it, queued
            otherwise (the writer keeps the order)."""
            socket = self.socket
            if socket.closed or self.overflowing():
                return
            if pkt.packet_type == eio_packet.PING:
                # Engine.IO's rule: a pong within ping_timeout, or the client is gone.
                server.wheel.call_later(socket.server.ping_timeout, self._pong_due)
            if socket.queue.empty() and self._through_door(pkt):
                return
            socket.queue.put_nowait(pkt)

        def _pong_due(self) -> None:
            socket = self.socket
            pending = socket.last_ping and not (socket.closing or socket.closed)
            if pending and self.framing is not None:
                self.framing.pong_missed()  # no pong since the last ping (a pong clears it)

        def deliver_text(self, text: str) -> None:
            """An Engine.IO message carrying `text` (a Socket.IO packet, already encoded)."""
            framing = self.framing
            socket = self.socket
            if socket.closed or self.overflowing():
                return
            if framing is not None and socket.queue.empty() and framing.open_for_frames():
                framing.write_frame(wire.websocket_frame((wire.MESSAGE + text).encode()))
            else:
                socket.queue.put_nowait(eio_packet.Packet(eio_packet.MESSAGE, data=text))

        def schedule_ping(self) -> None:
            """After a pong: the next ping in one interval (Engine.IO starts a task that
            sleeps; a timer does the same for a fraction of the memory)."""
            socket = self.socket
            if not socket.last_ping:
                return
            socket.last_ping = None
            server.wheel.call_later(socket.server.ping_interval, self._ping)

        def _ping(self) -> None:
            socket = self.socket
            if socket.closing or socket.closed:
                return
            socket.last_ping = time.time()
            self.deliver(eio_packet.Packet(eio_packet.PING))

    return Connection


class FastOutlet:
    """The fan-out's way to one socket on the fast path: its Engine.IO socket (always) and the
    framing door (if the ASGI server is uvicorn with server.sio.framing)."""

    __slots__ = ("framing", "socket")

    def __init__(self, socket: Any, framing: Door | None) -> None:
        self.socket = socket
        self.framing = framing

    def send(self, message: wire.Message) -> bool:
        socket = self.socket
        if socket.closed or socket.closing:
            return False
        queue = socket.queue
        framing = self.framing
        if framing is not None and queue.empty():
            offered = framing.offer(message.frame, BACKLOG_LIMIT)
            if offered != SHUT:
                return offered == WRITTEN
        if queue.qsize() > QUEUE_LIMIT:
            return False
        queue.put_nowait(eio_packet.Packet(eio_packet.MESSAGE, data=message.text))
        return True

    def behind(self) -> bool:
        if self.socket.queue.qsize() > QUEUE_LIMIT:
            return True
        return self.framing is not None and self.framing.backlog() > BACKLOG_LIMIT

    def caught_up(self) -> bool:
        if self.socket.queue.qsize() > 0:
            return False
        return self.framing is None or self.framing.backlog() < BACKLOG_RESUME
