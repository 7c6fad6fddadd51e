"""Background upkeep of one instance: version beats, storage status, presence of dead peers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from server import protocol
from server.realtime import RoomNamespace
from server.rooms import Rooms
from server.store import Store, StoreUnavailable

log = logging.getLogger(__name__)


class Upkeep:
    """Two loops per instance, none of whose work grows with idle connections. Every `beat`
    seconds, check that storage answers (telling clients when it stops and starts again) and
    that every copy this instance holds is as new as the stored session, so a change lost
    between instances (a dropped pub/sub connection in a room that has been quiet since) heals
    within a beat. Three times per instance time-to-live, prove this instance alive and release
    the sockets of instances that stopped proving it. The loops are separate so that a slow
    beat under load can never make a live instance look dead."""

    def __init__(
        self, namespace: RoomNamespace, store: Store, rooms: Rooms, *, beat: float = 1.0
    ) -> None:
        self.namespace = namespace
        self.store = store
        self.rooms = rooms
        self.beat = beat
        self.presence_every = namespace.instance_ttl / 3
        self.storage_ok = True

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._every(self.beat, self.beat_once))
            group.create_task(self._every(self.presence_every, self.presence_once))

    async def _every(self, seconds: float, step: Callable[[], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await step()
            except StoreUnavailable as exc:
                await self._storage(ok=False, reason=str(exc))
            except Exception:
                log.exception("upkeep failed; trying again")
            # Keep the rhythm: the time the step took counts towards the wait.
            await asyncio.sleep(max(0.0, seconds - (loop.time() - started)))

    async def beat_once(self) -> None:
        await self.store.ping()
        await self._storage(ok=True)
        await self.rooms.verify()

    async def presence_once(self) -> None:
        await self.namespace.retry_detaches()
        rooms = list(self.namespace.local)
        forgotten = await self.store.heartbeat(
            self.namespace.instance, rooms, ttl=self.namespace.instance_ttl
        )
        if forgotten and rooms:
            log.warning("this instance was presumed dead; attaching its sockets again")
            await self.namespace.reattach_all()
        for instance, sessions in (await self.store.orphans()).items():
            if instance != self.namespace.instance:
                log.info("instance %s stopped; releasing its sockets", instance)
                await self.namespace.release_instance(instance, sessions)

    async def _storage(self, *, ok: bool, reason: str = "") -> None:
        if ok == self.storage_ok:
            return
        self.storage_ok = ok
        self.rooms.storage_down = not ok
        if ok:
            log.info("storage is reachable again")
        else:
            log.warning("storage unreachable: %s", reason)
        await self.namespace.emit(protocol.STATUS, {"storage": "ok" if ok else "unavailable"})
