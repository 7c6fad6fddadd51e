"""Session stores, chosen by URL: none or sqlite:///PATH for the embedded store on disk,
memory:// for one in memory only; redis://, redis+sentinel:// or redis+cluster:// for Redis
(server/store/urls.py)."""

from __future__ import annotations

from server.settings import Settings, SettingsError
from server.store.base import (
    Conflict,
    JoinCodeTaken,
    Lifetimes,
    OutcomeUnknown,
    SessionNotFound,
    Store,
    StoreFull,
    StoreUnavailable,
    Unconfirmed,
    Updated,
)
from server.store.memory import MemoryStore

__all__ = [
    "Conflict",
    "JoinCodeTaken",
    "Lifetimes",
    "MemoryStore",
    "OutcomeUnknown",
    "SessionNotFound",
    "Store",
    "StoreFull",
    "StoreUnavailable",
    "Unconfirmed",
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
    if settings.store_kind == "memory":
        return MemoryStore(lifetimes=lifetimes, max_sessions=settings.max_sessions)
    if settings.store_kind == "sqlite" or url is None:
        from server.store.sqlite import SqliteStore

        return SqliteStore(
            settings.sqlite_path, lifetimes=lifetimes, max_sessions=settings.max_sessions
        )
    from server.store.redis import RedisStore  # imported only when Redis is asked for

    try:
        return RedisStore(
            url,
            lifetimes=lifetimes,
            max_sessions=settings.max_sessions,
            wait_replicas=settings.redis_wait_replicas,
            wait_ms=settings.redis_wait_ms,
            channels=settings.redis_channels,
        )
    except ValueError as exc:
        raise SettingsError(f"cannot use redis url {url!r}: {exc}") from None
