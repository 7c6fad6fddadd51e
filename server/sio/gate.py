"""The fast path's Socket.IO server: every packet is checked before the library sees it, and the
contract's events are answered without python-socketio's dispatch.

- an event whose name is not in the contract is answered `{"ok": false}` and charged to the
  sender's event limit; it never reaches a handler;
- a packet that cannot be decoded (bad JSON, too deep, wrong shape, binary, a kind of packet
  clients never send) is dropped without a traceback; a connection that keeps sending them is
  closed;
- the contract's events go straight to their handlers (a vote would otherwise pass four
  dispatch layers, a packet object each way and two JSON codecs: a third of the server's time
  in the profile of a room voting), and their acks are written by server.sio.wire.

It overrides `_handle_eio_message`, the library's one entry point for client packets, and
replaces Engine.IO's WebSocket driver (server.sio.connection); server.sio.internals lists each
name it relies on, and tests/test_gate.py pins the behaviour.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from typing import Any

import socketio
from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket
from socketio import packet

from server import i18n
from server.sio import wire
from server.sio.connection import FastOutlet, connection_class
from server.sio.front import Front, refuse_unreadable
from server.sio.mailbox import Mailbox
from server.sio.outlet import DOOR, Outlet
from server.sio.wheel import Wheel
from server.throttle import SLOW_DOWN

log = logging.getLogger(__name__)

# A well-behaved client never sends a malformed packet; a few are forgiven (a proxy hiccup),
# more close the connection.
BAD_PACKETS_ALLOWED = 3


# The headers a WebSocket's handshake needs (its origin) and its connection keeps (the language
# it asks for: server.i18n), by their environ keys.
_KEPT_HEADERS = {
    b"origin": "HTTP_ORIGIN",
    b"cookie": "HTTP_COOKIE",
    b"accept-language": "HTTP_ACCEPT_LANGUAGE",
}


def _no_ping_yet() -> None:
    """Stands in for Engine.IO's first ping until the connection schedules its own."""


class RoomsBySid(socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's client manager, remembering which rooms each client is in.

    Its disconnect looks through every room of the namespace for the leaving client (each
    client has a room of its own), so when a meeting of N people ends, the leaving costs N²:
    5,000 people leaving took most of a server's CPU for seconds. Here a client leaves the rooms
    it is known to be in first, and the library's own disconnect (which also settles its
    bookkeeping of pending connects and callbacks) then looks through nothing.
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
        rooms = self.rooms.get(namespace)
        if rooms is None:
            super().basic_disconnect(sid, namespace, **kwargs)
            return
        self.rooms[namespace] = {}  # what it would look through: the client is in none of it
        try:
            super().basic_disconnect(sid, namespace, **kwargs)
        finally:
            if self.rooms.get(namespace) == {}:
                self.rooms[namespace] = rooms


