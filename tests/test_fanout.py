"""The fan-out (server.fanout, server.sio): changes to a room go out coalesced, encoded
once, to every socket; newcomers get a snapshot; a reader that stops reading is skipped, with
a bounded backlog, and gets a fresh snapshot once it catches up."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import deque
from typing import Any

import pytest

from server import ops, protocol
from server.fanout import Fanout, _Room
from server.models import Participant, Session
from server.sio.connection import FastOutlet as Outlet
from server.sio.outlet import BACKLOG_LIMIT, BACKLOG_RESUME, BEHIND, WRITTEN
from server.sio.wire import Message, websocket_frame
from tests.factories import new_session
from tests.live import apply_delta


class FakeQueue:
    def __init__(self) -> None:
        self.items: deque[Any] = deque()

    def empty(self) -> bool:
        return not self.items

    def qsize(self) -> int:
        return len(self.items)

    def put_nowait(self, item: Any) -> None:
        self.items.append(item)


class FakeSocket:
    closed = False
    closing = False

    def __init__(self) -> None:
        self.queue = FakeQueue()


class FakeConnection:
    """A connection's framing door: records frames; `backlog` is what the network has not
    taken yet (a test raises it to play a reader that stopped reading)."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.waiting = 0

    def open_for_frames(self) -> bool:
        return True

    def write_frame(self, frame: bytes) -> None:
        self.frames.append(frame)
        self.waiting += len(frame)

    def backlog(self) -> int:
        return self.waiting

    def offer(self, frame: bytes, limit: int) -> int:
        if self.backlog() > limit:
            return BEHIND
        self.write_frame(frame)
        return WRITTEN

    def events(self) -> list[tuple[str, Any]]:
        """The Socket.IO events in the frames, decoded."""
        found = []
        for frame in self.frames:
            body = frame[frame.index(b"42[") + 2 :]
            name, data = json.loads(body)
            found.append((name, data))
        return found


def frame_of(message: Message) -> bytes:
    return message.frame


class Room:
    def __init__(self) -> None:
        self.session = ops.apply(new_session(), join_op("fay", "facilitator"), 1.0)

    def change(self, op: ops.Op) -> tuple[Session, Session]:
        before = self.session
        self.session = ops.apply(before, op, 2.0)
        return before, self.session


def join_op(pid: str, role: str = "voter") -> ops.Join:
    who = Participant(id=pid, name=pid.title(), role=role, token_hash=pid)  # type: ignore[arg-type]
    return ops.Join(who, f"i:{pid}", 1000)


def connect(fanout: Fanout, name: str) -> FakeConnection:
    connection = FakeConnection()
    greeting = Message(protocol.WELCOME, {"participant_id": name})
    fanout.add("s1", name, Outlet(FakeSocket(), connection), greeting)  # type: ignore[arg-type]
    return connection


async def settle(fanout: Fanout) -> None:
    await asyncio.sleep(fanout.window * 1.5)


async def test_newcomers_get_their_welcome_then_one_shared_snapshot() -> None:
    room = Room()
    fanout = Fanout(lambda _: room.session, window=0.02)
    a, b = connect(fanout, "a"), connect(fanout, "b")
    await settle(fanout)
    assert [name for name, _ in a.events()] == ["welcome", "state"]
    assert a.events()[1] == b.events()[1]
    assert a.events()[1][1]["version"] == room.session.version


async def test_changes_within_the_window_go_out_as_one_delta_encoded_once() -> None:
    room = Room()
    fanout = Fanout(lambda _: room.session, window=0.05)
    sockets = [connect(fanout, f"p{n}") for n in range(5)]
    await settle(fanout)
    for n in range(3):
        fanout.changed("s1", *room.change(join_op(f"new{n}")))
    await settle(fanout)
    deltas = [frames for frames in (s.frames[2:] for s in sockets)]
    # One delta each, byte for byte the same frame (framed once for everyone).
    assert all(len(d) == 1 for d in deltas) and len({d[0] for d in deltas}) == 1
    ((name, delta),) = sockets[0].events()[2:]
    assert name == "delta" and len(delta["participants"]) == 3
    state = sockets[0].events()[1][1]
    assert apply_delta(state, delta) is not None


