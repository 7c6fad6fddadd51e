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
from collections.abc import Callable, Collection
from typing import Any

import socketio
from socketio import packet

from server.connection import connection_class

log = logging.getLogger(__name__)

# A well-behaved client never sends a malformed packet; a few are forgiven (a proxy hiccup),
# more close the connection.
BAD_PACKETS_ALLOWED = 3

UNREADABLE_CONNECT = "The connection request could not be read."
UNKNOWN_EVENT = "This server does not know that event; it takes vote, control and sync."


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
        # Malformed packets per Engine.IO connection.
        self.bad_packets: dict[str, int] = {}
        # The WebSocket of each Engine.IO connection.
        self.websockets: dict[str, Any] = {}
        # Frames are checked before Engine.IO decodes them (see server.connection).
        self.eio._async = {**self.eio._async, "websocket": connection_class(self)}

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if not isinstance(data, str):
            await self.malformed(eio_sid, "binary message")
            return
        try:
            pkt = self.packet_class(encoded_packet=data)
        except Exception as exc:  # any decoding failure is the sender's fault
            if data.startswith("0"):
                # A connection request we cannot read still deserves an answer.
                refusal = {"message": UNREADABLE_CONNECT, "data": {"code": "refused"}}
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

    async def _event(self, eio_sid: str, namespace: str, pkt: Any) -> None:
        data = pkt.data
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if not isinstance(data, list) or not data or not isinstance(data[0], str) or sid is None:
            await self.malformed(eio_sid, "event without a name, or before connecting")
            return
        if data[0] not in self.events:
            error = self.charge(sid) or UNKNOWN_EVENT
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

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any = None) -> None:
        self.bad_packets.pop(eio_sid, None)
        await super()._handle_eio_disconnect(eio_sid, reason)
