"""The store interface: where sessions live, with one atomic, versioned update operation."""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import NamedTuple

from msgspec.structs import replace

from server.models import Session
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


def successor(current: Session, change: Change, now: float) -> Session | None:
    """The session to save after `change` (version one higher, touched `now`), or None when the
    change left it as it was; what `change` raises propagates."""
    changed = change(current)
    if changed is current:
        return None
    return replace(changed, version=current.version + 1, updated_at=now)


class SessionNotFound(LookupError):
    """No session has this id (it never existed, or it expired)."""


class StoreFull(Exception):
    """The store holds as many sessions as it is configured to."""


class StoreUnavailable(Exception):
    """The store cannot be reached right now; the request may be retried."""


class Store(abc.ABC):
    """Every backend keeps the same promise: `update` applies a change atomically.

    `change` is a pure function (see server.rules). If it returns the session unchanged (the very
    same object) nothing is written; otherwise the result is saved with `version` one higher and
    `updated_at` set, as one step no other writer can interleave with. Exceptions raised by
    `change` (rule violations) propagate and leave the session as it was.
    """

    @abc.abstractmethod
    async def create(self, session: Session) -> None:
        """Save a new session (raises StoreFull when at capacity)."""

    @abc.abstractmethod
    async def get(self, session_id: str) -> Session | None:
        """The current session, or None if unknown or expired."""

    @abc.abstractmethod
    async def update(self, session_id: str, change: Change) -> Updated:
        """Apply `change` atomically; return the session as it now is and whether it changed."""

    @abc.abstractmethod
    async def versions(self, session_ids: Collection[str]) -> dict[str, int]:
        """Current versions of many sessions in one go (unknown ones are left out)."""

    async def version(self, session_id: str) -> int | None:
        """The session's current version, cheaply (None if unknown)."""
        return (await self.versions([session_id])).get(session_id)

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
