"""The way from the fan-out to one socket, as the fan-out sees it (server.fanout depends on this
interface only, never on how a connection is served)."""

from __future__ import annotations

from typing import Protocol

from server.sio.wire import Message

# Bytes (or, where they cannot be seen, queued messages) a socket may have waiting before it
# counts as behind: the fan-out stops sending it deltas until it has drained to BACKLOG_RESUME,
# then sends it a fresh snapshot.
BACKLOG_LIMIT = 512 * 1024
BACKLOG_RESUME = 64 * 1024
QUEUE_LIMIT = 64

# What a framing door's `offer` of a frame came to (server.sio.framing, server.sio.connection):
# written; not written because too much waits already; not written because the door is shut.
WRITTEN, BEHIND, SHUT = 1, 0, -1

# The ASGI scope extension through which a WebSocket's app finds the connection's framing door
# (server.sio.framing puts it there; server.sio.connection takes it).
DOOR = "stackvote.framing"


class Outlet(Protocol):
    def send(self, message: Message) -> bool:
        """Send `message`; False if the socket is gone or too far behind (nothing is sent to a
        socket that is behind: it needs a snapshot once it has caught up)."""
        ...

    def behind(self) -> bool:
        """Too much is waiting to be sent to this socket."""
        ...

    def caught_up(self) -> bool:
        """What was waiting has (nearly) gone out."""
        ...
