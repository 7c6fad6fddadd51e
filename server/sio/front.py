"""What the app asks of its Socket.IO server, on either path (fast: server.sio.gate; stock:
server.sio.stock), and the namespace base class whose dispatch lets only the contract's events
through.

python-socketio dispatches an event by its name to the namespace's `on_<name>` method, so a
client that emits `connect` or `disconnect` would run the server's own join and leave code.
`Namespace.trigger_event` (python-socketio's documented hook for custom dispatch) tells the
library's own calls from a client's: a real connect comes once per client, before any event of
it; a real disconnect comes after the library has marked the client as leaving.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import msgspec
import socketio

from server import i18n
from server.edge import OpenPerAddress
from server.settings import parse_rates
from server.sio.outlet import Outlet
from server.text import N_
from server.throttle import STRIKES, Refills, refills

log = logging.getLogger(__name__)

Handler = Callable[[str, Any], Awaitable[Any]]

ONE_ARGUMENT = N_("An event takes one argument at most.")
UNREADABLE_CONNECT = N_("The connection request could not be read.")
UNKNOWN_EVENT = N_("This server does not know that event; it takes vote, control, sync and leave.")


@dataclass(frozen=True)
class Limits:
    """What one connection may cost (Settings has the knobs)."""

    # Frames one connection may send (every kind), and refusals before it is closed.
    frame_rates: Refills
    strike_rates: Refills
    # Seconds a WebSocket may stay open without joining the namespace.
    connect_within: float = 10.0
    # Bytes waiting to be sent to one client before it is let go; and to all of them together,
    # past which any client that is behind is let go (so that many clients that do not read
    # cannot add up to more memory than this).
    max_backlog: int = 2 * 1024 * 1024
    max_backlog_total: int = 64 * 1024 * 1024
    # WebSockets open per client address.
    open_per_address: OpenPerAddress = field(default_factory=lambda: OpenPerAddress(500))

    @classmethod
    def of(
        cls,
        frames: str,
        connect_within: float,
        max_backlog_kb: int,
        max_backlog_total_mb: int,
        open_per_address: OpenPerAddress | None = None,
    ) -> Limits:
        return cls(
            refills(parse_rates(frames)),
            refills(parse_rates(STRIKES)),
            connect_within,
            max_backlog_kb * 1024,
            max_backlog_total_mb * 1024 * 1024,
            open_per_address or OpenPerAddress(500),
        )


class Front(socketio.AsyncServer):  # type: ignore[misc]
    """A python-socketio server that dispatches only the contract's events (`events`), each to
    its handler (`handle_directly`), charging anything else to the sender (`charge(sid)`: the
    error to answer with when the sender is over its event limit, else None)."""

    fast = False

    def __init__(
        self,
        *,
        events: Collection[str],
        charge: Callable[[str], str | None],
        limits: Limits,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.events = frozenset(events)
        self.charge = charge
        self.limits = limits
        self.direct: dict[str, Handler] = {}
        # A message for the person at a socket, in their language (the namespace knows it).
        self.say: Callable[[str, str], str] = lambda sid, text: str(text)

    def handle_directly(self, handlers: dict[str, Handler]) -> None:
        """`handlers[name](sid, argument)` answers event `name` (returns its ack)."""
        self.direct = handlers

    def refusal(self, sid: str, event: str) -> dict[str, Any]:
        """The ack for an event that is not the contract's (charged to the sender)."""
        known = event in self.events
        error = self.charge(sid) or self.say(sid, ONE_ARGUMENT if known else UNKNOWN_EVENT)
        return {"ok": False, "error": error}

    def outlet(self, sid: str, environ: dict[str, Any]) -> Outlet:
        """The fan-out's way to client `sid`."""
        raise NotImplementedError

    def hang_up(self, sid: str, why: str) -> None:
        """Close client `sid`'s connection at once."""
        raise NotImplementedError


class Namespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """The default namespace, dispatching through the gate (see the module's docstring)."""

    server: Front

    def __init__(self, namespace: str = "/") -> None:
        super().__init__(namespace)
        # Clients whose connect this namespace has seen (real ones come once, first).
        self._admitting: set[str] = set()

    async def trigger_event(self, event: str, *args: Any) -> Any:
        sid = args[0] if args else ""
        if event == "connect":
            if sid in self._admitting:
                return self.server.refusal(sid, event)  # a client emitted `connect`
            self._admitting.add(sid)
            try:
                return await self.on_connect(*args)
            except BaseException:
                self._admitting.discard(sid)
                raise
        if event == "disconnect":
            if self.server.manager.is_connected(sid, self.namespace):
                return self.server.refusal(sid, event)  # a client emitted `disconnect`
            self._admitting.discard(sid)
            return await self.on_disconnect(*args)
        handler = self.server.direct.get(event)
        if handler is None or len(args) > 2:
            return self.server.refusal(sid, event)
        answer = await handler(sid, args[1] if len(args) > 1 else None)
        if isinstance(answer, msgspec.Raw):
            # Encoded once for the fast path; python-socketio encodes acks itself.
            answer = msgspec.json.decode(answer)
        return answer

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        raise NotImplementedError

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        raise NotImplementedError


def refuse_unreadable(environ: dict[str, Any]) -> dict[str, Any]:
    """The CONNECT_ERROR data for a connect request that could not be read."""
    locale = i18n.from_environ(environ)
    return {"message": i18n.say(UNREADABLE_CONNECT, locale), "data": {"code": "refused"}}
