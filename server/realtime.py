"""The Socket.IO namespace: each event goes parse -> op -> rules and store (server.rooms) ->
ack; what changed reaches the room through the fan-out (server.fanout), never through the ack.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import socketio
from prometheus_client import Counter

from server import i18n, ops, protocol, rules, snapshot
from server.advice import Advisor
from server.fanout import Fanout
from server.load import Load
from server.logs import CONNECTION
from server.metrics import Metrics
from server.models import Participant, Role, Session
from server.rooms import Busy, Rooms
from server.security import (
    hash_token,
    new_instance_id,
    new_participant_id,
    new_token,
)
from server.sio import Message, Namespace, Outlet
from server.store import OutcomeUnknown, SessionNotFound, Store, StoreUnavailable
from server.text import N_, text_of
from server.throttle import SLOW_DOWN, Throttle

log = logging.getLogger(__name__)

UNAVAILABLE = N_("The server cannot reach its storage right now; please try again in a moment.")
BUSY = N_("The server is busy right now; this was not counted, please try again in a moment.")
BUSY_CONNECTING = N_("The server is busy right now; please try again in a moment.")
GONE = N_("This session no longer exists.")
UNKNOWN_STACK = N_("This session has no such stack.")
NOTHING_REVEALED = N_("Nothing is revealed yet, so no stack is ahead of another.")
REMOVED = N_("The facilitator removed you from this session.")
NO_SESSION = N_("There is no session at this link; it may have expired.")
TOO_MANY_CONNECTIONS = N_("Too many connections from your address; wait a minute and try again.")
CRASHED = N_("Something went wrong on the server; please try again.")
LEFT = N_("You left this session.")
MOVED = N_(
    "The facilitator link was opened on another device, which now runs this session as you. "
    "Open the link here again to take it back."
)
# Why a connection is sent away (the `removed` event's reason), in words for people.
SENT_AWAY = {"removed": REMOVED, "left": LEFT, "moved": MOVED}
WATCHING = N_("This connection only watches the session; join it to vote or to run it.")


class Refused(Exception):
    """A connection turned away, with a machine-readable code for the client."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def _refuse(message: str, code: str, locale: str) -> Exception:
    # The client sees err.message (for people, in the language of its handshake) and
    # err.data.code (for code).
    error: Exception = socketio.exceptions.ConnectionRefusedError(
        i18n.say(message, locale), {"code": code}
    )
    return error


def client_address(environ: dict[str, Any]) -> str:
    # The ASGI scope has the real peer (after uvicorn applied trusted X-Forwarded-For).
    client = environ.get("asgi.scope", {}).get("client")
    return str(client[0]) if client else "unknown"


