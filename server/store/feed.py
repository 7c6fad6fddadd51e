"""The change feed between instances: one Redis pub/sub channel per session.

An instance subscribes to a session's channel while it holds sockets of that session and
leaves it when the last one goes, so it hears only the rooms it serves. `follow` returns once
Redis has confirmed the subscription: whatever is read from the store after that cannot miss a
change. If the connection drops, messages may have been lost: the handler hears `None` and
checks every followed session again (redis-py subscribes again by itself on reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.ops import Record, load_record

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT = 5.0

FeedHandler = Callable[[Record | None], None]


class RedisFeed:
    def __init__(self, client: aioredis.Redis) -> None:
        self._pubsub = client.pubsub()
        self._handler: FeedHandler = lambda record: None
        self._task: asyncio.Task[None] | None = None
        self._confirmed: dict[bytes, asyncio.Event] = {}
        self.channels: set[str] = set()

    def on_record(self, handler: FeedHandler) -> None:
        self._handler = handler

    async def follow(self, channel: str) -> None:
        if channel in self.channels:
            return
        await self._start()
        confirmed = self._confirmed.setdefault(channel.encode(), asyncio.Event())
        self.channels.add(channel)
        try:
            await self._pubsub.subscribe(channel)
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
        await self._pubsub.unsubscribe(channel)

    async def _start(self) -> None:
        if self._task is None:
            await self._pubsub.connect()  # type: ignore[no-untyped-call]
            self._task = asyncio.create_task(self._listen(), name="redis feed")

    async def _listen(self) -> None:
        healthy = True
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as exc:
                if healthy:
                    log.warning("change feed interrupted (%s); will check every room", exc)
                healthy = False
                self._handler(None)
                await asyncio.sleep(0.5)
                continue
            if not healthy:
                healthy = True
                log.info("change feed back")
                self._handler(None)
            if message is None:
                continue
            kind = message["type"]
            if kind == "message":
                try:
                    record = load_record(message["data"])
                except ValueError:
                    log.exception("unreadable change record on %s", message["channel"])
                    self._handler(None)
                    continue
                self._handler(record)
            elif kind == "subscribe":
                event = self._confirmed.get(message["channel"])
                if event is not None:
                    event.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
