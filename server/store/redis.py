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
from server.store.base import (
    Change,
    SessionNotFound,
    Store,
    StoreFull,
    StoreUnavailable,
    Updated,
    successor,
)

log = logging.getLogger(__name__)

# A session is a hash {doc: <JSON>, version: <int>}. The write succeeds only if nobody wrote a
# newer version since we read ours: optimistic concurrency, so a change computed in Python from a
# stale read can never overwrite a ballot cast on another instance.
_COMPARE_AND_SET = """
local current = redis.call('HGET', KEYS[1], 'version')
if current == false then return -1 end
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'version', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
return 1
"""

_CREATE = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then return -2 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'doc', ARGV[1], 'version', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[7])
return 1
"""

MAX_ATTEMPTS = 100

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisStore(Store):
    def __init__(
        self,
        url: str,
        *,
        ttl_seconds: float = 30 * 86400,
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
        self._ttl_ms = int(ttl_seconds * 1000)
        self._ttl = ttl_seconds
        self._max = max_sessions
        self._prefix = prefix
        self._clock = clock
        self._cas = self._redis.register_script(_COMPARE_AND_SET)
        self._create = self._redis.register_script(_CREATE)

    def _key(self, session_id: str) -> str:
        return f"{self._prefix}:session:{session_id}"

    @property
    def _index(self) -> str:
        return f"{self._prefix}:sessions"

    async def create(self, session: Session) -> None:
        now = self._clock()
        try:
            created = await self._create(
                keys=[self._key(session.id), self._index],
                args=[
                    dump_session(session),
                    session.version,
                    self._ttl_ms,
                    now,
                    now - self._ttl,
                    self._max,
                    session.id,
                ],
            )
        except _UNREACHABLE as exc:
            raise StoreUnavailable(str(exc)) from exc
        if created == -2:
            raise StoreFull("this server holds as many sessions as it is allowed to")
        if created == 0:
            raise ValueError(f"session {session.id} exists already")

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
                        self._ttl_ms,
                        now,
                        session_id,
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
                    pipe.pexpire(self._holding(instance), self._ttl_ms)
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
