"""The WebSocket upgrade hands the framing protocol the request uvicorn has parsed
(server.sio.framing's HeaderDeadline.handle_websocket_upgrade), instead of writing it out for
websockets to parse again. For any request, the client must get the same bytes and the app the
same scope as by uvicorn's own way; a request websockets would refuse or might read otherwise
goes that way."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from uvicorn.config import Config
from uvicorn.server import ServerState
from websockets import http11

from server.sio import framing
from server.sio.framing import FramingProtocol, HeaderDeadline


class Transport(asyncio.Transport):
    """A transport that keeps what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.protocol: Any = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data: Any) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def stop_timers(ws: Any) -> None:
    """Cancel a WebSocket protocol's close, ping and pong timers (the test is over)."""
    for name in ("close_timer", "ping_timer", "pong_timer"):
        timer = getattr(ws, name, None)
        if timer is not None:
            timer.cancel()


def without_date(written: bytes) -> bytes:
    """What was written, without the Date header lines of its HTTP answers."""
    return b"\r\n".join(
        line for line in written.split(b"\r\n") if not line.lower().startswith(b"date:")
    )


def exchange(raw: bytes, *, direct: bool) -> tuple[bytes, dict[str, Any] | None, bool, int]:
    """One connection sending `raw`, to an app that accepts its WebSocket: what the client was
    written (the Date header left out), the scope the app got (without the per-connection
    parts), whether the connection was closed, and how many requests went the direct way."""
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})

    async def run() -> tuple[bytes, dict[str, Any] | None, bool, int]:
        config = Config(app=app, ws=FramingProtocol, http=HeaderDeadline, log_config=None)
        config.load()
        transport = Transport()
        protocol = HeaderDeadline(config=config, server_state=ServerState(), app_state={})
        protocol.connection_made(transport)
        opened = 0
        original = FramingProtocol.open_parsed
        original_parsed = framing.parsed_request

        def counted(self: FramingProtocol, request: Any) -> None:
            nonlocal opened
            opened += 1
            original(self, request)

        FramingProtocol.open_parsed = counted  # type: ignore[method-assign]
        if not direct:
            framing.parsed_request = lambda scope, target: None
        try:
            protocol.data_received(raw)
            for _ in range(20):
                await asyncio.sleep(0)
        finally:
            FramingProtocol.open_parsed = original  # type: ignore[method-assign]
            framing.parsed_request = original_parsed
        ws = transport.protocol
        if ws is not None:
            stop_timers(ws)
        written = without_date(bytes(transport.written))
        scope = None
        if seen:
            scope = {k: v for k, v in seen[0].items() if k not in ("extensions", "state")}
        return written, scope, transport.closed, opened

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(run())
    finally:
        loop.close()


KEY = base64.b64encode(b"0123456789abcdef")


def request(
    target: bytes = b"/socket.io/?EIO=4&transport=websocket",
    extra: list[tuple[bytes, bytes]] | None = None,
    method: bytes = b"GET",
) -> bytes:
    headers = [
        (b"Host", b"127.0.0.1:8000"),
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Key", KEY),
        (b"Sec-WebSocket-Version", b"13"),
        *(extra or []),
    ]
    lines = [method + b" " + target + b" HTTP/1.1", *(n + b": " + v for n, v in headers)]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def test_a_plain_upgrade_goes_the_direct_way_and_is_answered_as_before() -> None:
    raw = request(extra=[(b"Origin", b"http://127.0.0.1:8000"), (b"Accept-Language", b"de")])
    direct = exchange(raw, direct=True)
    stock = exchange(raw, direct=False)
    assert direct[3] == 1 and stock[3] == 0
    assert direct[:3] == stock[:3]
    assert direct[0].startswith(b"HTTP/1.1 101 ")
    assert direct[1] is not None
    assert (b"accept-language", b"de") in direct[1]["headers"]
    assert direct[1]["query_string"] == b"EIO=4&transport=websocket"


