"""Ops (server.ops): every change as data, which any instance replays into the very same session.

An instance applies ops in batches at its own time, stores them and publishes a record; the
others decode the record and replay it on their copies. These tests play both parts: whatever
the ops and times, the copies end equal, and so does what the room is shown.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server import ops, snapshot
from server.models import Participant, Session
from server.rules import RuleError
from tests.factories import case_in, new_session

PEOPLE = ["ann", "ben", "cat", "dan"]
CASES = ["realtime", "prototype", "data_model"]
START = 1_000.0

person = st.sampled_from(PEOPLE)
everyone = st.sampled_from(["fay", *PEOPLE])
case = st.sampled_from(CASES)
score = st.integers(0, 4) | st.none()
reason = st.none() | st.sampled_from(["too slow", "we know Go", "admin saves weeks", "x" * 280])
op = st.one_of(
    st.builds(lambda p: ops.Join(_member(p), f"i:{p}", 10), person),
    st.builds(lambda p: ops.Detach(p, f"i:{p}"), person),
    st.builds(lambda p: ops.Attach(p, f"i:{p}"), person),
    st.builds(lambda p, c, s, r: ops.Vote(p, c, s, reason=r), everyone, case, score, reason),
    st.builds(lambda p, c, s, r: ops.Vote(p, c, s, reason=r), everyone, case, score, reason),
    st.builds(
        lambda a, c: ops.Control("fay", a, c),
        st.sampled_from(["open", "reveal", "revote", "lock"]),
        case,
    ),
    st.just(ops.Control("fay", "open_all")),
    st.just(ops.Control("fay", "reveal_all")),
    st.builds(
        lambda c, s: ops.Countdown("fay", s, c), st.none() | case, st.sampled_from([0, 1, 5, 30])
    ),
    st.builds(lambda on: ops.AutoReveal("fay", on), st.booleans()),
    st.builds(lambda p, keep: ops.Remove("fay", p, keep), person, st.booleans()),
    st.builds(lambda p: ops.HandOver("fay", p), person),
    st.just(ops.Close()),
    st.builds(lambda p, keep: ops.Leave(p, keep), everyone, st.booleans()),
    st.builds(lambda c: ops.Nudge("fay", c), st.none() | case),
    st.builds(ops.MarkAway, st.sampled_from([0.0, 2.0, 30.0])),
    st.builds(
        lambda n, name: ops.TakeOver(_device(n, name), f"i:device-{n}", 10, "link"),
        st.integers(0, 2),
        st.sampled_from(["", "Fay", "Zoe"]),
    ),
)
# Each batch: the ops one write stores, and how far the clock moved before it.
batches = st.lists(
    st.tuples(st.lists(op, min_size=1, max_size=4), st.sampled_from([0.0, 0.5, 3.0, 40.0])),
    min_size=1,
    max_size=25,
)
kinds = st.sampled_from(
    [
        {"mode": "hidden", "anonymous": False},
        {"mode": "open", "anonymous": True},
        {"mode": "open", "anonymous": False},
    ]
)


def _member(pid: str, role: Any = "voter") -> Participant:
    return Participant(id=pid, name=pid.title(), role=role, token_hash=f"hash-{pid}")


def _device(n: int, name: str) -> Participant:
    return Participant(id=f"device-{n}", name=name, role="facilitator", token_hash=f"dev-{n}")


def started(**kind: Any) -> Session:
    session = msgspec.structs.replace(new_session(**kind), facilitator_hash="link")
    return ops.apply(session, ops.Join(_member("fay", "facilitator"), "i:fay", 10), START)


def write(session: Session, batch: list[ops.Op], now: float) -> tuple[Session, list[ops.Op]]:
    """What an instance does with a batch: apply each op, skipping refusals and no-ops."""
    stored = []
    for each in batch:
        try:
            after = ops.apply(session, each, now)
        except RuleError:
            continue
        if after is not session:
            stored.append(each)
            session = after
    return session, stored


@settings(max_examples=300, deadline=None)
@given(kind=kinds, plan=batches)
def test_replaying_the_records_gives_every_instance_the_same_session(
    kind: dict[str, Any], plan: list[tuple[list[ops.Op], float]]
) -> None:
    writer = reader = started(**kind)
    now = START
    for batch, later in plan:
        now += later
        before = writer.version
        writer, stored = write(writer, batch, now)
        if not stored:
            assert writer.version == before
            continue
        record = ops.load_record(
            ops.dump_record(ops.Record(session=writer.id, base=before, ops=tuple(stored), now=now))
        )
        assert record.base == reader.version
        reader = ops.replay(reader, record.ops, record.now)
        assert reader == writer
        assert snapshot.state(reader) == snapshot.state(writer)


@pytest.mark.parametrize(
    "change",
    [
        ops.Vote("ann", "realtime", 3, reason="we need live updates"),
        ops.Countdown("fay", 30, "realtime"),
        ops.Countdown("fay", 30),
        ops.AutoReveal("fay", True),
        ops.HandOver("fay", "ann"),
        ops.Remove("fay", "ann", False),
        ops.Remove("fay", "ann", True),
        ops.Leave("ann", False),
        ops.Leave("ben", True),
        ops.Nudge("fay", "realtime"),
        ops.Nudge("fay"),
        ops.Detach("ann", "i:ann"),
        ops.TakeOver(_device(1, ""), "i:device-1", 10, "link"),
    ],
)
def test_each_new_op_survives_a_record_and_replays_to_the_same_session(change: ops.Op) -> None:
    session = voting()
    now = START + 10
    after = ops.apply(session, change, now)
    assert after is not session
    record = ops.load_record(
        ops.dump_record(
            ops.Record(session=session.id, base=session.version, ops=(change,), now=now)
        )
    )
    assert record.ops == (change,)
    assert ops.replay(session, record.ops, record.now) == after


def voting() -> Session:
    """Fay facilitates; Ann and Ben are here; `realtime` and `prototype` are open."""
    session = started()
    for pid in ("ann", "ben"):
        session = ops.apply(session, ops.Join(_member(pid), f"i:{pid}", 10), START)
    session = ops.apply(session, ops.Control("fay", "open", "realtime"), START)
    return ops.apply(session, ops.Control("fay", "open", "prototype"), START)


def test_going_offline_and_away_are_judged_by_the_times_of_their_ops() -> None:
    offline = ops.apply(voting(), ops.Detach("ann", "i:ann"), START + 3)
    assert offline.participant("ann").offline_since == START + 3  # type: ignore[union-attr]
    assert ops.apply(offline, ops.MarkAway(30.0), START + 32.9) is offline
    away = ops.apply(offline, ops.MarkAway(30.0), START + 33)
    assert away.participant("ann").away  # type: ignore[union-attr]
    assert away.version == offline.version + 1
    # Every other instance's timer fires too: its op finds nobody left to mark.
    assert ops.apply(away, ops.MarkAway(30.0), START + 34) is away
    back = ops.apply(away, ops.Attach("ann", "i:ann-2"), START + 40)
    assert not back.participant("ann").away  # type: ignore[union-attr]


def test_a_take_over_applied_again_changes_nothing() -> None:
    take = ops.TakeOver(_device(1, ""), "i:device-1", 10, "link")
    moved = ops.apply(voting(), take, START)
    assert [p.id for p in moved.participants] == ["fay", "ann", "ben"]
    assert moved.participant("fay").token_hash == "dev-1"  # type: ignore[union-attr]
    assert ops.apply(moved, take, START + 1) is moved


def test_a_nudge_is_stamped_with_the_time_of_its_op() -> None:
    nudged = ops.apply(voting(), ops.Nudge("fay"), START + 5)
    assert nudged.nudge is not None and nudged.nudge.at == START + 5
    with pytest.raises(RuleError, match="just now"):
        ops.apply(nudged, ops.Nudge("fay", "realtime"), START + 6)


def test_a_countdown_ends_at_the_time_of_the_op_plus_its_seconds() -> None:
    session = ops.apply(voting(), ops.Countdown("fay", 30, "realtime"), START + 7)
    assert case_in(session, "realtime").deadline == START + 37
    assert case_in(session, "prototype").deadline is None
    every = ops.apply(voting(), ops.Countdown("fay", 30), START + 7)
    assert [case_in(every, c).deadline for c in ("realtime", "prototype")] == [START + 37] * 2


def test_close_before_the_deadline_changes_nothing_and_after_it_closes_once() -> None:
    session = ops.apply(voting(), ops.Countdown("fay", 30, "realtime"), START)
    assert ops.apply(session, ops.Close(), START + 29.9) is session
    closed = ops.apply(session, ops.Close(), START + 30)
    assert case_in(closed, "realtime").status == "revealed"
    assert case_in(closed, "realtime").deadline is None
    assert closed.version == session.version + 1
    # Every other instance's timer fires too: its Close finds nothing left to do.
    assert ops.apply(closed, ops.Close(), START + 31) is closed


def test_a_vote_is_judged_by_the_time_of_its_op() -> None:
    session = ops.apply(voting(), ops.Countdown("fay", 30, "realtime"), START)
    counted = ops.apply(session, ops.Vote("ann", "realtime", 2), START + 29.999)
    assert case_in(counted, "realtime").ballots == {"ann": 2}
    with pytest.raises(RuleError, match="Time is up"):
        ops.apply(session, ops.Vote("ann", "realtime", 2), START + 30)


def test_a_vote_stored_before_the_deadline_replays_after_it() -> None:
    # Replay uses the record's time, not the replaying instance's: a late record still counts.
    session = ops.apply(voting(), ops.Countdown("fay", 30, "realtime"), START)
    vote = ops.Vote("ann", "realtime", 2, client="tab-aaaa", seq=1)
    record = ops.Record(session=session.id, base=session.version, ops=(vote,), now=START + 29)
    replayed = ops.replay(session, record.ops, record.now)
    assert case_in(replayed, "realtime").ballots == {"ann": 2}


def test_a_facilitator_link_that_stopped_working_cannot_promote_anyone() -> None:
    session = voting()
    link = session.facilitator_hash
    promoted = ops.apply(session, ops.Attach("ben", "i:ben-2", "facilitator", link=link), START)
    assert promoted.participant("ben").role == "facilitator"  # type: ignore[union-attr]
    handed = ops.apply(session, ops.HandOver("fay", "ann"), START)
    # An attach checked against an older copy arrives after the hand-over: refused.
    with pytest.raises(RuleError, match="facilitator link"):
        ops.apply(handed, ops.Attach("ben", "i:ben-2", "facilitator", link=link), START)
    newcomer = _member("zoe", "facilitator")
    with pytest.raises(RuleError, match="facilitator link"):
        ops.apply(handed, ops.Join(newcomer, "i:zoe", 10, link=link), START)
