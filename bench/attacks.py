"""One client against everyone: each attack on a running `stackvote serve`, with a probe voter in
another session measuring what everybody else feels.

    python bench/attacks.py [--only pong,unknown,sync,unread,handshake,slowloris,forged]
                            [--seconds 10] [--room 1500]

The server runs with its default settings on core 0, this script on core 1 (`taskset`). For each
attack the probe votes every 250 ms (alternating scores) before and during it; printed per attack:
the probe's median and worst ack time before and during, whether every probe vote was answered
`ok`, whether (and how fast) the attacking sockets were closed, and the server's RSS. The
script's own CPU time is printed at the end. Correctness is checked in the same run: a probe vote
not answered `ok` is reported as a failure and the exit status is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import socketio  # noqa: E402
import websockets  # noqa: E402

from bench.procs import usage  # noqa: E402
from tests.live import free_port  # noqa: E402

ATTACKS = ("pong", "unknown", "sync", "unread", "handshake", "slowloris", "forged", "takeover")


@dataclass
class Probe:
    """A voter in a session of its own, voting every `every` seconds."""

    url: str
    every: float = 0.25  # 4 votes a second: within the per-connection event limit
    times: list[float] = field(default_factory=list)
    failures: list[Any] = field(default_factory=list)
    client: Any = None

    async def start(self) -> None:
        created = httpx.post(self.url + "/api/sessions", json={"title": "probe"}).json()
        self.client = socketio.AsyncClient(reconnection=False)
        auth = {
            "session": created["id"],
            "name": "Probe",
            "facilitator_token": created["facilitator_token"],
        }
        await self.client.connect(self.url, auth=auth, transports=["websocket"])
        ack = await self.client.call("control", {"action": "open", "case": "realtime"}, timeout=10)
        assert ack["ok"], ack

    async def run(self, seconds: float) -> list[float]:
        """Vote for `seconds`; the ack times (seconds) of this stretch."""
        times: list[float] = []
        end = time.monotonic() + seconds
        score = 0
        while time.monotonic() < end:
            score = (score + 1) % 5
            started = time.monotonic()
            try:
                ack = await self.client.call(
                    "vote", {"case": "realtime", "score": score}, timeout=10
                )
            except Exception as exc:  # no answer in 10 s
                self.failures.append(repr(exc))
                times.append(10.0)
                continue
            times.append(time.monotonic() - started)
            if not ack.get("ok"):
                self.failures.append(ack)
            await asyncio.sleep(self.every)
        return times


def summary(times: list[float]) -> str:
    if not times:
        return "no votes"
    return f"median {statistics.median(times) * 1000:7.1f} ms, worst {max(times) * 1000:7.1f} ms"


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"


async def raw_join(url: str, session: str, name: str, source: str | None = None) -> Any:
    """A bare WebSocket joined to `session` as `name` (waiting out the connect limit), from
    loopback address `source` if given."""
    local = {"local_addr": (source, 0)} if source else {}
    while True:
        ws = await websockets.connect(
            ws_url(url), origin=websockets.Origin(url), max_size=None, **local
        )
        await ws.recv()  # Engine.IO open
        await ws.send("40" + json.dumps({"session": session, "name": name}))
        while not (answer := str(await ws.recv())).startswith(("40", "44")):
            pass
        if answer.startswith("40"):
            return ws
        await ws.close()
        await asyncio.sleep(1)


async def until_closed(ws: Any, timeout: float) -> float | None:
    """Seconds until the server closed `ws` (frames read and dropped meanwhile), or None."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except websockets.ConnectionClosed:
        return time.monotonic() - started
    except TimeoutError:
        return None


async def flood(ws: Any, frame: str, seconds: float) -> tuple[int, float | None]:
    """Send `frame` as fast as the connection takes it; (frames sent, seconds until closed)."""
    sent, started = 0, time.monotonic()
    end = started + seconds
    try:
        while time.monotonic() < end:
            for _ in range(100):
                await ws.send(frame)
            sent += 100
            await asyncio.sleep(0)
    except websockets.ConnectionClosed:
        return sent, time.monotonic() - started
    closed = await until_closed(ws, 10)
    return sent, None if closed is None else closed + seconds


