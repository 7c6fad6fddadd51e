"""The store interface: where sessions live, how a change is stored, and how instances hear of
each other's changes."""

from __future__ import annotations

import abc
import asyncio
import random
import time
import weakref
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from server.models import Session, evolve
from server.ops import Op, Record
from server.throttle import SharedLimiter

Change = Callable[[Session], Session]


@dataclass(frozen=True)
class Lifetimes:
    """How long sessions live, and when one counts as idle (and may be evicted to make room)."""

    ttl_seconds: float = 30 * 86400
    # A session nobody ever joined is forgotten sooner: a flood of empty sessions drains away.
    unjoined_ttl_seconds: float = 86400
    idle_seconds: float = 600

    def ttl(self, session: Session) -> float:
        return self.ttl_seconds if session.participants else self.unjoined_ttl_seconds

    def expired(self, session: Session, now: float) -> bool:
        return now - session.updated_at > self.ttl(session)

    def idle(self, session: Session, now: float) -> bool:
        """Nobody connected and nothing changed for a while: safe to evict when full."""
        online = any(p.online for p in session.participants)
        return not online and now - session.updated_at > self.idle_seconds


class Updated(NamedTuple):
    session: Session
    changed: bool


class SessionNotFound(LookupError):
    """No session has this id (it never existed, or it expired)."""


class StoreFull(Exception):
    """The store holds as many sessions as it is configured to."""


class JoinCodeTaken(Exception):
    """Another live session has this join code; nothing was stored."""


class StoreUnavailable(Exception):
    """The store cannot be reached right now; nothing was written; the request may be retried."""


class OutcomeUnknown(StoreUnavailable):
    """The store stopped answering in the middle of a write: it may or may not have been
    stored. Read the session again to find out."""


class Unconfirmed(OutcomeUnknown):
    """Stored on the primary, but fewer replicas than asked for confirmed it in time: a
    failover now could lose it, so it must not be acknowledged as counted."""


class Conflict(Exception):
    """The stored session is newer than the one the change was made to."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the stored session is at version {current}")
        self.current = current


# A record, or None: "records may have been lost, check every followed session".
RecordHandler = Callable[[Record | None], None]


class Store(abc.ABC):
    """Every backend keeps the same promises.

    `commit(before, after, ops)` stores `after` only if the stored session is still at
    `before.version`, as one step no other writer can interleave with, and tells the other
    instances following the session (`ops` turn `before` into `after`). Otherwise it raises
    Conflict and stores nothing. A write that changes only a few ballots writes only those.
    """

    def __init__(self) -> None:
        # update()'s queue per session (a lock lives while someone waits for or holds it).
        self._turns: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @abc.abstractmethod
    async def create(self, session: Session) -> None:
        """Save a new session (raises StoreFull when at capacity, JoinCodeTaken when another
        live session has its join code)."""

    @abc.abstractmethod
    async def get(self, session_id: str) -> Session | None:
        """The current session, or None if unknown or expired."""

    @abc.abstractmethod
    async def find_join_code(self, code: str) -> str | None:
        """The id of the live session with this join code, if any. A code lives as long as
        its session."""

    @abc.abstractmethod
    async def commit(self, before: Session, after: Session, ops: Sequence[Op]) -> None:
        """Store `after` in place of `before` (see the class docstring)."""

    async def update(self, session_id: str, change: Change) -> Updated:
        """Apply an arbitrary change atomically (read, change, commit; again on conflict).

        For changes that are not ops (tools, tests): instances following the session reload it
        instead of replaying the change.

        Changes to one session made through this store object queue for their turn: racing
        each other on the compare-and-set would only redo their reads (a herd of n writers
        costs n² reads and, on Redis, waits for pooled connections). The compare-and-set
        still settles races with other instances."""
        async with self._turn(session_id):
            return await self._update(session_id, change)

    def _turn(self, session_id: str) -> asyncio.Lock:
        lock = self._turns.get(session_id)
        if lock is None:
            lock = self._turns[session_id] = asyncio.Lock()
        return lock

    async def _update(self, session_id: str, change: Change) -> Updated:
        for attempt in range(100):
            current = await self.get(session_id)
            if current is None:
                raise SessionNotFound(session_id)
            changed = change(current)
            if changed is current:
                return Updated(current, changed=False)
            after = evolve(changed, version=current.version + 1, updated_at=self.now())
            try:
                await self.commit(current, after, ())
            except Conflict:
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311
                continue
            return Updated(after, changed=True)
        raise StoreUnavailable(f"session {session_id} is too busy; please try again")

    def now(self) -> float:
        """The time changes are stamped with."""
        return time.time()

    @abc.abstractmethod
    async def versions(self, session_ids: Collection[str]) -> dict[str, int]:
        """Current versions of many sessions in one go (unknown ones are left out)."""

    async def version(self, session_id: str) -> int | None:
        """The session's current version, cheaply (None if unknown)."""
        return (await self.versions([session_id])).get(session_id)

    # The change feed. An instance that holds sockets of a session follows it: every change
    # another instance stores arrives as a Record, in version order. The in-memory store has
    # one instance only, so nothing to follow.
    def on_record(self, handler: RecordHandler) -> None:  # noqa: B027 - optional
        """Where records of followed sessions go."""

    async def follow(self, session_id: str) -> None:  # noqa: B027 - optional
        """Start hearing of the session's changes; returns once nothing can be missed."""

    async def unfollow(self, session_id: str) -> None:  # noqa: B027 - optional
        """Stop hearing of the session's changes."""

    # Presence across instances: each server instance says it is alive and in which sessions it
    # holds sockets, so the survivors can mark a crashed instance's people offline.
    @abc.abstractmethod
    async def heartbeat(self, instance: str, session_ids: Collection[str], ttl: float) -> bool:
        """Mark `instance` alive for `ttl` seconds, holding sockets in `session_ids`.

        Returns True if the instance was not registered (first beat, or it was presumed dead
        and released, e.g. after a long storage outage): its sockets must be attached again.
        """

    @abc.abstractmethod
    async def orphans(self) -> dict[str, set[str]]:
        """Instances that stopped beating, each with the sessions it had sockets in."""

    @abc.abstractmethod
    async def forget_instance(self, instance: str) -> None:
        """Drop what is known of a dead instance once its sockets are cleaned up."""

    def shared_limiter(self) -> SharedLimiter | None:
        """Rate limits every instance shares, where the store can keep them."""
        return None

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise StoreUnavailable if the store cannot serve requests."""

    async def close(self) -> None:  # noqa: B027 - optional hook; most backends hold nothing
        """Release connections."""
