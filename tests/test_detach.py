"""A WebSocket served from a task of its own (server.sio.framing's `detach`): once a client is
connected, the ASGI calls that led to its read loop have returned, and what they did after it
is still done: the connection is forgotten and closed when it ends, and uvicorn's shutdown
waits for it. Run in this process, under uvicorn, so the server's objects can be looked at."""

from __future__ import annotations

import asyncio
import contextlib

import websockets

from tests.inprocess import closing_code, create_session, running, seated, tasks_running, until


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
