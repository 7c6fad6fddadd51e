"""This instance's copies of the sessions it serves, and how changes to them are stored.

Every session with a socket on this instance has a copy here, kept current: by this instance's
own changes, and by the records other instances publish (server.ops), applied in version order.
A change is an op: it is checked by the rules against the copy, stored with a compare-and-set
on the version, and only then acknowledged. Ops arriving for the same room while a write is on
its way go out together in the next write (group commit), so a busy room costs one store round
trip per batch, not per vote.

What an acknowledgement means is kept strict: a rule's refusal, a store that is known to be
down, or a room too busy to take more refuse before anything is written (`{"ok": false}`: not
counted). If the store stops answering in the middle of a write, the op's fate is found out by
reading the session again and applying the op once more: an op that was stored changes nothing
the second time (server.ops), so it is acknowledged; one that was not is stored now. Only if
the store cannot be read at all is the fate left unknown (OutcomeUnknown), and then the sender
gets no answer, never a wrong one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from server import ops
from server.metrics import Metrics
from server.models import Session
from server.ops import Op, Record
from server.rules import RuleError
from server.store import (
    Conflict,
    OutcomeUnknown,
    SessionNotFound,
    Store,
    StoreUnavailable,
    Unconfirmed,
)

log = logging.getLogger(__name__)

# Ops waiting for one room beyond which new ones are turned away ("busy", not counted).
MAX_PENDING = 5000
# Ops stored in one write at most.
MAX_BATCH = 500
# How long to wait for the feed to bring a missing record before reading the whole session.
CATCH_UP = 0.2
# How long an op may wait for a store that stopped answering before its fate is left unknown.
RESOLVE_DEADLINE = 5.0
# How long a write waits to learn whether storage that was down is back.
PROBE_TIMEOUT = 0.5

# Told of each change to a copy: (session id, before, after, the ops that made it, when known;
# None when the copy was read again whole).
ChangeListener = Callable[[str, Session, Session, tuple[Op, ...] | None], None]
# Told of this instance's copy of a session whenever it is loaded or changes (None: dropped).
CopyListener = Callable[[str, Session | None], None]


class Busy(Exception):
    """Too much is waiting to be stored for this room; nothing was done."""


@dataclass(eq=False)
class _Pending:
    op: Op
    done: asyncio.Future[int]
    # Sent in a write whose outcome is not known: if it cannot be settled, say nothing.
    uncertain: bool = False


@dataclass(eq=False)
class _Room:
    session: Session | None = None
    users: int = 0
    loaded: asyncio.Future[None] | None = None
    pending: deque[_Pending] = field(default_factory=deque)
    writing: bool = False
    # The version a write on its way starts from: its own record may come back before its
    # answer does, and must not be applied twice.
    writing_base: int | None = None
    # The copy may be behind the store (a lost record, or a write of unknown outcome).
    stale: bool = False
    # Records that arrived ahead of the copy, by the version they start from.
    early: dict[int, Record] = field(default_factory=dict)
    advanced: asyncio.Event = field(default_factory=asyncio.Event)


class Rooms:
    def __init__(
        self,
        store: Store,
        on_change: ChangeListener,
        *,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        on_copy: CopyListener | None = None,
    ) -> None:
        self.store = store
        self.on_change = on_change
        self.on_copy = on_copy or (lambda session_id, session: None)
        self.clock = clock
        self._rooms: dict[str, _Room] = {}
        metrics = metrics or Metrics()
        metrics.sessions_held.set_function(
            lambda: sum(1 for r in self._rooms.values() if r.session is not None)
        )
        self._feed_records = metrics.feed_records
        self._feed_gaps = metrics.feed_gaps
        self._feed_lag = metrics.feed_lag
        self._background: set[asyncio.Task[None]] = set()
        # Set while storage is known to be down (server.upkeep): a write first asks whether it
        # is back (one quick ping, shared by every write waiting), and is refused before
        # anything is sent if it is not, so the refusal is certain.
        self.storage_down = False
        self._probe: asyncio.Future[bool] | None = None
        store.on_record(self._on_record)

    # --- copies

    def current(self, session_id: str) -> Session | None:
        room = self._rooms.get(session_id)
        return None if room is None else room.session

    def held(self) -> list[str]:
        """Sessions this instance holds a copy of."""
        return [i for i, r in self._rooms.items() if r.session is not None]

    async def open(self, session_id: str) -> Session:
        """Start using a session here (a socket joined); raises SessionNotFound. A copy that
        may be behind is brought up to date in the background, or by the next write."""
        room = self._rooms.setdefault(session_id, _Room())
        room.users += 1
        try:
            if room.session is None:
                await self._load(session_id, room)
        except BaseException:
            await self.close(session_id)
            raise
        assert room.session is not None
        return room.session

    async def close(self, session_id: str) -> None:
        """Stop using a session here; its copy goes when nobody uses it."""
        room = self._rooms.get(session_id)
        if room is None:
            return
        room.users -= 1
        if room.users <= 0 and not room.pending and not room.writing:
            del self._rooms[session_id]
            self.on_copy(session_id, None)
            await self.store.unfollow(session_id)

    @contextlib.asynccontextmanager
    async def _using(self, session_id: str) -> AsyncIterator[_Room]:
        await self.open(session_id)
        try:
            yield self._rooms[session_id]
        finally:
            await self.close(session_id)

    async def _load(self, session_id: str, room: _Room) -> None:
        if room.loaded is not None:
            await asyncio.shield(room.loaded)
            return
        room.loaded = asyncio.get_running_loop().create_future()
        try:
            # Follow first: a change stored after the read below cannot be missed.
            await self.store.follow(session_id)
            fresh = await self.store.get(session_id)
            if fresh is None:
                raise SessionNotFound(session_id)
            self._replace(session_id, room, fresh)
            room.loaded.set_result(None)
        except BaseException as exc:
            room.loaded.set_exception(exc)
            room.loaded.exception()  # retrieved: later waiters get it through shield
            raise
        finally:
            room.loaded = None

    def _replace(self, session_id: str, room: _Room, fresh: Session) -> None:
        before = room.session
        room.session = fresh
        room.stale = False
        room.early = {b: r for b, r in room.early.items() if b >= fresh.version}
        self._advanced(room)
        self.on_copy(session_id, fresh)
        if before is not None and before is not fresh:
            self.on_change(session_id, before, fresh, None)
        self._apply_early(session_id, room)

    def _advanced(self, room: _Room) -> None:
        room.advanced.set()
        room.advanced = asyncio.Event()

    # --- records from other instances

    def _on_record(self, record: Record | None) -> None:
        if record is None:
            self._feed_gaps.inc()
            for session_id, held in self._rooms.items():
                held.stale = True
                self._reload_soon(session_id)
            return
        room = self._rooms.get(record.session)
        if room is None:
            return
        if record.base != room.writing_base and (
            room.session is None or record.base >= room.session.version
        ):
            # Not this instance's own write (that one starts from writing_base, or is in the
            # copy already): a change heard from another instance.
            self._feed_lag.observe(max(0.0, self.clock() - record.now))
        if room.session is None or room.stale or record.base == room.writing_base:
            room.early[record.base] = record
            return
        version = room.session.version
        if record.base + len(record.ops) <= version and record.ops:
            return  # ours, or already seen
        if record.base > version:
            room.early[record.base] = record
            self._check_gap_later(record.session)
            return
        if record.base < version or not record.ops:
            # Overlapping what we have, or a change that is not an op: read it all again.
            if record.ops:
                self._feed_gaps.inc()
            room.stale = True
            self._reload_soon(record.session)
            return
        self._replay(record.session, room, record)
        self._apply_early(record.session, room)

    def _replay(self, session_id: str, room: _Room, record: Record) -> None:
        before = room.session
        assert before is not None
        try:
            after = ops.replay(before, record.ops, record.now)
        except (RuleError, ValueError) as exc:
            log.warning("record for %s does not apply here (%s); reading it again", session_id, exc)
            self._feed_gaps.inc()
            room.stale = True
            self._reload_soon(session_id)
            return
        self._feed_records.inc()
        room.session = after
        self._advanced(room)
        self.on_copy(session_id, after)
        self.on_change(session_id, before, after, record.ops)

    def _apply_early(self, session_id: str, room: _Room) -> None:
        while room.session is not None and not room.stale:
            version = room.session.version
            for base in [b for b in room.early if b < version]:
                del room.early[base]  # ours, or covered by a fresh read
            record = room.early.pop(version, None)
            if record is None:
                return
            self._replay(session_id, room, record)

    def _check_gap_later(self, session_id: str) -> None:
        async def check() -> None:
            await asyncio.sleep(CATCH_UP)
            room = self._rooms.get(session_id)
            if room is None or not room.early or room.session is None:
                return
            if min(room.early) > room.session.version:
                log.info("a change to %s went missing; reading it again", session_id)
                self._feed_gaps.inc()
                room.stale = True
                await self._reload(session_id)

        self._spawn(check())

    def _reload_soon(self, session_id: str) -> None:
        self._spawn(self._reload(session_id))

    async def _reload(self, session_id: str) -> None:
        room = self._rooms.get(session_id)
        if room is None or room.writing or not room.stale:
            return  # the writer reads it again before its next write
        try:
            await self._load(session_id, room)
        except (StoreUnavailable, SessionNotFound) as exc:
            log.info("could not read %s again yet: %s", session_id, exc)
        except Exception:
            # Left stale: the next write or check (server.upkeep) reads it again.
            log.exception("reading %s again failed", session_id)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def verify(self) -> None:
        """Compare every copy with the store's version; read again any that is behind (a
        record lost while the feed was down, in a room that has been quiet since)."""
        held = self.held()
        if not held:
            return
        stored = await self.store.versions(held)
        for session_id in held:
            room = self._rooms.get(session_id)
            if room is None or room.session is None or room.writing:
                continue
            if stored.get(session_id, room.session.version) > room.session.version:
                self._feed_gaps.inc()
                room.stale = True
                await self._reload(session_id)

    # --- changes

    async def apply(self, session_id: str, op: Op) -> int:
        """Check `op` by the rules, store it, and return the version it produced (or the
        current one, if it changed nothing). Raises RuleError, Busy, SessionNotFound,
        StoreUnavailable (nothing stored) or OutcomeUnknown (see the module docstring)."""
        if self.storage_down and not await self._storage_back():
            raise StoreUnavailable("storage is down")
        room = self._rooms.get(session_id)
        if room is not None and room.users > 0 and room.session is not None:
            return await self._enqueue(session_id, room, op)  # in use here already
        async with self._using(session_id) as room:
            return await self._enqueue(session_id, room, op)

    async def _enqueue(self, session_id: str, room: _Room, op: Op) -> int:
        if len(room.pending) >= MAX_PENDING:
            raise Busy(session_id)
        pending = _Pending(op, asyncio.get_running_loop().create_future())
        room.pending.append(pending)
        if not room.writing:
            room.writing = True
            try:
                await self._write_batch(session_id, room)
            finally:
                if room.pending:
                    self._spawn(self._write_all(session_id, room))
                else:
                    room.writing = False
        return await pending.done

    async def _storage_back(self) -> bool:
        probe = self._probe
        if probe is None:
            probe = self._probe = asyncio.ensure_future(self._ping())
        try:
            return await asyncio.shield(probe)
        finally:
            if probe.done() and self._probe is probe:
                self._probe = None

    async def _ping(self) -> bool:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await self.store.ping()
        except (StoreUnavailable, TimeoutError):
            return False
        self.storage_down = False
        return True

    async def _write_all(self, session_id: str, room: _Room) -> None:
        try:
            while room.pending:
                await self._write_batch(session_id, room)
        finally:
            room.writing = False
            if room.users <= 0 and session_id in self._rooms:
                del self._rooms[session_id]
                self.on_copy(session_id, None)
                await self.store.unfollow(session_id)

    async def _write_batch(self, session_id: str, room: _Room) -> None:
        batch = [room.pending.popleft() for _ in range(min(len(room.pending), MAX_BATCH))]
        try:
            await self._write(session_id, room, batch)
        except Exception as exc:  # every op of the batch gets an answer, whatever happened
            for pending in batch:
                if not pending.done.done():
                    failure = OutcomeUnknown(str(exc)) if pending.uncertain else exc
                    pending.done.set_exception(failure)

    async def _write(self, session_id: str, room: _Room, batch: list[_Pending]) -> None:
        deadline = asyncio.get_running_loop().time() + RESOLVE_DEADLINE
        checked = False
        while batch:
            if room.stale or room.session is None:
                await self._settle(session_id, room, deadline)
            before = room.session
            assert before is not None
            now = self.clock()
            session, stored = before, []
            # Answered without a write: refused by the rules, or already so.
            answered: list[tuple[_Pending, int | RuleError]] = []
            for pending in batch:
                try:
                    after = ops.apply(session, pending.op, now)
                except RuleError as exc:
                    answered.append((pending, exc))
                    continue
                if after is session:
                    answered.append((pending, session.version))
                    continue
                stored.append((pending, after.version))
                session = after
            if answered and not checked:
                # Judged on this copy, which may not have heard yet of a change another
                # instance stored (the case it opened, say): make sure, once, before answering.
                checked = True
                current = await self._stored_version(session_id)
                if current is not None and current > before.version:
                    await self._catch_up(session_id, room, current)
                    continue
            for pending, outcome in answered:
                if isinstance(outcome, RuleError):
                    pending.done.set_exception(outcome)
                else:
                    pending.done.set_result(outcome)
            if not stored:
                return
            batch = [p for p, _ in stored]
            room.writing_base = before.version
            unconfirmed: Unconfirmed | None = None
            try:
                await self.store.commit(before, session, [p.op for p in batch])
            except Unconfirmed as exc:
                # Stored, so the copy moves on; but not acknowledged (see Unconfirmed).
                log.warning("%s: %s; not acknowledged", session_id, exc)
                unconfirmed = exc
            except Conflict as conflict:
                room.writing_base = None
                self._apply_early(session_id, room)
                await self._catch_up(session_id, room, conflict.current)
                continue
            except (SessionNotFound, Busy):
                raise  # nothing was stored
            except StoreUnavailable as exc:
                if not isinstance(exc, OutcomeUnknown):
                    raise  # refused before anything was sent
                log.warning("storage stopped answering while writing %s; checking", session_id)
                self._uncertain(room, batch)
                continue
            except Exception:
                # Whatever went wrong, the write may have reached the store: find out as for a
                # store that stopped answering, never answer "not counted" for what may be.
                log.exception("writing %s failed unexpectedly; checking", session_id)
                self._uncertain(room, batch)
                continue
            finally:
                room.writing_base = None
            room.session = session
            self._advanced(room)
            self.on_copy(session_id, session)
            self.on_change(session_id, before, session, tuple(p.op for p, _ in stored))
            for pending, version in stored:
                if unconfirmed is None:
                    pending.done.set_result(version)
                else:
                    pending.done.set_exception(Unconfirmed(str(unconfirmed)))
            self._apply_early(session_id, room)
            return

    async def _stored_version(self, session_id: str) -> int | None:
        """The stored version, or None if storage cannot say right now."""
        try:
            return await self.store.version(session_id)
        except StoreUnavailable:
            return None

    def _uncertain(self, room: _Room, batch: list[_Pending]) -> None:
        room.stale = True
        for pending in batch:
            pending.uncertain = True

    async def _settle(self, session_id: str, room: _Room, deadline: float) -> None:
        """Read the session again, retrying a store that stopped answering until `deadline`."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._load(session_id, room)
                return
            except StoreUnavailable:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.25)

    async def _catch_up(self, session_id: str, room: _Room, version: int) -> None:
        """Another instance stored first: wait for its record, or read the session again."""
        assert room.session is not None
        try:
            async with asyncio.timeout(CATCH_UP):
                while room.session.version < version and not room.stale:
                    await room.advanced.wait()
        except TimeoutError:
            room.stale = True
        if room.session.version < version:
            room.stale = True
