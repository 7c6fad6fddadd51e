"""The Redis store: sessions shared by every instance; each change one script that writes only
what changed, if nobody stored another change first, and tells the other instances."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    ClusterError,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.models import Session
from server.ops import Op, Record, dump_record
from server.settings import Rate
from server.store import layout, urls
from server.store.base import (
    Conflict,
    JoinCodeTaken,
    Lifetimes,
    OutcomeUnknown,
    SessionNotFound,
    Store,
    StoreFull,
    StoreUnavailable,
    Unconfirmed,
)
from server.store.feed import ChannelFeed, Feed, FeedHandler, ShardedFeed, SharedFeed

log = logging.getLogger(__name__)

T = TypeVar("T")

# Field writes, as prepared by server.store.layout: for each key, its index in KEYS, the number
# of fields, then field/value pairs; an empty value deletes the field.
_APPLY = """
local function apply(i)
  while i <= #ARGV do
    local key = KEYS[tonumber(ARGV[i])]
    local count = tonumber(ARGV[i + 1])
    i = i + 2
    local sets = {}
    for _ = 1, count do
      if ARGV[i + 1] == '' then
        redis.call('HDEL', key, ARGV[i])
      else
        sets[#sets + 1] = ARGV[i]
        sets[#sets + 1] = ARGV[i + 1]
      end
      i = i + 2
    end
    if #sets > 0 then redis.call('HSET', key, unpack(sets)) end
  end
end
"""

# KEYS: every key of the session, meta first. ARGV: ttl ms, expiry deadline ms, then writes.
_CREATE = (
    _APPLY
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
apply(3)
redis.call('HSET', KEYS[1], 'x', ARGV[2])
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
return 1
"""
)

# Store a change only if nobody stored another one first (optimistic concurrency: a change
# computed from a copy that is behind can never overwrite a ballot cast through another
# instance), and tell the instances following the session, in version order.
# KEYS: meta, then the keys written. ARGV: expected version, channel, record, ttl ms, now ms,
# refresh slack ms, then writes. Returns {1, refresh?}, {0, current version} or {-1}.
_COMMIT = (
    _APPLY
    + """
local version = redis.call('HGET', KEYS[1], 'v')
if version == false then return {-1} end
if version ~= ARGV[1] then return {0, tonumber(version)} end
apply(7)
for i = 2, #KEYS do
  if redis.call('PTTL', KEYS[i]) == -1 then redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
end
redis.call('PUBLISH', ARGV[2], ARGV[3])  -- SPUBLISH on a cluster
local deadline = tonumber(ARGV[5]) + tonumber(ARGV[4])
local expires = tonumber(redis.call('HGET', KEYS[1], 'x') or 0)
if math.abs(deadline - expires) > tonumber(ARGV[6]) then return {1, 1} end
return {1, 0}
"""
)

# Every key of a session lives until the same deadline. KEYS: every key. ARGV: ttl ms, deadline.
_REFRESH = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
redis.call('HSET', KEYS[1], 'x', ARGV[2])
"""

# Evict a session if it is idle (nobody online, unchanged since ARGV[1]). KEYS: every key.
_EVICT_IF_IDLE = """
local meta = redis.call('HMGET', KEYS[1], 'on', 'u')
if meta[1] == false then return 1 end
if tonumber(meta[1]) == 0 and tonumber(meta[2]) < tonumber(ARGV[1]) then
  redis.call('DEL', unpack(KEYS))
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

# Redis cannot be reached, or (a cluster) the node for the key is failing over or moving.
_UNREACHABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    ClusterError,
    TryAgainError,
    SlotNotCoveredError,
    # What redis-py's cluster client raises when a connection closes under a command (seen
    # while primaries failed over and slots moved: uvloop's RuntimeError on a closed
    # transport, AttributeError on a connection whose writer is already gone): the connection
    # is lost, whatever the type says.
    RuntimeError,
    AttributeError,
)


class RedisLimiter:
    """Per-address token buckets in Redis, shared by every instance (see server.throttle)."""

    def __init__(self, client: aioredis.Redis | RedisCluster, prefix: str) -> None:
        self._take = client.register_script(_RATE_BUCKET)
        self._prefix = prefix

    async def allow(self, kind: str, key: str, rates: list[Rate]) -> bool:
        args: list[float] = []
        for rate in rates:
            args += [rate.count, rate.seconds]
        allowed = await self._take(keys=[f"{self._prefix}:rate:{kind}:{key}"], args=args)
        return bool(allowed)


