"""The Socket.IO server and its connections: the one package that knows python-socketio,
python-engineio and uvicorn beyond their public API (server.sio.internals lists what it uses).

Two paths, the same contract:

- fast (the default when every internal it needs is there): packets checked and budgeted before
  the library decodes them, the contract's events answered directly, a room's message encoded
  and framed once and written straight to each connection (server.sio.gate, .connection and,
  under uvicorn, .framing);
- stock (python-socketio, Engine.IO and the ASGI server as they come: server.sio.stock), taken
  when an internal has moved (one warning at start-up) or when asked for.

Everything else sees only `build_server`, `Namespace`, `Message` and `Outlet`, and the wire
format lives in one pure module (server.sio.wire).
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Literal

from server.sio.front import Front, Limits, Namespace
from server.sio.internals import problems
from server.sio.outlet import Outlet
from server.sio.wire import Message

log = logging.getLogger(__name__)

Choice = Literal["auto", "stock"]

__all__ = [
    "Choice",
    "Front",
    "Limits",
    "Message",
    "Namespace",
    "Outlet",
    "build_server",
    "http_protocol",
    "websocket_protocol",
]


@functools.cache
def _fast(part: Literal["socketio", "uvicorn"], path: Choice) -> bool:
    if path == "stock":
        return False
    missing = problems(part)
    if missing:
        log.warning(
            "running on the stock %s path (slower, still correct): this install's %s lacks "
            "what the fast path needs: %s",
            "Socket.IO" if part == "socketio" else "uvicorn",
            "python-socketio/python-engineio" if part == "socketio" else "uvicorn",
            "; ".join(missing),
        )
    return not missing


def build_server(path: Choice = "auto", **kwargs: Any) -> Front:
    """The Socket.IO server (keyword arguments: Front's and python-socketio's)."""
    if _fast("socketio", path):
        from server.sio.gate import GatedServer, RoomsBySid

        return GatedServer(client_manager=RoomsBySid(), **kwargs)
    from server.sio.stock import StockServer

    return StockServer(**kwargs)


def websocket_protocol(path: Choice = "auto") -> Any:
    """What to give uvicorn as `ws`: the framing protocol, or uvicorn's own choice."""
    if _fast("uvicorn", path):
        from server.sio.framing import FramingProtocol

        return FramingProtocol
    return "auto"


def http_protocol(header_timeout: float, path: Choice = "auto") -> Any:
    """What to give uvicorn as `http`: its protocol with a header deadline, or its own."""
    if _fast("uvicorn", path):
        from server.sio.framing import with_header_timeout

        return with_header_timeout(header_timeout)
    return "auto"
