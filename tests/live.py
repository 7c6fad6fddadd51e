"""Real parts for tests: a live stackvote server in a subprocess, and Socket.IO clients."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
import socketio
import websockets
from websockets.asyncio.client import connect as ws_connect

ROOT = Path(__file__).resolve().parent.parent

# Test clients all come from 127.0.0.1 and fire faster than people do; tests of the limits
# themselves pass their own.
GENEROUS_LIMITS = {
    "STACKVOTE_LIMIT_EVENTS": "1000/second",
    "STACKVOTE_LIMIT_FRAMES": "2000/second",
    "STACKVOTE_LIMIT_SYNCS": "1000/second",
    "STACKVOTE_LIMIT_SYNCS_PER_ADDRESS": "10000/second",
    # Every test client comes from 127.0.0.1.
    "STACKVOTE_MAX_CONNECTIONS_PER_ADDRESS": "100000",
    "STACKVOTE_LIMIT_CONNECTS": "10000/minute",
    "STACKVOTE_LIMIT_CREATES": "10000/minute",
    "STACKVOTE_LIMIT_JOIN_CODES": "10000/minute",
    "STACKVOTE_LIMIT_VALIDATIONS": "10000/minute",
}


def missing(part: str, reason: str) -> NoReturn:
    """A real part a test needs is not here: skip, or fail where STACKVOTE_REQUIRE_<PART>=1
    (CI sets it, so a missing browser, redis-server or proxy can never pass as a skip)."""
    if os.environ.get(f"STACKVOTE_REQUIRE_{part}") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def live_server(
    tmp_dir: Path,
    env: Mapping[str, str] | None = None,
    *args: str,
    host: str = "127.0.0.1",
    port: int | None = None,
) -> Iterator[LiveServer]:
    """Run `python -m server serve` on `host` and a free port (or `port`) until the block
    ends (with the built-in store in a data directory of its own, unless `env` says
    otherwise)."""
    port = port or free_port()
    log_path = tmp_dir / f"server-{host}-{port}.log"
    data = {"STACKVOTE_DATA_DIR": str(tmp_dir / f"data-{host}-{port}")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--host", host, "--port", str(port), *args],
            cwd=ROOT,
            env={**os.environ, **GENEROUS_LIMITS, **data, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://{host}:{port}", process, log_path)
    try:
        wait_ready(server)
        yield server
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen[bytes], grace: float = 15) -> None:
    """SIGTERM, and SIGKILL if it has not stopped after `grace` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(server: LiveServer, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server did not become ready:\n{server.log()}")


def create_session(base_url: str, **body: Any) -> dict[str, Any]:
    response = httpx.post(base_url + "/api/sessions", json={"title": "Test session", **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def apply_delta(state: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any] | None:
    """The state after `delta`, as SPEC §5 says a client applies one; None if it does not
    follow from `state` (its base is another version): the client must ask for a snapshot."""
    if delta["base"] != state["version"]:
        return None
    new = dict(state, version=delta["version"])
    if "session" in delta:
        new["session"] = delta["session"]
    if "recommendation" in delta:
        new["recommendation"] = delta["recommendation"]
    gone = set(delta.get("gone", ()))
    people = {p["id"]: p for p in delta.get("participants", ())}
    kept = [people.pop(p["id"], p) for p in state["participants"] if p["id"] not in gone]
    new["participants"] = kept + list(people.values())
    cases = {c["id"]: c for c in delta.get("cases", ())}
    new["cases"] = [cases.get(c["id"], c) for c in state["cases"]]
    return new


@dataclass
class Member:
    """A real Socket.IO client and everything the server told it."""

    client: socketio.AsyncClient
    welcome: dict[str, Any] = field(default_factory=dict)
    states: list[dict[str, Any]] = field(default_factory=list)
    refused: str | None = None
    # Other events, in order: ("status", {...}), ("delta", {...}).
    events: list[tuple[str, Any]] = field(default_factory=list)
    # Deltas that did not follow from the state at hand (each made the client ask for a sync).
    gaps: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def state(self) -> dict[str, Any]:
        return self.states[-1]

    @property
    def id(self) -> str:
        participant: str = self.welcome["participant_id"]
        return participant

    async def call(self, event: str, data: Any = None) -> Any:
        return await self.client.call(event, data, timeout=10)

    async def vote(self, case: str, score: int | None, **fields: Any) -> dict[str, Any]:
        ack: dict[str, Any] = await self.call("vote", {"case": case, "score": score, **fields})
        return ack

    async def control(self, action: str, case: str | None = None, **fields: Any) -> dict[str, Any]:
        """A facilitator's command; `fields`: the command's own (seconds, on, participant...)."""
        payload: dict[str, Any] = {"action": action, **fields}
        if case is not None:
            payload["case"] = case
        ack: dict[str, Any] = await self.call("control", payload)
        return ack

    async def until_event(self, name: str, timeout: float = 5.0) -> Any:
        """Wait for a server event recorded in `events` (e.g. "removed"), and return its data."""

        async def wait() -> Any:
            while True:
                for event, data in self.events:
                    if event == name:
                        return data
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    async def until(self, predicate: Any, timeout: float = 5.0) -> dict[str, Any]:
        """Wait for a snapshot that satisfies `predicate`, and return it."""

        async def wait() -> dict[str, Any]:
            while True:
                if self.states and predicate(self.state):
                    return self.state
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    async def until_version(self, version: int, timeout: float = 5.0) -> dict[str, Any]:
        return await self.until(lambda s: s["version"] >= version, timeout)

    async def until_advised(
        self, base_url: str, version: int, timeout: float = 5.0
    ) -> dict[str, Any]:
        """Wait for a snapshot at `version` or later holding the advice the server gives for
        the session now (worked out off the event loop, it may follow the reveal a moment
        later, in a delta of its own)."""
        await self.until_version(version, timeout)
        session = self.state["session"]["id"]
        async with httpx.AsyncClient(base_url=base_url) as http:
            public = (await http.get(f"/api/sessions/{session}")).json()
        expected = public["recommendation"]
        return await self.until(
            lambda s: s["version"] >= version and s["recommendation"] == expected, timeout
        )


async def facilitate(base_url: str, created: dict[str, Any], name: str = "Fay") -> Member:
    """Join a session as its facilitator, as the facilitator link does."""
    auth = {
        "session": created["id"],
        "name": name,
        "facilitator_token": created["facilitator_token"],
    }
    return await join(base_url, auth)


async def join(base_url: str, auth: dict[str, Any], *, refuse_ok: bool = False) -> Member:
    """Connect a client with `auth`; wait for its welcome and first snapshot."""
    client = socketio.AsyncClient(reconnection=False)
    member = Member(client)
    greeted = asyncio.Event()

    def on_welcome(data: dict[str, Any]) -> None:
        member.welcome = data

    def on_state(data: dict[str, Any]) -> None:
        if member.states and data["version"] <= member.state["version"]:
            return  # older than what we have
        member.states.append(data)
        member._changed.set()
        greeted.set()

    def on_error(data: Any) -> None:
        member.refused = data.get("message") if isinstance(data, dict) else str(data)

    async def on_delta(data: dict[str, Any]) -> None:
        # What the browser does: apply a delta that follows from our state; after a gap, ask
        # for a fresh snapshot.
        member.events.append(("delta", data))
        if not member.states:
            return
        applied = apply_delta(member.state, data)
        if applied is not None:
            # A delta may keep the version (the advice, worked out after the reveal).
            member.states.append(applied)
            member._changed.set()
            return
        if data["version"] <= member.state["version"]:
            return  # late
        member.gaps += 1
        fresh = await client.call("sync", timeout=10)
        if fresh.get("version", 0) > member.state["version"]:
            on_state(fresh)

    def on_event(name: str) -> Any:
        def record(data: Any = None) -> None:
            member.events.append((name, data))
            member._changed.set()

        return record

    client.on("status", on_event("status"))
    client.on("removed", on_event("removed"))
    client.on("role", on_event("role"))
    client.on("disconnect", on_event("disconnect"))
    client.on("delta", on_delta)
    client.on("welcome", on_welcome)
    client.on("state", on_state)
    client.on("connect_error", on_error)

    try:
        await client.connect(base_url, auth=auth, wait_timeout=10, transports=["websocket"])
    except socketio.exceptions.ConnectionError:
        if refuse_ok:
            return member
        raise AssertionError(f"connection refused: {member.refused}") from None
    await asyncio.wait_for(greeted.wait(), 10)
    return member


class RawSocket:
    """A bare WebSocket speaking Engine.IO and Socket.IO by hand, as an attacker would: it can
    send frames no well-behaved client library would produce."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def recv(self, timeout: float = 5.0) -> str:
        """The next frame that is not an Engine.IO ping (pings are answered)."""
        while True:
            frame = await asyncio.wait_for(self.ws.recv(), timeout)
            if frame == "2":
                await self.ws.send("3")
                continue
            return str(frame)

    async def join(self, auth: dict[str, Any]) -> str:
        """Connect to the namespace; the server's answer (40{...} or 44{...})."""
        await self.send("40" + json.dumps(auth))
        return await self.recv()

    async def closed(self, timeout: float = 5.0) -> bool:
        """Whether the server ends the connection within `timeout` (frames are read and
        dropped meanwhile)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.ws.recv()
        except websockets.ConnectionClosed:
            return True
        except TimeoutError:
            return False


@asynccontextmanager
async def raw_socket(base_url: str) -> AsyncIterator[RawSocket]:
    url = base_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    async with ws_connect(url, origin=websockets.Origin(base_url)) as ws:
        opening = await ws.recv()
        assert str(opening).startswith("0{"), opening
        yield RawSocket(ws)
