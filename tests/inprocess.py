"""The app as `stackvote serve` runs it, under uvicorn in the test's own process, so the
server's objects can be looked at while real clients talk to it over a socket."""

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

__all__ = ["closing_code", "create_session", "running", "seated", "tasks_running", "until"]


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
