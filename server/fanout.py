"""Fan-out: what a room's sockets on this instance are sent, and when.

Changes to a room are gathered for a short window (`window`, 100 ms by default) and go out as
one `delta`; the first change after a quiet spell goes out at once. A delta costs a frame per
person, so a large room's window grows with it: its deltas cost at most `frames_per_second`
frames a second (5,000 by default: past 500 people, a room of 1,000 hears every 200 ms).

A delta is built once per room (server.snapshot.View), encoded once and written to every
socket of the room (server.sio). Newcomers get the snapshot of that same moment instead, so
many people joining at once cost one snapshot encoding per window, not one per person. A
socket that reads too slowly is skipped until it has caught up, then sent a fresh snapshot: it
never holds up the room, and its backlog stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from server import protocol, snapshot
from server.metrics import Metrics
from server.models import Session
from server.sio import Message, Outlet

log = logging.getLogger(__name__)

# While a socket of a room is behind, how often to look whether it has caught up.
BEHIND_CHECK = 0.5
# How long a reveal's delta may wait for its advice (worked out off the loop, usually in a few
# ms): past it, the delta goes without and the advice follows in a delta of its own.
ADVICE_HOLD = 0.15
# The longest a large room's changes gather (see `Fanout.window_of`).
MAX_WINDOW = 1.0

_encode = msgspec.json.Encoder().encode


@dataclass
class _Room:
    sockets: dict[str, Outlet] = field(default_factory=dict)
    # Sockets waiting for a snapshot: newcomers, and those that fell behind.
    unsynced: set[str] = field(default_factory=set)
    # What newcomers are told before their first snapshot (who they are).
    greetings: dict[str, Message] = field(default_factory=dict)
    behind: set[str] = field(default_factory=set)
    view: snapshot.View | None = None
    marks: snapshot.Marks = field(default_factory=snapshot.Marks)
    timer: asyncio.TimerHandle | None = None
    # While someone is behind: when to look again whether they caught up (apart from the
    # flushes, which a slow reader must never delay).
    check: asyncio.TimerHandle | None = None
    last_flush: float = float("-inf")
    # When the first change the next delta covers reached the copy (None: nothing waiting).
    first_change: float | None = None
    # The snapshot of the room at one version, encoded once for every newcomer and `sync`.
    state: tuple[int, msgspec.Raw] | None = None
    # Since when the room's changes wait for their advice (None: they do not).
    held_since: float | None = None


class Fanout:
    def __init__(
        self,
        current: Callable[[str], Session | None],
        *,
        window: float = 0.1,
        frames_per_second: float = 5000,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
        advisor: snapshot.Advisor | None = None,
    ) -> None:
        """`current(session_id)`: this instance's copy of the session, as it is now.
        `advisor`: where the rooms' advice is worked out (server.advice; call `advised`
        when it has some); None: each delta works it out on the spot."""
        self.current = current
        self.advisor = advisor
        self.window = window
        self.frames_per_second = frames_per_second
        self.clock = clock
        self.rooms: dict[str, _Room] = {}
        # Counters for the benchmark and /metrics (plain integers: the send loop is hot).
        self.deltas = 0
        self.messages = 0
        self.snapshots = 0
        self.resyncs = 0
        self.snapshots_built = 0
        metrics = metrics or Metrics()
        metrics.deltas.set_function(lambda: self.deltas)
        metrics.messages_sent.set_function(lambda: self.messages)
        metrics.snapshots_sent.set_function(lambda: self.snapshots)
        metrics.resyncs.set_function(lambda: self.resyncs)
        metrics.snapshots_built.set_function(lambda: self.snapshots_built)
        self._change_to_delta = metrics.change_to_delta

    def add(
        self, session_id: str, sid: str, outlet: Outlet, greeting: Message | None = None
    ) -> None:
        """A socket joined the room: with the next flush it gets `greeting` (if any), then a
        snapshot."""
        room = self.rooms.setdefault(session_id, _Room())
        room.sockets[sid] = outlet
        room.unsynced.add(sid)
        if greeting is not None:
            room.greetings[sid] = greeting
        self._schedule(session_id, room)

    def remove(self, session_id: str, sid: str) -> None:
        room = self.rooms.get(session_id)
        if room is None:
            return
        room.sockets.pop(sid, None)
        room.unsynced.discard(sid)
        room.greetings.pop(sid, None)
        room.behind.discard(sid)
        if not room.sockets:
            for timer in (room.timer, room.check):
                if timer is not None:
                    timer.cancel()
            del self.rooms[session_id]

    def changed(self, session_id: str, before: Session, after: Session) -> None:
        room = self.rooms.get(session_id)
        if room is None:
            return
        room.marks.add(snapshot.marks(before, after))
        if room.first_change is None:
            room.first_change = self.clock()
        self._schedule(session_id, room)

    def advised(self, session_id: str) -> None:
        """The advice for a room is known: the next delta brings it (at once, if the room's
        changes are waiting for it)."""
        room = self.rooms.get(session_id)
        if room is None:
            return
        room.marks.advice = True
        if room.held_since is not None:
            if room.timer is not None:
                room.timer.cancel()
                room.timer = None
            self._flush_safely(session_id)
            return
        self._schedule(session_id, room)

    def _schedule(self, session_id: str, room: _Room) -> None:
        if room.timer is not None:
            return
        delay = max(0.0, room.last_flush + self.window_of(room) - self.clock())
        loop = asyncio.get_running_loop()
        room.timer = loop.call_later(delay, self._flush_safely, session_id)

    def window_of(self, room: _Room) -> float:
        """How long the room's changes gather before they go out: `window`, or longer (up to
        a second) in a room whose deltas would otherwise cost more than `frames_per_second`."""
        return max(self.window, min(len(room.sockets) / self.frames_per_second, MAX_WINDOW))

    def _check_later(self, session_id: str, room: _Room) -> None:
        if room.check is not None:
            return

        def check() -> None:
            room.check = None
            if self.rooms.get(session_id) is not room:
                return
            session = self.current(session_id)
            if session is not None and room.view is not None:
                if room.view.version == session.version:
                    self._send_snapshots(room, session)
                else:
                    self._flush_safely(session_id)
            if room.behind:
                self._check_later(session_id, room)

        room.check = asyncio.get_running_loop().call_later(BEHIND_CHECK, check)

    def _flush_safely(self, session_id: str) -> None:
        try:
            self.flush(session_id)
        except Exception:
            log.exception("sending the changes of %s failed", session_id)

    def flush(self, session_id: str, *, force: bool = False) -> None:
        """Send what changed since the last flush (a delta) and snapshots to those who need
        one. A change that needs new advice waits for it up to ADVICE_HOLD (unless `force`),
        so a reveal and its advice usually reach the room together."""
        room = self.rooms.get(session_id)
        if room is None:
            return
        room.timer = None
        room.last_flush = self.clock()
        session = self.current(session_id)
        if session is None:
            return
        if not force and room.view is not None and self._hold_for_advice(session_id, room, session):
            return
        room.held_since = None
        first_change, room.first_change = room.first_change, None
        if room.view is None:
            room.view = snapshot.View(session, self.advisor)
            room.unsynced |= room.sockets.keys()
            room.marks = snapshot.Marks()
        elif room.marks or session.version != room.view.version:
            delta = room.view.delta(session, room.marks)
            room.marks = snapshot.Marks()
            # A delta that changes nothing the clients see (advice that came out as it
            # was) is not sent.
            if delta.keys() != {"base", "version"} or delta["base"] != delta["version"]:
                self._send_delta(room, delta)
            if first_change is not None:
                self._change_to_delta.observe(self.clock() - first_change)
        self._send_snapshots(room, session)
        if room.behind:
            self._check_later(session_id, room)

    def _hold_for_advice(self, session_id: str, room: _Room, session: Session) -> bool:
        """Whether to wait for the advice before sending: `advised` flushes the room when it
        comes, and the timer set here sends what there is once ADVICE_HOLD is over."""
        assert room.view is not None
        if not room.view.advice_pending(session, room.marks):
            return False
        now = self.clock()
        if room.held_since is None:
            room.held_since = now
        left = room.held_since + ADVICE_HOLD - now
        if left <= 0:
            return False
        room.timer = asyncio.get_running_loop().call_later(left, self._flush_safely, session_id)
        return True

    def _send_delta(self, room: _Room, delta: dict[str, object]) -> None:
        message = Message(protocol.DELTA, delta)
        self.deltas += 1
        behind = room.behind
        # Those waiting for a snapshot get that instead (usually nobody: no lookups then).
        skipped = room.unsynced | behind if room.unsynced or behind else ()
        sent = 0
        for sid, outlet in room.sockets.items():
            if sid in skipped:
                continue
            if outlet.send(message):
                sent += 1
            else:
                behind.add(sid)
        self.messages += sent

    def _send_snapshots(self, room: _Room, session: Session) -> None:
        for sid in list(room.behind):
            if room.sockets[sid].caught_up():
                room.behind.discard(sid)
                room.unsynced.add(sid)
                self.resyncs += 1
        if not room.unsynced:
            return
        assert room.view is not None and room.view.version == session.version
        message = Message(protocol.STATE, self._state(room, session))
        for sid in room.unsynced:
            outlet = room.sockets[sid]
            greeting = room.greetings.pop(sid, None)
            if greeting is not None:
                outlet.send(greeting)
            if outlet.send(message):
                self.messages += 1
                self.snapshots += 1
            else:
                room.behind.add(sid)
        room.unsynced.clear()

    def _state(self, room: _Room | None, session: Session) -> msgspec.Raw:
        if room is not None and room.state is not None and room.state[0] == session.version:
            return room.state[1]
        # The room's clients hold the advice its view holds (the newest may be on its way).
        view = room.view if room is not None else None
        advice = (
            view.recommendation
            if view is not None and view.version == session.version
            else snapshot.recommendation(session)
        )
        encoded = msgspec.Raw(_encode(snapshot.state(session, advice)))
        self.snapshots_built += 1
        if room is not None:
            room.state = (session.version, encoded)
        return encoded

    def snapshot(self, session_id: str, session: Session) -> msgspec.Raw:
        """`session`'s snapshot, encoded (once per version, however many ask)."""
        return self._state(self.rooms.get(session_id), session)

    def sync_now(self, session_id: str) -> int | None:
        """Flush the room at once (a client asked for a snapshot): the snapshot it gets and the
        deltas that follow then start from the same version. Returns that version."""
        room = self.rooms.get(session_id)
        if room is None:
            return None
        if room.timer is not None:
            room.timer.cancel()
            room.timer = None
        self.flush(session_id, force=True)
        return room.view.version if room.view is not None else None
