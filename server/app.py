"""create_app(settings): the Starlette site and the Socket.IO server composed into one ASGI app."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import socketio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import edge, i18n, logs, ops, protocol, routes, rules
from server.advice import Advisor
from server.deadlines import Deadlines
from server.fanout import Fanout
from server.load import Load
from server.logs import REQUEST
from server.metrics import CONTENT_TYPE, Metrics
from server.models import Session
from server.realtime import RoomNamespace
from server.rooms import Rooms
from server.settings import Settings
from server.sio import Limits, build_server
from server.store import Store, StoreUnavailable, open_store
from server.text import N_
from server.throttle import SLOW_DOWN, Throttle
from server.upkeep import Upkeep

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """`templates/` or `static/`: inside the package in a wheel, at the repo root in a checkout."""
    for candidate in (PACKAGE_DIR / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"cannot find the {name}/ directory next to {PACKAGE_DIR}")


SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        b"frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """Adds the browser-side defences to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A WebSocket passes straight through, leaving no frame of this for its lifetime.
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in SECURITY_HEADERS if k not in present
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestIds:
    """Gives each HTTP request an id: on every log line written while answering it (see
    server.logs), and in the response's X-Request-ID header, so the two can be matched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The outermost layer, so an ASGI server sees a coroutine function (ASGI 3).
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        token = REQUEST.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST.reset(token)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path in (
        "/healthz",
        "/readyz",
        "/metrics",
    )


def _error_response(request: Request, status: int, message: str) -> Response:
    message = i18n.say(message)
    if _wants_json(request):
        return JSONResponse({"error": message}, status_code=status)
    pages: Jinja2Templates = request.app.state.pages
    return pages.TemplateResponse(
        request, "error.html", {"status": status, "message": message}, status_code=status
    )


async def _on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, routes.ApiError)
    body: dict[str, Any] = {"error": i18n.say(exc.message)}
    if exc.errors:
        body["errors"] = exc.errors
    return JSONResponse(body, status_code=exc.status)


_HTTP_MESSAGES = {
    404: N_("There is nothing at this address."),
    405: N_("This address does not accept that method."),
}


BAD_REQUEST = N_("Bad request.")


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    # Starlette's own refusals carry only the status' English phrase ("Not Found").
    plain = exc.detail == HTTPStatus(exc.status_code).phrase
    message = exc.detail if exc.detail and not plain and exc.status_code != 405 else None
    return _error_response(
        request, exc.status_code, message or _HTTP_MESSAGES.get(exc.status_code, BAD_REQUEST)
    )


async def _on_store_down(request: Request, exc: Exception) -> Response:
    log.warning("%s %s: storage unavailable: %s", request.method, request.url.path, exc)
    return _error_response(
        request,
        503,
        N_("The server cannot reach its storage right now; please try again shortly."),
    )


async def _on_crash(request: Request, exc: Exception) -> Response:
    log.exception("%s %s failed", request.method, request.url.path)
    return _error_response(request, 500, N_("Something went wrong on the server."))


def _static_versioner(static_dir: Path) -> Any:
    """static(path) for templates: a URL that changes when the file does (safe to cache)."""
    cache: dict[str, str] = {}

    def static(path: str) -> str:
        if path not in cache:
            digest = hashlib.sha256((static_dir / path).read_bytes()).hexdigest()[:10]
            cache[path] = f"/static/{path}?v={digest}"
        return cache[path]

    return static


async def _metrics(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.exposition(), media_type=CONTENT_TYPE)


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    metrics: Metrics | None = None,
) -> ASGIApp:
    settings = settings or Settings()
    store = store or open_store(settings)
    # Every app counts in its own registry (several apps may share a process, as in tests).
    metrics = metrics or Metrics()
    metrics.watch_store(store)
    static_dir = resource_dir("static")
    pages = Jinja2Templates(directory=resource_dir("templates"))
    pages.env.globals["static"] = _static_versioner(static_dir)
    i18n.install(pages.env)

    # Made below; the callbacks built first refer to them.
    namespace: RoomNamespace
    rooms: Rooms
    throttle = Throttle(settings, shared=store.shared_limiter(), metrics=metrics)
    here = edge.Here()
    origins = edge.Origins(settings.public_origins, here)
    load = Load(busy_after=settings.busy_lag_ms / 1000, metrics=metrics)
    open_per_address = edge.OpenPerAddress(settings.max_connections_per_address)
    sio = build_server(
        "stock" if settings.connections == "stock" else "auto",
        events=protocol.CLIENT_EVENTS,
        charge=lambda sid: None if throttle.allow_event(sid) else namespace.say(sid, SLOW_DOWN),
        limits=Limits.of(
            settings.limit_frames,
            settings.connect_within_seconds,
            settings.max_backlog_kb,
            settings.max_backlog_total_mb,
            open_per_address,
        ),
        async_mode="asgi",
        # A socket's events are handled one after the other, in its own reader: no task per
        # event, and a client's votes are applied in the order it sent them.
        async_handlers=False,
        # Pages of this server only (server.edge); the library's default would also believe
        # X-Forwarded-Host, which any client can send.
        cors_allowed_origins=lambda origin, environ=None: origins.allowed(origin),
        max_http_buffer_size=16 * 1024,
        ping_interval=settings.ping_interval_seconds,
        ping_timeout=settings.ping_timeout_seconds,
        # Engine.IO's monitor visits every socket each ping cycle (work that grows with idle
        # connections); each connection's own read timeout does the same job.
        monitor_clients=False,
        # WebSocket only: a connection then lives on one instance from start to end, so
        # several instances behind a proxy need no sticky sessions.
        transports=["websocket"],
    )
    # Rooms keep this instance's copies of its sessions and store changes; the fan-out sends
    # each room what changed. (Instances hear each other's changes through the store's feed,
    # not through a Socket.IO manager: see server/rooms.py.)
    # The engine's advice is worked out off the event loop; the room hears when it is ready.
    advisor = Advisor(lambda session_id: fanout.advised(session_id))
    metrics.advice.set_function(lambda: advisor.worked_out)
    fanout = Fanout(
        lambda session_id: rooms.current(session_id),
        window=settings.coalesce_ms / 1000,
        frames_per_second=settings.coalesce_frames_per_second,
        metrics=metrics,
        advisor=advisor if settings.advice == "thread" else None,
    )
    # Countdowns: each instance holding a session closes voting at its deadlines.
    deadlines = Deadlines(
        lambda session_id: rooms.current(session_id),
        lambda session_id, op: rooms.apply(session_id, op),
    )

    def people_timer(
        due: Callable[[Session], float | None], op: Callable[[], ops.Op], what: str
    ) -> Deadlines:
        """The same kind of timer, for a change that depends on who is here and since when."""
        return Deadlines(
            lambda session_id: rooms.current(session_id),
            lambda session_id, op: rooms.apply(session_id, op),
            due=due,
            op=op,
            depends=lambda session: session.participants,
            what=what,
        )

    # People offline for long are marked away; those without a ballot, offline for longer
    # still, leave the session.
    away_after = settings.away_after_seconds
    away = people_timer(
        lambda session: rules.next_away(session, away_after),
        lambda: ops.MarkAway(away_after),
        "marking people away",
    )
    expire_after = settings.expire_idle_after_seconds
    expiry = people_timer(
        lambda session: rules.next_expiry(session, expire_after),
        lambda: ops.Expire(expire_after),
        "removing people gone for long",
    )

    def changed(
        session_id: str, before: Session, after: Session, applied: tuple[ops.Op, ...] | None
    ) -> None:
        fanout.changed(session_id, before, after)
        namespace.changed(session_id, before, after, applied)

    def copied(session_id: str, session: Session | None) -> None:
        deadlines.watch(session_id, session)
        if away_after > 0:
            away.watch(session_id, session)
        if expire_after > 0:
            expiry.watch(session_id, session)

    rooms = Rooms(store, changed, metrics=metrics, on_copy=copied)
    namespace = RoomNamespace(
        store,
        rooms,
        fanout,
        max_participants=settings.max_participants,
        instance_ttl=settings.instance_ttl_seconds,
        throttle=throttle,
        load=load,
        metrics=metrics,
        advisor=advisor,
    )
    sio.register_namespace(namespace)
    throttle.on_strikeout = lambda sid: sio.hang_up(sid, "too many refused events")
    sio.say = namespace.say
    sio.handle_directly(
        {
            protocol.VOTE: namespace.on_vote,
            protocol.CONTROL: namespace.on_control,
            protocol.SYNC: namespace.on_sync,
            protocol.LEAVE: namespace.on_leave,
            protocol.FLIP: namespace.on_flip,
        }
    )
    upkeep = Upkeep(namespace, store, rooms)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(upkeep.run(), name="upkeep"),
            asyncio.create_task(load.run(), name="load"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            deadlines.close()
            away.close()
            expiry.close()
            advisor.close()
            await store.close()

    # For the operator (Prometheus scrapes each instance directly); the public proxy refuses it.
    operator = [Route("/metrics", _metrics)] if settings.metrics_enabled else []
    site = Starlette(
        routes=[
            *routes.routes,
            *operator,
            Mount("/static", StaticFiles(directory=static_dir), name="static"),
        ],
        exception_handlers={
            routes.ApiError: _on_api_error,
            HTTPException: _on_http_error,
            StoreUnavailable: _on_store_down,
            Exception: _on_crash,
        },
        lifespan=lifespan,
    )
    site.state.settings = settings
    site.state.here = here
    site.state.store = store
    site.state.pages = pages
    site.state.sio = sio
    site.state.throttle = throttle
    site.state.fanout = fanout
    site.state.advisor = advisor
    site.state.rooms = rooms
    site.state.deadlines = deadlines
    site.state.metrics = metrics
    # Outermost, so that every response carries the headers and its id, error pages included;
    # the client's address is settled before anything counts it.
    app: ASGIApp = socketio.ASGIApp(sio, other_asgi_app=site)
    if not sio.fast:
        # The fast path caps WebSockets per address in its connections (server.sio.connection)
        # and ends them itself; on the stock path these middlewares do.
        app = edge.ConnectionCap(edge.Cutoff(app), open_per_address)
    app = SecurityHeaders(i18n.Locales(app))
    trusted = edge.networks(settings.trusted_proxies)
    if trusted:
        app = edge.ForwardedFor(app, trusted)
    return RequestIds(app)


def from_env() -> ASGIApp:
    """The app configured from STACKVOTE_* variables, for any ASGI server that takes a factory
    (`uvicorn --factory server.app:from_env`, `hypercorn 'server.app:from_env()'`, granian)."""
    settings = Settings.from_env()
    logs.configure(settings.log_level, settings.log_format)
    return create_app(settings)
