"""The HTTP protocol's header deadline (server.sio.framing.HeaderDeadline): a connection whose
request headers do not arrive in time is closed, one whose headers do is left alone, and each
request of a kept-alive connection gets its own deadline. The deadlines wait in one table per
event loop, looked at by one timer."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from server.sio import framing
from server.sio.framing import FramingProtocol, with_header_timeout
from tests.test_upgrade import Transport


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def connection(timeout: float) -> tuple[Any, Transport]:
    protocol_class = with_header_timeout(timeout)
    config = Config(app=app, ws=FramingProtocol, http=protocol_class, log_config=None)
    config.load()
    transport = Transport()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    protocol.connection_made(transport)
    return protocol, transport


async def test_unfinished_headers_are_cut_off_and_finished_ones_are_not() -> None:
    slow, slow_transport = connection(0.2)
    quick, quick_transport = connection(0.2)
    slow.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n")
    quick.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    table = framing._deadlines(asyncio.get_running_loop())
    assert slow in table.due and quick not in table.due
    await asyncio.sleep(0.5)
    assert slow_transport.closed
    assert not quick_transport.closed
    assert quick_transport.written.startswith(b"HTTP/1.1 204")
    assert slow not in table.due


async def test_each_request_of_a_kept_alive_connection_has_its_own_deadline() -> None:
    protocol, transport = connection(0.3)
    table = framing._deadlines(asyncio.get_running_loop())
    for _ in range(3):
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert protocol not in table.due
        await asyncio.sleep(0.2)  # the response goes out; the next request comes in time
    assert not transport.closed
    protocol.data_received(b"GET / HTTP/1.1\r\n")  # and this one's headers never end
    assert protocol in table.due
    await asyncio.sleep(0.6)
    assert transport.closed


async def test_a_connection_that_goes_away_leaves_no_deadline_behind() -> None:
    protocol, _ = connection(5)
    table = framing._deadlines(asyncio.get_running_loop())
    assert protocol in table.due
    protocol.connection_lost(None)
    assert protocol not in table.due
