"""The Socket.IO namespace: each event goes parse -> load -> rules -> save -> broadcast."""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from server import protocol, rules, snapshot
from server.models import Participant, Role, Session
from server.security import (
    hash_token,
    new_instance_id,
    new_participant_id,
    new_token,
    token_matches,
)
from server.store import SessionNotFound, Store, StoreUnavailable
from server.throttle import SLOW_DOWN, Throttle

log = logging.getLogger(__name__)

APPLY_DEADLINE = 5.0

UNAVAILABLE = "The server cannot reach its storage right now; please try again in a moment."
GONE = "This session no longer exists."


class Refused(Exception):
    """A connection turned away, with a machine-readable code for the client."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def _refuse(message: str, code: str) -> Exception:
    # The client sees err.message (for people) and err.data.code (for code).
    error: Exception = socketio.exceptions.ConnectionRefusedError(message, {"code": code})
    return error


def client_address(environ: dict[str, Any]) -> str:
    # The ASGI scope has the real peer (after uvicorn applied trusted X-Forwarded-For).
    client = environ.get("asgi.scope", {}).get("client")
    return str(client[0]) if client else "unknown"


Handler = Callable[["RoomNamespace", str, Any], Awaitable[dict[str, Any]]]


def acknowledged(handler: Handler) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Turn every outcome of an event into an ack, so a client never waits for nothing."""

    @functools.wraps(handler)
    async def wrapper(self: RoomNamespace, sid: str, data: Any = None) -> dict[str, Any]:
        if not self.throttle.allow_event(sid):
            return protocol.error(SLOW_DOWN)
        try:
            return await handler(self, sid, data)
        except (protocol.ProtocolError, rules.RuleError) as exc:
            return protocol.error(str(exc))
        except SessionNotFound:
            return protocol.error(GONE)
        except StoreUnavailable:
            return protocol.error(UNAVAILABLE)
        except Exception:
            log.exception("%s from %s failed", handler.__name__, sid)
            return protocol.error("Something went wrong on the server; please try again.")

    return wrapper


class RoomNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    def __init__(
        self,
        store: Store,
        *,
        max_participants: int,
        instance_ttl: float = 15.0,
        throttle: Throttle,
        namespace: str = "/",
    ) -> None:
        super().__init__(namespace)
        self.throttle = throttle
        self.store = store
        self.max_participants = max_participants
        self.instance_ttl = instance_ttl
        # Socket ids are stored as "<instance>:<sid>" so survivors can tell whose sockets died.
        self.instance = new_instance_id()
        # Sessions with sockets on this instance, and those sockets.
        self.local: dict[str, set[str]] = {}
        # Sockets that closed while storage was down: (session, participant, socket).
        self.pending_detach: set[tuple[str, str, str]] = set()
        # One lock per room on this instance, so snapshots leave in the order they were made.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def emit_local(self, event: str, data: Any, room: str | None = None) -> None:
        """Send only to this instance's sockets (each instance beats for its own clients)."""
        await self.server.manager.emit(event, data, namespace="/", room=room, ignore_queue=True)

    async def release_instance(self, instance: str, session_ids: set[str]) -> None:
        """Mark the people connected through a dead instance offline, then forget it."""
        for session_id in session_ids:
            try:
                await self._apply(session_id, lambda s: rules.drop_sockets(s, f"{instance}:"))
            except SessionNotFound:
                continue
        await self.store.forget_instance(instance)

    async def reattach_all(self) -> None:
        """Store this instance's sockets again (after others released them by mistake)."""
        for session_id, sids in list(self.local.items()):
            for sid in list(sids):
                try:
                    whom = await self.get_session(sid)
                except KeyError:
                    continue  # disconnected meanwhile; nothing to attach
                if whom:
                    attach = functools.partial(
                        rules.attach, participant_id=whom["participant"], sid=self.socket_key(sid)
                    )
                    await self._apply(session_id, attach)

    def _lock(self, session_id: str) -> asyncio.Lock:
        lock = self._locks.get(session_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[session_id] = lock
        return lock

    async def _apply(self, session_id: str, change: Callable[[Session], Session]) -> Session:
        """Update the session atomically and broadcast the new snapshot if anything changed."""
        try:
            # A deadline for waiting in line and for storage: a stalled store gives a clear
            # error instead of a request that hangs (the client retries; votes are idempotent).
            async with asyncio.timeout(APPLY_DEADLINE), self._lock(session_id):
                after, changed = await self.store.update(session_id, change)
                if changed:
                    await self.emit(protocol.STATE, snapshot.state(after), room=session_id)
                return after
        except TimeoutError:
            raise StoreUnavailable(f"no answer from storage within {APPLY_DEADLINE} s") from None

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if not await self.throttle.allow_address("connect", client_address(environ)):
            raise _refuse(
                "Too many connections from your address; wait a minute and try again.",
                "rate_limited",
            )
        try:
            request = protocol.parse(protocol.Auth, auth if auth is not None else {})
            session, participant, token = await self._admit(sid, request)
        except Refused as exc:
            raise _refuse(str(exc), exc.code) from None
        except (protocol.ProtocolError, rules.RuleError) as exc:
            raise _refuse(str(exc), "refused") from None
        except StoreUnavailable:
            raise _refuse(UNAVAILABLE, "unavailable") from None
        except SessionNotFound:
            raise _refuse(GONE, "unknown_session") from None
        await self.save_session(sid, {"session": session.id, "participant": participant.id})
        await self.enter_room(sid, session.id)
        self.local.setdefault(session.id, set()).add(sid)
        welcome = {
            "participant_id": participant.id,
            "token": token,
            "role": participant.role,
            "ballots": snapshot.own_ballots(session, participant.id),
        }
        # Events emitted inside the connect handler are dropped (the client is not connected
        # until it returns), so greet from a task that runs right after.
        self.server.start_background_task(self._greet, sid, session.id, welcome)

    async def _greet(self, sid: str, session_id: str, welcome: dict[str, Any]) -> None:
        # The newcomer is in the room already, so any later change reaches them too; the
        # snapshot read here covers everything before.
        await self.emit(protocol.WELCOME, welcome, to=sid)
        async with self._lock(session_id):
            current = await self.store.get(session_id)
            if current is not None:
                await self.emit(protocol.STATE, snapshot.state(current), to=sid)

    def socket_key(self, sid: str) -> str:
        return f"{self.instance}:{sid}"

    async def _admit(self, sid: str, request: protocol.Auth) -> tuple[Session, Participant, str]:
        """Who is connecting: a returning participant (by token) or a new one (by name)."""
        session = await self.store.get(request.session)
        if session is None:
            raise Refused(
                "There is no session at this link; it may have expired.", "unknown_session"
            )
        socket = self.socket_key(sid)
        # Say we hold a socket here before storing it, so a crash after this is cleaned up.
        await self.store.heartbeat(self.instance, [session.id], ttl=self.instance_ttl)
        facilitator = False
        if request.facilitator_token is not None:
            if not token_matches(request.facilitator_token, session.facilitator_hash):
                raise Refused(
                    "This facilitator link is not valid for this session.", "bad_facilitator_token"
                )
            facilitator = True
        promote: Role | None = "facilitator" if facilitator else None

        if request.token is not None:
            known = rules.find_by_token(session, hash_token(request.token))
            if known is not None:
                session = await self._apply(
                    session.id, lambda s: rules.attach(s, known.id, socket, promote)
                )
                participant = session.participant(known.id)
                assert participant is not None
                return session, participant, request.token

        name = rules.clean_name(request.name)
        token = new_token()
        role: Role = promote or request.role
        newcomer = Participant(
            id=new_participant_id(), name=name, role=role, token_hash=hash_token(token)
        )

        def join(s: Session) -> Session:
            return rules.attach(
                rules.join(s, newcomer, limit=self.max_participants), newcomer.id, socket
            )

        session = await self._apply(session.id, join)
        return session, newcomer, token

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self.throttle.forget_event(sid)
        whom = await self.get_session(sid)
        if not whom:
            return
        room = self.local.get(whom["session"], set())
        room.discard(sid)
        if not room:
            self.local.pop(whom["session"], None)
        socket = self.socket_key(sid)
        await self.detach(whom["session"], whom["participant"], socket)

    async def detach(self, session_id: str, participant_id: str, socket: str) -> None:
        """Mark a socket gone; if storage is down, remember to do it when it is back."""
        try:
            await self._apply(session_id, lambda s: rules.detach(s, participant_id, socket))
        except SessionNotFound:
            pass
        except StoreUnavailable:
            log.info("storage down: %s in %s goes offline later", participant_id, session_id)
            self.pending_detach.add((session_id, participant_id, socket))

    async def retry_detaches(self) -> None:
        for pending in list(self.pending_detach):
            self.pending_detach.discard(pending)
            await self.detach(*pending)

    async def _whom(self, sid: str) -> tuple[str, str]:
        whom = await self.get_session(sid)
        return whom["session"], whom["participant"]

    @acknowledged
    async def on_vote(self, sid: str, data: Any) -> dict[str, Any]:
        ballot = protocol.parse(protocol.Vote, data)
        session_id, participant_id = await self._whom(sid)
        session = await self._apply(
            session_id,
            lambda s: rules.vote(
                s,
                participant_id,
                ballot.case,
                ballot.score,
                client=ballot.client,
                seq=ballot.seq,
                round=ballot.round,
            ),
        )
        return protocol.ok(session.version)

    @acknowledged
    async def on_control(self, sid: str, data: Any) -> dict[str, Any]:
        command = protocol.parse(protocol.Control, data)
        session_id, participant_id = await self._whom(sid)
        session = await self._apply(
            session_id,
            lambda s: rules.control(s, participant_id, command.action, command.case),
        )
        return protocol.ok(session.version)

    @acknowledged
    async def on_sync(self, sid: str, data: Any = None) -> dict[str, Any]:
        session_id, _ = await self._whom(sid)
        session = await self.store.get(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        return snapshot.state(session)
