"""The client's frames read by server.sio.framing itself (whole masked text frames) against
websockets reading every frame: the app hears the same messages, in the same order, and the
client is written the same bytes (pongs, closes, refusals), however the stream is cut up and
whatever it holds (control frames between messages, fragments, binary frames, frames too
large, unmasked or with extension bits, invalid UTF-8)."""

from __future__ import annotations

import asyncio
import itertools
import os
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from uvicorn.config import Config
from uvicorn.server import ServerState
from websockets.server import ServerProtocol

from server.sio import framing
from server.sio.framing import FramingProtocol, HeaderDeadline
from tests.test_upgrade import Transport, request, stop_timers, without_date


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    mask: bytes | None = b"\x00\x00\x00\x00",
    rsv: int = 0,
) -> bytes:
    """A client's frame as RFC 6455 §5.2 lays it out (`mask` None: unmasked)."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    flag = 0x80 if mask is not None else 0
    size = len(payload)
    if size < 126:
        head += bytes([flag | size])
    elif size < 1 << 16:
        head += bytes([flag | 126]) + struct.pack("!H", size)
    else:
        head += bytes([flag | 127]) + struct.pack("!Q", size)
    if mask is None:
        return head + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def run(pieces: list[bytes], *, own: bool, max_size: int, early: bytes = b"") -> tuple[Any, ...]:
    """A connection upgraded (read by server.sio.framing if `own`, else by websockets), then
    sent `pieces` one by one: the app's messages, what the client was written after the
    handshake, whether the connection was closed, and whether server.sio.framing read frames
    itself at the start. `early`: sent before the app has accepted the WebSocket."""
    heard: list[Any] = []  # the app's messages, then how uvicorn failed (if it did)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            heard.append(message)
            if message["type"] == "websocket.disconnect":
                return

    async def go() -> tuple[Any, ...]:
        config = Config(
            app=app, ws=FramingProtocol, http=HeaderDeadline, log_config=None, ws_max_size=max_size
        )
        config.load()
        transport = Transport()
        http = HeaderDeadline(config=config, server_state=ServerState(), app_state={})
        http.connection_made(transport)
        original = framing.parsed_request
        if not own:
            framing.parsed_request = lambda scope, target: None
        try:
            http.data_received(request())
        finally:
            framing.parsed_request = original
        ws = transport.protocol
        reading_own = ws.own_frames
        failures: list[str] = []

        def send(data: bytes) -> None:
            try:
                ws.data_received(data)
            except Exception as exc:  # (uvicorn fails on some frames sent this early)
                failures.append(type(exc).__name__)

        if early:
            send(early)
        for _ in range(10):
            await asyncio.sleep(0)
        end = transport.written.find(b"\r\n\r\n")
        handshake = 0 if end < 0 else end + 4  # (none answered: all that is written counts)
        for piece in pieces:
            if piece:
                send(piece)
            await asyncio.sleep(0)
        for _ in range(10):
            await asyncio.sleep(0)
        stop_timers(ws)
        for task in list(ws.tasks):
            task.cancel()
        heard.extend(failures)
        # (An HTTP refusal, written when a frame came too early, has a Date: left out.)
        written = without_date(bytes(transport.written[handshake:]))
        return heard, written, transport.closed, reading_own

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(go())
    finally:
        loop.close()


masks = st.binary(min_size=4, max_size=4)
texts = st.text(max_size=40) | st.builds(lambda n: "ä" * n, st.integers(60, 200))
# What clients send: text messages, pings, pongs, a close.
plain = st.one_of(
    st.builds(lambda t, m: frame(1, t.encode(), mask=m), texts, masks),
    st.builds(lambda p, m: frame(9, p, mask=m), st.binary(max_size=8), masks),
    st.builds(lambda p, m: frame(10, p, mask=m), st.binary(max_size=8), masks),
    st.builds(lambda m: frame(8, struct.pack("!H", 1000) + b"bye", mask=m), masks),
)
# What goes websockets' way (or is refused by it).
other = st.one_of(
    st.builds(lambda p, m: frame(2, p, mask=m), st.binary(max_size=8), masks),
    st.builds(
        lambda a, b, m: frame(1, a.encode(), fin=False, mask=m) + frame(0, b.encode(), mask=m),
        texts,
        texts,
        masks,
    ),
    st.builds(lambda m: frame(1, b"\xff\xfe", mask=m), masks),  # not UTF-8
    st.builds(lambda t: frame(1, t.encode(), mask=None), texts),  # unmasked
    st.builds(lambda t, m: frame(1, t.encode(), mask=m, rsv=4), texts, masks),  # RSV1
    st.builds(lambda m: frame(9, b"x" * 126, mask=m), masks),  # a control frame too long
    st.builds(lambda m: frame(1, b"y" * 70_000, mask=m), masks),  # a 64-bit length
)
sizes = st.sampled_from([1 << 20, 100])


def cut(raw: bytes, at: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(at)), len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(plain | plain | other, max_size=8),
    cuts=st.lists(st.integers(0, 400), max_size=6),
    max_size=sizes,
)
def test_the_app_hears_and_the_client_is_told_what_websockets_would_have(
    frames: list[bytes], cuts: list[int], max_size: int
) -> None:
    # Cut at every frame's end too: given a valid frame and a refused one in one piece,
    # uvicorn closes the connection without passing on the valid one, so with the refused
    # one handed to it, what it passes on would depend on where the pieces end.
    ends = [sum(map(len, frames[: i + 1])) for i in range(len(frames))]
    pieces = cut(b"".join(frames), cuts + ends)
    own = run(pieces, own=True, max_size=max_size)
    stock = run(pieces, own=False, max_size=max_size)
    assert own[3] and not stock[3]
    assert own[:3] == stock[:3]


@settings(max_examples=100, deadline=None)
@given(early=plain | other, frames=st.lists(plain, max_size=3))
def test_frames_sent_before_the_handshake_is_answered_are_read_as_websockets_reads_them(
    early: bytes, frames: list[bytes]
) -> None:
    own = run(frames, own=True, max_size=1 << 20, early=early)
    stock = run(frames, own=False, max_size=1 << 20, early=early)
    assert own[:3] == stock[:3]


@settings(max_examples=200, deadline=None)
@given(frames=st.lists(plain, max_size=8), cuts=st.lists(st.integers(0, 400), max_size=6))
def test_what_clients_send_reads_the_same_in_pieces_of_any_size(
    frames: list[bytes], cuts: list[int]
) -> None:
    own = run(cut(b"".join(frames), cuts), own=True, max_size=1 << 20)
    stock = run(frames, own=False, max_size=1 << 20)
    assert own[:3] == stock[:3]


def test_a_byte_at_a_time_reads_as_one_piece() -> None:
    messages = ["40", '42["vote",{"case":"realtime","score":3}]', "3", "é" * 300, ""]
    raw = b"".join(frame(1, m.encode(), mask=os.urandom(4)) for m in messages)
    whole = run([raw], own=True, max_size=1 << 20)
    trickled = run([raw[i : i + 1] for i in range(len(raw))], own=True, max_size=1 << 20)
    assert [m.get("text") for m in whole[0]] == messages
    assert trickled[:3] == whole[:3]
    assert not whole[1] and not whole[2]  # nothing written back, still open


def test_a_ping_between_messages_is_answered_and_reading_goes_on_here() -> None:
    raw = frame(1, b"40") + frame(9, b"hi") + frame(1, b"3")
    heard, written, closed, _ = run([raw[:3], raw[3:]], own=True, max_size=1 << 20)
    assert [m.get("text") for m in heard] == ["40", "3"]
    assert written == b"\x8a\x02hi"  # the pong, from websockets
    assert not closed


def test_websockets_limit_on_a_message_is_found_whatever_its_version_calls_it() -> None:
    # websockets 13 keeps it as `max_size`, later ones as `max_message_size`: a frame it
    # would refuse must not be read here.
    for size in (100, 1 << 20):
        conn = ServerProtocol(max_size=size)
        assert framing.own_frame_limit(conn) == min(size, framing.OWN_FRAME_LIMIT)
    assert framing.own_frame_limit(ServerProtocol(max_size=None)) == framing.OWN_FRAME_LIMIT
