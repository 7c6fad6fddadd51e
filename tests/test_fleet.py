"""Instances on Redis Sentinel and Redis Cluster, with real processes throughout: votes keep
flowing through a primary's death, a promotion and a slot moving under them; every vote that
was acknowledged is there afterwards, and every client ends on the store's version."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from tests.factories import ballots_of
from tests.live import LiveServer, Member, create_session, facilitate, join, live_server
from tests.redis_fleet import RedisClusterFleet, SentinelGroup, redis_cluster, sentinel_group

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

VOTERS = 8


@contextmanager
def instances(tmp: Path, url: str, count: int = 2, **env: str) -> Iterator[list[LiveServer]]:
    settings = {"STACKVOTE_REDIS_URL": url, **{f"STACKVOTE_{k.upper()}": v for k, v in env.items()}}
    with ExitStack() as stack:
        yield [stack.enter_context(live_server(tmp, settings)) for _ in range(count)]


async def vote_until_acked(member: Member, case: str, score: int | None) -> int:
    """What the browser's outbox does: send again until the server says it counted; a refusal
    marked `retry` and a vote left unanswered are both sent again (safe: same vote)."""
    while True:
        try:
            ack: dict[str, Any] = await member.client.call(
                "vote", {"case": case, "score": score}, timeout=3
            )
        except socketio.exceptions.TimeoutError:
            continue
        if ack["ok"]:
            return int(ack["version"])
        assert ack.get("retry"), ack
        await asyncio.sleep(0.1 + random.random() * 0.2)


class Team:
    """A facilitator and VOTERS people spread over the instances, voting while `fault` runs."""

    def __init__(self, servers: list[LiveServer]) -> None:
        self.servers = servers
        self.created = create_session(servers[0].url, title="Through a failover")
        self.fay: Member | None = None
        self.voters: list[Member] = []
        # (participant, case) -> the score of their last acknowledged vote.
        self.acked: dict[tuple[str, str], int | None] = {}
        self.fault_done = asyncio.Event()

    async def gather(self) -> None:
        self.fay = await facilitate(self.servers[0].url, self.created)
        assert (await self.fay.control("open_all"))["ok"]
        for n in range(VOTERS):
            server = self.servers[n % len(self.servers)]
            self.voters.append(
                await join(server.url, {"session": self.created["id"], "name": f"V{n}"})
            )

    @property
    def cases(self) -> list[str]:
        assert self.fay is not None
        return [c["id"] for c in self.fay.state["cases"]]

    async def vote_through(self, fault: Callable[[], None], after: int = 30) -> None:
        """Everyone votes, one vote after another; `fault` runs in a thread meanwhile, and
        everyone goes on for `after` more votes once it has returned."""
        loop = asyncio.get_running_loop()

        async def voter(member: Member, seed: int) -> None:
            rng = random.Random(seed)
            remaining = after
            while remaining > 0:
                case = rng.choice(self.cases)
                score = rng.choice([0, 1, 2, 3, 4, None])
                await vote_until_acked(member, case, score)
                self.acked[(member.id, case)] = score
                if self.fault_done.is_set():
                    remaining -= 1
                await asyncio.sleep(0.02)

        def run_fault() -> None:
            try:
                fault()
            finally:
                loop.call_soon_threadsafe(self.fault_done.set)

        thread = threading.Thread(target=run_fault)
        voting = [asyncio.create_task(voter(m, i)) for i, m in enumerate(self.voters)]
        await asyncio.sleep(1.0)  # votes flowing before the fault
        thread.start()
        try:
            await asyncio.wait_for(asyncio.gather(*voting), 120)
        finally:
            await asyncio.to_thread(thread.join)

    async def check(self) -> None:
        """Every acknowledged vote stored; every client on the stored version, seeing it."""
        stored = httpx.get(f"{self.servers[0].url}/api/sessions/{self.created['id']}").json()
        for server in self.servers[1:]:
            other = httpx.get(f"{server.url}/api/sessions/{self.created['id']}").json()
            assert other["version"] == stored["version"]
        assert self.fay is not None
        everyone = [self.fay, *self.voters]
        for member in everyone:
            seen = await member.until_version(stored["version"], timeout=15)
            assert seen["version"] == stored["version"]
        assert (await self.fay.control("reveal_all"))["ok"]
        revealed = await self.fay.until(
            lambda s: all(c["status"] == "revealed" for c in s["cases"]), timeout=15
        )
        # Exactly the acknowledged votes: none lost, none doubled, none invented.
        assert ballots_of(revealed) == self.acked
        for member in everyone:
            await member.client.disconnect()


async def test_sentinel_failover_loses_no_acknowledged_vote(tmp_path: Path) -> None:
    with (
        sentinel_group(tmp_path / "redis") as group,
        instances(tmp_path, group.url, redis_wait_replicas="1") as servers,
    ):
        team = Team(servers)
        await team.gather()
        promoted: list[float] = []

        def fail_over(fleet: SentinelGroup = group) -> None:
            old = fleet.kill_primary()
            promoted.append(fleet.wait_promoted(old))
            # Until a replica is back, no vote can be confirmed by one: they wait unanswered
            # (the clients send them again) rather than be acknowledged unprotected.
            fleet.restart(old)
            fleet.wait_replica(old)

        await team.vote_through(fail_over)
        assert promoted, "the sentinels never promoted the replica"
        await team.check()


async def test_cluster_primary_failover_loses_no_acknowledged_vote(tmp_path: Path) -> None:
    with (
        redis_cluster(tmp_path / "redis") as cluster,
        instances(tmp_path, cluster.url, redis_wait_replicas="1") as servers,
    ):
        team = Team(servers)
        await team.gather()
        session_key = f"stackvote:{{{team.created['id']}}}"

        def fail_over(fleet: RedisClusterFleet = cluster) -> None:
            old = fleet.kill_primary_of(session_key)
            fleet.wait_failover(old)
            fleet.restart(old)
            fleet.wait_replica(old)

        await team.vote_through(fail_over)
        await team.check()


async def test_a_slot_moving_under_a_voting_room_loses_nothing(tmp_path: Path) -> None:
    with (
        redis_cluster(tmp_path / "redis", replicas_per_primary=0) as cluster,
        instances(tmp_path, cluster.url) as servers,
    ):
        team = Team(servers)
        await team.gather()
        session_key = f"stackvote:{{{team.created['id']}}}"
        slot = cluster.keyslot(session_key)
        moves: list[int] = []

        def move(fleet: RedisClusterFleet = cluster) -> None:
            here = fleet.owner(slot)
            there = next(p for p in fleet.primary_ports() if p != here)
            moves.append(fleet.migrate_slot(slot, there))
            # ... and back again, while the votes go on.
            moves.append(fleet.migrate_slot(slot, here))

        await team.vote_through(move)
        assert moves and moves[0] > 0, "the session's keys never moved"
        await team.check()
