"""The Redis store: sessions shared by every instance, each change one compare-and-set step."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Collection

import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from server.models import Session, dump_session, load_session
from server.settings import Rate
from server.store.base import (
    Change,
    Lifetimes,
    SessionNotFound,
    Store,
    StoreFull,
    StoreUnavailable,
    Updated,
    successor,
)

log = logging.getLogger(__name__)

# A session is a hash {doc: <JSON>, version: <int>, online: <people connected>}, listed in an
# index sorted by the time of its last change. The write succeeds only if nobody wrote a newer
# version since we read ours: optimistic concurrency, so a change computed in Python from a
# stale read can never overwrite a ballot cast on another instance.
_COMPARE_AND_SET = """
local current = redis.call('HGET', KEYS[1], 'version')
if current == false then return -1 end
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'version', ARGV[3], 'online', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
return 1
"""

# ARGV: doc, version, ttl ms, now, forget index entries older than this, max sessions, id.
_CREATE = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then return -2 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'doc', ARGV[1], 'version', ARGV[2], 'online', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[7])
return 1
"""

# Evict one session if it is idle (nobody online, unchanged since ARGV[1]), or drop its index
# entry if it has expired already. ARGV: idle cutoff, id.
_EVICT_IF_IDLE = """
local online = redis.call('HGET', KEYS[1], 'online')
if online == false then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
local changed = redis.call('ZSCORE', KEYS[2], ARGV[2])
if tonumber(online) == 0 and changed and tonumber(changed) < tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
return 0
"""

# Sessions looked at, oldest change first, when the store is full and one must make room.
EVICTION_CANDIDATES = 200

