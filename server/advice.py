"""The engine's advice, worked out off the event loop.

A reveal changes what the engine says about a room: resampling the team's scores and searching
for the runner-up's smallest flip take a few milliseconds of pure Python. Done on the event
loop, a wave of reveals in many rooms at once would hold up every other room of the server
for as long as all of them take. Here they run on one worker thread instead, one at a time:
the loop hands over the inputs (server.snapshot.AdviceInputs, immutable) and goes on, and the
room is sent the revealed cases at once and the advice a moment later.

The interpreter lock still lets only one thread run Python at a time, but the loop takes it
back at least every switch interval (5 ms), so a vote waits a few milliseconds, not the whole
wave. Answers are remembered by their inputs (an LRU of `remember` entries), so the rooms and
requests that ask for the same advice get it once. A room has at most one job waiting, which
works out its newest inputs when its turn comes: however fast a room changes, the queue holds
one job per room, never one per change.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from server import snapshot
from server.models import Session

log = logging.getLogger(__name__)

Advice = dict[str, Any] | None
# A job that was no longer wanted when its turn came.
_STALE: Any = object()


class Advisor:
    def __init__(
        self, on_ready: Callable[[str], None] | None = None, *, remember: int = 1024
    ) -> None:
        """`on_ready(session_id)`: the advice a `lookup` started for that session is known."""
        self.on_ready = on_ready
        self.remember = remember
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stackvote-advice")
        self._known: OrderedDict[Hashable, Advice] = OrderedDict()
        # Per room: the newest inputs it asked about, and whether a job for it is waiting
        # (at most one is: it works out the newest inputs when its turn comes).
        self._wanted: dict[str, tuple[Hashable, snapshot.AdviceInputs]] = {}
        self._queued: set[str] = set()
        self.worked_out = 0
        self.skipped = 0

    def lookup(self, session: Session) -> tuple[bool, Advice]:
        """The advice the room is sent (the runner-up's flip only). (True, advice) when it
        is known for the session as it is now; else (False, None) and it is being worked
        out: `on_ready` is called when it is."""
        inputs = snapshot.advice_inputs(session)
        key = ("room", inputs.key)
        if key in self._known:
            self._known.move_to_end(key)
            return True, self._known[key]
        # The newest inputs first, then whether a job is waiting for this room: a waiting
        # job works out whatever is newest when its turn comes (see _room_job).
        self._wanted[session.id] = (key, inputs)
        if session.id not in self._queued:
            self._queued.add(session.id)
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._pool, self._room_job, session.id)
            future.add_done_callback(lambda done: self._room_done(session.id, done))
        return False, None

    def _room_job(self, session_id: str) -> Any:
        # On the worker thread; each step below is one atomic operation on a dict or set.
        # Leave the queue first, then read the newest inputs: a lookup in between either
        # sees no job waiting and queues one, or has written what this job reads.
        self._queued.discard(session_id)
        wanted = self._wanted.get(session_id)
        if wanted is None or wanted[0] in self._known:
            return _STALE
        key, inputs = wanted
        return key, inputs.recommend()

    def _room_done(self, session_id: str, done: asyncio.Future[Any]) -> None:
        if done.cancelled():
            return
        error = done.exception()
        if error is not None:
            log.error("working out the advice for %s failed", session_id, exc_info=error)
            wanted = self._wanted.pop(session_id, None)
            if wanted is not None:
                self._remember(wanted[0], None)
            if self.on_ready is not None:
                self.on_ready(session_id)
            return
        if done.result() is _STALE:
            # Known already (a page asked for the same): the room still has to hear of it.
            self.skipped += 1
            wanted = self._wanted.get(session_id)
            if wanted is not None and wanted[0] in self._known:
                del self._wanted[session_id]
                if self.on_ready is not None:
                    self.on_ready(session_id)
            return
        key, result = done.result()
        if self._wanted.get(session_id, (None,))[0] == key:
            del self._wanted[session_id]
        self._remember(key, result)
        if self.on_ready is not None:
            self.on_ready(session_id)

    def _remember(self, key: Hashable, advice: Advice) -> None:
        self.worked_out += 1
        self._known[key] = advice
        self._known.move_to_end(key)
        while len(self._known) > self.remember:
            self._known.popitem(last=False)

    async def advice(self, session: Session, *, every_flip: bool = False) -> Advice:
        """The advice for the session as it is now, waited for (pages and the record: with
        `every_flip`, every stack's smallest flip)."""
        inputs = snapshot.advice_inputs(session)
        key = ("record" if every_flip else "room", inputs.key)
        if key in self._known:
            self._known.move_to_end(key)
            return self._known[key]
        loop = asyncio.get_running_loop()
        result: Advice = await loop.run_in_executor(
            self._pool, lambda: inputs.recommend(every_flip=every_flip)
        )
        self._remember(key, result)
        return result

    async def flip_of(self, session: Session, stack: str) -> dict[str, Any] | None:
        """One stack's smallest flip, for the session as it is now (see AdviceInputs.flip_of)."""
        inputs = snapshot.advice_inputs(session)
        key = ("flip", stack, inputs.key)
        if key in self._known:
            self._known.move_to_end(key)
            return self._known[key]
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._pool, inputs.flip_of, stack)
        self._remember(key, result)
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
