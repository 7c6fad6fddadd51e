"""The Sentinel and Cluster harness against real redis-server processes: a failover promotes the
replica and redis-py follows it; a cluster forms, shards keys and shard channels, moves a slot
while a client reads, and promotes a replica when a primary dies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

from tests.redis_fleet import (
    MINIMUM,
    RedisClusterFleet,
    redis_cluster,
    redis_version,
    require_redis7,
    sentinel_group,
)


def test_the_binary_is_redis_7_or_newer() -> None:
    assert redis_version(require_redis7()) >= MINIMUM


async def test_sentinel_failover_promotes_the_replica_and_the_client_follows(
    tmp_path: Path,
) -> None:
    with sentinel_group(tmp_path) as group:
        ports = ",".join(f"127.0.0.1:{s.port}" for s in group.sentinels)
        assert group.url == f"redis+sentinel://{ports}/mymaster/0"
        assert group.current_primary() == ("127.0.0.1", group.primary.port)

        sentinel = Sentinel(group.sentinel_addresses, socket_timeout=1.0)  # type: ignore[no-untyped-call,unused-ignore]
        client: aioredis.Redis = sentinel.master_for(group.service, socket_timeout=1.0)
        try:
            await client.set("before", "1")
            # On the replica too before the primary dies.
            assert await client.execute_command("WAIT", 1, 2000) == 1  # type: ignore[no-untyped-call]

            old = group.kill_primary()
            assert old == group.primary.port
            seconds = await asyncio.to_thread(group.wait_promoted, old, 30)
            print(f"sentinel failover: {seconds:.1f} s")
            assert group.current_primary() == ("127.0.0.1", group.replica.port)

            # The same client finds the new primary through the sentinels.
            await client.set("after", "2")
            assert await client.get("before") == b"1"
            assert await client.get("after") == b"2"

            # The old primary, started again, is turned into a replica of the new one.
            group.restart(old)
            seconds = await asyncio.to_thread(group.wait_replica, old, 30)
            print(f"old primary replicating again after {seconds:.1f} s")
            replica = group.node(old).client()
            assert replica.get("after") == b"2"
            replica.close()
        finally:
            await client.aclose()
            for connection in sentinel.sentinels:
                await connection.aclose()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterFleet]:
    """One cluster for the tests that leave every node running."""
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


async def open_client(fleet: RedisClusterFleet) -> RedisCluster:
    nodes = [ClusterNode(host, port) for host, port in fleet.startup_nodes]
    client = RedisCluster(startup_nodes=nodes, socket_timeout=2.0)
    await client.initialize()
    return client


@pytest.fixture
async def client(cluster: RedisClusterFleet) -> AsyncIterator[RedisCluster]:
    opened = await open_client(cluster)
    yield opened
    await opened.aclose()


async def test_cluster_forms_and_keys_spread_over_every_primary(
    cluster: RedisClusterFleet, client: RedisCluster
) -> None:
    ports = ",".join(f"127.0.0.1:{p.port}" for p in cluster.primaries)
    assert cluster.url == f"redis+cluster://{ports}"
    assert cluster.primary_ports() == sorted(p.port for p in cluster.primaries)
    for replica in cluster.replicas:
        assert replica.role() == "slave"

    for i in range(60):
        await client.set(f"fleet:key:{i}", str(i))
    for i in range(60):
        assert await client.get(f"fleet:key:{i}") == str(i).encode()
    for primary in cluster.primaries:
        assert primary.command("DBSIZE") > 0, f"no key on {primary.name}"


async def test_sharded_pubsub_delivers_on_a_hash_tagged_channel(
    cluster: RedisClusterFleet, client: RedisCluster
) -> None:
    channel = "{session:fleet}:events"
    pubsub = client.pubsub()
    try:
        await pubsub.ssubscribe(channel)
        confirmed = await pubsub.get_sharded_message(timeout=2.0)
        assert confirmed is not None
        assert confirmed["type"] == "ssubscribe"

        assert await client.spublish(channel, "hello") == 1
        message = None
        for _ in range(20):
            message = await pubsub.get_sharded_message(timeout=0.5)
            if message is not None:
                break
        assert message is not None
        assert message["type"] == "smessage"
        assert message["data"] == b"hello"
    finally:
        await pubsub.aclose()


async def test_a_live_slot_migration_moves_the_keys_and_clients_follow(
    cluster: RedisClusterFleet, client: RedisCluster
) -> None:
    keys = [f"{{moving}}:{i}" for i in range(25)]
    for key in keys:
        await client.set(key, key)
    slot = cluster.keyslot(keys[0])
    source = cluster.owner(slot)
    target = next(p for p in cluster.primary_ports() if p != source)

    moved = await asyncio.to_thread(cluster.migrate_slot, slot, target)

    assert moved == len(keys)
    assert cluster.owner(slot) == target
    assert cluster.node(target).command("CLUSTER", "COUNTKEYSINSLOT", slot) == len(keys)
    assert cluster.node(source).command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    # This client still maps the slot to the old owner; it follows the MOVED reply.
    for key in keys:
        assert await client.get(key) == key.encode()
    await client.set(keys[0], "rewritten")
    assert cluster.node(target).command("GET", keys[0]) == b"rewritten"


async def test_a_killed_primary_is_replaced_by_its_replica(tmp_path: Path) -> None:
    with redis_cluster(tmp_path) as fleet:
        client = await open_client(fleet)
        try:
            key = "{session:doomed}:state"
            await client.set(key, "kept")
            owner = fleet.owner(fleet.keyslot(key))
            assert fleet.node(owner).command("WAIT", 1, 2000) == 1  # on its replica too

            old = fleet.kill_primary_of(key)
            assert old == owner
            seconds = await asyncio.to_thread(fleet.wait_failover, old, 30)
            print(f"cluster failover: {seconds:.1f} s")
            new = fleet.owner(fleet.keyslot(key))
            assert new != old
            assert new in {r.port for r in fleet.replicas}

            assert await client.get(key) == b"kept"
            await client.set(key, "after")

            fleet.restart(old)
            await asyncio.to_thread(fleet.wait_replica, old, 30)
            assert fleet.node(old).role() == "slave"
        finally:
            await client.aclose()
