"""The front door (server.sio.gate): only the contract's events get in, malformed packets get out.

Each test is an attack that worked before the gate existed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
import websockets

from server.sio.gate import RoomsBySid
from tests.live import LiveServer, create_session, facilitate, join, live_server, raw_socket

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[LiveServer]:
    """Ten events a second per socket, and few connections per address."""
    env = {"STACKVOTE_LIMIT_EVENTS": "10/second;600/minute", "STACKVOTE_LIMIT_CONNECTS": "5/minute"}
    with live_server(tmp_path, env) as running:
        yield running


def people(server: LiveServer, session_id: str) -> list[dict[str, Any]]:
    state = httpx.get(f"{server.url}/api/sessions/{session_id}").json()
    found: list[dict[str, Any]] = state["participants"]
    return found


async def test_emitting_connect_does_not_run_the_join_code(strict: LiveServer) -> None:
    created = create_session(strict.url)
    eve = await join(strict.url, {"session": created["id"], "name": "Eve"})
    # The attack: an event named `connect`, with a made-up environ and auth, used to reach the
    # namespace's on_connect and add a person per event, from an address of Eve's choosing.
    environ = {"asgi.scope": {"client": ["203.0.113.9", 1]}}
    acks = [
        await eve.call("connect", (environ, {"session": created["id"], "name": f"Fake {n}"}))
        for n in range(8)
    ]
    assert all(ack["ok"] is False and ack["error"] for ack in acks)
    assert [p["name"] for p in people(strict, created["id"])] == ["Eve"]
    await eve.client.disconnect()
    await asyncio.sleep(0.3)
    assert [p["online"] for p in people(strict, created["id"])] == [False]
    assert "Traceback" not in strict.log()


async def test_emitting_disconnect_neither_leaves_nor_resets_the_event_limit(
    strict: LiveServer,
) -> None:
    created = create_session(strict.url)
    fay = await facilitate(strict.url, created)
    await fay.control("open_all")
    await asyncio.sleep(1.2)  # a full bucket of ten events
    accepted = 0
    for n in range(40):
        if n % 5 == 4:
            # Before the gate, this ran the leave code, which forgot the socket's event limit.
            await fay.call("disconnect", "client namespace disconnect")
            continue
        ack = await fay.vote("realtime", n % 5)
        accepted += ack["ok"]
    # 10 in the bucket, plus what refills while the loop runs (well under a second here).
    assert accepted <= 15
    assert people(strict, created["id"])[0]["online"] is True
    await fay.client.disconnect()


async def test_unknown_events_are_refused_and_charged_to_the_sender(strict: LiveServer) -> None:
    created = create_session(strict.url)
    fay = await facilitate(strict.url, created)
    await fay.control("open_all")
    await asyncio.sleep(1.2)
    acks = [await fay.call(name, {}) for name in ["boom", "__proto__", "connect_error"] * 5]
    assert all(ack["ok"] is False for ack in acks)
    assert "does not know that event" in acks[0]["error"]
    assert any("too much too fast" in ack["error"] for ack in acks)
    # The unknown events used up the socket's allowance: a vote now waits too.
    vote = await fay.vote("realtime", 2)
    assert vote["ok"] is False and "too much too fast" in vote["error"]
    await fay.client.disconnect()


@pytest.mark.parametrize(
    "frame",
    [
        "42[",  # a Socket.IO event that is not JSON
        '42{"not": "a list"}',  # an event without a name
        "42[" * 3000,  # too deep to decode
        "43[1]",  # an ack, which clients are never asked for
        '451-["vote",{"_placeholder":true,"num":0}]',  # binary attachments
        "x",  # not an Engine.IO packet at all
        "4[[[[[[",  # a bare JSON message Engine.IO would try to parse
        b"\x00\x01",  # a binary frame
    ],
    ids=["bad-json", "no-name", "deep", "ack", "binary-event", "garbage", "eio-json", "binary"],
)
async def test_malformed_packets_are_dropped_and_a_repeat_offender_is_closed(
    server: LiveServer, frame: str | bytes
) -> None:
    created = create_session(server.url)
    size_before = len(server.log())
    async with raw_socket(server.url) as raw:
        assert (await raw.join({"session": created["id"], "name": "Mallory"})).startswith("40")
        for _ in range(2):
            await raw.send(frame)
        # Two are forgiven: the connection still answers.
        await raw.send('423["sync"]')
        while not (answer := await raw.recv()).startswith("433"):
            pass
        assert '"version"' in answer
        await raw.send(frame)
        assert await raw.closed()
    log = server.log()[size_before:]
    assert "Traceback" not in log
    assert len(log) < 2000, log


async def test_a_flood_of_bad_frames_ends_the_connection_and_barely_touches_the_log(
    server: LiveServer,
) -> None:
    size_before = len(server.log())
    async with raw_socket(server.url) as raw:
        # A socket that never joined, sending as fast as it can.
        sent = 0
        try:
            for _ in range(5000):
                await raw.send("42[")
                sent += 1
        except websockets.ConnectionClosed:  # the server hung up mid-flood, as it should
            pass
        assert await raw.closed()
    log = server.log()[size_before:]
    assert "Traceback" not in log
    assert len(log) < 2000, f"{len(log)} bytes of log for {sent} frames"


async def test_an_event_with_too_many_arguments_is_answered_not_crashed(
    server: LiveServer,
) -> None:
    created = create_session(server.url)
    size_before = len(server.log())
    async with raw_socket(server.url) as raw:
        assert (await raw.join({"session": created["id"], "name": "Many"})).startswith("40")
        await raw.send('427["vote",{"case":"realtime","score":1},{"extra":true}]')
        while not (answer := await raw.recv()).startswith("437"):
            pass
        assert '"ok":false' in answer.replace(" ", "") and "one argument" in answer
    assert "Traceback" not in server.log()[size_before:]


async def test_a_client_that_stops_answering_pings_is_let_go(tmp_path: Path) -> None:
    env = {"STACKVOTE_PING_INTERVAL_SECONDS": "1", "STACKVOTE_PING_TIMEOUT_SECONDS": "1"}
    with live_server(tmp_path, env) as quick:
        created = create_session(quick.url)
        async with raw_socket(quick.url) as raw:
            assert (await raw.join({"session": created["id"], "name": "Gone"})).startswith("40")
            # Frames are read but pings never answered, as from a laptop that went to sleep.
            assert await raw.closed(timeout=6)
        await asyncio.sleep(0.3)
        assert [p["online"] for p in people(quick, created["id"])] == [False]


async def test_a_client_that_answers_its_pings_stays_and_keeps_being_pinged(
    tmp_path: Path,
) -> None:
    env = {"STACKVOTE_PING_INTERVAL_SECONDS": "1", "STACKVOTE_PING_TIMEOUT_SECONDS": "1"}
    with live_server(tmp_path, env) as quick:
        created = create_session(quick.url)
        async with raw_socket(quick.url) as raw:
            assert (await raw.join({"session": created["id"], "name": "Here"})).startswith("40")
            pings = 0
            async with asyncio.timeout(10):
                while pings < 4:  # each pong asks for the next ping: four cycles, answered
                    if await raw.ws.recv() == "2":
                        pings += 1
                        await raw.send("3")
            await raw.send('421["sync"]')
            while not (await raw.recv()).startswith("431"):
                pass
        assert "Traceback" not in quick.log()


async def test_reconnecting_on_the_same_connection_is_refused(server: LiveServer) -> None:
    created = create_session(server.url)
    async with raw_socket(server.url) as raw:
        assert (await raw.join({"session": created["id"], "name": "Twice"})).startswith("40")
        again = await raw.join({"session": created["id"], "name": "Thrice"})
        while not again.startswith("44"):
            again = await raw.recv()
    assert [p["name"] for p in people(server, created["id"])] == ["Twice"]


async def test_leaving_costs_what_the_client_was_in_not_the_whole_namespace() -> None:
    manager = RoomsBySid()
    manager.set_server(socketio.AsyncServer())
    for n in range(3):
        sid = await manager.pre_connect(f"e{n}", "/")
        await manager.connect(sid, "/")
        await manager.enter_room(sid, "/", "meeting")
    first = next(iter(manager.rooms["/"][None]))
    manager.basic_disconnect(first, "/")
    assert first not in manager.rooms["/"][None] and first not in manager.rooms["/"]["meeting"]
    assert first not in manager.rooms["/"]
    assert len(manager.rooms["/"]["meeting"]) == 2
    # The namespace's rooms are not even looked at: a huge one costs nothing to leave.
    manager.rooms["/"] = RaisingOnIteration(manager.rooms["/"])
    second = next(iter(manager.rooms["/"][None]))
    manager.basic_disconnect(second, "/")
    assert len(manager.rooms["/"]["meeting"]) == 1


class RaisingOnIteration(dict):  # type: ignore[type-arg]
    def copy(self) -> dict:  # type: ignore[type-arg]
        raise AssertionError("looked through every room")

    def items(self):  # type: ignore[no-untyped-def]
        raise AssertionError("looked through every room")
