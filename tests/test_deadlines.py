"""Countdowns on one instance (server.deadlines with real rooms and a real store): voting closes
at the deadline, after a restart too, and a store that fails for a moment does not make the
deadline be forgotten. Several instances on one Redis: tests/test_multi_instance.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from server import ops, rules
from server.deadlines import Deadlines
from server.models import Session
from server.ops import Op
from server.rooms import Rooms
from server.store import MemoryStore, StoreUnavailable
from tests.factories import case_in, control, team


def counting_down(seconds: float) -> Session:
    """`realtime` open, its countdown ending `seconds` from now (negative: already over)."""
    now = time.time()
    session = team("Ann", session_id=f"countdown-{time.time_ns()}", now=now)
    session = control(session, "open", "realtime")
    # A minute's countdown started a minute minus `seconds` ago.
    return rules.countdown(session, "fay", "realtime", 60, now + seconds - 60)


def instance(store: MemoryStore) -> tuple[Rooms, Deadlines]:
    rooms: Rooms
    deadlines = Deadlines(lambda sid: rooms.current(sid), lambda sid, op: rooms.apply(sid, op))
    rooms = Rooms(store, lambda *_: None, on_copy=deadlines.watch)
    return rooms, deadlines


async def closed(store: MemoryStore, session_id: str) -> Session:
    while True:
        session = await store.get(session_id)
        assert session is not None
        if case_in(session, "realtime").status == "revealed":
            return session
        await asyncio.sleep(0.02)


async def test_voting_closes_at_the_deadline_in_one_change() -> None:
    store = MemoryStore()
    session = counting_down(0.3)
    await store.create(session)
    rooms, deadlines = instance(store)
    await rooms.open(session.id)
    assert deadlines.armed(session.id) == case_in(session, "realtime").deadline
    done = await asyncio.wait_for(closed(store, session.id), 10)
    assert done.version == session.version + 1
    assert case_in(done, "realtime").deadline is None
    assert deadlines.armed(session.id) is None


async def test_a_deadline_that_passed_while_nobody_held_the_session_closes_on_load() -> None:
    # As after a restart: the copy is loaded, the timer set, and it is due at once.
    store = MemoryStore()
    session = counting_down(-5)
    await store.create(session)
    rooms, _ = instance(store)
    await rooms.open(session.id)
    done = await asyncio.wait_for(closed(store, session.id), 10)
    assert done.version == session.version + 1


async def test_a_copy_dropped_or_closed_by_hand_leaves_no_timer() -> None:
    store = MemoryStore()
    session = counting_down(3600)
    await store.create(session)
    rooms, deadlines = instance(store)
    await rooms.open(session.id)
    assert deadlines.armed(session.id) is not None
    await rooms.close(session.id)
    assert deadlines.armed(session.id) is None
    await rooms.open(session.id)
    await rooms.apply(session.id, ops.Control("fay", "reveal", "realtime"))
    assert deadlines.armed(session.id) is None


class FailsFirst(MemoryStore):
    """Refuses the first writes as if storage were down for a moment."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def commit(self, before: Session, after: Session, ops: Sequence[Op]) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("down for a moment")
        await super().commit(before, after, ops)


async def test_a_store_down_at_the_deadline_delays_closing_but_does_not_forget_it() -> None:
    store = FailsFirst(failures=2)
    session = counting_down(0.1)
    await store.create(session)
    rooms: Rooms
    deadlines = Deadlines(
        lambda sid: rooms.current(sid), lambda sid, op: rooms.apply(sid, op), retry=0.1
    )
    rooms = Rooms(store, lambda *_: None, on_copy=deadlines.watch)
    await rooms.open(session.id)
    done = await asyncio.wait_for(closed(store, session.id), 10)
    assert store.failures == 0
    assert done.version == session.version + 1
