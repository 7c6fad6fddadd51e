"""Run the shipped Docker Compose deployment through its paces, with real Socket.IO clients on
the published port: up, a room's sockets on one instance (2, 4 and 8 replicas), an instance
killed while people vote, Redis restarted, scaled up and back, down and up, and the README's
backup command. Every acknowledged vote must be there at the end of each step.

    scripts/compose-check [--keep] [--rooms N]

It runs as its own compose project (stackvote-check, port 18080), so a deployment of the same
checkout is left alone. Base images are pulled where a registry answers; where none does, the
same-named stand-ins of deploy/standins/ are built (Debian's Python 3.11, Redis 7.0 and nginx
1.22: say so with any figures). Needs docker and either `docker compose` or `docker-compose`,
and the test extra (`pip install -e '.[test]'`) for the clients.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import socketio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live import Member, create_session, facilitate, join  # noqa: E402

PROJECT = "stackvote-check"
PORT = 18080
BASE = f"http://127.0.0.1:{PORT}"
ENV = {**os.environ, "COMPOSE_PROJECT_NAME": PROJECT, "STACKVOTE_PORT": str(PORT)}
figures: dict[str, Any] = {}


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def run(*args: str, check: bool = True, timeout: float = 600) -> str:
    done = subprocess.run(
        args, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def compose_command() -> list[str]:
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise SystemExit("neither `docker compose` nor `docker-compose` is installed")


COMPOSE = compose_command()


def compose(*args: str, check: bool = True, timeout: float = 600) -> str:
    return run(*COMPOSE, *args, check=check, timeout=timeout)


def containers(service: str) -> list[str]:
    return compose("ps", "-q", service).split()


def prepare_images() -> None:
    """The base images (pulled, or stood in for), the app's wheels, and its offline build."""
    names = re.findall(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), flags=re.M)
    names += ["redis:7.4.1-alpine", "nginx:1.27.3-alpine"]
    absent = [n for n in names if run("docker", "image", "inspect", n, check=False) == ""]
    pulled = [
        n
        for n in absent
        if subprocess.run(
            ["docker", "pull", "-q", n], capture_output=True, check=False, timeout=120
        ).returncode
        == 0
    ]
    if set(absent) - set(pulled):
        say(f"no registry for {sorted(set(absent) - set(pulled))}: building stand-ins")
        run("bash", "deploy/standins/build.sh", timeout=1800)
        figures["images"] = "stand-ins (deploy/standins): Python 3.11, Redis 7.0, nginx 1.22"
    elif pulled:
        figures["images"] = "pulled"
    else:
        figures["images"] = "present already (see versions)"
    run("scripts/image-wheels")
    started = time.monotonic()
    # No network in the build: everything it installs comes from deploy/wheels/.
    run("docker", "build", "-q", "--network", "none", "-t", "stackvote:latest", ".")
    figures["offline build seconds"] = round(time.monotonic() - started, 1)


def wait_healthy(timeout: float = 120) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        ids = compose("ps", "-q").split()
        states = [
            run(
                "docker",
                "inspect",
                "-f",
                "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
                i,
                check=False,
            ).strip()
            for i in ids
        ]
        # Every service of the file has a health check.
        if ids and all(state == "running healthy" for state in states):
            return time.monotonic() - started
        time.sleep(1)
    raise SystemExit(f"not healthy within {timeout} s: {compose('ps')}")


def versions() -> dict[str, str]:
    """What actually runs (stand-ins differ from the official images: deploy/standins)."""

    def inside(service: str, *command: str) -> str:
        done = subprocess.run(
            ["docker", "exec", containers(service)[0], *command],
            capture_output=True,
            text=True,
            check=False,
        )
        return (done.stdout + done.stderr).strip()

    return {
        "python": inside("app", "python", "--version"),
        "redis": inside("redis", "redis-server", "--version").split(" sha=")[0],
        "nginx": inside("proxy", "nginx", "-v"),
    }


def feed_subscribers(session_ids: list[str]) -> dict[str, int]:
    """How many instances follow each room's channel: 1 when its sockets are together."""
    channels = [f"stackvote:{{{s}}}:feed" for s in session_ids]
    out = run(
        "docker", "exec", containers("redis")[0], "redis-cli", "PUBSUB", "NUMSUB", *channels
    ).split()
    counts = dict(zip(out[0::2], out[1::2], strict=True))
    return {s: int(counts[c]) for s, c in zip(session_ids, channels, strict=True)}