class Server:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "server.log"
        command = [sys.executable, "-m", "server", "serve", "--port", str(self.port)]
        if shutil.which("taskset"):
            command = ["taskset", "-c", "0", *command]
        # In memory: what is measured is the server, not a disk.
        env = {**os.environ, "STACKVOTE_LOG_LEVEL": "warning", "STACKVOTE_REDIS_URL": "memory://"}
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT
        )
        for _ in range(200):
            try:
                if httpx.get(self.url + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)

    def rss_mb(self) -> float:
        found = usage(self.process.pid)
        return found.rss / 2**20 if found else 0.0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


Attack = Callable[[Server, Probe, argparse.Namespace], Awaitable[str]]


async def pong(server: Server, probe: Probe, args: argparse.Namespace) -> str:
    created = httpx.post(server.url + "/api/sessions", json={"title": "attack"}).json()
    ws = await raw_join(server.url, created["id"], "Mallory")
    during, (sent, closed) = await asyncio.gather(
        probe.run(args.seconds), flood(ws, "3", args.seconds)
    )
    return f"{sent} pongs sent; attacker closed after {seconds(closed)}; probe {summary(during)}"


async def unknown(server: Server, probe: Probe, args: argparse.Namespace) -> str:
    created = httpx.post(server.url + "/api/sessions", json={"title": "attack"}).json()
    ws = await raw_join(server.url, created["id"], "Mallory")
    frame = '42["nope"]'
    during, (sent, closed) = await asyncio.gather(
        probe.run(args.seconds), flood(ws, frame, args.seconds)
    )
    return (
        f"{sent} unknown events; attacker closed after {seconds(closed)}; probe {summary(during)}"
    )


async def big_room(server: Server, people: int) -> str:
    created = httpx.post(server.url + "/api/sessions", json={"title": "big"}).json()
    # The room's people come from many loopback addresses (127.0.0.0/8 is all this machine),
    # as they would from many homes: each joins and leaves at once, keeping the participant.
    sem = asyncio.Semaphore(50)

    async def one(n: int) -> None:
        async with sem:
            source = f"127.0.{1 + n // 200}.{1 + n % 200}"
            ws = await raw_join(server.url, created["id"], f"Person {n}", source)
            await ws.close()

    await asyncio.gather(*(one(n) for n in range(people)))
    return str(created["id"])


async def sync(server: Server, probe: Probe, args: argparse.Namespace) -> str:
    # The room holds `--room` people: 60 of them ask for snapshots (its size is the limit).
    session = await big_room(server, args.room - 60)
    sockets = [await raw_join(server.url, session, f"Sync {n}") for n in range(60)]
    sent = 0

    async def ask(ws: Any) -> None:
        nonlocal sent
        end = time.monotonic() + args.seconds
        n = 0
        try:
            while time.monotonic() < end:
                n += 1
                await ws.send(f'42{n}["sync"]')
                sent += 1
                await asyncio.sleep(0.05)
                while True:  # read what came, so this is not the non-reading attack
                    try:
                        await asyncio.wait_for(ws.recv(), 0.001)
                    except TimeoutError:
                        break
        except websockets.ConnectionClosed:
            pass

    before = server.rss_mb()
    during, *_ = await asyncio.gather(probe.run(args.seconds), *(ask(ws) for ws in sockets))
    # A new browser must still get an answer (the room is full: a refusal is the answer).
    started = time.monotonic()
    ws = await websockets.connect(ws_url(server.url), origin=websockets.Origin(server.url))
    await ws.recv()
    await ws.send("40" + json.dumps({"session": session, "name": "Newcomer"}))
    while not str(await ws.recv()).startswith(("40", "44")):
        pass
    joined = time.monotonic() - started
    await ws.close()
    for s in sockets:
        await s.close()
    return (
        f"{sent} syncs asked by 60 sockets ({args.room} people); a newcomer answered in "
        f"{joined * 1000:.0f} ms; RSS {before:.0f} -> {server.rss_mb():.0f} MB; "
        f"probe {summary(during)}"
    )


