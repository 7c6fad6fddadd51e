"""Light stand-ins for asyncio's queue and event, of which every connection holds a few: a queue
with one reader (a connection's incoming messages, its outgoing packets) and a flag."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class Mailbox:
    """asyncio.Queue keeps three deques and an Event per queue (~3 KiB); a connection has two of
    them and a server holds thousands of connections, mostly idle. This keeps one list (a
    connection's queue is nearly always empty, so taking from its front costs nothing) and, at
    most, the one future its reader waits on; it offers what uvicorn and Engine.IO use of a
    queue (tests/test_internals.py checks that they still use no more)."""

    __slots__ = ("_drained", "_items", "_unfinished", "_waiter", "on_put")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None
        self._unfinished = 0
        self._drained: asyncio.Future[None] | None = None
        # Called after each put: lets a reader that is not always there (a connection's
        # writer, started only when something waits to be written) know.
        self.on_put: Callable[[], None] | None = None

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        self._unfinished += 1
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.on_put is not None:
            self.on_put()

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def peek(self) -> Any:
        """The item `get_nowait` would take, left in place."""
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items[0]

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def task_done(self) -> None:
        self._unfinished = max(0, self._unfinished - 1)
        if self._unfinished == 0 and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def join(self) -> None:
        if self._unfinished:
            if self._drained is None or self._drained.done():
                self._drained = asyncio.get_running_loop().create_future()
            await self._drained


class Flag:
    """asyncio.Event keeps a deque of waiters (~0.8 KiB) for as long as it lives; uvicorn gives
    every WebSocket connection one (`writable`, cleared while the transport is paused, which is
    rare). This keeps a bool and, only while someone waits, their futures."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
