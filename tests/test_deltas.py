"""Deltas (server.snapshot.View): a client that applies them sees what a fresh snapshot shows,
under any interleaving of changes, and a delta never tells more than a snapshot would."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from server import ops, snapshot
from server.models import Participant, Session
from server.rules import RuleError
from tests.factories import new_session
from tests.live import apply_delta

PEOPLE = ["ann", "ben", "cat", "dan", "eve"]
CASES = ["realtime", "prototype", "data_model"]

person = st.sampled_from(PEOPLE)
case = st.sampled_from(CASES)
score = st.integers(0, 4) | st.none()
reason = st.sampled_from(["a secret reason", "another secret reason"])
op = st.one_of(
    st.builds(lambda p: ("join", p), person),
    st.builds(lambda p: ("leave", p), person),
    st.builds(lambda p: ("back", p), person),
    st.builds(lambda p, c, s: ("vote", p, c, s), person, case, score),
    st.builds(lambda p, c, s, r: ("vote", p, c, s, r), person, case, score, reason),
    st.builds(
        lambda a, c: ("control", a, c), st.sampled_from(["open", "reveal", "revote", "lock"]), case
    ),
    st.just(("control", "open_all", None)),
    st.just(("control", "reveal_all", None)),
    st.just(("control", "finish", None)),
    st.builds(lambda c, s: ("countdown", c, s), st.none() | case, st.sampled_from([0, 1, 3])),
    st.just(("close",)),
    st.builds(lambda on: ("auto_reveal", on), st.booleans()),
    st.builds(lambda p, keep: ("remove", p, keep), person, st.booleans()),
    st.builds(lambda p: ("hand_over", p), person),
    st.builds(lambda p, keep: ("quit", p, keep), person | st.just("fay"), st.booleans()),
    st.builds(lambda c: ("nudge", c), st.none() | case),
    st.builds(lambda after: ("away", after), st.sampled_from([1.0, 5.0])),
    st.builds(lambda n: ("take_over", n), st.integers(0, 1)),
    st.builds(lambda on: ("door", on), st.booleans()),
    st.builds(
        lambda stack, note: ("decide", stack, note),
        st.sampled_from([None, "postgres", "sqlite"]),
        st.sampled_from(["", "we go"]),
    ),
)
# After which ops the room is flushed (a delta goes out): coalescing groups the rest.
steps = st.lists(st.tuples(op, st.booleans()), min_size=1, max_size=60)
kinds = st.sampled_from(
    [
        {"mode": "hidden", "anonymous": False},
        {"mode": "open", "anonymous": False},
        {"mode": "open", "anonymous": True},
        {"mode": "hidden", "anonymous": True},
    ]
)


def as_op(step: tuple[Any, ...]) -> ops.Op:
    kind = step[0]
    if kind == "join":
        who = Participant(id=step[1], name=step[1].title(), role="voter", token_hash=step[1])
        return ops.Join(who, f"i:{step[1]}", 10)
    if kind == "leave":
        return ops.Detach(step[1], f"i:{step[1]}")
    if kind == "back":
        return ops.Attach(step[1], f"i:{step[1]}")
    if kind == "vote":
        return ops.Vote(step[1], step[2], step[3], reason=step[4] if len(step) > 4 else None)
    if kind == "countdown":
        return ops.Countdown("fay", step[2], step[1])
    if kind == "close":
        return ops.Close()
    if kind == "auto_reveal":
        return ops.AutoReveal("fay", step[1])
    if kind == "remove":
        return ops.Remove("fay", step[1], step[2])
    if kind == "hand_over":
        return ops.HandOver("fay", step[1])
    if kind == "quit":
        return ops.Leave(step[1], step[2])
    if kind == "nudge":
        return ops.Nudge("fay", step[1])
    if kind == "away":
        return ops.MarkAway(step[1])
    if kind == "door":
        return ops.Door("fay", step[1])
    if kind == "decide":
        return ops.Decide("fay", step[1], step[2])
    if kind == "take_over":
        device = Participant(
            id=f"d{step[1]}", name="", role="facilitator", token_hash=f"t{step[1]}"
        )
        return ops.TakeOver(device, f"i:d{step[1]}", 10, "f")
    return ops.Control("fay", step[1], step[2])


def started(kind: dict[str, Any]) -> Session:
    session = replace(new_session(**kind), facilitator_hash="f")
    fay = Participant(id="fay", name="Fay", role="facilitator", token_hash="f")
    return ops.apply(session, ops.Join(fay, "i:fay", 10), 1.0)


def run(session: Session, step: tuple[Any, ...], n: int) -> Session:
    try:
        return ops.apply(session, as_op(step), float(n))
    except RuleError:
        return session


@settings(max_examples=300, deadline=None)
@given(kind=kinds, plan=steps)
def test_applying_every_delta_gives_the_snapshot(kind: dict[str, Any], plan: list[Any]) -> None:
    session = started(kind)
    view = snapshot.View(session)
    client = snapshot.state(session)
    marks = snapshot.Marks()
    for n, (step, flush) in enumerate(plan):
        after = run(session, step, n)
        marks.add(snapshot.marks(session, after))
        session = after
        if flush or n == len(plan) - 1:
            delta = view.delta(session, marks)
            marks = snapshot.Marks()
            applied = apply_delta(client, delta)
            assert applied is not None
            client = applied
            assert client == snapshot.state(session)


@settings(max_examples=200, deadline=None)
@given(kind=kinds, plan=steps)
def test_the_sessions_part_is_marked_exactly_when_its_summary_changes(
    kind: dict[str, Any], plan: list[Any]
) -> None:
    session = started(kind)
    for n, (step, _) in enumerate(plan):
        after = run(session, step, n)
        changed = snapshot.summary(session) != snapshot.summary(after)
        assert snapshot.marks(session, after).session == changed
        session = after


@settings(max_examples=300, deadline=None)
@given(kind=kinds, plan=steps)
def test_a_delta_tells_nothing_a_snapshot_would_not(kind: dict[str, Any], plan: list[Any]) -> None:
    session = started(kind)
    view = snapshot.View(session)
    for n, (step, _) in enumerate(plan):
        after = run(session, step, n)
        delta = view.delta(after, snapshot.marks(session, after))
        session = after
        state = snapshot.state(session)
        # Every part a delta carries is that part of the snapshot at the delta's version.
        assert delta["version"] == state["version"]
        people = {p["id"]: p for p in state["participants"]}
        for p in delta.get("participants", ()):
            assert p == people[p["id"]]
        cases = {c["id"]: c for c in state["cases"]}
        for c in delta.get("cases", ()):
            assert c == cases[c["id"]]
            if c["status"] in ("pending",) or (
                kind["mode"] == "hidden" and c["status"] == "voting"
            ):
                assert c["results"] is None
            if c["results"] is not None and c["status"] == "voting" and kind["anonymous"]:
                # Live reasons would tell whose batched score just arrived.
                assert c["results"]["reasons"] == []
        hidden = [c for c in session.cases if not session.results_visible(c)]
        if any(c.reasons for c in hidden):
            assert "secret reason" not in json.dumps(
                [d for d in delta.get("cases", ()) if d["id"] in {c.id for c in hidden}]
            )
        if "session" in delta:
            assert delta["session"] == state["session"]
        if "recommendation" in delta:
            assert delta["recommendation"] == state["recommendation"]
        if kind["anonymous"]:
            assert '"ballots"' not in json.dumps(delta)
            assert '"participant"' not in json.dumps(delta.get("cases", ()))


@settings(max_examples=100, deadline=None)
@given(kind=kinds, plan=steps, lost=st.integers(0, 59))
def test_a_client_that_misses_a_delta_notices_with_the_next_one(
    kind: dict[str, Any], plan: list[Any], lost: int
) -> None:
    session = started(kind)
    view = snapshot.View(session)
    client = snapshot.state(session)
    sent = 0
    missed_at = None
    for n, (step, _) in enumerate(plan):
        after = run(session, step, n)
        if after is session:
            continue  # nothing changed: nothing is sent
        delta = view.delta(after, snapshot.marks(session, after))
        session = after
        sent += 1
        if sent - 1 == lost:
            missed_at = delta["version"]
            continue  # this one never arrives
        applied = apply_delta(client, delta)
        if applied is None:
            assert missed_at is not None, "a gap without a missing delta"
            client = snapshot.state(session)  # what `sync` answers
            missed_at = None
        else:
            client = applied
    if missed_at is None:
        assert client == snapshot.state(session)
    else:
        # The last delta was the lost one: only a later change (or a reconnect) can tell.
        assert missed_at == session.version


def test_a_change_nobody_can_see_moves_only_the_version() -> None:
    session = started({"mode": "hidden", "anonymous": False})
    session = run(session, ("join", "ann"), 1)
    session = run(session, ("control", "open", "realtime"), 2)
    session = run(session, ("vote", "ann", "realtime", 1), 3)
    view = snapshot.View(session)
    changed = run(session, ("vote", "ann", "realtime", 4), 4)
    delta = view.delta(changed, snapshot.marks(session, changed))
    # Ann changed her hidden score: the room learns only that something happened.
    assert delta == {"base": session.version, "version": changed.version}


def test_a_vote_costs_the_room_a_few_hundred_bytes_whatever_its_size() -> None:
    session = started({"mode": "hidden", "anonymous": False})
    for n in range(1000):
        who = Participant(id=f"p{n}", name=f"Person {n}", role="voter", token_hash=str(n))
        session = ops.apply(session, ops.Join(who, f"i:{n}", 2000), 1.0)
    session = run(session, ("control", "open_all", None), 2)
    view = snapshot.View(session)
    voted = ops.apply(session, ops.Vote("p500", "realtime", 3), 3.0)
    delta = view.delta(voted, snapshot.marks(session, voted))
    assert len(json.dumps(delta)) < 400
    assert len(json.dumps(snapshot.state(voted))) > 50_000
