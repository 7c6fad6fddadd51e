"""Run the app under uvicorn with the given settings."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from typing import Any

import uvicorn
from redis.exceptions import RedisError

from server import logs, sio
from server.app import create_app
from server.settings import Settings, SettingsError
from server.store import urls

log = logging.getLogger(__name__)


def check_redis(url: str) -> str | None:
    """None if Redis answers at `url`, else a one-line message saying what to fix."""

    target = urls.parse(url)

    async def ping() -> None:
        client = urls.connect(target, timeout=3)
        try:
            await client.ping()
        finally:
            await client.aclose()

    try:
        asyncio.run(ping())
    except (RedisError, OSError, ValueError) as exc:
        return (
            f"cannot reach Redis at {target.shown} ({exc}); check --redis-url or "
            "STACKVOTE_REDIS_URL, or leave it unset to use the built-in store"
        )
    return None


def uvicorn_options(settings: Settings, path: sio.Choice) -> dict[str, Any]:
    """How `stackvote serve` runs uvicorn (tests run the app in-process the same way)."""
    return dict(
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # Our own logging set-up (server.logs) covers uvicorn's loggers too.
        log_config=None,
        timeout_graceful_shutdown=10,
        # uvicorn's HTTP protocol with a deadline for each request's headers (server.sio).
        http=sio.http_protocol(settings.header_timeout_seconds, path),
        # uvicorn's sans-I/O WebSocket protocol (no task per connection), with a door for
        # frames built once for a whole room (server.sio.framing).
        ws=sio.websocket_protocol(path),
        # Engine.IO pings every client itself; a second keep-alive would double the timers.
        ws_ping_interval=None,
        # Clients send small messages (Socket.IO refuses more than 16 KiB anyway).
        ws_max_size=64 * 1024,
        # A room's message is framed once for all; compressing it per connection would undo
        # that (and cost more CPU than the bandwidth it saves, measured in bench/).
        ws_per_message_deflate=False,
        # Client addresses come from X-Forwarded-For only via trusted proxies: server.edge
        # decides that, the same way under any ASGI server.
        proxy_headers=False,
    )


# Objects allocated (less those freed) before the youngest generation is collected: Python's
# default, 700, collects it ~1,400 times in bench/compare.py's rooms scenario, scanning the
# same young session versions, frames and buffers again and again (gen0 and gen1 took 0.43 s of
# 13.2 s; a full collection, ~90 ms, ran twice). At 10,000: 92 collections, 0.25 s in all, and
# no full one. The cyclic garbage a connection leaves behind is ~5 objects (most of it goes by
# reference counting), so waiting longer to collect it holds next to nothing.
GC_THRESHOLD_YOUNGEST = 10_000


def tune_gc() -> None:
    """Collect the youngest generation less often, and leave what the server holds from its
    start (modules, templates, decks) out of every collection."""
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD_YOUNGEST, middle, oldest)
    gc.freeze()


def run(settings: Settings) -> int:
    logs.configure(settings.log_level, settings.log_format)
    if settings.redis_url and settings.uses_redis:
        problem = check_redis(settings.redis_url)
        if problem:
            print(f"stackvote: {problem}", file=sys.stderr)
            return 2
    try:
        app = create_app(settings)
    except SettingsError as exc:  # the data directory in use by another server, say
        print(f"stackvote: {exc}", file=sys.stderr)
        return 2
    if settings.store_kind == "sqlite":
        log.info("sessions are kept in %s", settings.sqlite_path)
    elif settings.store_kind == "memory":
        log.warning("sessions are kept in memory only: a restart forgets them")
    path: sio.Choice = "stock" if settings.connections == "stock" else "auto"
    print(f"stackvote is listening on http://{settings.host}:{settings.port}", flush=True)
    tune_gc()
    uvicorn.run(app, **uvicorn_options(settings, path))
    return 0
