"""The wire format (server.sio.wire) against python-socketio's own packet encoder and decoder,
and RFC 6455's framing examples. (The official socket.io-client reads it in
tests/test_bench.py, whose load generator is that client.)"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from socketio import packet as sio_packet

from server.sio import wire

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
names = st.from_regex(r"[a-z_]{1,20}", fullmatch=True)


@given(names, json_values)
def test_an_event_we_write_is_the_event_socketio_reads(event: str, data: Any) -> None:
    read = sio_packet.Packet(encoded_packet=wire.event_packet(event, data))
    assert read.packet_type == sio_packet.EVENT
    assert read.namespace in (None, "/")
    assert read.id is None
    assert read.data == [event, data]


@given(st.integers(0, 10**15 - 1), json_values)
def test_an_ack_we_write_is_the_ack_socketio_reads(ack_id: int, answer: Any) -> None:
    read = sio_packet.Packet(encoded_packet=wire.ack_packet(ack_id, answer))
    assert (read.packet_type, read.id, read.data) == (sio_packet.ACK, ack_id, [answer])


@given(names, json_values, st.one_of(st.none(), st.integers(0, 10**15 - 1)))
def test_an_event_socketio_writes_is_the_event_we_read(
    event: str, data: Any, ack_id: int | None
) -> None:
    written = sio_packet.Packet(sio_packet.EVENT, data=[event, data], id=ack_id).encode()
    assert wire.read_event(written) == ("" if ack_id is None else str(ack_id), event, data)


@given(names, st.one_of(st.none(), st.integers(0, 10**15 - 1)))
def test_an_event_without_an_argument_reads_as_none(event: str, ack_id: int | None) -> None:
    written = sio_packet.Packet(sio_packet.EVENT, data=[event], id=ack_id).encode()
    assert wire.read_event(written) == ("" if ack_id is None else str(ack_id), event, None)


@pytest.mark.parametrize(
    "packet",
    [
        '2/other,["vote",{}]',  # another namespace
        '2["vote",{},{}]',  # two arguments
        '2["vote",{]',  # not JSON
        '2["Vote",{}]',  # not one of our names' shape
        '3["vote"]',  # an ack
        "2[" * 3000 + "]" * 3000,  # too deep
        '2["vote",' + "[" * 3000 + "]" * 3000 + "]",
    ],
)
def test_what_we_do_not_read_is_left_to_the_general_reader(packet: str) -> None:
    assert wire.read_event(packet) is None


@pytest.mark.parametrize(
    ("frame", "ok"),
    [
        ("3", True),
        ("1", True),
        ('42["vote",{}]', True),
        ("40{}", True),
        ("2", False),  # a ping: the server pings, clients pong
        ("4", False),  # a message with no Socket.IO packet
        ("4[1]", False),  # a bare JSON value for Engine.IO to parse
        ("x", False),
        ("", False),
        (b"\x00", False),
        (None, False),
    ],
)
def test_only_frames_of_the_kinds_clients_send_are_well_formed(frame: Any, ok: bool) -> None:
    assert wire.well_formed(frame) is ok


def test_the_ack_id_is_read_without_reading_the_event() -> None:
    assert wire.ack_id_of('4217["vote",{"case":') == "17"
    assert wire.ack_id_of('42["vote",{}]') is None
    assert wire.ack_id_of("3") is None


def test_frames_follow_rfc_6455() -> None:
    # §5.7: a single-frame unmasked text message "Hello".
    assert wire.websocket_frame(b"Hello") == bytes([0x81, 0x05]) + b"Hello"
    # 126..65535 bytes: a 16-bit length; more: a 64-bit one.
    assert wire.websocket_frame(b"x" * 256)[:4] == bytes([0x81, 0x7E, 0x01, 0x00])
    big = wire.websocket_frame(b"x" * 65536)
    assert big[:2] == bytes([0x81, 0x7F]) and struct.unpack("!Q", big[2:10]) == (65536,)
    assert wire.websocket_frame(b"x" * 125)[1] == 125 and wire.websocket_frame(b"x" * 126)[1] == 126


def test_a_message_is_one_engineio_message_in_one_frame() -> None:
    message = wire.Message("delta", {"base": 1, "version": 2, "text": "Grüße"})
    assert message.text == wire.event_packet("delta", {"base": 1, "version": 2, "text": "Grüße"})
    payload = message.frame[2:]
    assert payload.decode() == "4" + message.text
    read = sio_packet.Packet(encoded_packet=payload.decode()[1:])
    assert read.data == ["delta", {"base": 1, "version": 2, "text": "Grüße"}]