def rooms_by_instance() -> dict[str, int]:
    """Each app container's rooms (sessions with at least one socket on it), from /metrics."""
    read = (
        "import urllib.request, re; m = urllib.request.urlopen('http://127.0.0.1:8000/metrics')"
        ".read().decode(); print(re.search(r'^stackvote_rooms (\\S+)', m, re.M)[1])"
    )
    return {
        c: int(float(run("docker", "exec", c, "python", "-c", read, check=False).strip() or 0))
        for c in containers("app")
    }


def rooms_per_instance() -> list[int]:
    return sorted(rooms_by_instance().values())


def busiest_instance() -> str:
    """The app container with the most rooms: the one whose loss moves the most people."""
    counts = rooms_by_instance()
    return max(counts, key=lambda c: counts[c])


@dataclass
class Voter:
    session: str
    name: str
    token: str = ""
    member: Member | None = None
    # What the server must hold for this voter, per case: the last acknowledged score, or a
    # score sent since whose answer never came (it may have been stored).
    acked: dict[str, int] = field(default_factory=dict)
    in_flight: dict[str, set[int]] = field(default_factory=dict)
    refusals: int = 0
    reconnects: int = 0
    # Acknowledged votes since the step began: everyone must be voting again before it ends.
    fresh_acks: int = 0
    # The longest this voter went without an acknowledged vote in the step, and its last one.
    longest_gap: float = 0
    last_ack: float = 0

    def url(self) -> str:
        return f"{BASE}?room={self.session}"  # as the room page connects

    async def connect(self) -> None:
        auth = {"session": self.session}
        auth |= {"token": self.token} if self.token else {"name": self.name}
        self.member = await join(self.url(), auth)
        self.token = self.member.welcome["token"]

    async def vote_until(self, stop: asyncio.Event, cases: list[str]) -> None:
        while not stop.is_set():
            case, score = random.choice(cases), random.randint(0, 4)
            try:
                if self.member is None or not self.member.client.connected:
                    self.reconnects += 1
                    await self.connect()
                assert self.member is not None
                self.in_flight.setdefault(case, set()).add(score)
                ack = await self.member.client.call(
                    "vote", {"case": case, "score": score}, timeout=3
                )
            except Exception:  # a dropped connection, a refused connect, a lost answer
                if self.member is not None:
                    with contextlib.suppress(Exception):
                        await self.member.client.disconnect()
                self.member = None
                await asyncio.sleep(0.5)
                continue
            if ack.get("ok"):
                self.acked[case] = score
                self.in_flight[case] = set()
                self.fresh_acks += 1
                now = time.monotonic()
                self.longest_gap = max(self.longest_gap, now - self.last_ack)
                self.last_ack = now
            else:
                self.in_flight[case].discard(score)
                self.refusals += 1
                await asyncio.sleep(0.3)
            await asyncio.sleep(random.uniform(0.05, 0.3))

    async def check(self) -> list[str]:
        """Reconnect as this person and compare the ballots the server gives back."""
        if self.member is not None:
            with contextlib.suppress(Exception):
                await self.member.client.disconnect()
        for _ in range(30):
            try:
                await self.connect()
                break
            except Exception:
                await asyncio.sleep(1)
        assert self.member is not None, f"{self.name} cannot reconnect"
        stored = self.member.welcome["ballots"]
        problems = []
        for case, score in self.acked.items():
            allowed = {score} | self.in_flight.get(case, set())
            if stored.get(case) not in allowed:
                problems.append(f"{self.name} {case}: stored {stored.get(case)}, acked {score}")
        return problems


