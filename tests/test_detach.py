"""A WebSocket served from a task of its own (server.sio.framing's `detach`): once a client is
connected, the ASGI calls that led to its read loop have returned, and what they did after it
is still done: the connection is forgotten and closed when it ends, and uvicorn's shutdown
waits for it. Run in this process, under uvicorn, so the server's objects can be looked at."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
import websockets
from websockets.asyncio.client import connect as ws_connect

from server.app import create_app
from server.serve import uvicorn_options
from server.settings import Settings
from tests.live import create_session, free_port


def socketio_server(app: Any) -> Any:
    """The Socket.IO server inside the app's middleware."""
    while not hasattr(app, "engineio_server"):
        app = app.app
    return app.engineio_server


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[tuple[str, Any, uvicorn.Server]]:
    port = free_port()
    settings = Settings(
        redis_url="memory://",
        limit_creates="1000/minute",
        limit_connects="1000/minute",
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
    app = create_app(settings)
    # As `stackvote serve` runs it, in this process.
    config = uvicorn.Config(app, **uvicorn_options(settings, "auto"))
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", socketio_server(app), server
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 20)


async def seated(url: str, session: str, name: str) -> Any:
    ws = await ws_connect(
        url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket",
        origin=websockets.Origin(url),
    )
    assert str(await ws.recv()).startswith("0")  # Engine.IO's open
    await ws.send("40" + json.dumps({"session": session, "name": name}))
    assert str(await ws.recv()).startswith("40")  # Socket.IO's connect
    return ws


async def closing_code(client: Any) -> int | None:
    """Read until the server closes the connection: the code it gave."""
    try:
        async with asyncio.timeout(10):
            while True:
                await client.recv()
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


def tasks_running(name: str) -> int:
    return sum(1 for t in asyncio.all_tasks() if name in getattr(t.get_coro(), "__qualname__", ""))


async def until(predicate: Any, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_a_connected_client_holds_one_task_and_no_asgi_call() -> None:
    async with running() as (url, gate, _):
        assert gate.fast, "the fast path runs here (test_internals says why not)"
        session = await asyncio.to_thread(create_session, url)
        clients = [await seated(url, session["id"], f"P{n}") for n in range(12)]
        # Each client's read loop runs in a task of its own; no ASGI call is waiting on it.
        await until(lambda: tasks_running("serve_detached") == 12)
        assert tasks_running("run_asgi") == 0
        assert len(gate.eio.sockets) == len(gate.websockets) == 12

        # They still talk both ways.
        await clients[0].send('421["sync"]')
        async with asyncio.timeout(5):
            while not str(await clients[0].recv()).startswith("431"):
                pass  # the welcome, the first snapshot, the others' arrival

        # Leaving: forgotten by Engine.IO and by the gate, the task gone, the socket closed.
        for client in clients[:8]:
            await client.close()
        await until(lambda: len(gate.eio.sockets) == 4 and len(gate.websockets) == 4)
        await until(lambda: tasks_running("serve_detached") == 4)
        for client in clients[8:]:
            await client.close()
        await until(lambda: not gate.eio.sockets and tasks_running("serve_detached") == 0)


async def test_shutdown_waits_for_the_detached_connections_and_closes_them() -> None:
    async with running() as (url, _, server):
        session = await asyncio.to_thread(create_session, url)
        clients = [await seated(url, session["id"], f"P{n}") for n in range(3)]
        server.should_exit = True  # as SIGTERM does
        for client in clients:
            # Each is told the server is going away (1012), rather than cut off.
            assert await closing_code(client) == 1012
        await until(lambda: tasks_running("serve_detached") == 0, timeout=10)


async def test_a_server_side_end_closes_the_connection() -> None:
    """The server ends a connection itself (here: a frame Engine.IO cannot read, repeated):
    the detached task ends and the client sees the socket closed."""
    async with running() as (url, gate, _):
        session = await asyncio.to_thread(create_session, url)
        client = await seated(url, session["id"], "P")
        with contextlib.suppress(websockets.ConnectionClosed):
            for _ in range(20):
                await client.send("x")
        assert await closing_code(client) == 1008  # policy violation: malformed frames
        await until(lambda: not gate.eio.sockets and tasks_running("serve_detached") == 0)
