"""One client against everyone: each attack that once hurt other people's sessions, done with a
raw WebSocket (or socket) as an attacker would, while a voter in another session keeps voting.

bench/attacks.py runs the same attacks at full size and measures what the voter feels; these
tests check the outcomes: the attacker is refused or let go, and everyone else is answered.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

from server.settings import Settings
from tests.live import LiveServer, Member, create_session, facilitate, join, live_server, raw_socket

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# The defaults of a real install for what these tests probe (tests/live.py lifts them).
DEFAULTS = {
    f"STACKVOTE_{name.upper()}": str(getattr(Settings(), name))
    for name in ("limit_events", "limit_frames", "limit_syncs", "limit_syncs_per_address")
}


@pytest.fixture
def defaults(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path, DEFAULTS) as running:
        yield running


async def probe(server: LiveServer) -> Member:
    """A facilitator in a session of their own, with a question open to vote on."""
    fay = await facilitate(server.url, create_session(server.url), name="Probe")
    assert (await fay.control("open", "realtime"))["ok"]
    return fay


async def keep_voting(member: Member, until: asyncio.Event) -> list[dict[str, Any]]:
    acks = []
    score = 0
    while not until.is_set():
        score = (score + 1) % 5
        acks.append(await member.vote("realtime", score))
        await asyncio.sleep(0.1)  # within the event limit
    return acks


async def flood_until_closed(raw: Any, frame: str, most: int) -> int:
    """Send `frame` up to `most` times, as fast as the socket takes them; how many went."""
    sent = 0
    try:
        while sent < most:
            await raw.send(frame)
            sent += 1
    except websockets.ConnectionClosed:
        pass
    return sent


@pytest.mark.parametrize(
    "frame",
    ["3", '42["nope"]', '4299["nope",{}]', '42["vote",{"case":"realtime","score":1}]'],
    ids=["pongs", "unknown-events", "unknown-events-with-acks", "votes-without-acks"],
)
async def test_a_flooding_socket_is_closed_and_others_are_answered(
    defaults: LiveServer, frame: str
) -> None:
    fay = await probe(defaults)
    created = create_session(defaults.url)
    done = asyncio.Event()
    voting = asyncio.ensure_future(keep_voting(fay, done))
    async with raw_socket(defaults.url) as raw:
        assert (await raw.join({"session": created["id"], "name": "Mallory"})).startswith("40")
        sent = await flood_until_closed(raw, frame, 50_000)
        assert sent < 50_000 or await raw.closed(timeout=10), "the flooding socket stayed open"
    done.set()
    acks = await voting
    assert acks and all(a["ok"] for a in acks), [a for a in acks if not a["ok"]]
    assert "Traceback" not in defaults.log()
    await fay.client.disconnect()


async def test_frames_over_the_budget_are_answered_not_counted(defaults: LiveServer) -> None:
    created = create_session(defaults.url)
    fay = await facilitate(defaults.url, created)
    await fay.control("open", "realtime")
    async with raw_socket(defaults.url) as raw:
        assert (await raw.join({"session": created["id"], "name": "Quick"})).startswith("40")
        for n in range(60):  # twice the frame budget at once
            await raw.send(f'42{n}["vote",{{"case":"realtime","score":{n % 5}}}]')
        answers: dict[int, dict[str, Any]] = {}
        while len(answers) < 60:
            frame = await raw.recv()
            found = re.match(r"43(\d+)\[(.*)\]$", frame)
            if found:
                answers[int(found.group(1))] = json.loads(found.group(2))
        refused = [a for a in answers.values() if not a["ok"]]
        assert refused and all(a["retry"] and "too much too fast" in a["error"] for a in refused)
        last_counted = max(n for n, a in answers.items() if a["ok"])
    state = httpx.get(f"{defaults.url}/api/sessions/{created['id']}").json()
    assert next(c for c in state["cases"] if c["id"] == "realtime")["votes_in"] == 1
    del last_counted
    await fay.client.disconnect()


async def test_a_snapshot_is_built_once_for_everyone_who_asks(server: LiveServer) -> None:
    created = create_session(server.url)
    members = [
        await join(server.url, {"session": created["id"], "name": f"P{n}"}) for n in range(8)
    ]
    await asyncio.sleep(0.3)  # every newcomer's snapshot has gone out

    def built() -> float:
        text = httpx.get(server.url + "/metrics").text
        found = re.search(r"^stackvote_snapshots_built_total (\S+)$", text, re.M)
        assert found is not None, "the metric is missing"
        return float(found.group(1))

    before = built()
    answers = await asyncio.gather(*(m.call("sync") for m in members for _ in range(3)))
    assert len({json.dumps(a, sort_keys=True) for a in answers}) == 1
    assert built() - before <= 1
    for member in members:
        await member.client.disconnect()


@asynccontextmanager
async def unread_socket(server: LiveServer) -> AsyncIterator[Any]:
    """A WebSocket whose client reads (almost) nothing: a tiny receive buffer, reading paused."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
    url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    async with ws_connect(url, sock=sock, origin=websockets.Origin(server.url)) as ws:
        await ws.recv()
        yield ws


