"""One event-loop timer for many connections' pings and pong deadlines.

Every connection pings its client every `ping_interval` and then gives it `ping_timeout` to
answer: two timers per connection for most of its life. An event-loop timer costs ~0.5 KiB
(uvloop's handle and its libuv timer), so 5,000 idle people held ~5 MiB in them alone. Here the
callbacks wait in slots of `resolution` seconds (a list entry each) and one loop timer fires
for the earliest slot; a callback runs up to `resolution` late (or a clock tick early). There is no
cancelling: the callbacks given here look at their connection's state when they run (a ping
for a closed socket does nothing), as the timers they replace did.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from collections.abc import Callable

log = logging.getLogger(__name__)


class Wheel:
    __slots__ = ("_armed", "_handle", "_heap", "_loop", "_slots", "resolution")

    def __init__(self, resolution: float = 0.1) -> None:
        self.resolution = resolution
        self._slots: dict[int, list[Callable[[], None]]] = {}
        self._heap: list[int] = []  # the slots' numbers, earliest first
        self._handle: asyncio.TimerHandle | None = None
        self._armed: int | None = None  # the slot the loop timer is set for
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return sum(len(waiting) for waiting in self._slots.values())

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop (tests run several): start afresh
            self._slots, self._heap, self._handle, self._armed = {}, [], None, None
            self._loop = loop
        slot = math.ceil((loop.time() + max(0.0, delay)) / self.resolution)
        waiting = self._slots.get(slot)
        if waiting is None:
            self._slots[slot] = [callback]
            heapq.heappush(self._heap, slot)
        else:
            waiting.append(callback)
        if self._armed is None or slot < self._armed:
            self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._armed = None
        if self._heap:
            self._armed = self._heap[0]
            self._handle = loop.call_at(self._armed * self.resolution, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = self._armed = None
        now = loop.time() + 0.002  # uvloop's clock counts milliseconds
        while self._heap and self._heap[0] * self.resolution <= now:
            for callback in self._slots.pop(heapq.heappop(self._heap)):
                try:
                    callback()
                except Exception:
                    log.exception("a connection's timer failed")
        self._arm(loop)
