"""The Socket.IO server's front door: only the contract's events get in, bad packets get out.

python-socketio dispatches an event by its name to the namespace's `on_<name>` method, so a
client that emits `connect` or `disconnect` would run the server's own join and leave code. This
server checks every packet before the library sees it:

- an event whose name is not in the contract is answered `{"ok": false}` and charged to the
  sender's event limit; it never reaches a handler;
- a packet that cannot be decoded (bad JSON, too deep, wrong shape, binary, a kind of packet
  clients never send) is dropped without a traceback; a connection that keeps sending them is
  closed.

It overrides `_handle_eio_message`, the library's one entry point for client packets; the
tests in tests/test_gate.py pin that behaviour, so an upgrade that moves it fails loudly.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import msgspec
import socketio
from socketio import packet

from server import i18n
from server.connection import connection_class
from server.text import N_
from server.transport import Mailbox

log = logging.getLogger(__name__)

# A well-behaved client never sends a malformed packet; a few are forgiven (a proxy hiccup),
# more close the connection.
BAD_PACKETS_ALLOWED = 3

# An event of the default namespace: 2, the ack id (if any), the name, and one argument (if
# any). Anything else (another namespace, several arguments, binary) takes the general path.
_DIRECT_EVENT = re.compile(r'2(\d{0,15})\["([a-z_]{1,20})"(?:,(.*))?\]\Z', re.S)
_encode = msgspec.json.Encoder().encode
_decoder = msgspec.json.Decoder()


def _decode(payload: str) -> Any:
    try:
        return _decoder.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        raise ValueError("not one JSON value") from None


Handler = Callable[[str, Any], Awaitable[Any]]


def _no_ping_yet() -> None:
    """Stands in for Engine.IO's first ping until the connection schedules its own."""


ONE_ARGUMENT = N_("An event takes one argument at most.")
UNREADABLE_CONNECT = N_("The connection request could not be read.")
UNKNOWN_EVENT = N_("This server does not know that event; it takes vote, control, sync and leave.")


