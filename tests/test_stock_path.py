"""The stock path (server.sio.stock: python-socketio and uvicorn as they come) keeps the whole
contract: the live suite of tests/test_live.py and the gate's refusals run here again against a
server started with STACKVOTE_CONNECTIONS=stock, the path a library release that moved an
internal falls back to."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

from tests.live import LiveServer, create_session, join, live_server, raw_socket
from tests.test_live import *  # noqa: F403  (every test of the live suite, collected here too)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Overrides the session's live server for this module: the same app on the stock path."""
    env = {"STACKVOTE_CONNECTIONS": "stock"}
    # A folder whose name is not "stock": the log (which names the data file) must not say it.
    with live_server(Path(tmp_path_factory.mktemp("as-they-come")), env) as running:
        yield running


def test_the_stock_path_says_which_it_is_and_nothing_else(server: LiveServer) -> None:
    assert httpx.get(server.url + "/healthz").status_code == 200
    assert "stock" not in server.log()  # asked for: no warning
    assert "Traceback" not in server.log()


async def test_emitting_connect_or_disconnect_runs_none_of_the_join_code(
    server: LiveServer,
) -> None:
    created = create_session(server.url)
    eve = await join(server.url, {"session": created["id"], "name": "Eve"})
    environ = {"asgi.scope": {"client": ["203.0.113.9", 1]}}
    fake = await eve.call("connect", (environ, {"session": created["id"], "name": "Fake"}))
    gone = await eve.call("disconnect")
    unknown = await eve.call("nope", {})
    assert all(a["ok"] is False and a["error"] for a in (fake, gone, unknown))
    state = httpx.get(f"{server.url}/api/sessions/{created['id']}").json()
    assert [(p["name"], p["online"]) for p in state["participants"]] == [("Eve", True)]
    assert (await eve.call("sync"))["version"] >= 1
    await eve.client.disconnect()
    await asyncio.sleep(0.3)
    state = httpx.get(f"{server.url}/api/sessions/{created['id']}").json()
    assert [p["online"] for p in state["participants"]] == [False]


async def test_a_flooding_socket_is_closed_on_the_stock_path_too(server: LiveServer) -> None:
    created = create_session(server.url)
    async with raw_socket(server.url) as raw:
        assert (await raw.join({"session": created["id"], "name": "Mallory"})).startswith("40")
        sent = 0
        try:
            while sent < 50_000:
                await raw.send('42["nope"]')
                sent += 1
        except websockets.ConnectionClosed:
            pass
        assert sent < 50_000 or await raw.closed(timeout=10)
    assert "Traceback" not in server.log()


async def test_one_address_holds_a_bounded_number_of_websockets_on_the_stock_path_too(
    tmp_path: Path,
) -> None:
    env = {"STACKVOTE_CONNECTIONS": "stock", "STACKVOTE_MAX_CONNECTIONS_PER_ADDRESS": "3"}
    with live_server(tmp_path, env) as capped:
        url = capped.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        origin = websockets.Origin(capped.url)
        held = [await ws_connect(url, origin=origin) for _ in range(3)]
        with pytest.raises(websockets.InvalidStatus) as refused:
            await ws_connect(url, origin=origin)
        assert refused.value.response.status_code == 403
        await held[0].close()
        await asyncio.sleep(0.2)
        again = await ws_connect(url, origin=origin)
        for ws in [again, *held[1:]]:
            await ws.close()
