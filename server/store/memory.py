"""The embedded in-memory store: the reference implementation every backend must match."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence

from server.models import Session
from server.ops import Op
from server.store.base import (
    Conflict,
    JoinCodeTaken,
    Lifetimes,
    SessionNotFound,
    Store,
    StoreFull,
)


class MemoryStore(Store):
    def __init__(
        self,
        *,
        lifetimes: Lifetimes | None = None,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        # Least recently changed first.
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        # Join code -> session id, for the sessions held.
        self._codes: dict[str, str] = {}
        self._lifetimes = lifetimes or Lifetimes()
        self._max = max_sessions
        self._clock = clock

    async def create(self, session: Session) -> None:
        if session.id in self._sessions:
            raise ValueError(f"session {session.id} exists already")
        if len(self._sessions) >= self._max:
            self._forget_expired()
        if len(self._sessions) >= self._max and not self._evict_one():
            raise StoreFull("this server holds as many sessions as it is allowed to")
        code = session.join_code
        if code is not None:
            holder = self._codes.get(code)
            if holder is not None and await self.get(holder) is not None:
                raise JoinCodeTaken(code)
            self._codes[code] = session.id
        self._sessions[session.id] = session

    async def get(self, session_id: str) -> Session | None:
        session = self._sessions.get(session_id)
        if session is not None and self._expired(session):
            self._forget(session_id)
            return None
        return session

    async def find_join_code(self, code: str) -> str | None:
        session_id = self._codes.get(code)
        if session_id is None or await self.get(session_id) is None:
            return None
        return session_id

    def _forget(self, session_id: str) -> None:
        session = self._sessions.pop(session_id)
        if session.join_code is not None and self._codes.get(session.join_code) == session_id:
            del self._codes[session.join_code]

    def now(self) -> float:
        return self._clock()

    async def commit(self, before: Session, after: Session, ops: Sequence[Op]) -> None:
        # No await between the check and the write: on one event loop this is atomic.
        current = await self.get(before.id)
        if current is None:
            raise SessionNotFound(before.id)
        if current.version != before.version:
            raise Conflict(current.version)
        self._sessions[before.id] = after
        self._sessions.move_to_end(before.id)

    async def versions(self, session_ids: Collection[str]) -> dict[str, int]:
        found = {i: await self.get(i) for i in session_ids}
        return {i: s.version for i, s in found.items() if s is not None}

    # One process owns an in-memory store, so no other instance can die holding its sockets.
    async def heartbeat(self, instance: str, session_ids: Collection[str], ttl: float) -> bool:
        return False

    async def orphans(self) -> dict[str, set[str]]:
        return {}

    async def forget_instance(self, instance: str) -> None:
        return None

    async def ping(self) -> None:
        return None

    def _expired(self, session: Session) -> bool:
        return self._lifetimes.expired(session, self._clock())

    def _forget_expired(self) -> None:
        for session_id in [k for k, s in self._sessions.items() if self._expired(s)]:
            self._forget(session_id)

    def _evict_one(self) -> bool:
        """Forget the session idle longest, if any is idle."""
        now = self._clock()
        for session_id, session in self._sessions.items():
            if self._lifetimes.idle(session, now):
                self._forget(session_id)
                return True
        return False
