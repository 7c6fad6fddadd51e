"""The change feed between instances: Redis pub/sub, a channel per session.

An instance subscribes to a session's channel while it holds sockets of that session and
leaves it when the last one goes, so it hears only the rooms it serves and its work grows with
its own share of the traffic, not with the fleet's. `follow` returns once Redis has confirmed
the subscription: whatever is read from the store after that cannot miss a change. If a
connection drops, messages may have been lost: the handler hears `None` and checks every
followed session again (redis-py subscribes again by itself on reconnect).

Three ways to carry it, by deployment:

- `ChannelFeed`: one Redis server (or the primary Sentinel names): SUBSCRIBE per session.
- `ShardedFeed`: Redis Cluster: SSUBSCRIBE per session (sharded pub/sub, Redis 7). A channel
  lives on the node that holds the session's keys, so both data and fan-out spread over the
  cluster; redis-py moves the subscriptions when slots move or a replica is promoted, and this
  feed reads every node it is subscribed on.
- `SharedFeed`: every change of every session on one channel that every instance hears and
  filters (as a Socket.IO Redis manager does). Kept to measure the others against.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, ClusterPubSub, RedisCluster

from server.ops import Record, load_record

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT = 5.0
# How long a reader waits for a message before looking around (a closed feed, new nodes).
POLL = 1.0
# After a read fails, how long to wait before the next attempt.
BACKOFF = 0.5
# How often a cluster feed looks whether its subscriptions moved.
WATCH = 0.25

FeedHandler = Callable[[Record | None], None]


class Feed:
    """What every feed does: confirm subscriptions, decode records, report interruptions."""

    def __init__(self) -> None:
        self._handler: FeedHandler = lambda record: None
        self._confirmed: dict[bytes, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.channels: set[str] = set()
        self.records = 0

    def on_record(self, handler: FeedHandler) -> None:
        self._handler = handler

    async def follow(self, channel: str) -> None:
        if channel in self.channels:
            return
        confirmed = self._confirmed.setdefault(channel.encode(), asyncio.Event())
        self.channels.add(channel)
        try:
            await self._subscribe(channel)
            await asyncio.wait_for(confirmed.wait(), SUBSCRIBE_TIMEOUT)
        except BaseException:
            self.channels.discard(channel)
            raise
        finally:
            self._confirmed.pop(channel.encode(), None)

    async def unfollow(self, channel: str) -> None:
        if channel not in self.channels:
            return
        self.channels.discard(channel)
        await self._unsubscribe(channel)

    async def _subscribe(self, channel: str) -> None:
        raise NotImplementedError

    async def _unsubscribe(self, channel: str) -> None:
        raise NotImplementedError

    def _read(self, name: str, receive: Callable[[], Awaitable[dict[str, Any] | None]]) -> None:
        """Start a reader task called `name` (unless it runs already)."""
        if name not in self._tasks or self._tasks[name].done():
            self._tasks[name] = asyncio.create_task(self._reader(name, receive), name=name)

    def _still_reading(self, name: str) -> bool:
        return True

    async def _reader(
        self, name: str, receive: Callable[[], Awaitable[dict[str, Any] | None]]
    ) -> None:
        healthy = True
        while self._still_reading(name):
            try:
                message = await receive()
            except Exception as exc:
                # Connection errors, and whatever redis-py raises while a cluster's nodes come
                # and go under it (seen: RuntimeError, AttributeError from a closed connection):
                # the reader must outlive them all.
                if healthy:
                    log.warning("change feed interrupted (%r); will check every room", exc)
                healthy = False
                self._handler(None)
                await asyncio.sleep(BACKOFF)
                continue
            if not healthy:
                healthy = True
                log.info("change feed back")
                self._handler(None)
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind in ("message", "smessage"):
            try:
                record = load_record(message["data"])
            except ValueError:
                log.exception("unreadable change record on %s", message["channel"])
                self._handler(None)
                return
            self.records += 1
            self._handler(record)
        elif kind in ("subscribe", "ssubscribe"):
            event = self._confirmed.get(message["channel"])
            if event is not None:
                event.set()

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()


class ChannelFeed(Feed):
    def __init__(self, client: aioredis.Redis) -> None:
        super().__init__()
        self._pubsub = client.pubsub()

    async def _subscribe(self, channel: str) -> None:
        if not self._tasks:
            await self._pubsub.connect()  # type: ignore[no-untyped-call]
            self._read("redis feed", lambda: self._pubsub.get_message(timeout=POLL))
        await self._pubsub.subscribe(channel)

    async def _unsubscribe(self, channel: str) -> None:
        await self._pubsub.unsubscribe(channel)

    async def close(self) -> None:
        await super().close()
        await self._pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]


class SharedFeed(ChannelFeed):
    """One channel for everything: subscribed once; following a session is only a note."""

    def __init__(self, client: aioredis.Redis, channel: str) -> None:
        super().__init__(client)
        self.channel = channel
        self._joined: asyncio.Future[None] | None = None

    async def follow(self, channel: str) -> None:
        if self._joined is None or (self._joined.done() and self._joined.exception()):
            self._joined = asyncio.ensure_future(super().follow(self.channel))
        await asyncio.shield(self._joined)
        self.channels.add(channel)

    async def unfollow(self, channel: str) -> None:
        self.channels.discard(channel)


class ShardedFeed(Feed):
    """SSUBSCRIBE through redis-py's cluster pub/sub, with a reader per node subscribed on."""

    def __init__(self, client: RedisCluster) -> None:
        super().__init__()
        self._cluster = client
        self._pubsub: ClusterPubSub = client.pubsub()
        self._watch: asyncio.Task[None] | None = None

    async def _subscribe(self, channel: str) -> None:
        await self._cluster.initialize()  # the slot map, learnt once
        await self._pubsub.ssubscribe(channel)
        self._start_readers()
        if self._watch is None:
            self._watch = asyncio.create_task(self._watch_nodes(), name="redis feed nodes")

    async def _unsubscribe(self, channel: str) -> None:
        await self._pubsub.sunsubscribe(channel)

    def _nodes(self) -> dict[str, PubSub]:
        return self._pubsub.node_pubsub_mapping

    def _start_readers(self) -> None:
        for name in self._nodes():
            if name not in self._tasks or self._tasks[name].done():
                # redis-py only reads a node's `.name` here: the node may have left the
                # cluster's map (a dead primary) while its subscriptions are being moved.
                node = cast(ClusterNode, _Named(name))
                self._read(
                    name,
                    lambda node=node: self._pubsub.get_sharded_message(  # type: ignore[misc]
                        target_node=node, timeout=POLL
                    ),
                )

    def _still_reading(self, name: str) -> bool:
        return name in self._nodes()

    def _owners(self) -> dict[Any, str]:
        # Where each subscription lives (redis-py keeps this to move them when slots move; a
        # name beneath its public API, listed and checked in server.sio.internals).
        owners: dict[Any, str] = self._pubsub._shard_channel_to_node
        return owners

    async def _watch_nodes(self) -> None:
        """Subscriptions move (slot migration, failover): read the nodes they move to, and
        check every room, since records published meanwhile may be lost."""
        owners = dict(self._owners())
        while True:
            await asyncio.sleep(WATCH)
            self._start_readers()
            now = self._owners()
            if now == owners:
                continue
            moved = [c for c, node in now.items() if owners.get(c, node) != node]
            if moved:
                log.info("%d subscriptions moved to other nodes; checking every room", len(moved))
                self._handler(None)
            owners = dict(now)

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await super().close()
        await self._pubsub.aclose()


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name