@dataclass
class Meeting:
    rooms: list[str]
    facilitators: list[Member]
    voters: list[Voter]
    cases: list[str]
    step_seconds: float | None = None

    async def vote_for(self, seconds: float, during: Any = None, *, within: float = 60) -> Any:
        """Everyone votes while `during` happens, `seconds` more, and on until each voter has
        had a vote acknowledged since `during` ended (at most `within` seconds more)."""
        stop = asyncio.Event()
        started = time.monotonic()
        for voter in self.voters:
            voter.fresh_acks, voter.longest_gap, voter.last_ack = 0, 0, started
        tasks = [asyncio.create_task(v.vote_until(stop, self.cases)) for v in self.voters]
        try:
            result = await during() if during else None
            for voter in self.voters:
                voter.fresh_acks = 0  # from here on, everyone must vote again
            await asyncio.sleep(seconds)
            deadline = time.monotonic() + within
            while any(v.fresh_acks == 0 for v in self.voters):
                if time.monotonic() > deadline:
                    stuck = [v.name for v in self.voters if v.fresh_acks == 0]
                    raise SystemExit(f"{len(stuck)} voters could not vote again: {stuck[:5]}")
                await asyncio.sleep(0.2)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        self.step_seconds = round(max(v.longest_gap for v in self.voters), 1)
        return result

    async def verify(self, step: str) -> None:
        problems = [p for v in self.voters for p in await v.check()]
        acked = sum(len(v.acked) for v in self.voters)
        if problems:
            raise SystemExit(f"{step}: acknowledged votes lost: {problems[:10]}")
        figures.setdefault("steps", {})[step] = {
            "acknowledged ballots checked": acked,
            "refusals (retry later)": sum(v.refusals for v in self.voters),
            "voters who had to reconnect": sum(v.reconnects > 0 for v in self.voters),
            "longest any voter went without an acknowledged vote, s": self.step_seconds,
        }
        for voter in self.voters:
            voter.refusals = voter.reconnects = 0
        self.step_seconds = None
        say(f"{step}: all {acked} acknowledged ballots are stored")

    def placement(self, step: str) -> list[int]:
        """Every room on one instance (or the check ends); the rooms each instance holds."""
        followers = feed_subscribers(self.rooms)
        spread = {s: n for s, n in followers.items() if n != 1}
        per_instance = rooms_per_instance()
        figures.setdefault("placement", {})[step] = {
            "rooms per instance": per_instance,
            "rooms on more than one instance": len(spread),
        }
        if spread:
            raise SystemExit(f"{step}: rooms spread over instances: {spread}")
        say(f"{step}: every room on one instance; rooms per instance {per_instance}")
        return per_instance


async def open_meeting(rooms: int, voters_per_room: int) -> Meeting:
    facilitators, voters, ids, cases = [], [], [], []
    for _ in range(rooms):
        created = create_session(BASE, title="Compose check")
        ids.append(created["id"])
        chair = await facilitate(f"{BASE}?room={created['id']}", created)
        assert (await chair.control("open_all"))["ok"]
        cases = [c["id"] for c in chair.state["cases"]][:3]
        facilitators.append(chair)
        for i in range(voters_per_room):
            voter = Voter(created["id"], f"Voter {i}")
            await voter.connect()
            voters.append(voter)
    return Meeting(ids, facilitators, voters, cases)


def probe_latencies(seconds: float) -> list[float]:
    """Requests through the proxy, one every 100 ms: how long each took (None if it failed)."""
    took: list[float] = []
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=10) as http:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                http.get(f"{BASE}/readyz")
                took.append(time.monotonic() - started)
            except httpx.HTTPError:
                took.append(float("inf"))
            time.sleep(0.1)
    return took


def latency_figures(took: list[float]) -> dict[str, Any]:
    answered = [t for t in took if t != float("inf")]
    return {
        "requests": len(took),
        "failed": len(took) - len(answered),
        "slowest ms": round(max(answered) * 1000) if answered else None,
        "over 1 s": sum(t > 1 for t in answered),
        "over 3 s": sum(t > 3 for t in answered),
    }


async def main(rooms: int, keep: bool) -> None:
    opened: list[Meeting] = []
    try:
        await check(rooms, opened)
    finally:
        for meeting in opened:
            await leave(meeting)
        if not keep:
            compose("down", "-v", check=False)
        if figures:
            print(json.dumps(figures, indent=2), file=sys.stderr)


