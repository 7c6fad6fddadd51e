"""A new WebSocket is opened by the gate itself (server.sio.gate's `_open_websocket`), not by
Engine.IO's request handling: the client sees the same handshake, the connection keeps what it
would have kept, and anything out of the ordinary still goes Engine.IO's way, refused or
answered as Engine.IO would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

from server import i18n
from tests.inprocess import create_session, running, seated, until


@contextmanager
def counting_engineio_requests(gate: Any) -> Iterator[list[str]]:
    """The query strings of the requests Engine.IO's own handling was given."""
    seen: list[str] = []
    original = gate.eio.handle_request

    async def handle_request(scope: Any, receive: Any, send: Any) -> Any:
        seen.append(scope.get("query_string", b"").decode("latin-1"))
        return await original(scope, receive, send)

    gate.eio.handle_request = handle_request
    try:
        yield seen
    finally:
        del gate.eio.handle_request


def ws_url(url: str, query: str) -> str:
    return url.replace("http://", "ws://") + "/socket.io/?" + query


async def test_a_new_websocket_gets_engineio_s_handshake_without_its_request_handling() -> None:
    async with running() as (url, gate, _):
        assert gate.fast, "the fast path runs here (test_internals says why not)"
        session = await asyncio.to_thread(create_session, url)
        with counting_engineio_requests(gate) as seen:
            ws = await ws_connect(
                ws_url(url, "EIO=4&transport=websocket"), origin=websockets.Origin(url)
            )
            opening = str(await ws.recv())
            assert opening[0] == "0"
            eio = gate.eio
            grace = eio.ping_interval_grace_period
            assert json.loads(opening[1:]) == {
                "sid": json.loads(opening[1:])["sid"],
                "upgrades": [],
                "pingTimeout": int(eio.ping_timeout * 1000),
                "pingInterval": int(eio.ping_interval + grace) * 1000,
                "maxPayload": eio.max_http_buffer_size,
            }
            eio_sid = json.loads(opening[1:])["sid"]
            assert set(eio.sockets) == {eio_sid}
            # Socket.IO's connect and an event, answered.
            await ws.send("40" + json.dumps({"session": session["id"], "name": "Ada"}))
            # The connect answer, as python-socketio encodes it: the Socket.IO session id only.
            answer = str(await ws.recv())
            assert answer.startswith('40{"sid":"') and answer.endswith('"}')
            sid = json.loads(answer[2:])["sid"]
            assert answer == "40" + json.dumps({"sid": sid}, separators=(",", ":"))
            assert gate.manager.eio_sid_from_sid(sid, "/") == eio_sid
            await ws.send('421["sync"]')
            async with asyncio.timeout(5):
                while not str(await ws.recv()).startswith("431"):
                    pass
            assert seen == []
            # What the connection keeps of its handshake: the ASGI scope and channels, and
            # its language, decided now.
            environ = gate.environ[eio_sid]
            assert set(environ) == {"asgi.scope", "asgi.receive", "asgi.send", i18n.ENVIRON_KEY}
            assert environ["asgi.scope"]["client"][0] == "127.0.0.1"
            await ws.close()
            await until(lambda: not eio.sockets and not gate.websockets)


@pytest.mark.parametrize(
    ("query", "headers", "language"),
    [
        ("lang=de", {}, "de"),
        ("", {"Accept-Language": "de-DE,de;q=0.9"}, "de"),
        ("", {"Cookie": "lang=de"}, "de"),
        ("", {}, "en"),
    ],
)
async def test_the_connection_keeps_the_language_its_handshake_asked_for(
    query: str, headers: dict[str, str], language: str
) -> None:
    async with running() as (url, gate, _):
        with counting_engineio_requests(gate) as seen:
            ws = await ws_connect(
                ws_url(url, "EIO=4&transport=websocket&" + query),
                origin=websockets.Origin(url),
                additional_headers=headers,
            )
            eio_sid = json.loads(str(await ws.recv())[1:])["sid"]
            assert gate.environ[eio_sid][i18n.ENVIRON_KEY] == language
            assert seen == []
            await ws.close()


@pytest.mark.parametrize(
    "query",
    [
        "EIO=3&transport=websocket",  # an Engine.IO version this server does not speak
        "transport=websocket",
        "EIO=4&EIO=4&transport=websocket",
        "EIO=4&transport=polling",  # not offered here
        "EIO=4&transport=websocket&sid=nobody",  # an upgrade of a session that is not there
    ],
)
async def test_an_unusual_handshake_is_left_to_engineio(query: str) -> None:
    async with running() as (url, gate, _):
        with counting_engineio_requests(gate) as seen:
            with pytest.raises(websockets.InvalidStatus):
                await ws_connect(ws_url(url, query), origin=websockets.Origin(url))
            assert seen == [query]
            assert not gate.eio.sockets


async def test_a_handshake_engineio_would_open_is_still_opened_when_left_to_it() -> None:
    async with running() as (url, gate, _):
        query = "EIO=4&transport=websocket&j=1"  # (a JSONP index: only polling uses it)
        with counting_engineio_requests(gate) as seen:
            ws = await ws_connect(ws_url(url, query), origin=websockets.Origin(url))
            assert str(await ws.recv()).startswith("0")
            assert seen == [query] and len(gate.eio.sockets) == 1
            await ws.close()
        await until(lambda: not gate.eio.sockets)


async def test_a_foreign_origin_is_refused_the_way_engineio_refuses_it() -> None:
    async with running() as (url, gate, _):
        with counting_engineio_requests(gate) as seen:
            with pytest.raises(websockets.InvalidStatus):
                await ws_connect(
                    ws_url(url, "EIO=4&transport=websocket"),
                    origin=websockets.Origin("https://elsewhere.example"),
                )
            assert seen == ["EIO=4&transport=websocket"]
        # No origin at all (not a browser): opened, as Engine.IO opens it.
        with counting_engineio_requests(gate) as seen:
            ws = await ws_connect(ws_url(url, "EIO=4&transport=websocket"))
            assert str(await ws.recv()).startswith("0")
            assert seen == []
            await ws.close()


async def test_a_repeated_header_is_left_to_engineio() -> None:
    async with running() as (url, gate, _):
        with counting_engineio_requests(gate) as seen:
            ws = await ws_connect(
                ws_url(url, "EIO=4&transport=websocket"),
                origin=websockets.Origin(url),
                additional_headers=[("Cookie", "a=1"), ("Cookie", "lang=de")],
            )
            assert str(await ws.recv()).startswith("0")
            assert seen == ["EIO=4&transport=websocket"]
            await ws.close()


async def test_many_clients_open_and_leave() -> None:
    async with running() as (url, gate, _):
        session = await asyncio.to_thread(create_session, url)
        with counting_engineio_requests(gate) as seen:
            clients = await asyncio.gather(
                *(seated(url, session["id"], f"P{n}") for n in range(30))
            )
            assert len(gate.eio.sockets) == 30 and seen == []
            await asyncio.gather(*(client.close() for client in clients))
        await until(lambda: not gate.eio.sockets and not gate.websockets)
