"""One client's WebSocket connection, as Engine.IO sees it: frames checked before they are
decoded, and a lean loop reading and writing them.

Engine.IO decodes a frame before any handler runs, outside its own error handling, so a frame
like `x` would end the connection with a traceback in the log: frames of a kind clients never
send become no-ops (which Engine.IO ignores) until there are too many, then the connection
ends (server.gate counts them).

Engine.IO's own loop starts a task and a `wait_for` for every frame it reads, and passes each
message through two dispatchers; this one waits for frames under one timeout each and hands a
message straight to Socket.IO. Everything else (pongs, closing, the writer) is Engine.IO's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio.async_drivers import asgi as engineio_asgi

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


def connection_class(server: GatedServer) -> type:
    """Engine.IO's ASGI WebSocket class for `server` (Engine.IO makes one per connection)."""

    class Connection(engineio_asgi.WebSocket):  # type: ignore[misc]
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
                    await self.serve()
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

        async def serve(self) -> None:
            socket = self.socket
            eio = socket.server
            socket.connected = True
            socket.upgraded = True
            writer = asyncio.ensure_future(self.write_all())
            silence = eio.ping_interval + eio.ping_timeout
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
            """Engine.IO's writer: whatever is queued for this socket, in order."""
            socket = self.socket
            while True:
                try:
                    packets = await socket.poll()
                except eio_exceptions.QueueEmpty:
                    break
                if not packets:
                    break
                try:
                    for pkt in packets:
                        await self.send(pkt.encode())
                except Exception:  # the client went away mid-write
                    break
            await self.close()

    return Connection
