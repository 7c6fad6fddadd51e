"""Token-bucket rate limits: bursts up to the limit, refills over time, every rate counts, memory
stays bounded, IPv6 counts by /64, and with Redis the limits hold across instances."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from server.settings import Rate, Settings, parse_rates
from server.store.redis import RedisLimiter
from server.throttle import Buckets, Throttle, address_key
from tests.redis_server import RedisServer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def buckets(clock: Clock, rates: str = "5/second;8/minute", max_keys: int = 100) -> Buckets:
    return Buckets(parse_rates(rates), max_keys=max_keys, clock=clock)


def test_a_burst_up_to_the_limit_passes_and_the_next_waits() -> None:
    clock = Clock()
    limits = buckets(clock, "5/second")
    assert [limits.allow("a") for _ in range(6)] == [True] * 5 + [False]
    clock.now += 0.2  # one token back
    assert limits.allow("a") is True
    assert limits.allow("a") is False


def test_keys_are_counted_apart() -> None:
    clock = Clock()
    limits = buckets(clock, "1/second")
    assert limits.allow("a") and limits.allow("b")
    assert not limits.allow("a")


def test_every_rate_must_allow() -> None:
    clock = Clock()
    limits = buckets(clock)  # 5/second and 8/minute
    allowed = 0
    for _ in range(20):
        allowed += limits.allow("a")
        clock.now += 0.5
    assert allowed == 8 + 1  # the minute budget, plus what refilled in 10 s


def test_forgetting_a_key_gives_it_a_full_bucket() -> None:
    clock = Clock()
    limits = buckets(clock, "1/minute")
    assert limits.allow("a") and not limits.allow("a")
    limits.forget("a")
    assert limits.allow("a")


def test_idle_buckets_leave_as_others_are_checked() -> None:
    clock = Clock()
    limits = buckets(clock, "10/minute", max_keys=1_000_000)
    for n in range(1000):
        limits.allow(f"10.0.{n // 256}.{n % 256}")
    assert len(limits) == 1000
    clock.now += 60  # every one of them has refilled
    for _ in range(600):
        limits.allow("192.0.2.1")
    # Each check drops up to two full buckets: the table empties while in use.
    assert len(limits) == 1


def test_a_bucket_still_counting_stays_while_full_ones_go() -> None:
    clock = Clock()
    limits = buckets(clock, "2/minute")
    limits.allow("busy")
    limits.allow("busy")
    for n in range(50):
        limits.allow(f"idle-{n}")
    clock.now += 30  # "busy" has one token back, not both; the idle ones are full
    limits.allow("newcomer")
    assert not (limits.allow("busy") and limits.allow("busy"))


def test_the_table_never_grows_past_its_cap() -> None:
    clock = Clock()
    limits = buckets(clock, "1/day", max_keys=500)
    for n in range(20_000):
        limits.allow(f"addr-{n}")
    assert len(limits) <= 500


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:198.51.100.4", "198.51.100.4"),
        ("testclient", "testclient"),
    ],
)
def test_ipv6_addresses_count_by_their_64_block(address: str, key: str) -> None:
    assert address_key(address) == key


async def test_a_block_of_ipv6_addresses_shares_one_limit() -> None:
    throttle = Throttle(Settings(limit_connects="3/minute"), clock=Clock())
    results = [
        await throttle.allow_address("connect", f"2001:db8:42:7::{n:x}") for n in range(1, 10)
    ]
    assert results == [True] * 3 + [False] * 6
    assert await throttle.allow_address("connect", "2001:db8:42:8::1")


async def test_events_connections_and_creations_are_counted_apart() -> None:
    throttle = Throttle(
        Settings(limit_events="1/second", limit_connects="1/minute", limit_creates="1/minute"),
        clock=Clock(),
    )
    assert throttle.allow_event("198.51.100.1")
    assert await throttle.allow_address("connect", "198.51.100.1")
    assert await throttle.allow_address("create", "198.51.100.1")
    assert not throttle.allow_event("198.51.100.1")
    assert not await throttle.allow_address("connect", "198.51.100.1")


# --- shared across instances, in a real Redis


async def test_instances_share_per_address_limits_through_redis(redis: RedisServer) -> None:
    redis.flush()
    clients = [aioredis.Redis.from_url(redis.url) for _ in range(2)]
    settings = Settings(limit_creates="4/minute")
    instances = [Throttle(settings, shared=RedisLimiter(c, "test")) for c in clients]
    allowed = [await instances[n % 2].allow_address("create", "198.51.100.9") for n in range(8)]
    assert allowed == [True] * 4 + [False] * 4
    # Redis forgets the bucket once it would be full again.
    ttl = await clients[0].pttl("test:rate:create:198.51.100.9")
    assert 0 < ttl <= 60_000
    for client in clients:
        await client.aclose()


async def test_a_redis_bucket_refills_with_time(redis: RedisServer) -> None:
    redis.flush()
    client = aioredis.Redis.from_url(redis.url)
    limiter = RedisLimiter(client, "test")
    rates = [Rate(2, 0.5)]
    assert [await limiter.allow("connect", "k", rates) for _ in range(3)] == [True, True, False]
    await asyncio.sleep(0.3)  # one token back
    assert await limiter.allow("connect", "k", rates)
    await asyncio.sleep(0.6)
    assert await client.exists("test:rate:connect:k") == 0
    await client.aclose()


async def test_without_redis_the_limits_fall_back_to_this_instance() -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    throttle = Throttle(Settings(limit_connects="2/minute"), shared=RedisLimiter(client, "t"))
    allowed = [await throttle.allow_address("connect", "198.51.100.2") for _ in range(3)]
    assert allowed == [True, True, False]
    await client.aclose()


@pytest.mark.parametrize(
    ("text", "rates"),
    [
        ("20/second", [Rate(20, 1.0)]),
        ("10/minute; 100/day", [Rate(10, 60.0), Rate(100, 86400.0)]),
        (" 3 / hour ", [Rate(3, 3600.0)]),
    ],
)
def test_rates_are_read_from_text(text: str, rates: list[Rate]) -> None:
    assert parse_rates(text) == rates


@pytest.mark.parametrize("text", ["", "lots", "0/second", "5/fortnight", "5/second;"])
def test_unreadable_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="cannot read rate"):
        parse_rates(text)
