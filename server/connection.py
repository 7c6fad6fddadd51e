"""One client's WebSocket connection, as Engine.IO sees it: frames checked before they are
decoded, and a lean loop reading and writing them.

Engine.IO decodes a frame before any handler runs, outside its own error handling, so a frame
like `x` would end the connection with a traceback in the log: frames of a kind clients never
send become no-ops (which Engine.IO ignores) until there are too many, then the connection
ends (server.gate counts them).

Engine.IO's own loop starts a task and a `wait_for` for every frame it reads, and passes each
message through two dispatchers; this one waits for frames under one timeout each and hands a
message straight to Socket.IO. On the way out, a packet is written straight to the connection
when nothing is queued before it (server.transport's framing door), instead of going through
a queue and a writer task; pings are timers, not sleeping tasks. The rules of Engine.IO stay
its own: what a ping, a pong or a close means, and the order of what is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio.async_drivers import asgi as engineio_asgi

from server import i18n
from server.transport import EXTENSION, FramingProtocol, websocket_frame

if TYPE_CHECKING:
    from server.gate import GatedServer

log = logging.getLogger(__name__)

# Engine.IO packet types a client may send over WebSocket: close, pong and messages.
_CLIENT_TYPES = frozenset("134")
_NOOP = "6"


def well_formed(frame: Any) -> bool:
    """A text frame of a kind clients send; a message must carry a Socket.IO packet (which
    starts with a digit), never a bare JSON value for Engine.IO to parse."""
    if not isinstance(frame, str) or not frame or frame[0] not in _CLIENT_TYPES:
        return False
    return frame[0] != "4" or (len(frame) > 1 and frame[1].isdigit())


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


def connection_class(server: GatedServer) -> type:
    """Engine.IO's ASGI WebSocket class for `server` (Engine.IO makes one per connection)."""

    class Connection(engineio_asgi.WebSocket):  # type: ignore[misc]
        framing: FramingProtocol

        def __init__(self, handler: Any, eio_server: Any) -> None:
            super().__init__(handler, eio_server)
            # The Engine.IO socket this connection serves (the handler is its bound method).
            self.socket: Any = getattr(handler, "__self__", None)
            self.eio_sid: str = getattr(self.socket, "sid", "")

        async def __call__(self, environ: dict[str, Any]) -> Any:
            server.websockets[self.eio_sid] = self
            try:
                self.asgi_receive = environ["asgi.receive"]
                self.asgi_send = environ["asgi.send"]
                await self.asgi_send({"type": "websocket.accept"})
                if self.socket is None or self.socket.connected:
                    # An upgrade from long-polling (not offered here): Engine.IO's own path.
                    await self.handler(self)
                else:
                    scope = environ.get("asgi.scope", {})
                    _forget_the_request(environ)
                    await self.serve(scope.get("extensions", {}).get(EXTENSION))
                return ""
            finally:
                server.websockets.pop(self.eio_sid, None)

        async def wait(self) -> Any:
            frame = await super().wait()
            if well_formed(frame):
                return frame
            if server.too_many_bad(self.eio_sid, "malformed Engine.IO frame"):
                raise OSError("too many malformed frames")
            return _NOOP

        async def serve(self, framing: FramingProtocol | None) -> None:
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
                self.schedule_ping()  # the first ping (see server.gate)
            else:
                del socket.schedule_ping  # Engine.IO's own, then
                socket.schedule_ping()
            writer = asyncio.ensure_future(self.write_all())
            limit = eio.max_http_buffer_size
            message = server._handle_eio_message
            try:
                while True:
                    try:
                        async with asyncio.timeout(silence):
                            frame = await self.wait()
                    except (OSError, TimeoutError):
                        break  # gone, or silent for longer than pings allow
                    if frame is None or len(frame) > limit:
                        break
                    try:
                        if frame[0] == "4":
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
                await socket.queue.put(None)  # lets the writer finish
                with contextlib.suppress(Exception):
                    await writer
                await socket.close(wait=False, abort=True, reason=eio.reason.TRANSPORT_CLOSE)

        async def write_all(self) -> None:
            """Whatever is queued for this socket, in order (queued packets are rare: only what
            could not be written at once, see `send_packet`)."""
            queue = self.socket.queue
            while True:
                pkt = await queue.get()
                queue.task_done()
                if pkt is None:
                    break
                try:
                    await self.send(pkt.encode())
                except Exception:  # the client went away mid-write
                    break
            await self.close()

        async def send_packet(self, pkt: Any) -> None:
            """Engine.IO's `send` for this socket."""
            self.deliver(pkt)

        def deliver(self, pkt: Any) -> None:
            """Written now if nothing waits before it and the connection takes it, queued
            otherwise (the writer keeps the order)."""
            socket = self.socket
            if socket.closed:
                return
            if pkt.packet_type == eio_packet.PING:
                # Engine.IO's rule: a pong within ping_timeout, or the client is gone.
                loop = asyncio.get_running_loop()
                loop.call_later(socket.server.ping_timeout, self._pong_due)
            if socket.queue.empty() and self.framing.open_for_frames():
                encoded = pkt.encode()
                if isinstance(encoded, str):
                    self.framing.write_frame(websocket_frame(encoded.encode()))
                    return
            socket.queue.put_nowait(pkt)

        def _pong_due(self) -> None:
            socket = self.socket
            if socket.last_ping and not (socket.closing or socket.closed):
                # No pong since the last ping (a pong clears last_ping): close, as uvicorn
                # closes a connection whose WebSocket keep-alive went unanswered.
                self.framing.keepalive_timeout()

        def deliver_text(self, text: str) -> None:
            """An Engine.IO message carrying `text` (a Socket.IO packet, already encoded)."""
            framing = getattr(self, "framing", None)
            socket = self.socket
            if socket.closed:
                return
            if framing is not None and socket.queue.empty() and framing.open_for_frames():
                framing.write_frame(websocket_frame(b"4" + text.encode()))
            else:
                socket.queue.put_nowait(eio_packet.Packet(eio_packet.MESSAGE, data=text))

        def schedule_ping(self) -> None:
            """After a pong: the next ping in one interval (Engine.IO starts a task that
            sleeps; a timer does the same for a fraction of the memory)."""
            socket = self.socket
            if not socket.last_ping:
                return
            socket.last_ping = None
            loop = asyncio.get_running_loop()
            loop.call_later(socket.server.ping_interval, self._ping)

        def _ping(self) -> None:
            socket = self.socket
            if socket.closing or socket.closed:
                return
            socket.last_ping = time.time()
            self.deliver(eio_packet.Packet(eio_packet.PING))

    return Connection
