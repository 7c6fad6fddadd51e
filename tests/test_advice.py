"""The engine's advice off the event loop (server.advice): a reveal goes out at once and its
advice follows in a delta of its own; a room that moved on is worked out for its newest inputs
only; the room's advice (the runner-up's flip) is the record's (every flip) but for the flips
it asks for, and asking gives the record's answer."""

from __future__ import annotations

import asyncio
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from server import engine, ops, snapshot
from server.advice import Advisor
from server.decks import builtin_templates
from server.fanout import ADVICE_HOLD, Fanout
from tests.live import apply_delta
from tests.test_fanout import FakeConnection, Room, connect, join_op, settle

CASES = [c.id for c in builtin_templates()["django"].cases]


def scored_room(scores: dict[str, list[int]]) -> Room:
    """A room of Fay and three voters who scored these cases (open, not yet revealed)."""
    room = Room()
    for pid in ("ann", "bob", "cai"):
        room.change(join_op(pid))
    people = ("fay", "ann", "bob", "cai")
    for case, per_person in scores.items():
        room.change(ops.Control("fay", "open", case))
        for pid, score in zip(people, per_person, strict=True):
            room.change(ops.Vote(pid, case, score))
    return room


async def watched_room() -> tuple[Room, Advisor, Fanout, FakeConnection]:
    """A scored room with its advisor and fan-out, and one socket that has its snapshot."""
    room = scored_room({"realtime": [4, 4, 3, 1], "performance": [0, 4, 0, 4]})
    advisor = Advisor(lambda session_id: fanout.advised(session_id))
    fanout = Fanout(lambda _: room.session, window=0.01, advisor=advisor)
    watcher = connect(fanout, "a")
    await settle(fanout)
    return room, advisor, fanout, watcher


async def test_a_reveal_and_its_advice_reach_the_room_together() -> None:
    room, advisor, fanout, watcher = await watched_room()
    fanout.changed("s1", *room.change(ops.Control("fay", "reveal_all")))
    await asyncio.sleep(0.1)
    # The delta waited the few milliseconds the advice took: one delta holds both.
    (_, state), (_, revealed) = watcher.events()[1:]
    assert {c["status"] for c in revealed["cases"]} == {"revealed"}
    assert revealed["recommendation"] == snapshot.recommendation(room.session)
    assert apply_delta(state, revealed) == snapshot.state(room.session)
    advisor.close()


async def test_a_reveal_goes_out_without_advice_that_takes_long_and_the_advice_follows() -> None:
    room, advisor, fanout, watcher = await watched_room()
    # The worker is busy (a wave of reveals elsewhere) for longer than a delta may wait.
    release = threading.Event()
    blocker = asyncio.get_running_loop().run_in_executor(advisor._pool, release.wait, 5)
    fanout.changed("s1", *room.change(ops.Control("fay", "reveal_all")))
    await asyncio.sleep(ADVICE_HOLD + 0.1)
    (_, state), (_, revealed) = watcher.events()[1:3]
    # The cases went out once the hold was over; the advice is still being worked out.
    assert {c["status"] for c in revealed["cases"]} == {"revealed"}
    assert "recommendation" not in revealed
    release.set()
    await blocker
    await asyncio.sleep(0.1)
    (_, advice) = watcher.events()[3]
    # The advice comes in a delta of its own, at the same version.
    assert advice["base"] == advice["version"] == room.session.version
    assert set(advice) == {"base", "version", "recommendation"}
    seen = apply_delta(state, revealed)
    assert seen is not None
    assert apply_delta(seen, advice) == snapshot.state(room.session)
    # Someone joining now gets it in their snapshot.
    late = connect(fanout, "late")
    await settle(fanout)
    assert late.events()[1][1] == snapshot.state(room.session)
    advisor.close()


async def test_a_room_that_moved_on_is_worked_out_for_its_newest_inputs_only() -> None:
    room = scored_room({c: [1, 2, 3, 4] for c in CASES[:4]})
    advisor = Advisor()
    # Hold the worker, so that three reveals queue up behind it.
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        held.set()
        release.wait(5)

    blocker = asyncio.get_running_loop().run_in_executor(advisor._pool, hold)
    await asyncio.to_thread(held.wait, 5)
    for case in CASES[:3]:
        room.change(ops.Control("fay", "reveal", case))
        assert advisor.lookup(room.session) == (False, None)
    # One job waits for the room, however many changes it saw.
    assert advisor._queued == {room.session.id}
    release.set()
    await blocker
    while advisor._queued or advisor._wanted:
        await asyncio.sleep(0.01)
    assert advisor.worked_out == 1
    assert advisor.lookup(room.session) == (True, snapshot.recommendation(room.session))
    advisor.close()


async def test_pages_and_questions_wait_for_their_answer_off_the_loop() -> None:
    room = scored_room({"realtime": [4, 4, 3, 1], "performance": [0, 4, 0, 4]})
    room.change(ops.Control("fay", "reveal_all"))
    advisor = Advisor()
    record = await advisor.advice(room.session, every_flip=True)
    assert record == snapshot.recommendation(room.session, every_flip=True)
    assert record is not None
    for row in record["ranking"][1:]:
        asked = await advisor.flip_of(room.session, row["stack"])
        assert asked == {"stack": row["stack"], "flip": row["flip"], "can_win": row["can_win"]}
    assert await advisor.flip_of(room.session, "cobol") is None
    advisor.close()


histograms = st.lists(st.integers(0, 6), min_size=5, max_size=5).filter(lambda h: sum(h) > 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(CASES), histograms), min_size=1, max_size=6))
def test_the_room_is_told_what_the_record_says_but_the_flips_it_asks_for(
    revealed: list[tuple[str, list[int]]],
) -> None:
    template = builtin_templates()["django"]
    stacks = [engine.StackInfo(s.id, s.name) for s in template.stacks]
    cases = []
    for case_id, histogram in dict(revealed).items():
        spec = template.case(case_id)
        assert spec is not None
        scores = [v for v, n in enumerate(histogram) for _ in range(n)]
        results = engine.case_results(scores)
        assert results.median is not None
        cases.append(
            engine.CaseInput(
                case_id, spec.title, results.median, spec.fit, histogram=results.histogram
            )
        )
    room = engine.recommend(cases, stacks, "django", "s", every_flip=False)
    record = engine.recommend(cases, stacks, "django", "s", every_flip=True)
    assert room is not None and record is not None
    top, runner_up = record.ranking[0].stack, record.ranking[1].stack
    for told, full in zip(room.ranking, record.ranking, strict=True):
        assert (told.stack, told.score, told.win_share) == (full.stack, full.score, full.win_share)
        if told.stack in (top, runner_up) or (full.tied_with and top in full.tied_with):
            assert (told.flip, told.can_win) == (full.flip, full.can_win)
        else:
            # Not worked out for the room; asking gives the record's answer.
            assert (told.flip, told.can_win) == (None, None)
        if told.stack != top:
            assert engine.flip_of(cases, stacks, "django", told.stack) == (full.flip, full.can_win)
    assert room.flip == record.flip
    assert (room.verdict, room.confidence, room.close_call) == (
        record.verdict,
        record.confidence,
        record.close_call,
    )