class RoomsBySid(socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's client manager, remembering which rooms each client is in.

    Its disconnect looks through every room of the namespace for the leaving client (each
    client has a room of its own), so when a meeting of N people ends, the leaving costs N²:
    5,000 people leaving took most of a server's CPU for seconds. Here a client's rooms are
    known, and leaving costs what the client was in.
    """

    def __init__(self) -> None:
        super().__init__()
        self._rooms_of: dict[tuple[str, str], set[Any]] = {}

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._rooms_of.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        joined = self._rooms_of.get((namespace, sid))
        if joined is not None:
            joined.discard(room)

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        for room in self._rooms_of.pop((namespace, sid), set()):
            super().basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            waiting = pending.get(namespace)
            if waiting is not None and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]


class GatedServer(socketio.AsyncServer):  # type: ignore[misc]
    def __init__(
        self,
        *,
        events: Collection[str],
        charge: Callable[[str], str | None],
        **kwargs: Any,
    ) -> None:
        """`events`: the names clients may emit. `charge(sid)`: count a refused event against
        the socket's event limit; returns the error to answer with when over the limit."""
        super().__init__(**kwargs)
        self.events = frozenset(events)
        self.charge = charge
        self.direct: dict[str, Handler] = {}
        # A message for the person at a socket, in their language (the namespace knows it).
        self.say: Callable[[str, str], str] = lambda sid, text: str(text)
        # Malformed packets per Engine.IO connection.
        self.bad_packets: dict[str, int] = {}
        # The WebSocket of each Engine.IO connection.
        self.websockets: dict[str, Any] = {}
        # Frames are checked before Engine.IO decodes them (see server.connection); each
        # socket's outgoing packets wait in a light queue.
        self.eio._async = {**self.eio._async, "websocket": connection_class(self)}
        self.eio.create_queue = Mailbox

    def handle_directly(self, handlers: dict[str, Handler]) -> None:
        """Events answered without python-socketio's dispatch: `handlers[name](sid, data)`
        returns the ack. (They are the contract's hot events: a vote passes four dispatch
        layers, a packet object each way and two JSON codecs otherwise; the profile of a room
        voting had them at a third of the server's time.)"""
        self.direct = handlers

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if not isinstance(data, str):
            await self.malformed(eio_sid, "binary message")
            return
        if data.startswith("2") and await self._direct_event(eio_sid, data):
            return
        try:
            pkt = self.packet_class(encoded_packet=data)
        except Exception as exc:  # any decoding failure is the sender's fault
            if data.startswith("0"):
                # A connection request we cannot read still deserves an answer.
                locale = i18n.from_environ(self.environ.get(eio_sid) or {})
                message = i18n.say(UNREADABLE_CONNECT, locale)
                refusal = {"message": message, "data": {"code": "refused"}}
                await self._send_packet(
                    eio_sid, self.packet_class(packet.CONNECT_ERROR, data=refusal, namespace="/")
                )
            await self.malformed(eio_sid, f"undecodable packet ({type(exc).__name__})")
            return
        if pkt.attachment_count:
            await self.malformed(eio_sid, "binary attachments")
            return
        namespace = pkt.namespace or "/"
        if pkt.packet_type == packet.CONNECT:
            await self._handle_connect(eio_sid, pkt.namespace, pkt.data)
        elif pkt.packet_type == packet.DISCONNECT:
            await self._handle_disconnect(eio_sid, pkt.namespace, self.reason.CLIENT_DISCONNECT)
        elif pkt.packet_type == packet.EVENT:
            await self._event(eio_sid, namespace, pkt)
        else:
            # ACKs (this server never asks a client for one), CONNECT_ERROR, unknown kinds.
            await self.malformed(eio_sid, f"unexpected packet type {pkt.packet_type!r}")

    async def _direct_event(self, eio_sid: str, data: str) -> bool:
        """Handle an event of the default namespace whose name has a direct handler; False
        to leave the packet to the general path (which also judges malformed ones)."""
        found = _DIRECT_EVENT.match(data)
        if found is None:
            return False
        ack_id, name, payload = found.groups()
        handler = self.direct.get(name)
        sid = self.manager.sid_from_eio_sid(eio_sid, "/")
        if handler is None or sid is None or not self.manager.is_connected(sid, "/"):
            return False
        try:
            argument = _decode(payload) if payload else None
        except ValueError:
            return False
        answer = await handler(sid, argument)
        if ack_id and answer is not self.not_handled:
            connection = self.websockets.get(eio_sid)
            text = "3" + ack_id + "[" + _encode(answer).decode() + "]"
            if connection is not None:
                connection.deliver_text(text)
            else:  # pragma: no cover - every connection here has one
                await self.eio.send(eio_sid, text)
        return True

    async def _event(self, eio_sid: str, namespace: str, pkt: Any) -> None:
        data = pkt.data
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if not isinstance(data, list) or not data or not isinstance(data[0], str) or sid is None:
            await self.malformed(eio_sid, "event without a name, or before connecting")
            return
        if data[0] not in self.events or len(data) > 2:
            error = self.charge(sid) or self.say(
                sid, UNKNOWN_EVENT if data[0] not in self.events else ONE_ARGUMENT
            )
            if pkt.id is not None:
                await self._send_packet(
                    eio_sid,
                    self.packet_class(
                        packet.ACK,
                        namespace=namespace,
                        id=pkt.id,
                        data=[{"ok": False, "error": error}],
                    ),
                )
            return
        await self._handle_event(eio_sid, pkt.namespace, pkt.id, data)

    def too_many_bad(self, eio_sid: str, why: str) -> bool:
        """Count a bad packet; True once the connection has sent too many."""
        count = self.bad_packets.get(eio_sid, 0) + 1
        self.bad_packets[eio_sid] = count
        if count < BAD_PACKETS_ALLOWED:
            log.info("dropped a malformed packet from connection %s: %s", eio_sid, why)
            return False
        log.warning("closing connection %s: %d malformed packets (last: %s)", eio_sid, count, why)
        return True

    async def malformed(self, eio_sid: str, why: str) -> None:
        if self.too_many_bad(eio_sid, why):
            await self.eio.disconnect(eio_sid)
            # Engine.IO's close only says goodbye; a client that does not answer keeps the
            # WebSocket open, so close that too.
            websocket = self.websockets.get(eio_sid)
            if websocket is not None:
                await websocket.close()

    async def _handle_eio_connect(self, eio_sid: str, environ: Any) -> None:
        await super()._handle_eio_connect(eio_sid, environ)
        # Engine.IO starts a sleeping task per socket for its first ping; the connection
        # (server.connection) schedules pings with timers instead, from its start.
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None:
            socket.schedule_ping = _no_ping_yet

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any = None) -> None:
        self.bad_packets.pop(eio_sid, None)
        await super()._handle_eio_disconnect(eio_sid, reason)
