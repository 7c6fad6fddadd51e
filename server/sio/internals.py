"""Every name of python-socketio, python-engineio, uvicorn, websockets and redis-py that this
server uses beyond their public API, and a check that they are still there.

The fast path (server.sio.gate, server.sio.connection, server.sio.framing) stands on these.
The versions in pyproject.toml stop below the next minor release of each library (websockets:
its next major); if an install
gets a release that moved one anyway, the check finds it at start-up, the server logs one
warning and runs on the stock path (server.sio.stock), which uses the public API only: slower,
still correct. tests/test_internals.py fails with the same message, so an upgrade is caught
before it ships. The redis-py names (server.store.feed and server.store.redis, for Redis
Cluster) have no stock twin: tests/test_internals.py is their guard.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
from dataclasses import dataclass
from typing import Any, Literal

Part = Literal["socketio", "uvicorn", "redis"]


@dataclass(frozen=True)
class Internal:
    part: Part  # what falls back without it: the Socket.IO fast path, or uvicorn's doors
    where: str  # module:Class
    name: str  # attribute or method
    why: str


INTERNALS: tuple[Internal, ...] = (
    # python-socketio (server.sio.gate)
    Internal("socketio", "socketio:AsyncServer", "_handle_eio_message",
             "the one entry point of a client's packets, overridden to check them first"),
    Internal("socketio", "socketio:AsyncServer", "_handle_eio_connect",
             "extended to replace Engine.IO's first-ping task with a timer"),
    Internal("socketio", "socketio:AsyncServer", "_handle_eio_disconnect",
             "extended to forget a connection's malformed-packet count"),
    Internal("socketio", "socketio:AsyncServer", "_handle_connect",
             "called for a connect packet the gate has read"),
    Internal("socketio", "socketio:AsyncServer", "_handle_disconnect",
             "called for a disconnect packet the gate has read"),
    Internal("socketio", "socketio:AsyncServer", "_handle_event",
             "called for an event the gate has let through"),
    Internal("socketio", "socketio:AsyncServer", "_send_packet",
             "answers a connect request the gate could not read"),
    Internal("socketio", "socketio:AsyncServer()", "packet_class", "decodes what the gate reads"),
    Internal("socketio", "socketio:AsyncServer()", "environ", "a connection's handshake"),
    Internal("socketio", "socketio:AsyncManager", "basic_disconnect",
             "extended so a disconnect costs the rooms the client was in, not all rooms"),
    Internal("socketio", "socketio:AsyncManager()", "rooms",
             "what basic_disconnect looks through (emptied around its call, see RoomsBySid)"),
    # python-engineio (server.sio.connection, server.sio.gate)
    Internal("socketio", "engineio:AsyncServer()", "_async",
             "the table of drivers: its websocket entry becomes server.sio.connection's class"),
    Internal("socketio", "engineio:AsyncServer()", "create_queue",
             "replaced so each socket's queue is a light Mailbox"),
    Internal("socketio", "engineio:AsyncServer()", "sockets", "a connection's Engine.IO socket"),
    *(
        Internal("socketio", "engineio:AsyncServer()", name, why)
        for name, why in (
            ("generate_id", "a new WebSocket's session id (server.sio.gate opens it)"),
            ("start_service_task", "a handshake Engine.IO would start its monitor in"),
            ("cors_allowed_origins", "which handshakes the gate opens itself"),
            ("_cors_allowed_origins", "checks a handshake's origin as Engine.IO does"),
            ("ping_interval_grace_period", "in the open packet"),
            ("max_http_buffer_size", "in the open packet"),
        )
    ),
    Internal("socketio", "engineio.async_socket:AsyncSocket()", "_websocket_handler",
             "what a WebSocket connection is made with, as Engine.IO's upgrade makes it"),
    Internal("socketio", "engineio.async_drivers.asgi:WebSocket", "wait",
             "reads a frame (checked before Engine.IO decodes it)"),
    Internal("socketio", "engineio.async_drivers.asgi:WebSocket", "send", "writes a frame"),
    Internal("socketio", "engineio.async_drivers.asgi:WebSocket", "close", "closes it"),
    Internal("socketio", "engineio.async_socket:AsyncSocket", "receive",
             "Engine.IO's rules for a pong or a close"),
    Internal("socketio", "engineio.async_socket:AsyncSocket", "close", "ends a socket"),
    Internal("socketio", "engineio.async_socket:AsyncSocket", "schedule_ping",
             "replaced by a timer (instance attribute)"),
    Internal("socketio", "engineio.async_socket:AsyncSocket", "send",
             "replaced by a direct write (instance attribute)"),
    Internal("socketio", "engineio.async_socket:AsyncSocket()", "queue", "packets waiting"),
    Internal("socketio", "engineio.async_socket:AsyncSocket()", "last_ping",
             "whether a ping is outstanding (a pong without one is refused)"),
    Internal("socketio", "engineio.async_socket:AsyncSocket()", "connected", "set on open"),
    Internal("socketio", "engineio.async_socket:AsyncSocket()", "upgraded", "set on open"),
    Internal("socketio", "engineio.async_socket:AsyncSocket()", "closing", "not sent to"),
    Internal("socketio", "engineio.async_socket:AsyncSocket()", "closed", "not sent to"),
    # uvicorn (server.sio.framing)
    Internal("uvicorn", "uvicorn.protocols.websockets.websockets_sansio_impl:"
             "WebSocketsSansIOProtocol", "handle_connect", "hands the app the framing door"),
    Internal("uvicorn", "uvicorn.protocols.websockets.websockets_sansio_impl:"
             "WebSocketsSansIOProtocol", "send_receive_event_to_app",
             "reads on while few messages wait"),
    Internal("uvicorn", "uvicorn.protocols.websockets.websockets_sansio_impl:"
             "WebSocketsSansIOProtocol", "start_keepalive",
             "drops the handshake's headers once answered"),
    Internal("uvicorn", "uvicorn.protocols.websockets.websockets_sansio_impl:"
             "WebSocketsSansIOProtocol", "keepalive_timeout", "closes a socket with no pong"),
    Internal("uvicorn", "uvicorn.protocols.websockets.websockets_sansio_impl:"
             "WebSocketsSansIOProtocol", "run_asgi",
             "replaced so a detached connection stays open when its ASGI call returns (it "
             "calls the app with the scope handle_connect made, as uvicorn's does)"),
    Internal("uvicorn", "uvicorn.protocols.websockets.websockets_sansio_impl:"
             "WebSocketsSansIOProtocol", "send_500_response", "as run_asgi answers a failure"),
    Internal("uvicorn", "uvicorn.protocols:utils", "ClientDisconnected",
             "what run_asgi lets pass"),
    *(
        Internal("uvicorn", "uvicorn.protocols.websockets.websockets_sansio_impl:"
                 "WebSocketsSansIOProtocol()", name, why)
        for name, why in (
            ("queue", "replaced by a Mailbox"),
            ("read_paused", "whether reading is paused"),
            ("transport", "where frames are written"),
            ("connections", "what take_over adds the connection to"),
            ("server", "set by take_over"),
            ("client", "set by take_over"),
            ("scheme", "set by take_over"),
            ("conn", "the websockets protocol, to fail a connection"),
            ("handshake_complete", "frames only after the handshake"),
            ("close_sent", "no frames after a close"),
            ("disconnected", "no frames after the client left"),
            ("writable", "no frames while the transport is paused"),
            ("tasks", "uvicorn's shutdown waits for a detached connection's task"),
            ("close_timer", "set once a close is under way (then uvicorn closes)"),
            ("app", "what run_asgi calls"),
            ("logger", "where run_asgi reports a failure"),
        )
    ),
    Internal("uvicorn", "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol",
             "on_message_begin", "arms the header deadline"),
    Internal("uvicorn", "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol",
             "on_headers_complete", "disarms it"),
    Internal("uvicorn", "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol()", "loop",
             "its timer"),
    Internal("uvicorn", "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol",
             "handle_websocket_upgrade",
             "extended to hand the framing protocol the request it parsed (the steps after "
             "that are uvicorn's own: a protocol made, connected and set on the transport)"),
    *(
        Internal("uvicorn", "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol()", name,
                 "what a WebSocket protocol is made with, as uvicorn's upgrade makes it")
        for name in ("ws_protocol_class", "config", "server_state", "app_state", "connections",
                     "logger", "server", "client", "scheme", "scope")
    ),
    Internal("uvicorn", "websockets.protocol:Protocol", "parse",
             "the frame parser, started for a request parsed already"),
    Internal("uvicorn", "websockets.server:ServerProtocol()", "parser",
             "replaced by the frame parser when the request was parsed already"),
    Internal("uvicorn", "websockets:http11", "MAX_LINE_LENGTH",
             "which requests websockets would refuse (those go its way)"),
    Internal("uvicorn", "websockets:http11", "MAX_NUM_HEADERS", "likewise"),
    Internal("uvicorn", "websockets.datastructures:Headers()", "_dict",
             "filled with a parsed request's headers, as websockets' parser fills it"),
    Internal("uvicorn", "websockets.datastructures:Headers()", "_list", "likewise"),
    Internal("uvicorn", "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol()",
             "transport", "closed when the headers are late; what an upgrade takes over"),
    # redis-py (server.store.feed, server.store.redis; Redis Cluster only)
    Internal("redis", "redis.asyncio.cluster:ClusterPubSub()", "_shard_channel_to_node",
             "where each sharded subscription lives: a move means records may have been missed"),
    Internal("redis", "redis.asyncio.cluster:ClusterPubSub()", "node_pubsub_mapping",
             "the per-node connections whose messages are read"),
    Internal("redis", "redis.asyncio.cluster:RedisCluster()", "nodes_manager",
             "refreshed when a write meets MOVED"),
)  # fmt: skip


def _instance(where: str) -> Any:
    """A real instance of the class at `where` (for attributes set in its __init__)."""
    cls = _class(where)
    if where.startswith("redis"):
        from redis.asyncio.cluster import RedisCluster

        cluster = RedisCluster(host="127.0.0.1", port=1)  # not connected: nothing is sent
        return cluster if cls is RedisCluster else cluster.pubsub()
    if where.startswith("websockets"):
        return cls()
    if where.startswith("socketio:AsyncManager"):
        return cls()
    if where.startswith(("socketio:", "engineio:")):
        return cls(async_mode="asgi")
    if where.startswith("engineio"):
        import engineio

        return cls(engineio.AsyncServer(async_mode="asgi"), "probe")
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - not run
        pass

    config = Config(app=app, ws="websockets-sansio", log_config=None)
    config.load()
    loop = asyncio.new_event_loop()
    try:
        return cls(config, ServerState(), {}, _loop=loop)
    finally:
        loop.close()


def _class(where: str) -> Any:
    module, _, name = where.rstrip("()").partition(":")
    return getattr(importlib.import_module(module), name)


def _problem(item: Internal) -> str | None:
    try:
        holder = _instance(item.where) if item.where.endswith("()") else _class(item.where)
    except Exception as exc:
        return f"{item.where.rstrip('()')} is not there ({type(exc).__name__}: {exc})"
    if not hasattr(holder, item.name):
        return f"{item.where.rstrip('()')}.{item.name} is gone (used: {item.why})"
    return None


@functools.cache
def problems(part: Part) -> tuple[str, ...]:
    """What is missing of the internals that `part` of the fast path needs (empty: all there)."""
    found = (_problem(item) for item in INTERNALS if item.part == part)
    return tuple(p for p in found if p is not None)