@pytest.mark.parametrize("tls", [False, True])
def test_taking_over_a_connection_sets_what_uvicorn_s_connection_made_sets(tls: bool) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - not run
        pass

    async def run() -> None:
        config = Config(app=app, ws=FramingProtocol, http=HeaderDeadline, log_config=None)
        config.load()
        transport = Transport()
        if tls:
            transport.get_extra_info = lambda name, default=None: (  # type: ignore[method-assign]
                object() if name == "sslcontext" else Transport.get_extra_info(transport, name)
            )
        http = HeaderDeadline(config=config, server_state=ServerState(), app_state={})
        http.connection_made(transport)
        made = FramingProtocol(config=config, server_state=ServerState(), app_state={})
        made.connection_made(transport)
        taken = FramingProtocol(config=config, server_state=ServerState(), app_state={})
        taken.take_over(transport, http.server, http.client, http.scheme)
        mine, theirs = vars(taken), vars(made)
        assert mine.keys() == theirs.keys()
        for name in ("transport", "server", "client", "scheme"):
            assert mine[name] == theirs[name], name
        assert taken in taken.connections
        assert taken.scheme == ("wss" if tls else "ws")
        for name, value in theirs.items():
            if name not in ("conn", "queue", "writable", "connections", "tasks", "loop"):
                assert mine[name] == value or callable(value), name

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (request(method=b"POST"), "not GET"),
        (request(extra=[(b"Content-Length", b"5")]), "a body"),
        (request(extra=[(b"Content-Length", b"0")]), "a body of none (refused before 17)"),
        (request(extra=[(b"Transfer-Encoding", b"chunked")]), "a transfer coding"),
        (request(extra=[(b"X-N", b"%d" % n) for n in range(130)]), "too many headers"),
        (request(extra=[(b"X-Long", b"a" * http11.MAX_LINE_LENGTH)]), "a header too long"),
        (request(target=b"/socket.io/?" + b"a" * http11.MAX_LINE_LENGTH), "a target too long"),
        (request(target=b"/socket.io/?name=\xc3\xa9"), "a target not ASCII"),
    ],
)
def test_what_websockets_would_treat_otherwise_goes_its_way(raw: bytes, why: str) -> None:
    direct = exchange(raw, direct=True)
    stock = exchange(raw, direct=False)
    assert direct[3] == 0, why
    assert direct[:3] == stock[:3], why


@pytest.mark.parametrize(
    "extra",
    [
        [(b"Sec-WebSocket-Key", KEY)],  # twice
        [(b"Sec-WebSocket-Version", b"8")],
        [(b"Sec-WebSocket-Protocol", b"chat, superchat"), (b"Sec-WebSocket-Protocol", b"x")],
        [(b"Sec-WebSocket-Extensions", b"permessage-deflate; client_max_window_bits")],
        [(b"Origin", b"null"), (b"Cookie", b"a=1; b=2"), (b"X-Empty", b"")],
    ],
)
def test_a_handshake_websockets_answers_its_own_way_goes_direct_and_gets_that_answer(
    extra: list[tuple[bytes, bytes]],
) -> None:
    raw = request(extra=extra)
    direct = exchange(raw, direct=True)
    assert direct[3] == 1
    assert direct[:3] == exchange(raw, direct=False)[:3]


def test_latin_1_values_go_the_direct_way_and_reach_the_app_as_sent() -> None:
    raw = request(extra=[(b"X-Name", b"Gr\xfc\xdfe")])
    direct = exchange(raw, direct=True)
    assert direct[3] == 1
    assert direct[:3] == exchange(raw, direct=False)[:3]
    assert direct[1] is not None
    assert (b"x-name", b"Gr\xfc\xdfe") in direct[1]["headers"]


TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_0123456789!#$%&'*+.^`|~", min_size=1)
VALUE = st.binary(max_size=40).map(
    lambda b: bytes(c for c in b if c == 9 or 32 <= c <= 126 or c >= 128).strip(b" \t")
)


@given(
    target=st.text(alphabet=[chr(c) for c in range(33, 127)], max_size=60).map(
        lambda t: b"/" + t.encode()
    ),
    extra=st.lists(st.tuples(TOKEN.map(str.encode), VALUE), max_size=12),
    method=st.sampled_from([b"GET", b"GET", b"GET", b"POST", b"PUT"]),
)
def test_any_request_gets_the_same_answer_and_scope_either_way(
    target: bytes, extra: list[tuple[bytes, bytes]], method: bytes
) -> None:
    raw = request(target=target, extra=extra, method=method)
    direct = exchange(raw, direct=True)
    stock = exchange(raw, direct=False)
    assert direct[:3] == stock[:3]
