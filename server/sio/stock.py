"""The stock path: python-socketio and Engine.IO as they come, through their public API only.

The server runs here when a library release has moved an internal the fast path needs (see
server.sio.internals), or when STACKVOTE_CONNECTIONS=stock asks for it. It is slower (each
message is queued and written by Engine.IO's own tasks; each packet is decoded by the library)
and it offers less: Engine.IO reads frames and pongs itself, so there is no per-frame budget,
no early drop of malformed frames and no deadline for the Socket.IO connect; the event limit,
the gate on event names (server.sio.front.Namespace) and every rule of the app hold the same.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from server.edge import CUT
from server.sio.front import Front
from server.sio.outlet import BACKLOG_LIMIT, BACKLOG_RESUME, Outlet
from server.sio.wire import Message

log = logging.getLogger(__name__)


class StockServer(Front):
    fast = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # One client's events are handled in the order it sent them (Engine.IO's documented
        # option; python-socketio leaves it on).
        self.eio.async_handlers = False

    def outlet(self, sid: str, environ: dict[str, Any]) -> Outlet:
        return StockOutlet(self, sid)

    def hang_up(self, sid: str, why: str) -> None:
        log.info("closing connection %s: %s", sid, why)
        environ = self.get_environ(sid) or {}
        cut = environ.get("asgi.scope", {}).get(CUT)
        if cut is not None:
            cut()  # the next read ends the connection (server.edge.Cutoff)
        eio_sid = self.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is not None:
            # Engine.IO's disconnect tells the client (Socket.IO's ends only the namespace).
            self.start_background_task(self.eio.disconnect, eio_sid)


class StockOutlet:
    """The fan-out's way to one socket on the stock path: messages wait here, counted in bytes,
    and one task at a time hands them to Engine.IO (`send`, public), already encoded."""

    __slots__ = ("_eio_sid", "_pending", "_server", "_sid", "_waiting", "_writer")

    def __init__(self, server: StockServer, sid: str) -> None:
        self._server = server
        self._sid = sid
        self._eio_sid: str | None = None
        self._pending: collections.deque[str] = collections.deque()
        self._waiting = 0
        self._writer: asyncio.Task[None] | None = None

    def send(self, message: Message) -> bool:
        if self._waiting > BACKLOG_LIMIT:
            return False
        self._pending.append(message.text)
        self._waiting += len(message.text)
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write())
        return True

    async def _write(self) -> None:
        server = self._server
        try:
            if self._eio_sid is None:
                self._eio_sid = server.manager.eio_sid_from_sid(self._sid, "/")
            while self._pending:
                text = self._pending.popleft()
                self._waiting -= len(text)
                await server.eio.send(self._eio_sid, text)
        except Exception:
            log.exception("sending to %s failed", self._sid)
        finally:
            self._writer = None

    def behind(self) -> bool:
        return self._waiting > BACKLOG_LIMIT

    def caught_up(self) -> bool:
        return self._waiting < BACKLOG_RESUME