Handler = Callable[["RoomNamespace", str, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Outcomes:
    """The counters of one kind of change, by what its sender was told."""

    done: Counter
    refused: Counter
    unknown: Counter

    @classmethod
    def of(cls, counter: Counter, done: str) -> Outcomes:
        return cls(counter.labels(done), counter.labels("refused"), counter.labels("unknown"))


def acknowledged(
    tally: str | None = None,
) -> Callable[[Handler], Callable[..., Awaitable[Any]]]:
    """Turn every outcome of an event into a truthful ack, so a client never waits for
    nothing and never hears "counted" for what was not, or "not counted" for what was.
    `tally`: the namespace's Outcomes attribute that counts the answers."""

    def decorate(handler: Handler) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(handler)
        async def wrapper(self: RoomNamespace, sid: str, data: Any = None) -> Any:
            token = CONNECTION.set(sid)
            try:
                answer = await _answer(self, handler, sid, data)
            finally:
                CONNECTION.reset(token)
            if tally is not None:
                outcomes: Outcomes = getattr(self, tally)
                if answer is self.server.not_handled:
                    outcomes.unknown.inc()
                elif answer["ok"]:
                    outcomes.done.inc()
                else:
                    outcomes.refused.inc()
            return answer

        return wrapper

    return decorate


async def _answer(namespace: RoomNamespace, handler: Handler, sid: str, data: Any) -> Any:
    if not namespace.throttle.allow_event(sid):
        return protocol.error(namespace.say(sid, SLOW_DOWN), retry=True)
    try:
        return await handler(namespace, sid, data)
    except (protocol.ProtocolError, rules.RuleError) as exc:
        return protocol.error(namespace.say(sid, text_of(exc)))
    except Busy:
        return protocol.error(namespace.say(sid, BUSY), retry=True)
    except SessionNotFound:
        return protocol.error(namespace.say(sid, GONE))
    except OutcomeUnknown:
        # Storage stopped answering mid-write and cannot be read: whether this counted is
        # not known, so no answer at all; the client sends it again, which is safe.
        log.warning("%s from %s: outcome unknown, not answered", handler.__name__, sid)
        return namespace.server.not_handled
    except StoreUnavailable:
        return protocol.error(namespace.say(sid, UNAVAILABLE), retry=True)
    except Exception:
        log.exception("%s from %s failed", handler.__name__, sid)
        return protocol.error(namespace.say(sid, CRASHED))


# The ops that may change someone's role (or a facilitator's link).
ROLE_OPS = (ops.HandOver, ops.Promote, ops.Demote, ops.GiveLink, ops.Attach, ops.TakeOver)


def _may_change_a_role(op: ops.Op) -> bool:
    # A plain reconnect (an Attach without a role or a link) changes nobody's role: a room of
    # a thousand coming back after a restart must not look at every socket a thousand times.
    if isinstance(op, ops.Attach):
        return op.role is not None or op.link is not None
    return isinstance(op, ROLE_OPS)


def command_op(participant_id: str, command: protocol.Control) -> ops.Op:
    """The op a facilitator's command stands for (protocol.Control has checked its fields)."""
    match command.action:
        case "countdown":
            assert command.seconds is not None
            return ops.Countdown(participant_id, command.seconds, command.case)
        case "auto_reveal":
            return ops.AutoReveal(participant_id, bool(command.on))
        case "hand_over":
            assert command.participant is not None
            return ops.HandOver(participant_id, command.participant)
        case "promote":
            assert command.participant is not None
            return ops.Promote(participant_id, command.participant)
        case "demote":
            assert command.participant is not None
            return ops.Demote(participant_id, command.participant)
        case "remove":
            assert command.participant is not None
            return ops.Remove(participant_id, command.participant, bool(command.keep_ballots))
        case "nudge":
            return ops.Nudge(participant_id, command.case)
        case "door":
            return ops.Door(participant_id, bool(command.open))
        case "remove_idle":
            return ops.RemoveIdle(participant_id)
        case "decide":
            return ops.Decide(participant_id, command.stack, command.note or "")
    return ops.Control(participant_id, command.action, command.case)


class RoomNamespace(Namespace):
    def __init__(
        self,
        store: Store,
        rooms: Rooms,
        fanout: Fanout,
        *,
        max_participants: int,
        instance_ttl: float = 15.0,
        throttle: Throttle,
        load: Load,
        namespace: str = "/",
        metrics: Metrics | None = None,
        advisor: Advisor | None = None,
    ) -> None:
        super().__init__(namespace)
        self.advisor = advisor or Advisor()
        self.store = store
        self.rooms = rooms
        self.fanout = fanout
        self.throttle = throttle
        self.load = load
        self.max_participants = max_participants
        self.instance_ttl = instance_ttl
        # Socket ids are stored as "<instance>:<sid>" so survivors can tell whose sockets died.
        self.instance = new_instance_id()
        # Sessions with sockets on this instance, and those sockets.
        self.local: dict[str, set[str]] = {}
        # Sockets that closed while storage was down: (session, participant, socket).
        self.pending_detach: set[tuple[str, str, str]] = set()
        # Who each socket here speaks for: socket id -> (session id, participant id).
        self.whom: dict[str, tuple[str, str]] = {}
        # Watch-only sockets (a presenter screen): socket id -> session id. They get what a
        # participant gets, but speak for nobody, so the session never lists or counts them.
        self.watching: dict[str, str] = {}
        # Facilitators connected here whose own link is being made: (session id, participant).
        self.linking: set[tuple[str, str]] = set()
        # Sockets being sent away (their person left, was removed or moved to another
        # device): until they are closed, they speak for nobody.
        self.leaving: set[str] = set()
        # The language each socket here was given at connect (server.i18n).
        self.locales: dict[str, str] = {}
        # The client address of each socket here (for per-address limits after connect).
        self.addresses: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        metrics = metrics or Metrics()
        metrics.connections.set_function(lambda: len(self.whom) + len(self.watching))
        metrics.rooms.set_function(lambda: len(self.local))
        self.votes = Outcomes.of(metrics.votes, "counted")
        self.controls = Outcomes.of(metrics.controls, "applied")

    def socket_key(self, sid: str) -> str:
        return f"{self.instance}:{sid}"

    def say(self, sid: str, text: str) -> str:
        """A message for the person at socket `sid`, in their language."""
        return i18n.say(text, self.locales.get(sid, i18n.DEFAULT))

    # --- connecting

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = CONNECTION.set(sid)
        try:
            await self._connect(sid, environ, auth)
        finally:
            CONNECTION.reset(token)

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        locale = i18n.from_environ(environ)
        if not await self.throttle.allow_address("connect", client_address(environ)):
            raise _refuse(TOO_MANY_CONNECTIONS, "rate_limited", locale)
        if self.load.busy:
            raise _refuse(BUSY_CONNECTING, "busy", locale)
        try:
            request = protocol.parse(protocol.Auth, auth if auth is not None else {})
            session = await self.rooms.open(request.session)
        except protocol.ProtocolError as exc:
            raise _refuse(text_of(exc), "refused", locale) from None
        except SessionNotFound:
            raise _refuse(NO_SESSION, "unknown_session", locale) from None
        except StoreUnavailable:
            raise _refuse(UNAVAILABLE, "unavailable", locale) from None
        if request.watch:
            try:
                outlet = self._outlet(sid, environ)
            except BaseException:
                await self.rooms.close(session.id)
                raise
            self.addresses[sid] = client_address(environ)
            self._watch(sid, session.id, outlet)
            return
        try:
            participant_id, role, token = await self._admit(sid, request, session)
            current = self.rooms.current(session.id) or session
            if current.participant(participant_id) is None:
                # Removed while the connection was being made: the removal found no socket
                # here to tell, so this one is told now.
                raise Refused(REMOVED, "removed")
        except BaseException as exc:
            await self.rooms.close(session.id)
            raise self._refusal(exc, locale) from None
        self.whom[sid] = (session.id, participant_id)
        self.locales[sid] = locale
        self.addresses[sid] = client_address(environ)
        self.local.setdefault(session.id, set()).add(sid)
        log.debug("joined session %s as %s (%s)", session.id, participant_id, role)
        welcome = {
            "participant_id": participant_id,
            "token": token,
            "role": role,
            "ballots": snapshot.own_ballots(current, participant_id),
            "reasons": snapshot.own_reasons(current, participant_id),
        }
        # The welcome and the snapshot go out with the room's next flush: after this handler
        # has returned and Socket.IO has told the client it is connected.
        self.fanout.add(
            session.id, sid, self._outlet(sid, environ), Message(protocol.WELCOME, welcome)
        )
        me = current.participant(participant_id)
        if me is not None and rules.needs_link(current, me):
            self.ensure_link(session.id, participant_id)  # promoted while away

    def _watch(self, sid: str, session_id: str, outlet: Outlet) -> None:
        """A watch-only socket: in the room's fan-out (its first snapshot goes out with the
        next flush), never in the session."""
        self.watching[sid] = session_id
        self.local.setdefault(session_id, set()).add(sid)
        log.debug("watching session %s", session_id)
        self.fanout.add(session_id, sid, outlet)

    def _outlet(self, sid: str, environ: dict[str, Any]) -> Outlet:
        return self.server.outlet(sid, environ)

    def _refusal(self, exc: BaseException, locale: str) -> BaseException:
        if isinstance(exc, Refused):
            return _refuse(text_of(exc), exc.code, locale)
        if isinstance(exc, rules.RuleError):
            return _refuse(text_of(exc), exc.code, locale)
        if isinstance(exc, protocol.ProtocolError):
            return _refuse(text_of(exc), "refused", locale)
        if isinstance(exc, Busy):
            return _refuse(BUSY_CONNECTING, "busy", locale)
        if isinstance(exc, SessionNotFound):
            return _refuse(GONE, "unknown_session", locale)
        if isinstance(exc, StoreUnavailable):
            return _refuse(UNAVAILABLE, "unavailable", locale)
        return exc

    async def _admit(
        self, sid: str, request: protocol.Auth, session: Session
    ) -> tuple[str, Role, str]:
        """Who is connecting: a returning participant (by token) or a new one (by name)."""
        socket = self.socket_key(sid)
        if session.id not in self.local:
            # Say we hold sockets of this session before storing one, so that if this instance
            # dies, the others mark its people offline.
            await self.store.heartbeat(self.instance, [session.id], ttl=self.instance_ttl)
        token = request.token
        known = None if token is None else rules.find_by_token(session, hash_token(token))
        link: str | None = None
        if request.facilitator_token is not None:
            presented = hash_token(request.facilitator_token)
            try:
                rules.check_link(session, presented)
                link = presented
            except rules.RuleError:
                if known is None:
                    raise Refused(rules.LINK_DEAD, "bad_facilitator_token") from None
                # else: a link that no longer gives control; its holder is still a
                # participant and comes back as one (the page forgets the link).

        # A link names one person: its facilitator. A device that is not them yet becomes
        # them; the session's first link, while nobody holds it, makes whoever opens it the
        # facilitator (a newcomer under the name given, or a participant as themselves).
        if link is not None:
            owner = rules.link_owner(session, link)
            if known is not None and token is not None and (owner is None or owner.id == known.id):
                promote: Role | None = None if owner is not None else "facilitator"
                await self.rooms.apply(session.id, ops.Attach(known.id, socket, promote, link))
                return known.id, "facilitator", token
            return await self._take_over(session, request, socket, link)
        if known is not None and token is not None:
            await self.rooms.apply(session.id, ops.Attach(known.id, socket))
            return known.id, known.role, token

        name = rules.clean_name(request.name)
        token = new_token()
        newcomer = Participant(
            id=new_participant_id(), name=name, role=request.role, token_hash=hash_token(token)
        )
        await self.rooms.apply(session.id, ops.Join(newcomer, socket, self.max_participants))
        return newcomer.id, newcomer.role, token

    async def _take_over(
        self, session: Session, request: protocol.Auth, socket: str, link: str
    ) -> tuple[str, Role, str]:
        """A facilitator link on a new device: it becomes the link's facilitator here (whose
        name it keeps, so the name given is not needed), or, with the session's first link
        nobody holds yet, joins as the facilitator under the name given."""
        try:
            name = rules.clean_name(request.name)
        except rules.RuleError:
            if rules.link_owner(session, link) is None:
                raise
            name = ""  # not needed: the person taken over keeps their name
        token = new_token()
        newcomer = Participant(
            id=new_participant_id(), name=name, role="facilitator", token_hash=hash_token(token)
        )
        await self.rooms.apply(
            session.id, ops.TakeOver(newcomer, socket, self.max_participants, link)
        )
        current = self.rooms.current(session.id) or session
        found = current.participant(newcomer.id) or rules.find_by_token(
            current, newcomer.token_hash
        )
        if found is None:
            raise Refused(MOVED, "moved")  # taken over again meanwhile, by yet another device
        return found.id, found.role, token

    # --- leaving

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        token = CONNECTION.set(sid)
        try:
            await self._disconnect(sid)
        finally:
            CONNECTION.reset(token)

    async def _disconnect(self, sid: str) -> None:
        self.throttle.forget_event(sid)
        self.leaving.discard(sid)
        self.locales.pop(sid, None)
        self.addresses.pop(sid, None)
        whom = self.whom.pop(sid, None)
        session_id = whom[0] if whom is not None else self.watching.pop(sid, None)
        if session_id is None:
            return
        log.debug("left session %s (%s)", session_id, whom[1] if whom else "watching")
        self.fanout.remove(session_id, sid)
        room = self.local.get(session_id, set())
        room.discard(sid)
        if not room:
            self.local.pop(session_id, None)
        try:
            if whom is not None:
                await self.detach(session_id, whom[1], self.socket_key(sid))
        finally:
            await self.rooms.close(session_id)

    async def detach(self, session_id: str, participant_id: str, socket: str) -> None:
        """Mark a socket gone; if storage is down, remember to do it when it is back."""
        try:
            await self.rooms.apply(session_id, ops.Detach(participant_id, socket))
        except SessionNotFound:
            pass
        except StoreUnavailable:
            log.info("storage down: %s in %s goes offline later", participant_id, session_id)
            self.pending_detach.add((session_id, participant_id, socket))

    async def retry_detaches(self) -> None:
        for pending in list(self.pending_detach):
            self.pending_detach.discard(pending)
            await self.detach(*pending)

    async def release_instance(self, instance: str, session_ids: set[str]) -> None:
        """Mark the people connected through a dead instance offline, then forget it."""
        for session_id in session_ids:
            try:
                await self.rooms.apply(session_id, ops.DropSockets(f"{instance}:"))
            except SessionNotFound:
                continue
        await self.store.forget_instance(instance)

    async def reattach_all(self) -> None:
        """Store this instance's sockets again (after others released them by mistake)."""
        for session_id, sids in list(self.local.items()):
            for sid in list(sids):
                whom = self.whom.get(sid)
                if whom is None or sid in self.leaving:
                    continue  # disconnected or being sent away meanwhile; nothing to attach
                try:
                    await self.rooms.apply(session_id, ops.Attach(whom[1], self.socket_key(sid)))
                except rules.RuleError:
                    continue  # removed meanwhile; that socket is being closed

    # --- removals

    def changed(
        self,
        session_id: str,
        before: Session,
        after: Session,
        applied: tuple[ops.Op, ...] | None = None,
    ) -> None:
        """A copy changed (here or on another instance) by the ops `applied` (None: not
        known): the sockets here of anyone who left, was removed or was taken over on another
        device are told and closed, wherever the change was made."""
        sids = self.local.get(session_id)
        if not sids:
            return
        if after.participants is not before.participants and (
            applied is None or any(_may_change_a_role(op) for op in applied)
        ):
            self._roles_changed(session_id, sids, before, after)
        gone = rules.removed_between(before, after)
        moved = rules.moved_between(before, after)
        if not gone and not moved:
            return
        left = {op.participant for op in applied or () if isinstance(op, ops.Leave)}
        for sid in list(sids):
            whom = self.whom.get(sid)
            if whom is None or sid in self.leaving:
                continue
            reason = None
            if whom[1] in gone:
                reason = "left" if whom[1] in left else "removed"
            elif whom[1] in moved:
                person = after.participant(whom[1])
                if person is None or self.socket_key(sid) not in person.sids:
                    reason = "moved"
            if reason is not None:
                self.leaving.add(sid)
                self._spawn(self._send_away(sid, reason))

    # --- roles

    def _roles_changed(
        self, session_id: str, sids: set[str], before: Session, after: Session
    ) -> None:
        """Tell the people here whose role changed (hand-over, promote, demote): a new
        facilitator gets a link of their own first, and its token with the `role` event."""
        for sid in list(sids):
            whom = self.whom.get(sid)
            if whom is None or sid in self.leaving:
                continue
            was, now = before.participant(whom[1]), after.participant(whom[1])
            if was is None or now is None:
                continue
            if rules.needs_link(after, now):
                self.ensure_link(session_id, now.id)
            elif (was.role == "facilitator") != (now.role == "facilitator"):
                self._spawn(self._tell_role(session_id, now.id, {"role": now.role}))

    def ensure_link(self, session_id: str, participant_id: str) -> None:
        """Make a link of their own for a facilitator connected here who has none (once at a
        time per person), then tell them their role and its token."""
        key = (session_id, participant_id)
        if key not in self.linking:
            self.linking.add(key)
            self._spawn(self._give_link(session_id, participant_id))

    async def _give_link(self, session_id: str, participant_id: str) -> None:
        token = new_token()
        link = hash_token(token)
        try:
            try:
                await self.rooms.apply(session_id, ops.GiveLink(participant_id, link))
            except (rules.RuleError, Busy, SessionNotFound, StoreUnavailable, OutcomeUnknown):
                # Tried again when they next connect (an unknown outcome included: if the
                # link was stored after all, they have one and nothing more is needed).
                log.info("no facilitator link made for %s in %s now", participant_id, session_id)
                return
            current = self.rooms.current(session_id)
            person = None if current is None else current.participant(participant_id)
            if person is None:
                return
            message: dict[str, Any] = {"role": person.role}
            if person.link == link:
                message["facilitator_token"] = token
            await self._tell_role(session_id, participant_id, message)
        finally:
            self.linking.discard((session_id, participant_id))

    async def _tell_role(
        self, session_id: str, participant_id: str, message: dict[str, Any]
    ) -> None:
        for sid in list(self.local.get(session_id, ())):
            if self.whom.get(sid) == (session_id, participant_id) and sid not in self.leaving:
                await self.emit(protocol.ROLE, message, to=sid)

    async def _send_away(self, sid: str, reason: str) -> None:
        log.info("closing connection %s: its participant %s", sid, reason)
        try:
            try:
                message = {"reason": reason, "message": self.say(sid, SENT_AWAY[reason])}
                await self.emit(protocol.REMOVED, message, to=sid)
            finally:
                await self.disconnect(sid)
        except Exception:
            log.exception("closing connection %s (%s) failed", sid, reason)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- events

    def _whom(self, sid: str) -> tuple[str, str]:
        whom = self.whom.get(sid)
        if whom is None:
            if sid in self.watching:
                raise rules.RuleError(WATCHING)
            raise rules.RuleError(rules.NOT_HERE)
        if sid in self.leaving:
            raise rules.RuleError(rules.NOT_HERE)
        return whom

    @acknowledged("votes")
    async def on_vote(self, sid: str, data: Any) -> dict[str, Any]:
        ballot = protocol.parse(protocol.Vote, data)
        reason = rules.clean_reason(ballot.reason)
        if self.load.busy:
            raise Busy("vote")
        session_id, participant_id = self._whom(sid)
        vote = ops.Vote(
            participant_id,
            ballot.case,
            ballot.score,
            client=ballot.client,
            seq=ballot.seq,
            round=ballot.round,
            reason=reason,
        )
        return protocol.ok(await self.rooms.apply(session_id, vote))

    @acknowledged("controls")
    async def on_control(self, sid: str, data: Any) -> dict[str, Any]:
        command = protocol.parse(protocol.Control, data)
        if self.load.busy:
            raise Busy("control")
        session_id, participant_id = self._whom(sid)
        return protocol.ok(await self.rooms.apply(session_id, command_op(participant_id, command)))

    @acknowledged("controls")
    async def on_leave(self, sid: str, data: Any = None) -> dict[str, Any]:
        request = protocol.parse(protocol.Leave, {} if data is None else data)
        session_id, participant_id = self._whom(sid)
        op = ops.Leave(participant_id, request.keep_ballots)
        return protocol.ok(await self.rooms.apply(session_id, op))

    @acknowledged()
    async def on_flip(self, sid: str, data: Any) -> dict[str, Any]:
        query = protocol.parse(protocol.FlipQuery, data)
        session_id = self.watching.get(sid) or self._whom(sid)[0]
        if self.load.busy:
            raise Busy("flip")
        session = self.rooms.current(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        if all(s.id != query.stack for s in session.template.stacks):
            raise rules.RuleError(UNKNOWN_STACK)
        answer = await self.advisor.flip_of(session, query.stack)
        if answer is None:
            raise rules.RuleError(NOTHING_REVEALED)
        return {"ok": True, **answer}

    @acknowledged()
    async def on_sync(self, sid: str, data: Any = None) -> Any:
        session_id = self.watching.get(sid) or self._whom(sid)[0]
        if self.load.busy:
            raise Busy("sync")
        if not self.throttle.allow_sync(sid) or not await self.throttle.allow_address(
            "sync", self.addresses.get(sid, "unknown")
        ):
            return protocol.error(self.say(sid, SLOW_DOWN), retry=True)
        # Send the room what is waiting first, so this snapshot and the next delta line up.
        self.fanout.sync_now(session_id)
        session = self.rooms.current(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        # Encoded once per version for everyone who asks (the ack carries it as it is).
        return self.fanout.snapshot(session_id, session)
