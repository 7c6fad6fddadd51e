"""Background upkeep of one instance: version beats, storage status, presence of dead peers."""

from __future__ import annotations

import asyncio
import logging

from server import protocol
from server.realtime import RoomNamespace
from server.store import Store, StoreUnavailable

log = logging.getLogger(__name__)


class Upkeep:
    """Every `beat` seconds, tell local clients each session's version (a client that missed a
    broadcast sees it is behind and asks for a fresh snapshot, so a lost pub/sub message heals
    within one beat); every few beats, prove this instance alive and clean up after dead ones."""

    def __init__(self, namespace: RoomNamespace, store: Store, *, beat: float = 1.0) -> None:
        self.namespace = namespace
        self.store = store
        self.beat = beat
        # Prove we are alive three times per time-to-live, so one late beat is not fatal.
        self.sweep_every = max(1, int(namespace.instance_ttl / 3 / beat))
        self.storage_ok = True

    async def run(self) -> None:
        tick = 0
        while True:
            try:
                await self.once(sweep=tick % self.sweep_every == 0)
            except StoreUnavailable as exc:
                await self._storage(ok=False, reason=str(exc))
            except Exception:
                log.exception("upkeep failed; trying again next beat")
            tick += 1
            await asyncio.sleep(self.beat)

    async def once(self, *, sweep: bool) -> None:
        rooms = list(self.namespace.local)
        if sweep or not self.storage_ok:
            await self.store.ping()
            forgotten = await self.store.heartbeat(
                self.namespace.instance, rooms, ttl=self.namespace.instance_ttl
            )
            if forgotten and rooms:
                log.warning("this instance was presumed dead; attaching its sockets again")
                await self.namespace.reattach_all()
        await self._storage(ok=True)
        for session_id in rooms:
            version = await self.store.version(session_id)
            if version is not None:
                await self.namespace.emit_local(
                    protocol.VERSION, {"version": version}, room=session_id
                )
        if sweep:
            for instance, sessions in (await self.store.orphans()).items():
                if instance != self.namespace.instance:
                    log.info("instance %s stopped; releasing its sockets", instance)
                    await self.namespace.release_instance(instance, sessions)

    async def _storage(self, *, ok: bool, reason: str = "") -> None:
        if ok == self.storage_ok:
            return
        self.storage_ok = ok
        if ok:
            log.info("storage is reachable again")
        else:
            log.warning("storage unreachable: %s", reason)
        await self.namespace.emit_local(protocol.STATUS, {"storage": "ok" if ok else "unavailable"})
