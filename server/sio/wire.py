"""The Socket.IO and Engine.IO wire format, as this server writes and reads it: one pure module
(no sockets, no asyncio, no library internals), like h11's one reader and one writer.

What crosses the wire here (Engine.IO 4 over WebSocket, Socket.IO 5, the default namespace):

- an Engine.IO packet is a text frame starting with its type: 1 close, 2 ping, 3 pong,
  4 message, 6 noop (the server's 0 open is Engine.IO's own);
- a message carries one Socket.IO packet: 0 connect, 1 disconnect, 2 event, 3 ack, then the
  ack id (digits, optional) and a JSON array: `2["vote",{...}]`, `31[{"ok":true}]`;
- a WebSocket text frame from the server is unmasked and unfragmented (RFC 6455 §5.2).

tests/test_wire.py checks each against python-socketio's own packet encoder and decoder.
"""

from __future__ import annotations

import re
import struct
from typing import Any

import msgspec

# Engine.IO packet types.
CLOSE, PING, PONG, MESSAGE, NOOP = "1", "2", "3", "4", "6"
# Engine.IO packet types a client may send over WebSocket: close, pong and messages.
CLIENT_TYPES = frozenset((CLOSE, PONG, MESSAGE))

_encode = msgspec.json.Encoder().encode
_decoder = msgspec.json.Decoder()

# An event of the default namespace: 2, the ack id (if any), the name, and one argument (if
# any). Anything else (another namespace, several arguments, binary) is not read here.
_EVENT = re.compile(r'2(\d{0,15})\["([a-z_]{1,20})"(?:,(.*))?\]\Z', re.S)
# The ack id of an event, inside an Engine.IO message (enough to answer it without reading it).
_ACK_ID = re.compile(r"42(\d{1,15})\[")


def well_formed(frame: Any) -> bool:
    """A text frame of a kind clients send; a message must carry a Socket.IO packet (which
    starts with a digit), never a bare JSON value for Engine.IO to parse."""
    if not isinstance(frame, str) or not frame or frame[0] not in CLIENT_TYPES:
        return False
    return frame[0] != MESSAGE or (len(frame) > 1 and frame[1].isdigit())


def decode(payload: str) -> Any:
    """One JSON value; ValueError if `payload` is not one (or nests too deep)."""
    try:
        return _decoder.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        raise ValueError("not one JSON value") from None


def read_event(packet: str) -> tuple[str, str, Any] | None:
    """(ack id or "", event name, argument or None) of an event packet of the default namespace
    with at most one argument; None for anything else (left to the general reader)."""
    found = _EVENT.match(packet)
    if found is None:
        return None
    ack_id, name, payload = found.groups()
    try:
        argument = decode(payload) if payload else None
    except ValueError:
        return None
    return ack_id, name, argument


def ack_id_of(frame: str) -> str | None:
    """The ack id of the event an Engine.IO message carries, if it asks for an answer."""
    found = _ACK_ID.match(frame)
    return found.group(1) if found is not None else None


def event_packet(event: str, data: Any) -> str:
    """A Socket.IO event for the default namespace. `data` may hold msgspec.Raw parts (JSON
    encoded once, inserted as it is)."""
    return '2["' + event + '",' + _encode(data).decode() + "]"


def ack_arguments(answer: Any) -> str:
    """What follows an ack's id: its one argument, as a JSON array."""
    return "[" + _encode(answer).decode() + "]"


def ack_packet(ack_id: str | int, answer: Any) -> str:
    """A Socket.IO ack for the default namespace, with one argument."""
    return f"3{ack_id}" + ack_arguments(answer)


def websocket_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented WebSocket text frame (server to client, RFC 6455 §5.2)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


class Message:
    """One server-to-client Socket.IO event, encoded once for any number of recipients: as the
    Socket.IO packet (`text`) and as a whole WebSocket frame (`frame`)."""

    __slots__ = ("frame", "text")

    def __init__(self, event: str, data: Any) -> None:
        self.text = event_packet(event, data)
        self.frame = websocket_frame((MESSAGE + self.text).encode())