# A token bucket per key, timed by Redis' own clock so every instance agrees. The key lives
# only until the bucket would be full again: Redis forgets idle addresses by itself.
# ARGV: count_1, seconds_1, count_2, seconds_2, ...
_RATE_BUCKET = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local saved = redis.call('GET', KEYS[1])
local tokens = {}
local last = now
if saved then
  for value in string.gmatch(saved, '[^,]+') do tokens[#tokens + 1] = tonumber(value) end
  last = table.remove(tokens)
end
local allowed = true
local counts = {}
local rates = #ARGV / 2
for r = 1, rates do
  local count = tonumber(ARGV[2 * r - 1])
  local seconds = tonumber(ARGV[2 * r])
  counts[r] = count
  local t = tokens[r] or count
  t = math.min(count, t + (now - last) * count / seconds)
  tokens[r] = t
  if t < 1 then allowed = false end
end
local full_in = 0
local out = {}
for r = 1, rates do
  if allowed then tokens[r] = tokens[r] - 1 end
  local seconds = tonumber(ARGV[2 * r])
  full_in = math.max(full_in, (counts[r] - tokens[r]) / counts[r] * seconds)
  out[r] = string.format('%.4f', tokens[r])
end
out[rates + 1] = string.format('%.4f', now)
redis.call('SET', KEYS[1], table.concat(out, ','), 'PX', math.max(1, math.ceil(full_in * 1000)))
if allowed then return 1 end
return 0
"""

MAX_ATTEMPTS = 100

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisLimiter:
    """Per-address token buckets in Redis, shared by every instance (see server.throttle)."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._take = client.register_script(_RATE_BUCKET)
        self._prefix = prefix

    async def allow(self, kind: str, key: str, rates: list[Rate]) -> bool:
        args: list[float] = []
        for rate in rates:
            args += [rate.count, rate.seconds]
        allowed = await self._take(keys=[f"{self._prefix}:rate:{kind}:{key}"], args=args)
        return bool(allowed)


class RedisStore(Store):
    def __init__(
        self,
        url: str,
        *,
        lifetimes: Lifetimes | None = None,
        max_sessions: int = 10_000,
        prefix: str = "stackvote",
        timeout: float = 2.0,
        max_connections: int = 50,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        # A blocking pool: a burst of requests waits for a free connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # Retry a dropped connection (e.g. Redis restarted), but not a timeout: a stalled
            # Redis should give a quick, clear error rather than a request that hangs.
            retry=Retry(
                ExponentialBackoff(cap=1.0, base=0.05),
                retries=3,
                supported_errors=(RedisConnectionError,),
            ),
            health_check_interval=15,
        )
        self._pool = pool
        self._redis = aioredis.Redis(connection_pool=pool)
        self._lifetimes = lifetimes or Lifetimes()
        self._max = max_sessions
        self._prefix = prefix
        self._clock = clock
        self._cas = self._redis.register_script(_COMPARE_AND_SET)
        self._create = self._redis.register_script(_CREATE)
        self._evict = self._redis.register_script(_EVICT_IF_IDLE)

    def _key(self, session_id: str) -> str:
        return f"{self._prefix}:session:{session_id}"

    @property
    def _index(self) -> str:
        return f"{self._prefix}:sessions"

    def _ttl_ms(self, session: Session) -> int:
        return int(self._lifetimes.ttl(session) * 1000)

    async def create(self, session: Session) -> None:
        try:
            created = await self._try_create(session)
            if created == -2 and await self._make_room():
                created = await self._try_create(session)
        except _UNREACHABLE as exc:
            raise StoreUnavailable(str(exc)) from exc
        if created == -2:
            raise StoreFull("this server holds as many sessions as it is allowed to")
        if created == 0:
            raise ValueError(f"session {session.id} exists already")

    async def _try_create(self, session: Session) -> int:
        now = self._clock()
        created: int = await self._create(
            keys=[self._key(session.id), self._index],
            args=[
                dump_session(session),
                session.version,
                self._ttl_ms(session),
                now,
                now - self._lifetimes.ttl_seconds,
                self._max,
                session.id,
            ],
        )
        return created

    async def _make_room(self) -> bool:
        """Evict the sessions idle longest (or forget expired ones); True if any went."""
        oldest = await self._redis.zrange(self._index, 0, EVICTION_CANDIDATES - 1)
        cutoff = self._clock() - self._lifetimes.idle_seconds
        for raw in oldest:
            assert isinstance(raw, bytes | str)
            session_id = _text(raw)
            if await self._evict(keys=[self._key(session_id), self._index], args=[cutoff, raw]):
                log.info("evicted idle session %s to make room", session_id)
                return True
        return False

    async def get(self, session_id: str) -> Session | None:
        try:
            doc = await self._redis.hget(self._key(session_id), "doc")
        except _UNREACHABLE as exc:
            raise StoreUnavailable(str(exc)) from exc
        return None if doc is None else load_session(doc)

    async def update(self, session_id: str, change: Change) -> Updated:
        for attempt in range(MAX_ATTEMPTS):
            current = await self.get(session_id)
            if current is None:
                raise SessionNotFound(session_id)
            now = self._clock()
            saved = successor(current, change, now)
            if saved is None:
                return Updated(current, changed=False)
            try:
                outcome = await self._cas(
                    keys=[self._key(session_id), self._index],
                    args=[
                        current.version,
                        dump_session(saved),
                        saved.version,
                        self._ttl_ms(saved),
                        now,
                        session_id,
                        sum(p.online for p in saved.participants),
                    ],
                )
            except _UNREACHABLE as exc:
                # The write may or may not have landed; the caller reports failure and the
                # client retries, which is safe because a repeated ballot changes nothing.
                raise StoreUnavailable(str(exc)) from exc
            if outcome == 1:
                return Updated(saved, changed=True)
            if outcome == -1:
                raise SessionNotFound(session_id)
            # Another instance wrote first: read again and re-apply the rules to fresh state.
            await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311
        raise StoreUnavailable(f"session {session_id} is too busy; please try again")

    async def versions(self, session_ids: Collection[str]) -> dict[str, int]:
        ids = list(session_ids)
        try:
            # One round trip for all of them: this runs every second for every active room.
            async with self._redis.pipeline(transaction=False) as pipe:
                for session_id in ids:
                    pipe.hget(self._key(session_id), "version")
                raw = await pipe.execute()
        except _UNREACHABLE as exc:
            raise StoreUnavailable(str(exc)) from exc
        return {i: int(v) for i, v in zip(ids, raw, strict=True) if v is not None}

    @property
    def _instances(self) -> str:
        return f"{self._prefix}:instances"

    def _alive(self, instance: str) -> str:
        return f"{self._prefix}:instance:{instance}:alive"

    def _holding(self, instance: str) -> str:
        return f"{self._prefix}:instance:{instance}:sessions"

    async def heartbeat(self, instance: str, session_ids: Collection[str], ttl: float) -> bool:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.sadd(self._instances, instance)
                pipe.set(self._alive(instance), 1, px=int(ttl * 1000))
                if session_ids:
                    pipe.sadd(self._holding(instance), *session_ids)
                    pipe.pexpire(self._holding(instance), int(self._lifetimes.ttl_seconds * 1000))
                added, *_ = await pipe.execute()
        except _UNREACHABLE as exc:
            raise StoreUnavailable(str(exc)) from exc
        return bool(added)

    async def orphans(self) -> dict[str, set[str]]:
        try:
            found: dict[str, set[str]] = {}
            for raw in await self._redis.smembers(self._instances):
                instance = _text(raw)
                if not await self._redis.exists(self._alive(instance)):
                    held = await self._redis.smembers(self._holding(instance))
                    found[instance] = {_text(s) for s in held}
            return found
        except _UNREACHABLE as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def forget_instance(self, instance: str) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._holding(instance))
                pipe.srem(self._instances, instance)
                await pipe.execute()
        except _UNREACHABLE as exc:
            raise StoreUnavailable(str(exc)) from exc

    def shared_limiter(self) -> RedisLimiter:
        return RedisLimiter(self._redis, self._prefix)

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except (*_UNREACHABLE, RedisError) as exc:
            raise StoreUnavailable(f"cannot reach Redis: {exc}") from exc

    async def close(self) -> None:
        await self._redis.aclose()
        await self._pool.aclose()


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