async def test_a_reader_that_stops_reading_is_skipped_then_sent_a_fresh_snapshot() -> None:
    room = Room()
    fanout = Fanout(lambda _: room.session, window=0.01)
    quick, stuck = connect(fanout, "quick"), connect(fanout, "stuck")
    await settle(fanout)
    stuck.waiting = BACKLOG_LIMIT + 1  # the network stopped taking its bytes
    for n in range(20):
        fanout.changed("s1", *room.change(join_op(f"v{n}")))
        await settle(fanout)
    # The room went on: the quick one saw every change; the stuck one got nothing more.
    assert len(quick.events()) > 2 and quick.events()[-1][1]["version"] == room.session.version
    assert len(stuck.frames) == 2
    # It catches up: the next check sends it a snapshot of now, not the backlog.
    stuck.waiting = BACKLOG_RESUME - 1
    await asyncio.sleep(0.6)
    name, state = stuck.events()[-1]
    assert name == "state" and state["version"] == room.session.version
    assert len(stuck.frames) == 3


async def test_a_reader_without_the_framing_door_is_bounded_by_its_queue() -> None:
    room = Room()
    fanout = Fanout(lambda _: room.session, window=0.01)
    socket = FakeSocket()
    fanout.add("s1", "q", Outlet(socket, None), Message(protocol.WELCOME, {}))
    for n in range(200):
        fanout.changed("s1", *room.change(join_op(f"v{n}")))
        await settle(fanout)
    # Nobody drains this queue: it stops growing at the limit instead of holding everything.
    assert socket.queue.qsize() <= 66


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_frames_have_the_length_the_websocket_protocol_expects(size: int) -> None:
    frame = websocket_frame(b"x" * size)
    assert frame[0] == 0x81
    if size < 126:
        assert frame[1] == size and len(frame) == 2 + size
    elif size < 65536:
        assert frame[1] == 126 and int.from_bytes(frame[2:4]) == size
    else:
        assert frame[1] == 127 and int.from_bytes(frame[2:10]) == size


async def test_a_large_rooms_changes_gather_longer_so_its_frames_per_second_stay_bounded() -> None:
    room = Room()
    # 50 people at 1,000 frames a second: a delta at most every 50 ms (the window alone: 10).
    fanout = Fanout(lambda _: room.session, window=0.01, frames_per_second=1000)
    sockets = [connect(fanout, f"p{n}") for n in range(50)]
    await settle(fanout)
    loop = asyncio.get_running_loop()
    sent: list[float] = []
    first = sockets[0]
    write = first.write_frame

    def timed(frame: bytes) -> None:
        sent.append(loop.time())
        write(frame)

    first.write_frame = timed  # type: ignore[method-assign]
    start = loop.time()
    n = 0
    while loop.time() - start < 0.5:  # a change every few ms for half a second
        fanout.changed("s1", *room.change(join_op(f"v{n}")))
        n += 1
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.1)
    events = first.events()
    assert events[-1][1]["version"] == room.session.version  # nothing lost on the way
    # However fast or slow the machine, deltas never came closer than the room's window
    # (less a timer tick), and several changes went out together.
    assert len(sent) >= 2
    assert min(b - a for a, b in itertools.pairwise(sent)) >= 0.045
    assert len(sent) < n


def test_the_window_grows_with_the_room_up_to_a_second() -> None:
    fanout = Fanout(lambda _: None, window=0.1, frames_per_second=5000)
    room = _Room()
    for people, window in ((10, 0.1), (500, 0.1), (1000, 0.2), (1500, 0.3), (100_000, 1.0)):
        room.sockets = {str(n): None for n in range(people)}  # type: ignore[misc]
        assert fanout.window_of(room) == pytest.approx(window)