async def unread(server: Server, probe: Probe, args: argparse.Namespace) -> str:
    session = await big_room(server, args.room - 5)
    before = server.rss_mb()
    peak = before
    closed: list[float | None] = []

    async def ask(n: int) -> None:
        # A socket that asks for snapshots within its limit and never reads what it is sent.
        ws = await raw_join(server.url, session, f"Unread {n}")
        started = time.monotonic()
        ws.transport.pause_reading()
        end = started + args.seconds * 3
        k = 0
        try:
            while time.monotonic() < end:
                k += 1
                await ws.send(f'42{k}["sync"]')
                await ws.send("3")
                await asyncio.sleep(2.0)
        except websockets.ConnectionClosed:
            closed.append(time.monotonic() - started)
            return
        closed.append(None)

    async def watch() -> None:
        nonlocal peak
        end = time.monotonic() + args.seconds * 3
        while time.monotonic() < end:
            peak = max(peak, server.rss_mb())
            await asyncio.sleep(0.5)

    during, *_ = await asyncio.gather(
        probe.run(args.seconds * 3), watch(), *(ask(n) for n in range(5))
    )
    shut = [c for c in closed if c is not None]
    return (
        f"5 non-reading sockets: {len(shut)} closed "
        f"(after {', '.join(f'{c:.1f}' for c in shut)} s); "
        f"RSS {before:.0f} MB, peak {peak:.0f} MB (+{peak - before:.0f}); probe {summary(during)}"
    )


async def handshake(server: Server, probe: Probe, args: argparse.Namespace) -> str:
    count = 2000
    opened: list[Any] = []
    refused = 0

    async def one() -> None:
        nonlocal refused
        try:
            ws = await websockets.connect(ws_url(server.url), origin=websockets.Origin(server.url))
            opened.append(ws)
        except Exception:
            refused += 1

    async def attack() -> tuple[int, int]:
        for _ in range(0, count, 100):
            await asyncio.gather(*(one() for _ in range(100)))
        started = time.monotonic()
        results = await asyncio.gather(*(until_closed(ws, 15) for ws in opened))
        closed = sum(1 for r in results if r is not None)
        del started
        return refused, closed

    during, (refused_n, closed_n) = await asyncio.gather(probe.run(args.seconds + 15), attack())
    return (
        f"{count} handshake-only WebSockets: {refused_n} refused, {closed_n} of {len(opened)} "
        f"accepted closed within 15 s; probe {summary(during)}"
    )


async def slowloris(server: Server, probe: Probe, args: argparse.Namespace) -> str:
    count = 1500
    writers: list[asyncio.StreamWriter] = []
    readers: list[asyncio.StreamReader] = []
    for _ in range(count):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        except OSError:
            continue
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        readers.append(reader)
        writers.append(writer)

    async def dribble() -> int:
        end = time.monotonic() + 15
        while time.monotonic() < end:
            for w in writers:
                if not w.is_closing():
                    w.write(b"X-a: b\r\n")
            await asyncio.sleep(1)
        closed = 0
        for r in readers:
            try:
                data = await asyncio.wait_for(r.read(), 0.01)
                closed += data == b"" or r.at_eof()
            except OSError:  # reset by the server
                closed += 1
            except TimeoutError:  # still held open
                pass
        return closed

    during, closed = await asyncio.gather(probe.run(15), dribble())
    for w in writers:
        w.close()
    return (
        f"{len(writers)} slowloris connections: {closed} dropped within 15 s; "
        f"probe {summary(during)}"
    )


async def forged(server: Server, probe: Probe, args: argparse.Namespace) -> str:
    async with httpx.AsyncClient() as client:
        evil = await client.post(
            server.url + "/api/sessions", json={"title": "t"}, headers={"Host": "evil.example"}
        )
        statuses = []
        for _ in range(15):
            fake = f"198.51.{random.randrange(256)}.{random.randrange(256)}"
            answer = await client.post(
                server.url + "/api/sessions", json={"title": "t"}, headers={"X-Forwarded-For": fake}
            )
            statuses.append(answer.status_code)
    link = (
        evil.json().get("join_url", "") if evil.status_code == 201 else f"HTTP {evil.status_code}"
    )
    return (
        f"15 creates with made-up X-Forwarded-For after 2 without: {statuses.count(201)} created, "
        f"{statuses.count(429)} refused; Host: evil.example gave join_url {link!r}"
    )


