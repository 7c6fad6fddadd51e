"""Every acknowledged vote counts exactly once, even when the network keeps dropping."""

from __future__ import annotations

import asyncio
import random
import secrets
from typing import Any

import pytest
import socketio

from tests.chaos import ChaosProxy
from tests.factories import ballots_of
from tests.live import LiveServer, Member, create_session, facilitate, join

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class RetryingVoter:
    """What the browser does: number each vote, resend it until acked, across reconnects."""

    def __init__(self, url: str, session: str, name: str) -> None:
        self.url = url
        self.auth: dict[str, Any] = {"session": session, "name": name}
        self.client = socketio.AsyncClient(
            reconnection=True, reconnection_delay=0.05, reconnection_delay_max=0.3
        )
        self.client_id = secrets.token_hex(8)
        self.seq = 0
        self.id = ""
        self.connected = asyncio.Event()
        self.client.on("welcome", self._welcome)
        self.client.on("connect", self.connected.set)
        self.client.on("disconnect", lambda *_: self.connected.clear())
        self.retries = 0

    def _welcome(self, data: dict[str, Any]) -> None:
        # From now on, reconnect as the same person.
        self.id = data["participant_id"]
        self.auth = {"session": self.auth["session"], "token": data["token"]}

    async def start(self) -> None:
        for _ in range(50):
            try:
                await self.client.connect(
                    self.url, auth=lambda: self.auth, transports=["websocket"], wait_timeout=2
                )
                break
            except socketio.exceptions.ConnectionError:
                await asyncio.sleep(0.05)
        while not self.id:
            await asyncio.sleep(0.01)

    async def vote(self, case: str, score: int | None) -> dict[str, Any]:
        self.seq += 1
        payload = {"case": case, "score": score, "client": self.client_id, "seq": self.seq}
        for _ in range(400):
            await asyncio.wait_for(self.connected.wait(), 30)
            try:
                ack: dict[str, Any] = await self.client.call("vote", payload, timeout=0.5)
                return ack
            except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError):
                self.retries += 1
                await asyncio.sleep(0.02)
        raise AssertionError(f"vote {payload} never acknowledged")


async def test_no_acked_vote_is_lost_or_doubled_through_a_flaky_network(
    server: LiveServer,
) -> None:
    created = create_session(server.url)
    fay = await facilitate(server.url, created)
    await fay.control("open_all")
    cases = [c["id"] for c in fay.state["cases"]]
    proxy = ChaosProxy(int(server.url.rsplit(":", 1)[1]), seed=20261125)
    await proxy.start()
    voters = [RetryingVoter(proxy.url, created["id"], f"Flaky {n}") for n in range(5)]
    await asyncio.gather(*(v.start() for v in voters))
    proxy.cutting = True
    rng = random.Random(7)
    expected: dict[tuple[str, str], int | None] = {}

    async def run(voter: RetryingVoter) -> None:
        for _ in range(200):
            case, score = rng.choice(cases), rng.choice([0, 1, 2, 3, 4, None])
            ack = await voter.vote(case, score)
            assert ack["ok"], ack
            expected[(voter.id, case)] = score

    await asyncio.gather(*(run(v) for v in voters))
    proxy.cutting = False
    assert proxy.cuts >= 10, "the network was not flaky enough to prove anything"

    reveal = await fay.control("reveal_all")
    final = await fay.until_version(reveal["version"])
    assert ballots_of(final) == expected
    for case in final["cases"]:
        voted = {p for (p, c) in expected if c == case["id"]}
        assert case["votes_in"] == len(voted)
    retries = sum(v.retries for v in voters)
    print(f"\n1000 votes, {proxy.cuts} connection cuts, {retries} retries: all counted once")
    for voter in voters:
        await voter.client.disconnect()
    await proxy.stop()
    await fay.client.disconnect()


async def test_a_burst_from_one_client_ends_with_its_last_vote(server: LiveServer) -> None:
    created = create_session(server.url)
    fay = await facilitate(server.url, created)
    ann: Member = await join(server.url, {"session": created["id"], "name": "Ann"})
    await fay.control("open", "realtime")
    # 60 votes sent at once, without waiting for answers: handlers run concurrently, and the
    # one sent last (highest number) must be the one that stands.
    payloads = [
        {"case": "realtime", "score": n % 5, "client": "burst-client", "seq": n + 1}
        for n in range(60)
    ]
    acks = await asyncio.gather(*(ann.call("vote", p) for p in payloads))
    assert all(a["ok"] for a in acks)
    reveal = await fay.control("reveal", "realtime")
    state = await fay.until_version(reveal["version"])
    results = next(c for c in state["cases"] if c["id"] == "realtime")["results"]
    assert results["ballots"] == [{"participant": ann.id, "score": 59 % 5}]
    await ann.client.disconnect()
    await fay.client.disconnect()
