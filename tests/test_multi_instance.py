"""Several real server processes on one real Redis: every client sees every vote, exactly once."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import redis as redis_lib

from tests.factories import ballots_of, case_of
from tests.live import LiveServer, Member, create_session, facilitate, join, live_server
from tests.redis_server import RedisServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def instances(
    redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[LiveServer]]:
    tmp = Path(tmp_path_factory.mktemp("instances"))
    with ExitStack() as stack:
        yield [
            stack.enter_context(live_server(tmp, {"STACKVOTE_REDIS_URL": redis.url}))
            for _ in range(3)
        ]


async def test_a_vote_on_one_instance_reaches_clients_on_the_others(
    instances: list[LiveServer],
) -> None:
    a, b, c = instances
    created = create_session(a.url, title="Across instances")
    fay = await facilitate(b.url, created)
    ann = await join(c.url, {"session": created["id"], "name": "Ann"})
    assert (await fay.control("open", "realtime"))["ok"]
    ack = await ann.vote("realtime", 4)
    seen = await fay.until_version(ack["version"])
    assert case_of(seen, "realtime")["votes_in"] == 1
    # Every instance serves the same session from Redis.
    for instance in instances:
        state = httpx.get(f"{instance.url}/api/sessions/{created['id']}").json()
        assert state["version"] >= ack["version"]
    for member in (fay, ann):
        await member.client.disconnect()


async def test_interleaved_votes_across_instances_are_exact(instances: list[LiveServer]) -> None:
    created = create_session(instances[0].url, title="Busy room")
    session = created["id"]
    fay = await facilitate(instances[0].url, created)
    await fay.control("open_all")
    cases = [c["id"] for c in fay.state["cases"]]
    voters: list[Member] = []
    for n in range(20):
        voters.append(
            await join(instances[n % len(instances)].url, {"session": session, "name": f"V{n}"})
        )
    rng = random.Random(20261125)
    expected: dict[tuple[str, str], int | None] = {}
    acked = 0

    async def cast(member: Member, plan: list[tuple[str, int | None]]) -> None:
        nonlocal acked
        for case, score in plan:
            ack = await member.vote(case, score)
            assert ack["ok"], ack
            expected[(member.id, case)] = score
            acked += 1
            await asyncio.sleep(rng.random() * 0.005)

    plans = [
        [(rng.choice(cases), rng.choice([0, 1, 2, 3, 4, None])) for _ in range(26)] for _ in voters
    ]
    await asyncio.gather(*(cast(m, p) for m, p in zip(voters, plans, strict=True)))
    assert acked == 520

    ack = await fay.control("reveal_all")
    final = await fay.until_version(ack["version"])
    for member in voters:
        state = await member.until_version(ack["version"], timeout=10)
        assert state["cases"] == final["cases"], "a client's tally differs from the server's"
    server_state = httpx.get(f"{instances[2].url}/api/sessions/{session}").json()
    assert server_state["cases"] == final["cases"]
    assert ballots_of(final) == expected
    assert sum(case["votes_in"] for case in final["cases"]) == len(expected)
    for member in [fay, *voters]:
        await member.client.disconnect()


async def test_redis_holds_only_hashes_of_tokens(
    instances: list[LiveServer], redis: RedisServer
) -> None:
    created = create_session(instances[0].url, title="Secrets")
    fay = await facilitate(instances[1].url, created)
    client = redis_lib.Redis(port=redis.port, decode_responses=True)
    stored = " ".join(
        str(value)
        for key in client.keys("*")
        if client.type(key) == "hash"
        for value in client.hvals(key)
    )
    client.close()
    assert created["id"] in stored  # we are looking at the right data
    for secret in (created["facilitator_token"], fay.welcome["token"]):
        assert secret not in stored
    await fay.client.disconnect()


def test_per_address_limits_hold_across_instances(redis: RedisServer, tmp_path: Path) -> None:
    # One address, two instances, 3 creations a minute: the fourth is refused wherever it goes.
    env = {"STACKVOTE_REDIS_URL": redis.url, "STACKVOTE_LIMIT_CREATES": "3/minute"}
    redis.flush()
    with live_server(tmp_path, env) as a, live_server(tmp_path, env) as b:
        statuses = [
            httpx.post(server.url + "/api/sessions", json={"title": "t"}).status_code
            for server in (a, b, a, b, a, b)
        ]
    assert statuses == [201, 201, 201, 429, 429, 429]