@pytest.mark.parametrize(
    "env",
    [
        {"STACKVOTE_MAX_BACKLOG_KB": "64"},
        # Each socket may hold a lot, but all of them together may not.
        {"STACKVOTE_MAX_BACKLOG_KB": "1000000", "STACKVOTE_MAX_BACKLOG_TOTAL_MB": "1"},
    ],
    ids=["its-own-limit", "everyones-limit"],
)
async def test_a_client_that_asks_and_never_reads_is_let_go_and_comes_back(
    tmp_path: Path, env: dict[str, str]
) -> None:
    with live_server(tmp_path, env) as server:
        created = create_session(server.url)
        for n in range(60):  # a room whose snapshot is worth asking for
            person = await join(server.url, {"session": created["id"], "name": f"Person {n:02}"})
            await person.client.disconnect()
        async with unread_socket(server) as ws:
            await ws.send("40" + json.dumps({"session": created["id"], "name": "Hoarder"}))
            while not str(await ws.recv()).startswith("40"):
                pass
            token = None
            while token is None:
                frame = str(await ws.recv())
                if frame.startswith('42["welcome"'):
                    token = json.loads(frame[2:])[1]["token"]
            ws.transport.pause_reading()
            closed = False
            try:
                for n in range(5000):
                    await ws.send(f'42{n}["sync"]')
                    if n % 50 == 0:
                        await asyncio.sleep(0.01)
            except websockets.ConnectionClosed:
                closed = True
            if not closed:
                ws.transport.resume_reading()
                closed = await until_closed(ws, 10)
        assert closed, "a socket that never read kept being sent snapshots"
        assert "does not read what it is sent" in server.log()
        again = await join(server.url, {"session": created["id"], "token": token})
        assert again.welcome["token"] == token
        names = [
            p["name"]
            for p in httpx.get(f"{server.url}/api/sessions/{created['id']}").json()["participants"]
        ]
        assert names.count("Hoarder") == 1
        await again.client.disconnect()


async def until_closed(ws: Any, timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except websockets.ConnectionClosed:
        return True
    except TimeoutError:
        return False


async def test_a_websocket_that_never_joins_is_closed(tmp_path: Path) -> None:
    with live_server(tmp_path, {"STACKVOTE_CONNECT_WITHIN_SECONDS": "1"}) as server:
        async with raw_socket(server.url) as raw:
            assert await raw.closed(timeout=5)
        created = create_session(server.url)
        async with raw_socket(server.url) as raw:  # one that joins stays
            assert (await raw.join({"session": created["id"], "name": "Stays"})).startswith("40")
            assert not await raw.closed(timeout=2)


async def test_one_address_holds_a_bounded_number_of_websockets(tmp_path: Path) -> None:
    with live_server(tmp_path, {"STACKVOTE_MAX_CONNECTIONS_PER_ADDRESS": "5"}) as server:
        url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        held = [await ws_connect(url, origin=websockets.Origin(server.url)) for _ in range(5)]
        with pytest.raises(websockets.InvalidStatus) as refused:
            await ws_connect(url, origin=websockets.Origin(server.url))
        assert refused.value.response.status_code == 403
        await held[0].close()
        await asyncio.sleep(0.2)
        again = await ws_connect(url, origin=websockets.Origin(server.url))
        for ws in [again, *held[1:]]:
            await ws.close()


def recv_or_closed(conn: socket.socket) -> bytes:
    """What the server sends next; b"" once it has closed the connection, whether it closed
    it cleanly or reset it (a reset, when bytes it never read were still waiting, is the
    kernel's way of dropping a connection too)."""
    try:
        return conn.recv(100)
    except ConnectionResetError:
        return b""


def test_a_request_whose_headers_never_end_is_dropped(tmp_path: Path) -> None:
    with live_server(tmp_path, {"STACKVOTE_HEADER_TIMEOUT_SECONDS": "1"}) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            for _ in range(3):
                try:
                    slow.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    break
                try:
                    slow.settimeout(1)
                    if recv_or_closed(slow) == b"":
                        break
                except TimeoutError:
                    continue
            slow.settimeout(10)
            assert recv_or_closed(slow) == b"", "the server still waits for the headers"
        assert httpx.get(server.url + "/healthz").status_code == 200


def test_made_up_forwarded_addresses_change_nothing_by_default(tmp_path: Path) -> None:
    with live_server(tmp_path, {"STACKVOTE_LIMIT_CREATES": "3/minute"}) as server:
        statuses = [
            httpx.post(
                server.url + "/api/sessions",
                json={"title": "t"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            ).status_code
            for n in range(5)
        ]
    assert statuses == [201, 201, 201, 429, 429]
