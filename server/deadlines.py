"""Countdowns: when a case's deadline passes, the instances holding its session close voting.

The rules already refuse a vote that arrives after its case's deadline (judged by the op's
time, so every instance replaying it agrees). This turns the deadline into a change everyone
sees: each instance holding a copy of the session keeps a timer for the earliest deadline in
it and, when that passes, applies ops.Close. The store's compare-and-set lets the first Close
through; on every other instance the same op finds nothing left to close and stores nothing,
so the room sees exactly one closing change. Timers are set again whenever a copy is loaded or
changes, so an instance that restarts, or starts serving the room later, still closes on time.

The same timer, given another `due` and `op`, marks people away once they have been offline
long enough (rules.next_away, ops.MarkAway): every instance keeps one, the first change wins.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from server import ops, rules
from server.models import Session
from server.rooms import Busy
from server.rules import RuleError
from server.store import SessionNotFound, StoreUnavailable

log = logging.getLogger(__name__)

# When closing fails for now (storage down, a busy room), how long to wait before trying again.
RETRY_SECONDS = 1.0


@dataclass
class _Timer:
    due: float
    handle: asyncio.TimerHandle


class Deadlines:
    def __init__(
        self,
        current: Callable[[str], Session | None],
        apply: Callable[[str, ops.Op], Awaitable[int]],
        *,
        clock: Callable[[], float] = time.time,
        retry: float = RETRY_SECONDS,
        due: Callable[[Session], float | None] = rules.next_deadline,
        op: Callable[[], ops.Op] = ops.Close,
        depends: Callable[[Session], object] = lambda session: session.cases,
        what: str = "closing voting",
    ) -> None:
        """`current(session_id)`: this instance's copy, if it holds one; `apply(session_id,
        op)`: check an op by the rules and store it (server.rooms.Rooms.apply). `due(session)`:
        when `op()` has something to do next; `depends(session)`: the part of a session `due`
        reads (while it is the very same object, `due` is not asked again); `what`: for logs."""
        self.current = current
        self.apply = apply
        self.clock = clock
        self.retry = retry
        self.due = due
        self.op = op
        self.depends = depends
        self.what = what
        self._timers: dict[str, _Timer] = {}
        self._seen: dict[str, object] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def watch(self, session_id: str, session: Session | None) -> None:
        """This instance's copy of a session is now `session` (None: no copy any more)."""
        if session is None:
            self._seen.pop(session_id, None)
        else:
            part = self.depends(session)
            if self._seen.get(session_id) is part:
                return
            self._seen[session_id] = part
        due = None if session is None else self.due(session)
        timer = self._timers.get(session_id)
        if timer is not None and timer.due == due:
            return
        if timer is not None:
            timer.handle.cancel()
            del self._timers[session_id]
        if due is not None:
            self._arm(session_id, due, due - self.clock())

    def armed(self, session_id: str) -> float | None:
        """The deadline this instance waits for in a session, if any."""
        timer = self._timers.get(session_id)
        return None if timer is None else timer.due

    def close(self) -> None:
        for timer in self._timers.values():
            timer.handle.cancel()
        self._timers.clear()
        self._seen.clear()

    def _arm(self, session_id: str, due: float, delay: float) -> None:
        loop = asyncio.get_running_loop()
        handle = loop.call_later(max(0.0, delay), self._fire, session_id, due)
        self._timers[session_id] = _Timer(due, handle)

    def _fire(self, session_id: str, due: float) -> None:
        timer = self._timers.get(session_id)
        if timer is None or timer.due != due:
            return
        del self._timers[session_id]
        self._spawn(self._close(session_id, due))

    async def _close(self, session_id: str, due: float) -> None:
        if self.current(session_id) is None:
            return  # no copy here any more: whoever holds one closes it
        early = due - self.clock()
        if early > 0:
            # The event loop's clock and the wall clock drift apart a little; wait the rest.
            self._rearm(session_id, due, early)
            return
        try:
            await self.apply(session_id, self.op())
        except (RuleError, SessionNotFound):
            return
        except (StoreUnavailable, Busy) as exc:
            log.info("%s in %s failed for now (%s); trying again", self.what, session_id, exc)
        except Exception:
            log.exception("%s in %s failed; trying again", self.what, session_id)
        # Closed (by this instance or another), the copy no longer waits for `due`; if it
        # still does, the deadline must not be forgotten.
        self._rearm(session_id, due, self.retry)

    def _rearm(self, session_id: str, due: float, delay: float) -> None:
        session = self.current(session_id)
        if session is None or session_id in self._timers:
            return  # gone, or a newer copy set a timer of its own meanwhile
        now_due = self.due(session)
        if now_due == due:
            self._arm(session_id, due, delay)
        elif now_due is not None:
            # `due` reads more than `depends` (who holds a ballot, for expiry): what it waits
            # for moved without the part it watches changing, so wait for that instead.
            self._arm(session_id, now_due, now_due - self.clock())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
