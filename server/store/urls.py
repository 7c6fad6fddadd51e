"""Redis URLs, in the three forms stackvote accepts, and the clients they open.

    redis://[user:password@]host:port/db      one server (rediss:// for TLS, unix:// a socket)
    redis+sentinel://[user:password@]host:port[,host:port...]/service/db
                                              the primary Sentinel names for `service`,
                                              found again by itself after a failover
    redis+cluster://[user:password@]host:port[,host:port...]
                                              a Redis Cluster (7 or newer): the nodes listed
                                              are only where to start; the rest is discovered

Credentials are for the Redis servers that hold data; sentinels are asked without them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff, NoBackoff

Kind = Literal["single", "sentinel", "cluster"]

SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://")


@dataclass(frozen=True)
class RedisTarget:
    kind: Kind
    url: str
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None

    @property
    def shown(self) -> str:
        """The URL without its password, for messages and logs."""
        if self.password is None:
            return self.url
        parts = urlsplit(self.url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        user = f"{self.username}:***@" if self.username else ":***@"
        return parts._replace(netloc=user + netloc).geturl()


def parse(url: str) -> RedisTarget:
    """Read a Redis URL; ValueError says what is wrong with it."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisTarget("single", url)
    kinds = {"redis+sentinel://": "sentinel", "redis+cluster://": "cluster"}
    scheme = next((s for s in kinds if url.startswith(s)), None)
    if scheme is None:
        raise ValueError(f"it must start with one of {', '.join(SCHEMES)}")
    kind = kinds[scheme]
    rest = url[len(scheme) :]
    rest, _, query = rest.partition("?")
    if query:
        raise ValueError(f"options after '?' are not read ({sorted(parse_qs(query))})")
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, has_password, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    hosts = tuple(_host_port(part) for part in netloc.split(","))
    segments = [s for s in path.split("/") if s]
    if kind == "sentinel":
        if not segments:
            raise ValueError("name the service after the sentinels: .../mymaster/0")
        if len(segments) > 2:
            raise ValueError("only a service name and a database number may follow the hosts")
        db = _db(segments[1]) if len(segments) == 2 else 0
        return RedisTarget("sentinel", url, hosts, unquote(segments[0]), db, username, password)
    if segments:
        raise ValueError("a cluster URL ends after its hosts (a cluster has only database 0)")
    return RedisTarget("cluster", url, hosts, "", 0, username, password)


def _host_port(text: str) -> tuple[str, int]:
    host, colon, port = text.strip().rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} must be host:port")
    return host.strip("[]"), int(port)


def _db(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"the database must be a number, not {text!r}")
    return int(text)


def _no_retry() -> Retry:
    # A command is sent once. If the connection drops, the caller finds out what happened
    # (server.rooms reads the session again before trying a write again); a retry here would
    # hide whether a write that failed was sent at all, and delay the truthful refusal.
    return Retry(NoBackoff(), 0)


def _cluster_retry() -> Retry:
    # On a cluster a retry is how the client learns a new slot map (a failover, a moved
    # slot): it refreshes the map after a connection error and sends the command again.
    return Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3)


def connect(
    target: RedisTarget, *, timeout: float = 2.0, max_connections: int = 50
) -> aioredis.Redis | RedisCluster:
    """A client for the target; no connection is made until it is first used."""
    timeouts: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    credentials: dict[str, Any] = {"username": target.username, "password": target.password}
    if target.kind == "single":
        # A blocking pool: a burst of requests waits for a free connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            target.url,
            max_connections=max_connections,
            timeout=timeout,
            retry=_no_retry(),
            health_check_interval=15,
            **timeouts,
        )
        return aioredis.Redis(connection_pool=pool)
    if target.kind == "sentinel":
        sentinel = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]
            list(target.hosts), sentinel_kwargs=timeouts, **timeouts
        )
        client: aioredis.Redis = sentinel.master_for(
            target.service,
            redis_class=aioredis.Redis,
            db=target.db,
            retry=_no_retry(),
            health_check_interval=15,
            max_connections=max_connections,
            **credentials,
            **timeouts,
        )
        return client
    return BoundedCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.hosts],
        retry=_cluster_retry(),
        max_connections=max_connections,
        health_check_interval=15,
        **credentials,
        **timeouts,
    )


# Set while a task holds one of a BoundedCluster's places (a command inside a pipeline, sent
# again after a redirection, must not wait for a second place).
_holding: ContextVar[bool] = ContextVar("holding a cluster connection", default=False)


class BoundedCluster(RedisCluster):
    """A cluster client that waits for a free connection, as the single server's blocking pool
    does, instead of failing a burst of requests with MaxConnectionsError: at most
    `max_connections` commands or pipelines are under way at once (so at most that many
    connections to any one node)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._places = asyncio.Semaphore(kwargs.get("max_connections", 100))

    async def _bounded(self, call: Callable[[], Awaitable[Any]]) -> Any:
        if _holding.get():
            return await call()
        async with self._places:
            token = _holding.set(True)
            try:
                return await call()
            finally:
                _holding.reset(token)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        return await self._bounded(
            lambda: super(BoundedCluster, self).execute_command(*args, **kwargs)
        )

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        execute = pipe.execute

        async def bounded(*args: Any, **kwargs: Any) -> Any:
            return await self._bounded(lambda: execute(*args, **kwargs))

        pipe.execute = bounded  # type: ignore[method-assign]
        return pipe