class RedisStore(Store):
    """Sessions in Redis: one server, the primary Sentinel names, or a Cluster (by URL)."""

    def __init__(
        self,
        url: str,
        *,
        lifetimes: Lifetimes | None = None,
        max_sessions: int = 10_000,
        prefix: str = "stackvote",
        timeout: float = 2.0,
        max_connections: int = 50,
        wait_replicas: int = 0,
        wait_ms: float = 1000,
        channels: str = "room",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.url = url
        self.target = urls.parse(url)
        self.cluster = self.target.kind == "cluster"
        self._redis = urls.connect(self.target, timeout=timeout, max_connections=max_connections)
        self._lifetimes = lifetimes or Lifetimes()
        self._max = max_sessions
        self._prefix = prefix
        self._clock = clock
        self._wait = (wait_replicas, int(wait_ms))
        self._create = self._redis.register_script(_CREATE)
        self._commit = self._redis.register_script(
            _COMMIT.replace("'PUBLISH'", "'SPUBLISH'") if self.cluster else _COMMIT
        )
        self._refresh = self._redis.register_script(_REFRESH)
        self._evict = self._redis.register_script(_EVICT_IF_IDLE)
        self._shared_channel: str | None = None
        self._feed: Feed
        if channels == "shared":
            # PUBLISH reaches every node of a cluster, and every instance hears everything.
            self._shared_channel = f"{prefix}:feed"
            self._commit = self._redis.register_script(_COMMIT)
            self._feed_client = self._pubsub_client()
            self._feed = SharedFeed(self._feed_client, self._shared_channel)
        elif isinstance(self._redis, RedisCluster):
            self._feed = ShardedFeed(self._redis)
        else:
            self._feed = ChannelFeed(self._redis)
        self._metrics: Any = None
        # Cluster only, with WAIT: a client per node, for a commit and its WAIT on one connection.
        self._nodes: dict[str, aioredis.Redis] = {}

    def _pubsub_client(self) -> aioredis.Redis:
        if isinstance(self._redis, RedisCluster):
            # Plain pub/sub on a cluster: any node hears every PUBLISH.
            host, port = self.target.hosts[0]
            return aioredis.Redis(
                host=host, port=port, username=self.target.username, password=self.target.password
            )
        return self._redis

    def instrument(self, metrics: Any) -> None:
        """Count round trips and errors in `metrics` (server.metrics)."""
        self._metrics = metrics

    @contextlib.asynccontextmanager
    async def _timed(self, command: str) -> AsyncIterator[None]:
        metrics = self._metrics
        if metrics is None:
            yield
            return
        started = time.perf_counter()
        try:
            yield
        except (RedisError, OSError):
            metrics.redis_errors.labels(command).inc()
            raise
        finally:
            metrics.redis_seconds.labels(command).observe(time.perf_counter() - started)

    @property
    def followed_channels(self) -> int:
        return len(self._feed.channels)

    def keys(self, session_id: str) -> layout.Keys:
        return layout.Keys(self._prefix, session_id)

    def _code_key(self, code: str) -> str:
        # A key of its own, outside the session's hash tag: it is found by the code alone.
        return f"{self._prefix}:code:{code}"

    @property
    def _index(self) -> str:
        # Every session, scored by the time its expiry was last pushed back (about its last
        # change): the oldest are the first candidates for eviction.
        return f"{self._prefix}:sessions"

    def now(self) -> float:
        return self._clock()

    def _ttl_ms(self, session: Session) -> int:
        return int(self._lifetimes.ttl(session) * 1000)

    # --- sessions

    async def create(self, session: Session) -> None:
        try:
            if await self._redis.zcard(self._index) >= self._max and not await self._make_room():
                raise StoreFull("this server holds as many sessions as it is allowed to")
            keys = self.keys(session.id)
            every = keys.all(layout_case_ids(session))
            ttl = self._ttl_ms(session)
            code = session.join_code
            # The code first (on a cluster it lives on another node, so no script can write
            # both): a code another live session holds is refused before anything is stored.
            if code is not None and not await self._redis.set(
                self._code_key(code), session.id, nx=True, px=ttl
            ):
                raise JoinCodeTaken(code)
            try:
                created = await self._create(
                    keys=every,
                    args=[
                        ttl,
                        int(self.now() * 1000) + ttl,
                        *_encode_writes(every, layout.everything(keys, session)),
                    ],
                )
            except BaseException:
                if code is not None:
                    await self._redis.delete(self._code_key(code))
                raise
            if not created:
                if code is not None:
                    await self._redis.delete(self._code_key(code))
                raise ValueError(f"session {session.id} exists already")
            await self._redis.zadd(self._index, {session.id: self.now()})
        except _UNREACHABLE as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def _read(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run a read (or a write that may safely happen twice) once more, on a fresh
        connection, if the first try finds its pooled connection dead: after Redis restarts,
        the pool's idle connections are all dead, and the first command on each would fail
        although Redis is fine. A write whose fate is unknown is never sent again here."""
        try:
            return await work()
        except (RedisConnectionError, ConnectionResetError, BrokenPipeError):
            await self._drop_idle_connections()
            return await work()

    async def _drop_idle_connections(self) -> None:
        pool = getattr(self._redis, "connection_pool", None)
        if pool is not None:
            with contextlib.suppress(*_UNREACHABLE):
                await pool.disconnect(inuse_connections=False)

    async def find_join_code(self, code: str) -> str | None:
        async def read() -> str | None:
            raw = await self._redis.get(self._code_key(code))
            if raw is None:
                return None
            session_id = _text(raw)
            # An evicted session's code may outlive it by a moment: only a live one counts.
            if not await self._redis.exists(self.keys(session_id).meta):
                return None
            return session_id

        try:
            return await self._read(read)
        except _UNREACHABLE as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def get(self, session_id: str) -> Session | None:
        keys = self.keys(session_id)

        async def read() -> tuple[list[str], list[Any]] | None:
            meta = await self._redis.hgetall(keys.meta)
            case_ids = layout.case_ids(meta)
            if case_ids is None:
                return None
            async with self._redis.pipeline(transaction=True) as pipe:
                for key in keys.all(case_ids):
                    pipe.hgetall(key)
                return case_ids, await pipe.execute()

        try:
            async with self._timed("get"):
                found = await self._read(read)
            if found is None:
                return None
            case_ids, raw = found
        except _UNREACHABLE as exc:
            raise StoreUnavailable(str(exc)) from exc
        return layout.load(session_id, raw, case_ids)

    async def commit(self, before: Session, after: Session, ops: Sequence[Op]) -> None:
        keys = self.keys(before.id)
        writes = layout.changes(keys, before, after)
        written = [keys.meta, *(k for k in writes if k != keys.meta)]
        record = Record(
            session=before.id, base=before.version, ops=tuple(ops), now=after.updated_at
        )
        ttl = self._ttl_ms(after)
        slack = min(3_600_000, ttl // 4)
        args = [
            before.version,
            self._shared_channel or keys.feed,
            dump_record(record),
            ttl,
            int(self.now() * 1000),
            slack,
            *_encode_writes(written, writes),
        ]
        replicated: int | None = None
        try:
            async with self._timed("commit"):
                if self._wait[0]:
                    outcome, replicated = await self._commit_and_wait(keys.meta, written, args)
                else:
                    outcome = await self._commit(keys=written, args=args)
        except _UNREACHABLE as exc:
            # Sent, perhaps stored: only reading the session again can tell.
            raise OutcomeUnknown(str(exc)) from exc
        if outcome[0] == -1:
            raise SessionNotFound(before.id)
        if outcome[0] == 0:
            raise Conflict(int(outcome[1]))
        if outcome[1]:
            await self._push_back_expiry(after, ttl)
        if replicated is not None and replicated < self._wait[0]:
            raise Unconfirmed(
                f"{replicated} of {self._wait[0]} replicas confirmed within {self._wait[1]} ms"
            )

    async def _commit_and_wait(
        self, meta: str, keys: list[str], args: list[Any]
    ) -> tuple[Any, int]:
        """The commit, then WAIT on the same connection (WAIT counts the replicas that have
        every write this connection made). On a cluster, on a connection to the node that
        holds the session."""
        client: Any = self._redis
        if isinstance(self._redis, RedisCluster):
            client = await self._node_client(meta)
        # Two round trips, not one pipeline: a WAIT that reaches Redis in the same read as
        # its write sometimes waits for the replica's next periodic acknowledgement (about a
        # second; measured with Redis 7.0), while one sent after the write's reply never did.
        async with client.client() as connection:
            try:
                outcome = await self._commit(keys=keys, args=args, client=connection)
            except ResponseError as exc:
                if isinstance(self._redis, RedisCluster) and str(exc).startswith(("MOVED", "ASK")):
                    # Refused where it was sent (the slot moved): nothing was stored.
                    self._nodes.clear()
                    await self._redis.nodes_manager.initialize()
                    raise RedisConnectionError(f"the session moved ({exc})") from exc
                raise
            if outcome[0] != 1:
                return outcome, 0  # nothing was written: nothing to wait for
            replicated = await connection.execute_command("WAIT", self._wait[0], self._wait[1])
        return outcome, int(replicated)

    async def _node_client(self, key: str) -> aioredis.Redis:
        assert isinstance(self._redis, RedisCluster)
        node = self._redis.get_node_from_key(key)
        if node is None:
            raise RedisConnectionError(f"no node holds {key} right now")
        client = self._nodes.get(node.name)
        if client is None:
            client = aioredis.Redis(
                host=node.host,
                port=int(node.port),
                username=self.target.username,
                password=self.target.password,
                socket_timeout=self._redis.connection_kwargs.get("socket_timeout"),
            )
            self._nodes[node.name] = client
        return client

    async def _push_back_expiry(self, session: Session, ttl: int) -> None:
        """Every key of the session lives `ttl` from now (done now and then, not per change)."""
        try:
            every = self.keys(session.id).all(layout_case_ids(session))
            await self._refresh(keys=every, args=[ttl, int(self.now() * 1000) + ttl])
            if session.join_code is not None:
                await self._redis.pexpire(self._code_key(session.join_code), ttl)
            await self._redis.zadd(self._index, {session.id: self.now()})
        except _UNREACHABLE as exc:
            log.warning("could not push back the expiry of %s: %s", session.id, exc)

    async def _make_room(self) -> bool:
        """Evict the session idle longest (or forget expired ones); True if any went."""
        oldest = await self._redis.zrange(self._index, 0, EVICTION_CANDIDATES - 1)
        cutoff = repr(self.now() - self._lifetimes.idle_seconds)
        for raw in oldest:
            assert isinstance(raw, bytes | str)
            session_id = _text(raw)
            keys = self.keys(session_id)
            meta = await self._redis.hgetall(keys.meta)
            case_ids = layout.case_ids(meta) or []
            if await self._evict(keys=keys.all(case_ids), args=[cutoff]):
                await self._redis.zrem(self._index, session_id)
                code = layout.join_code(meta)
                if code is not None:
                    await self._redis.delete(self._code_key(code))
                if meta:
                    log.info("evicted idle session %s to make room", session_id)
                return True
        return False

    async def versions(self, session_ids: Collection[str]) -> dict[str, int]:
        ids = list(session_ids)

        async def read() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for session_id in ids:
                    pipe.hget(self.keys(session_id).meta, "v")
                return await pipe.execute()

        try:
            async with self._timed("versions"):
                raw = await self._read(read)
        except _UNREACHABLE as exc:
            raise StoreUnavailable(str(exc)) from exc
        return {i: int(v) for i, v in zip(ids, raw, strict=True) if v is not None}

    # --- the change feed

    def on_record(self, handler: FeedHandler) -> None:
        self._feed.on_record(handler)

    async def follow(self, session_id: str) -> None:
        try:
            await self._feed.follow(self.keys(session_id).feed)
        except (*_UNREACHABLE, TimeoutError) as exc:
            raise StoreUnavailable(f"cannot follow {session_id}: {exc}") from exc

    async def unfollow(self, session_id: str) -> None:
        try:
            await self._feed.unfollow(self.keys(session_id).feed)
        except _UNREACHABLE as exc:
            log.info("could not leave the feed of %s: %s", session_id, exc)

    # --- instances

    # What instances say of themselves shares one hash tag: one node of a cluster keeps it,
    # and a heartbeat writes it in one transaction.
    @property
    def _instances(self) -> str:
        return f"{self._prefix}:{{fleet}}:instances"

    def _alive(self, instance: str) -> str:
        return f"{self._prefix}:{{fleet}}:instance:{instance}:alive"

    def _holding(self, instance: str) -> str:
        return f"{self._prefix}:{{fleet}}:instance:{instance}:sessions"

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
            async with self._timed("ping"):
                await self._read(self._redis.ping)
        except (*_UNREACHABLE, RedisError) as exc:
            raise StoreUnavailable(f"cannot reach Redis: {exc}") from exc

    async def close(self) -> None:
        await self._feed.close()
        for client in self._nodes.values():
            await client.aclose()
        await self._redis.aclose()
        if self._shared_channel is not None and isinstance(self._redis, RedisCluster):
            await self._feed_client.aclose()


def layout_case_ids(session: Session) -> list[str]:
    return [c.id for c in session.cases]


def _encode_writes(keys: list[str], writes: layout.Writes) -> list[bytes | str | int]:
    """Writes as script arguments: key index (1-based, in `keys`), count, field/value pairs."""
    out: list[bytes | str | int] = []
    for key, fields in writes.items():
        out += [keys.index(key) + 1, len(fields)]
        for field, value in fields.items():
            out += [field, b"" if value is None else value]
    return out


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
