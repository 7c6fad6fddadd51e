"""Session stores, chosen by URL: none or memory:// for the embedded store, redis:// for Redis."""

from __future__ import annotations

from server.settings import Settings, SettingsError
from server.store.base import (
    Conflict,
    Lifetimes,
    OutcomeUnknown,
    SessionNotFound,
    Store,
    StoreFull,
    StoreUnavailable,
    Updated,
)
from server.store.memory import MemoryStore

__all__ = [
    "Conflict",
    "Lifetimes",
    "MemoryStore",
    "OutcomeUnknown",
    "SessionNotFound",
    "Store",
    "StoreFull",
    "StoreUnavailable",
    "Updated",
    "open_store",
]


def open_store(settings: Settings) -> Store:
    lifetimes = Lifetimes(
        ttl_seconds=settings.session_ttl_seconds,
        unjoined_ttl_seconds=settings.unjoined_ttl_seconds,
        idle_seconds=settings.idle_minutes * 60,
    )
    url = settings.redis_url
    if url is None or not settings.uses_redis:
        return MemoryStore(lifetimes=lifetimes, max_sessions=settings.max_sessions)
    from server.store.redis import RedisStore  # imported only when Redis is asked for

    try:
        return RedisStore(url, lifetimes=lifetimes, max_sessions=settings.max_sessions)
    except ValueError as exc:
        raise SettingsError(f"cannot use redis url {url!r}: {exc}") from None