async def knock(url: str, session: str, auth: dict[str, Any], source: str) -> tuple[Any, str]:
    """One connection from `source` joining with `auth`: (the open WebSocket or None, the
    server's answer frame)."""
    ws = await websockets.connect(
        ws_url(url), origin=websockets.Origin(url), local_addr=(source, 0)
    )
    await ws.recv()  # Engine.IO open
    await ws.send("40" + json.dumps({"session": session, **auth}))
    while not (answer := str(await ws.recv())).startswith(("40", "44")):
        pass
    if answer.startswith("40"):
        return ws, answer
    await ws.close()
    return None, answer


async def takeover(server: Server, probe: Probe, args: argparse.Namespace) -> str:
    """One address fills a room with made-up names (join, leave, next) while its team is in;
    then the facilitator, who had not joined yet, takes the room back: door, sweep."""
    created = httpx.post(server.url + "/api/sessions", json={"title": "takeover"}).json()
    room = created["id"]
    # The team, joined before the attack, stays connected (its clients answer pings).
    team = []
    for n in range(3):
        member = socketio.AsyncClient(reconnection=False)
        await member.connect(
            server.url, auth={"session": room, "name": f"Team {n}"}, transports=["websocket"]
        )
        team.append(member)
    started, junk = time.monotonic(), 0
    while True:
        ws, answer = await knock(server.url, room, {"name": f"junk{junk}"}, "127.0.0.1")
        if ws is not None:
            junk += 1
            await ws.close()
        elif "full" in answer:
            break
        else:
            await asyncio.sleep(0.05)  # the connect limit: as fast as it lets through
    filled = time.monotonic() - started
    _, late = await knock(server.url, room, {"name": "Latecomer"}, "127.0.4.1")
    began = time.monotonic()
    # The facilitator, from an address of their own, with the link they had not used yet.
    fay, welcome = await knock(
        server.url,
        room,
        {"name": "Fay", "facilitator_token": created["facilitator_token"]},
        "127.0.5.1",
    )
    if fay is None:
        probe.failures.append(("facilitator refused", welcome))
        return f"the facilitator link was refused: {welcome[:100]}"

    async def control(n: int, payload: dict[str, Any]) -> dict[str, Any]:
        await fay.send(f"42{n}" + json.dumps(["control", payload]))
        while not (frame := str(await fay.recv())).startswith(f"43{n}"):
            if frame == "2":
                await fay.send("3")
        answer: dict[str, Any] = json.loads(frame[len(f"43{n}") :])[0]
        return answer

    door = await control(1, {"action": "door", "open": False})
    swept = await control(2, {"action": "remove_idle"})
    took = time.monotonic() - began
    left = httpx.get(f"{server.url}/api/sessions/{room}").json()["participants"]
    while True:  # the attacker again, once its address may connect again
        _, refill = await knock(server.url, room, {"name": "junk-again"}, "127.0.0.1")
        if "Too many connections" not in refill:
            break
        await asyncio.sleep(0.5)
    await fay.close()
    for member in team:
        await member.disconnect()
    if not (door.get("ok") and swept.get("ok")):
        probe.failures.append(("takeover", door, swept))
    return (
        f"{junk} made-up people joined from one address in {filled:.0f} s; a latecomer from "
        f"another address: {'refused (full)' if 'full' in late else late[:60]}; the facilitator "
        f"link got in, closed the door and swept in {took * 1000:.0f} ms: {len(left)} people left "
        f"(the team of 3 and the facilitator); the attacker again: "
        f"{'refused (door closed)' if 'closed' in refill else refill[:60]}"
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(ATTACKS))
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--room", type=int, default=1500, help="people in the sync attacks' room")
    args = parser.parse_args()
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {1})
    import tempfile

    failed = False
    for name in args.only.split(","):
        attack: Attack = globals()[name]
        with tempfile.TemporaryDirectory() as tmp:
            server = Server(Path(tmp))
            try:
                probe = Probe(server.url)
                await probe.start()
                baseline = await probe.run(2)
                result = await attack(server, probe, args)
                print(f"{name:10} baseline {summary(baseline)}\n{'':10} {result}", flush=True)
                if probe.failures:
                    failed = True
                    bad = probe.failures
                    print(f"{'':10} FAILED: {len(bad)} probe votes not ok: {bad[:3]}")
                await probe.client.disconnect()
            finally:
                server.stop()
    own = resource.getrusage(resource.RUSAGE_SELF)
    print(f"this script's CPU: {own.ru_utime + own.ru_stime:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
