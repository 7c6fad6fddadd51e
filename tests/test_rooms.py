"""What a vote's answer means when the store fails in ways nobody planned for."""

from __future__ import annotations

import time
from collections.abc import Sequence

from server import ops
from server.models import Session
from server.ops import Op
from server.rooms import Rooms
from server.store import MemoryStore
from tests.factories import case_in, control, team


class BreaksAfterWriting(MemoryStore):
    """Stores the change, then fails with an error no store is expected to raise (as a client
    library can, when a connection closes under it)."""

    def __init__(self) -> None:
        super().__init__()
        self.breaks = 1

    async def commit(self, before: Session, after: Session, ops_: Sequence[Op]) -> None:
        await super().commit(before, after, ops_)
        if self.breaks:
            self.breaks -= 1
            raise RuntimeError("unable to perform operation on a closed transport")


async def test_a_write_that_failed_unexpectedly_is_checked_not_refused() -> None:
    store = BreaksAfterWriting()
    session = control(team("Ann", now=time.time()), "open", "realtime")
    await store.create(session)
    rooms = Rooms(store, lambda *_: None)
    await rooms.open(session.id)
    # The vote was stored before the error: it must be reported as counted (found by reading
    # the session again), never as "not counted".
    version = await rooms.apply(session.id, ops.Vote("ann", "realtime", 3))
    stored = await store.get(session.id)
    assert stored is not None and version == stored.version
    assert case_in(stored, "realtime").ballots == {"ann": 3}


async def test_a_refusal_is_not_judged_on_a_copy_that_missed_a_change() -> None:
    store = MemoryStore()
    session = team("Ann", now=time.time())
    await store.create(session)
    rooms = Rooms(store, lambda *_: None)
    await rooms.open(session.id)
    # Another instance opens the question; this one has not heard of it yet (the in-memory
    # store tells nobody), so its copy still says the question is closed.
    await store.update(session.id, lambda s: control(s, "open", "realtime"))
    version = await rooms.apply(session.id, ops.Vote("ann", "realtime", 2))
    stored = await store.get(session.id)
    assert stored is not None and version == stored.version
    assert case_in(stored, "realtime").ballots == {"ann": 2}
