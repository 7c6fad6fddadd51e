"""Per-room channels between instances, on a real Redis and real server processes: an instance
hears a room only while it holds one of its sockets, and a join racing the last leave loses
nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis as redis_lib

from tests.live import LiveServer, Member, create_session, facilitate, join, live_server
from tests.redis_fleet import RedisClusterFleet
from tests.redis_server import RedisServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def pair(
    redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, LiveServer]]:
    tmp = Path(tmp_path_factory.mktemp("channels"))
    with ExitStack() as stack:
        a, b = (
            stack.enter_context(live_server(tmp, {"STACKVOTE_REDIS_URL": redis.url}))
            for _ in range(2)
        )
        yield a, b


def channel(session_id: str) -> str:
    return f"stackvote:{{{session_id}}}:feed"


def subscribers(redis: RedisServer, session_id: str) -> int:
    client = redis_lib.Redis(port=redis.port)
    try:
        counts = dict(client.pubsub_numsub(channel(session_id)))
        return int(counts.get(channel(session_id).encode(), 0))
    finally:
        client.close()


async def eventually(check: object, timeout: float = 5.0) -> None:
    assert callable(check)
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def test_an_instance_follows_a_room_only_while_it_holds_a_socket_of_it(
    pair: tuple[LiveServer, LiveServer], redis: RedisServer
) -> None:
    a, b = pair
    here = create_session(a.url, title="Only on a")
    there = create_session(a.url, title="Only on b")
    fay = await facilitate(a.url, here)
    bob = await facilitate(b.url, there)
    # One subscriber each: the instance holding its sockets, not the other one.
    assert subscribers(redis, here["id"]) == 1
    assert subscribers(redis, there["id"]) == 1
    ann = await join(b.url, {"session": here["id"], "name": "Ann"})
    assert subscribers(redis, here["id"]) == 2
    await ann.client.disconnect()
    await eventually(lambda: subscribers(redis, here["id"]) == 1)
    for member in (fay, bob):
        await member.client.disconnect()
    await eventually(lambda: subscribers(redis, here["id"]) == 0)
    await eventually(lambda: subscribers(redis, there["id"]) == 0)


async def test_a_join_racing_the_last_leave_misses_no_change(
    pair: tuple[LiveServer, LiveServer], redis: RedisServer
) -> None:
    a, b = pair
    created = create_session(a.url, title="Coming and going")
    fay = await facilitate(b.url, created)
    assert (await fay.control("open", "realtime"))["ok"]
    for round_ in range(25):
        last = await join(a.url, {"session": created["id"], "name": f"Last {round_}"})
        # The last socket of the room on `a` leaves while the next one joins there.
        nxt, _ = await asyncio.gather(
            join(a.url, {"session": created["id"], "name": f"Next {round_}"}),
            last.client.disconnect(),
        )
        ack = await fay.vote("realtime", round_ % 5)
        assert ack["ok"], ack
        seen = await nxt.until_version(ack["version"])
        assert seen["version"] >= ack["version"]
        # Still followed by `a` (for `nxt`) and by `b` (for the facilitator).
        assert subscribers(redis, created["id"]) == 2
        await nxt.client.disconnect()
    await fay.client.disconnect()


async def test_the_shared_channel_mode_still_delivers_every_change(
    redis: RedisServer, tmp_path: Path
) -> None:
    env = {"STACKVOTE_REDIS_URL": redis.url, "STACKVOTE_REDIS_CHANNELS": "shared"}
    with live_server(tmp_path, env) as a, live_server(tmp_path, env) as b:
        created = create_session(a.url, title="One channel for all")
        fay = await facilitate(a.url, created)
        ann: Member = await join(b.url, {"session": created["id"], "name": "Ann"})
        assert (await fay.control("open", "realtime"))["ok"]
        ack = await ann.vote("realtime", 3)
        await fay.until_version(ack["version"])
        # Nobody follows the room's own channel; both hear the shared one.
        assert subscribers(redis, created["id"]) == 0
        client = redis_lib.Redis(port=redis.port)
        assert dict(client.pubsub_numsub("stackvote:feed"))[b"stackvote:feed"] == 2
        client.close()
        for member in (fay, ann):
            await member.client.disconnect()


async def test_on_a_cluster_a_room_travels_on_a_sharded_channel_of_its_node(
    cluster: RedisClusterFleet, tmp_path: Path
) -> None:
    env = {"STACKVOTE_REDIS_URL": cluster.url}
    with live_server(tmp_path, env) as a, live_server(tmp_path, env) as b:
        created = create_session(a.url, title="Sharded")
        name = channel(created["id"])
        owner = cluster.node(cluster.owner(cluster.keyslot(name)))

        def sharded_subscribers() -> int:
            reply = owner.command("PUBSUB", "SHARDNUMSUB", name)
            return int(reply[1])

        fay = await facilitate(a.url, created)
        assert sharded_subscribers() == 1
        ann = await join(b.url, {"session": created["id"], "name": "Ann"})
        assert sharded_subscribers() == 2
        # Nothing on plain pub/sub, and nothing on the nodes that do not hold the room.
        assert owner.command("PUBSUB", "NUMSUB", name)[1] == 0
        for node in cluster.primaries:
            if node is not owner:
                assert int(node.command("PUBSUB", "SHARDNUMSUB", name)[1]) == 0
        assert (await fay.control("open", "realtime"))["ok"]
        ack = await ann.vote("realtime", 2)
        await fay.until_version(ack["version"])
        for member in (fay, ann):
            await member.client.disconnect()
        await eventually(lambda: sharded_subscribers() == 0)