class GatedServer(Front):
    fast = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        limits = self.limits
        self.frame_rates = limits.frame_rates
        self.strike_rates = limits.strike_rates
        self.connect_within = limits.connect_within
        self.max_backlog = limits.max_backlog
        self.max_backlog_total = limits.max_backlog_total
        self.open_per_address = limits.open_per_address
        self.backlog_total = 0
        # Malformed packets per Engine.IO connection.
        self.bad_packets: dict[str, int] = {}
        # The WebSocket of each Engine.IO connection.
        self.websockets: dict[str, Any] = {}
        self.handle_message = self._handle_eio_message
        # Frames are checked before Engine.IO decodes them (see server.sio.connection); each
        # socket's outgoing packets wait in a light queue.
        self.eio._async = {**self.eio._async, "websocket": connection_class(self)}
        self.eio.create_queue = Mailbox
        # Pings and pong deadlines of every connection, on one loop timer.
        self.wheel = Wheel(resolution=min(0.1, float(self.eio.ping_interval) / 20))
        # The open packet's data after its session id, and the settings it was made from.
        self._open_settings: tuple[Any, ...] = ()
        self._open_rest = ""

    # --- what the app asks

    def outlet(self, sid: str, environ: dict[str, Any]) -> Outlet:
        socket = self.eio.sockets[self.manager.eio_sid_from_sid(sid, "/")]
        return FastOutlet(socket, environ.get("asgi.scope", {}).get("extensions", {}).get(DOOR))

    def hang_up(self, sid: str, why: str) -> None:
        eio_sid = self.manager.eio_sid_from_sid(sid, "/")
        websocket = self.websockets.get(eio_sid) if eio_sid is not None else None
        if websocket is not None:
            websocket.hang_up(why)

    # --- what a connection asks (server.sio.connection.Gatekeeper)

    def joined(self, eio_sid: str) -> bool:
        """Whether the Engine.IO connection `eio_sid` has joined the namespace."""
        return self.manager.sid_from_eio_sid(eio_sid, "/") is not None

    def slow_down(self, eio_sid: str) -> str:
        """An ack's arguments telling the sender that its event was not taken (too fast)."""
        sid = self.manager.sid_from_eio_sid(eio_sid, "/")
        error = self.say(sid, SLOW_DOWN) if sid is not None else i18n.say(SLOW_DOWN)
        return wire.ack_arguments({"ok": False, "error": error, "retry": True})

    def too_many_bad(self, eio_sid: str, why: str) -> bool:
        """Count a bad packet; True once the connection has sent too many."""
        count = self.bad_packets.get(eio_sid, 0) + 1
        self.bad_packets[eio_sid] = count
        if count < BAD_PACKETS_ALLOWED:
            log.info("dropped a malformed packet from connection %s: %s", eio_sid, why)
            return False
        log.warning("closing connection %s: %d malformed packets (last: %s)", eio_sid, count, why)
        return True

    # --- the library's entry points

    async def handle_request(self, scope: Any, receive: Any, send: Any) -> Any:
        """A new WebSocket under the framing door is opened here (`_open_websocket`); any
        other request, and any handshake out of the ordinary, goes Engine.IO's way."""
        if scope.get("type") == "websocket" and DOOR in scope.get("extensions", {}):
            handshake = self._websocket_handshake(scope)
            if handshake is not None:
                await self._open_websocket(handshake, scope, receive, send)
                return None
        return await super().handle_request(scope, receive, send)

    def _websocket_handshake(self, scope: dict[str, Any]) -> dict[str, Any] | None:
        """The environ of a plain new WebSocket connection (Engine.IO 4, no session id yet,
        an origin this server accepts), holding what the connection keeps of its handshake;
        None for anything else, which Engine.IO then answers (or refuses) itself.

        Engine.IO would first turn the whole request into a WSGI environ (every header,
        ~30 keys), parse it again and pass it through four calls: skipping that took ~20 %
        off the CPU of a join (bench/RESULTS.md)."""
        eio = self.eio
        if eio.start_service_task or not callable(eio.cors_allowed_origins):
            return None
        try:
            query_string = scope.get("query_string", b"").decode("utf-8")
        except UnicodeDecodeError:
            return None
        query = urllib.parse.parse_qs(query_string)
        if (
            query.get("EIO") != ["4"]
            or query.get("transport") != ["websocket"]
            or "sid" in query
            or "j" in query
        ):
            return None
        environ: dict[str, Any] = {"QUERY_STRING": query_string}
        for name, value in scope.get("headers", ()):
            key = _KEPT_HEADERS.get(name.lower())
            if key is None:
                continue
            if key in environ:
                return None  # (Engine.IO joins repeated headers: its way, then)
            environ[key] = value.decode("latin-1")
        origin = environ.get("HTTP_ORIGIN")
        if origin:
            allowed = eio._cors_allowed_origins(environ)
            if allowed is not None and origin not in allowed:
                return None  # refused the library's way
        return environ

    async def _open_websocket(
        self, environ: dict[str, Any], scope: Any, receive: Any, send: Any
    ) -> None:
        """What Engine.IO's request handling does for a new WebSocket connection (its
        `_handle_connect`, then the upgrade), without the detours."""
        if (await receive())["type"] != "websocket.connect":
            return  # gone before the handshake was answered
        environ.update({"asgi.scope": scope, "asgi.receive": receive, "asgi.send": send})
        eio = self.eio
        eio_sid = eio.generate_id()
        socket = AsyncSocket(eio, eio_sid)
        eio.sockets[eio_sid] = socket
        socket.queue.put_nowait(eio_packet.Packet(eio_packet.OPEN, self._open_data(eio_sid)))
        try:
            await self._handle_eio_connect(eio_sid, environ)
        except Exception:
            log.exception("opening connection %s failed", eio_sid)
            del eio.sockets[eio_sid]
            await send({"type": "websocket.close", "code": 1011})
            return
        await eio._async["websocket"](socket._websocket_handler, eio)(environ)
        if socket.closed and eio.sockets.get(eio_sid) is socket:
            del eio.sockets[eio_sid]

    def _open_data(self, eio_sid: str) -> str:
        """The open packet's data, encoded as Engine.IO encodes its dict: only the session id
        changes from one connection to the next."""
        eio = self.eio
        settings = (
            eio.ping_timeout,
            eio.ping_interval,
            eio.ping_interval_grace_period,
            eio.max_http_buffer_size,
        )
        if self._open_settings != settings:
            self._open_settings = settings
            rest = {
                "upgrades": [],
                "pingTimeout": int(eio.ping_timeout * 1000),
                "pingInterval": int(eio.ping_interval + eio.ping_interval_grace_period) * 1000,
                "maxPayload": eio.max_http_buffer_size,
            }
            self._open_rest = "," + json.dumps(rest, separators=(",", ":"))[1:]
        return '{"sid":' + json.dumps(eio_sid) + self._open_rest

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        # The answer to a connect request, {"sid": ...} in the default namespace, is written as
        # python-socketio encodes it, straight to the connection (1 in 20 of a join's CPU went
        # through the packet's encoding and Engine.IO's send).
        data = pkt.data
        websocket = self.websockets.get(eio_sid)
        if (
            websocket is not None
            and pkt.packet_type == packet.CONNECT
            and pkt.namespace in (None, "/")
            and type(data) is dict
            and len(data) == 1
            and type(data.get("sid")) is str
        ):
            websocket.deliver_text('0{"sid":' + json.dumps(data["sid"]) + "}")
            return
        await super()._send_packet(eio_sid, pkt)

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
                refusal = refuse_unreadable(self.environ.get(eio_sid) or {})
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
            websocket = self.websockets.get(eio_sid)
            if websocket is not None and self.joined(eio_sid):
                websocket.joined()
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
        event = wire.read_event(data)
        if event is None:
            return False
        ack_id, name, argument = event
        handler = self.direct.get(name)
        sid = self.manager.sid_from_eio_sid(eio_sid, "/")
        if handler is None or sid is None or not self.manager.is_connected(sid, "/"):
            return False
        answer = await handler(sid, argument)
        if ack_id:
            await self._ack(eio_sid, ack_id, answer)
        return True

    async def _ack(self, eio_sid: str, ack_id: str | int, answer: Any) -> None:
        """Answer an event (an answer may hold pre-encoded parts: msgspec.Raw)."""
        if answer is self.not_handled:
            return
        connection = self.websockets.get(eio_sid)
        text = wire.ack_packet(ack_id, answer)
        if connection is not None:
            connection.deliver_text(text)
        else:  # pragma: no cover - every connection here has one
            await self.eio.send(eio_sid, text)

    async def _event(self, eio_sid: str, namespace: str, pkt: Any) -> None:
        data = pkt.data
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if not isinstance(data, list) or not data or not isinstance(data[0], str) or sid is None:
            await self.malformed(eio_sid, "event without a name, or before connecting")
            return
        handler = self.direct.get(data[0]) if namespace == "/" else None
        if handler is None or data[0] not in self.events or len(data) > 2:
            if pkt.id is not None:
                await self._ack(eio_sid, pkt.id, self.refusal(sid, data[0]))
            else:
                self.charge(sid)
            return
        # The contract's events take one way, whichever way their packet was read.
        answer = await handler(sid, data[1] if len(data) > 1 else None)
        if pkt.id is not None:
            await self._ack(eio_sid, pkt.id, answer)

    async def malformed(self, eio_sid: str, why: str) -> None:
        if self.too_many_bad(eio_sid, why):
            await self.eio.disconnect(eio_sid)
            # Engine.IO's close only says goodbye; a client that does not answer keeps the
            # WebSocket open, so end that too, at once.
            websocket = self.websockets.get(eio_sid)
            if websocket is not None:
                websocket.hang_up("malformed packets")

    async def _handle_eio_connect(self, eio_sid: str, environ: Any) -> None:
        await super()._handle_eio_connect(eio_sid, environ)
        # Engine.IO starts a sleeping task per socket for its first ping; the connection
        # (server.sio.connection) schedules pings with timers instead, from its start.
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None:
            socket.schedule_ping = _no_ping_yet

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any = None) -> None:
        self.bad_packets.pop(eio_sid, None)
        await super()._handle_eio_disconnect(eio_sid, reason)