async def check(rooms: int, opened: list[Meeting]) -> None:
    prepare_images()
    compose("down", "-v", "--remove-orphans", check=False)
    started = time.monotonic()
    compose("up", "-d")
    figures["up seconds (healthy)"] = round(time.monotonic() - started + wait_healthy(), 1)
    figures["versions"] = versions()
    say(f"up and healthy in {figures['up seconds (healthy)']} s: {figures['versions']}")

    meeting = await open_meeting(rooms, 5)
    opened.append(meeting)
    meeting.placement("2 replicas")
    await meeting.vote_for(3)
    await meeting.verify("voting")
    # Each step below happens while everyone votes (in a thread: the clients stay live).

    # An instance dies (as in a crash: the kernel kills it; Docker's policy restarts it).
    victim = busiest_instance()
    pid = run("docker", "inspect", "-f", "{{.State.Pid}}", victim).strip()

    def crash() -> list[float]:
        os.kill(int(pid), 9)
        took = probe_latencies(8)
        wait_healthy()
        return took

    await step(meeting, "instance crash", crash)
    restarted = run("docker", "inspect", "-f", "{{.RestartCount}}", victim).strip()
    figures["instance crash"]["restarted by its policy"] = restarted != "0"

    # `docker kill` is a stop on purpose: the instance stays down until `up -d`.
    def kill() -> list[float]:
        run("docker", "kill", busiest_instance())
        took = probe_latencies(8)
        compose("up", "-d")
        wait_healthy()
        return took

    await step(meeting, "docker kill, then up -d", kill)

    def restart_redis() -> list[float]:
        compose("restart", "redis")
        took = probe_latencies(3)
        wait_healthy()
        return took

    await step(meeting, "Redis restart", restart_redis)

    # Scaling, the proxy left alone: it follows the replicas by itself (deploy/proxy-follow.sh).
    def scale(replicas: int) -> Any:
        def scaling() -> list[float]:
            compose("up", "-d", "--scale", f"app={replicas}")
            wait_healthy()
            return probe_latencies(8)

        return scaling

    for replicas in (4, 8):
        await step(meeting, f"scaled to {replicas}", scale(replicas))
        if sum(1 for n in meeting.placement(f"{replicas} replicas") if n) < 2:
            raise SystemExit(f"{replicas} replicas: the new ones get no rooms")
    await step(meeting, "scaled back to 2", scale(2))
    meeting.placement("back to 2 replicas")

    def restart_proxy() -> list[float]:
        started = time.monotonic()
        compose("restart", "proxy")
        figures["proxy restart seconds"] = round(time.monotonic() - started, 1)
        took = probe_latencies(3)
        wait_healthy()
        return took

    await step(meeting, "proxy restart", restart_proxy, probe_limit=False)

    # Everything down and up again: nobody can vote meanwhile, then everyone is back.
    compose("down")
    compose("up", "-d")
    wait_healthy()
    await meeting.verify("down and up")

    # The README's backup command, as written.
    readme = (ROOT / "README.md").read_text()
    backup = re.search(r"\*\*Backups\*\*: `(.+?)`", readme, flags=re.S)
    assert backup, "README has no backup command"
    command = " ".join(backup[1].split()).replace("docker compose", " ".join(COMPOSE))
    with tempfile.TemporaryDirectory() as folder:
        # Run where a user would (the checkout), writing the archive elsewhere.
        subprocess.run(command, shell=True, cwd=ROOT, env=ENV, check=True)
        shutil.move(ROOT / "stackvote-redis.tgz", Path(folder) / "stackvote-redis.tgz")
        archive = Path(folder) / "stackvote-redis.tgz"
        with tarfile.open(archive) as tar:
            names = tar.getnames()
        figures["backup"] = {"bytes": archive.stat().st_size, "files": len(names)}
        assert any("appendonly" in n for n in names), names


async def step(
    meeting: Meeting, name: str, happen: Any, *, probe_limit: bool = True, seconds: float = 2
) -> None:
    """`happen` (in a thread, returning request latencies through the proxy) while everyone
    votes; then every acknowledged vote must be stored."""
    took = await meeting.vote_for(seconds, lambda: asyncio.to_thread(happen))
    figures[name] = latency_figures(took)
    if probe_limit and (figures[name]["over 3 s"] or figures[name]["failed"]):
        raise SystemExit(f"{name}: requests through the proxy stalled: {figures[name]}")
    await meeting.verify(name)


async def leave(meeting: Meeting) -> None:
    members = meeting.facilitators + [v.member for v in meeting.voters if v.member]
    for member in members:
        with contextlib.suppress(Exception):
            await member.client.disconnect()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="leave the deployment running")
    options = parser.parse_args()
    socketio.AsyncClient  # noqa: B018 - the test extra is installed
    asyncio.run(main(options.rooms, options.keep))
