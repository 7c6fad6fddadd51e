"""Anonymous sessions are unlinkable, and a room stays its facilitator's: the rules and what
leaves the server, checked one by one and then all together against an observer who controls
the facilitator and any number of made-up participants (SPEC §5, "Anonymous sessions")."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from msgspec.structs import replace

from server import exports, ops, rules, snapshot
from server.models import MIN_CROWD, Session, name_key
from server.rules import RuleError
from tests.factories import (
    FACILITATOR,
    LIMIT,
    case_in,
    case_of,
    cast,
    control,
    new_session,
    person,
    team,
    with_people,
)

NOW = 5_000.0


def anonymous(*voters: str, mode: str = "hidden") -> Session:
    return control(team(*voters, anonymous=True, mode=mode), "open", "realtime")


# --- nobody is told who voted


def test_nobody_is_told_who_voted_in_an_anonymous_session() -> None:
    session = cast(anonymous("Ann", "Ben"), "realtime", {"ann": 3})
    state = snapshot.state(session)
    assert [p["voted"] for p in state["participants"]] == [[], [], []]
    assert case_of(state, "realtime")["votes_in"] == 1
    # A person's own ballots reach only them (the welcome), and nobody else's view changes.
    assert snapshot.own_ballots(session, "ann") == {"realtime": 3}
    view = snapshot.View(anonymous("Ann", "Ben"))
    before = anonymous("Ann", "Ben")
    delta = view.delta(session, snapshot.marks(before, session))
    assert "participants" not in delta
    assert [c["votes_in"] for c in delta["cases"]] == [1]


def test_sessions_that_are_not_anonymous_still_say_who_voted() -> None:
    session = cast(control(team("Ann"), "open", "realtime"), "realtime", {"ann": 3})
    voted = {p["id"]: p["voted"] for p in snapshot.state(session)["participants"]}
    assert voted == {"fay": [], "ann": ["realtime"]}


# --- the minimum crowd


@pytest.mark.parametrize("mode", ["hidden", "open"])
def test_a_reveal_needs_three_scores(mode: str) -> None:
    session = anonymous("Ann", "Ben", "Cat", mode=mode)
    for n, voter in enumerate(("ann", "ben")):
        session = rules.vote(session, voter, "realtime", 4)
        with pytest.raises(RuleError, match=f"at least 3 people .* so far {n + 1} have"):
            control(session, "reveal", "realtime")
    # Skips are not scores: they do not make up the crowd.
    session = rules.vote(session, "fay", "realtime", None)
    with pytest.raises(RuleError, match="so far 2 have"):
        control(session, "reveal", "realtime")
    session = rules.vote(session, "cat", "realtime", 1)
    revealed = control(session, "reveal", "realtime")
    results = case_of(snapshot.state(revealed), "realtime")["results"]
    assert (results["n"], results["abstain"]) == (3, 1)


def test_reveal_all_is_refused_while_any_open_case_has_too_few_scores() -> None:
    session = control(anonymous("Ann", "Ben"), "open", "prototype")
    session = cast(session, "realtime", {"ann": 1, "ben": 2, "fay": 3})
    session = cast(session, "prototype", {"ann": 1})
    with pytest.raises(RuleError, match="1 of the open questions"):
        control(session, "reveal_all")
    session = cast(session, "prototype", {"ben": 0, "fay": 4})
    assert {c.status for c in control(session, "reveal_all").cases} >= {"revealed"}


def test_the_minimum_is_only_for_anonymous_sessions() -> None:
    session = cast(control(team("Ann"), "open", "realtime"), "realtime", {"ann": 3})
    assert case_in(control(session, "reveal", "realtime"), "realtime").status == "revealed"


def withheld_by_countdown(scores: dict[str, int | None]) -> Session:
    session = cast(anonymous("Ann", "Ben"), "realtime", scores)
    session = rules.countdown(session, FACILITATOR, "realtime", 30, NOW)
    return rules.close_overdue(session, NOW + 30)


def test_a_countdown_ending_with_too_few_scores_closes_voting_and_shows_nothing() -> None:
    session = withheld_by_countdown({"ann": 4})
    case = case_in(session, "realtime")
    assert case.status == "revealed" and case.ballots == {"ann": 4}
    view = case_of(snapshot.state(session), "realtime")
    assert (view["status"], view["results"], view["withheld"]) == ("revealed", None, True)
    assert snapshot.recommendation(session) is None
    with pytest.raises(RuleError, match="closed"):
        rules.vote(session, "ben", "realtime", 2)
    # The results document and the decision record show nothing of it either.
    document = exports.results(session)
    assert case_of(document, "realtime")["histogram"] is None
    assert "Ann" not in exports.to_csv(document).split("\n", 1)[1]


def test_a_countdown_ending_with_enough_scores_reveals() -> None:
    session = withheld_by_countdown({"ann": 4, "ben": 0, "fay": 2})
    view = case_of(snapshot.state(session), "realtime")
    assert (view["status"], view["withheld"], view["results"]["n"]) == ("revealed", False, 3)


def test_a_withheld_round_stays_withheld_in_the_history() -> None:
    session = control(withheld_by_countdown({"ann": 4, "ben": 1}), "revote", "realtime")
    session = control(
        cast(session, "realtime", {"ann": 3, "ben": 3, "fay": 3}), "reveal", "realtime"
    )
    (earlier,) = case_of(snapshot.state(session), "realtime")["history"]
    assert earlier["round"] == 1
    assert {k: v for k, v in earlier.items() if k != "round"} == dict.fromkeys(
        ("n", "histogram", "median", "iqr", "consensus", "band", "change")
    )
    (exported,) = case_of(exports.results(session), "realtime")["history"]
    assert exported["histogram"] is None and exported["reasons"] == []
    record = exports.to_markdown(exports.results(session), datetime(2026, 1, 2, tzinfo=UTC))
    assert "4" not in record.split("## Rounds")[-1]


def test_locking_or_finishing_with_too_few_scores_withholds_the_results() -> None:
    session = cast(anonymous("Ann", "Ben"), "realtime", {"ann": 4, "ben": 2})
    for closed in (control(session, "lock", "realtime"), control(session, "finish")):
        view = case_of(snapshot.state(closed), "realtime")
        assert (view["status"], view["results"], view["withheld"]) == ("locked", None, True)


def test_auto_reveal_waits_for_three_scores() -> None:
    session = anonymous("Ann")
    for pid, sid in (("fay", "s-f"), ("ann", "s-a")):
        session = rules.attach(session, pid, sid)
    session = rules.set_auto_reveal(session, FACILITATOR, True)
    session = cast(session, "realtime", {"ann": 4, "fay": 1})
    assert case_in(session, "realtime").status == "voting"  # everyone voted, but only two
    session = rules.join(session, person("Ben"), limit=LIMIT)
    session = rules.attach(session, "ben", "s-b")
    session = rules.vote(session, "ben", "realtime", 2)
    assert case_in(session, "realtime").status == "revealed"


# --- the facilitator always gets in; the door and the sweep


def test_the_facilitator_link_enters_a_session_full_of_others() -> None:
    # The facilitator never joined, and three others filled a room for three.
    crowded = with_people(new_session(), *(person(f"P{n}") for n in range(3)))
    with pytest.raises(RuleError, match="full"):
        rules.join(crowded, person("Q"), limit=3)
    newcomer = person("Fay", "facilitator")
    taken = rules.take_over(crowded, newcomer, "s-f", limit=3, link=crowded.facilitator_hash)
    fay = taken.participant("fay")
    assert fay is not None and fay.role == "facilitator" and fay.online
    # Capacity counts everyone else: still full for others, and closing the door changes
    # nothing for the link.
    with pytest.raises(RuleError, match="full"):
        rules.join(taken, person("Q"), limit=3)
    shut = rules.take_over(
        replace(crowded, door_open=False), newcomer, "s-f", limit=3, link=crowded.facilitator_hash
    )
    assert shut.participant("fay") is not None


def test_a_closed_door_keeps_newcomers_out_and_lets_people_back() -> None:
    session = rules.attach(team("Ann"), "ann", "s-1")
    session = rules.detach(session, "ann", "s-1", NOW)
    closed = rules.set_door(session, FACILITATOR, False)
    assert snapshot.summary(closed)["door_open"] is False
    for newcomer in (person("Ben"), person("Wat", "spectator")):
        with pytest.raises(RuleError, match="closed this session to newcomers"):
            rules.join(closed, newcomer, limit=LIMIT)
    # Ann comes back with her token; a facilitator link always gets in.
    assert rules.attach(closed, "ann", "s-2").participant("ann").online  # type: ignore[union-attr]
    lead = rules.join(closed, person("Co", "facilitator"), limit=LIMIT)
    assert lead.participant("co") is not None
    opened = rules.set_door(closed, FACILITATOR, True)
    assert rules.join(opened, person("Ben"), limit=LIMIT).participant("ben") is not None
    assert rules.set_door(opened, FACILITATOR, True) is opened
    with pytest.raises(RuleError, match="Only the facilitator"):
        rules.set_door(session, "ann", False)


def swept_room() -> Session:
    """Fay, Ann (online), Ben (offline, voted in round 1 only), Cat (offline, voted now),
    Dan and Eve (offline, never voted), Wat (offline spectator), Co (offline co-facilitator)."""
    session = with_people(
        team("Ann", "Ben", "Cat", "Dan", "Eve"),
        person("Wat", "spectator"),
        person("Co", "facilitator"),
    )
    session = cast(control(session, "open", "realtime"), "realtime", {"ben": 2, "ann": 1})
    session = control(control(session, "reveal", "realtime"), "revote", "realtime")
    session = cast(session, "realtime", {"cat": 3})
    for pid in ("fay", "ann", "ben", "cat", "dan", "eve", "wat", "co"):
        session = rules.attach(session, pid, f"s-{pid}")
    for pid in ("ben", "cat", "dan", "eve", "wat", "co"):
        session = rules.detach(session, pid, f"s-{pid}", NOW)
    return session


def test_remove_idle_takes_out_everyone_offline_without_a_ballot_in_one_change() -> None:
    session = swept_room()
    swept = ops.apply(session, ops.RemoveIdle(FACILITATOR), NOW + 1)
    assert [p.id for p in swept.participants] == ["fay", "ann", "ben", "cat", "co"]
    assert swept.version == session.version + 1
    assert rules.removed_between(session, swept) == {"dan", "eve", "wat"}
    with pytest.raises(RuleError, match="Nobody to remove"):
        rules.remove_idle(swept, FACILITATOR)
    with pytest.raises(RuleError, match="Only the facilitator"):
        rules.remove_idle(session, "ann")


def test_people_without_a_ballot_expire_after_a_while_offline() -> None:
    session = swept_room()
    after = 600.0
    assert rules.next_expiry(session, after) == NOW + after
    assert rules.expire_idle(session, NOW + after - 1, after) is session
    expired = rules.expire_idle(session, NOW + after, after)
    assert [p.id for p in expired.participants] == ["fay", "ann", "ben", "cat", "co"]
    assert rules.expire_idle(expired, NOW + after, after) is expired
    assert rules.next_expiry(expired, after) is None
    assert (
        rules.next_expiry(session, 0) is None and rules.expire_idle(session, NOW * 2, 0) is session
    )


def test_someone_who_expired_comes_back_as_a_newcomer_while_the_door_is_open() -> None:
    expired = rules.expire_idle(swept_room(), NOW + 600, 600)
    back = rules.join(expired, person("Dan"), limit=LIMIT)
    assert back.participant("dan") is not None


# --- names


@pytest.mark.parametrize(
    ("present", "lookalike"),
    [
        ("F", "\uff26"),
        ("F", "f"),
        ("fi", "\ufb01"),
        ("Straße", "STRASSE"),
        ("Bob", "\U0001d401\U0001d428\U0001d41b"),
        ("Ann", "\uff21\uff2e\uff2e"),
    ],
)
def test_a_lookalike_of_a_present_name_is_taken(present: str, lookalike: str) -> None:
    session = with_people(team(), person(present, pid="first"))
    assert name_key(present) == name_key(lookalike)
    with pytest.raises(RuleError, match="is already here"):
        rules.join(session, person(lookalike, pid="second"), limit=LIMIT)


def test_a_name_is_shown_as_typed() -> None:
    typed = "\uff26ranz"  # with a full-width F
    session = with_people(team(), person(typed, pid="franz"))
    assert [p["name"] for p in snapshot.state(session)["participants"]][-1] == typed


# --- all together: an observer who controls the facilitator and made-up participants
#
# The property (SPEC §5): whatever the observer does, and however honest people's votes are
# interleaved with the observer's own, what the server sends the observer would be the same if
# the honest people had swapped their ballots among themselves. So nothing it receives ties a
# score to a named person. Two copies of a session run side by side: every step is applied to
# both, an honest step by "slot" — world A gives slot i to honest person i, world B to a
# permutation of them — and after each step the observer's view (the snapshot, the delta it
# would be sent, its own acks) must be identical. Honest people are online throughout (their
# presence, which everyone sees, is then the same in both worlds).

HONEST = ("hal", "ida", "jo", "kim")
PUPPETS = ("p0", "p1", "p2", "p3")
CASES = ("realtime", "prototype")
scores = st.integers(0, 4) | st.none()


class Outcome:
    def __init__(self, session: Session, error: str | None) -> None:
        self.session = session
        self.error = error


def attempt(
    session: Session,
    slots: tuple[str, ...],
    step: Callable[[Session, tuple[str, ...]], Session],
) -> Outcome:
    try:
        return Outcome(step(session, slots), None)
    except RuleError as exc:
        return Outcome(session, str(exc))


class ObserverCannotLinkScores(RuleBasedStateMachine):
    @initialize(data=st.data(), mode=st.sampled_from(["hidden", "open"]))
    def start(self, data: st.DataObject, mode: str) -> None:
        count = data.draw(st.integers(2, len(HONEST)), label="honest people")
        honest = HONEST[:count]
        order = data.draw(st.permutations(honest), label="world B's order")
        session = team(*(h.title() for h in honest), anonymous=True, mode=mode)
        for pid in ("fay", *honest):
            session = rules.attach(session, pid, f"s-{pid}")
        self.slots = {"a": honest, "b": tuple(order)}
        self.worlds = {"a": session, "b": session}
        self.views = {"a": snapshot.View(session), "b": snapshot.View(session)}
        self.now = NOW
        self.puppets: set[str] = set()
        self.online: set[str] = set()

    def step(self, change: Callable[[Session, tuple[str, ...]], Session]) -> str | None:
        """Apply `change` to both worlds (given the world's slots) and compare what the
        observer is sent; returns the ack's error, if any (the same in both)."""
        self.now += 1
        outcomes = {w: attempt(self.worlds[w], self.slots[w], change) for w in "ab"}
        assert outcomes["a"].error == outcomes["b"].error
        sent: dict[str, Any] = {}
        for w, outcome in outcomes.items():
            before, after = self.worlds[w], outcome.session
            delta = self.views[w].delta(after, snapshot.marks(before, after))
            sent[w] = (delta, snapshot.state(after), self._private(after))
            self.worlds[w] = after
        assert sent["a"] == sent["b"]
        return outcomes["a"].error

    def _private(self, session: Session) -> dict[str, Any]:
        """What the observer's own people get besides the room's view: their ballots."""
        return {p: snapshot.own_ballots(session, p) for p in ("fay", *sorted(self.puppets))}

    # honest people

    @rule(slot=st.integers(0, len(HONEST) - 1), case=st.sampled_from(CASES), score=scores)
    def honest_votes(self, slot: int, case: str, score: int | None) -> None:
        def vote(session: Session, slots: tuple[str, ...]) -> Session:
            return rules.vote(session, slots[slot % len(slots)], case, score, now=self.now)

        self.step(vote)

    @rule(slot=st.integers(0, len(HONEST) - 1), case=st.sampled_from(CASES), score=scores)
    def honest_votes_with_a_reason(self, slot: int, case: str, score: int | None) -> None:
        def vote(session: Session, slots: tuple[str, ...]) -> Session:
            who = slots[slot % len(slots)]
            return rules.vote(session, who, case, score, reason=f"because {score}", now=self.now)

        self.step(vote)

    # the observer's made-up participants

    @rule(puppet=st.sampled_from(PUPPETS))
    def puppet_joins(self, puppet: str) -> None:
        error = self.step(lambda s, _: rules.join(s, person(puppet.upper()), limit=LIMIT))
        if error is None:
            self.puppets.add(puppet)
            self.step(lambda s, _: rules.attach(s, puppet, f"s-{puppet}"))
            self.online.add(puppet)

    @precondition(lambda self: self.puppets)
    @rule(data=st.data(), case=st.sampled_from(CASES), score=scores)
    def puppet_votes(self, data: st.DataObject, case: str, score: int | None) -> None:
        puppet = data.draw(st.sampled_from(sorted(self.puppets)))
        self.step(lambda s, _: rules.vote(s, puppet, case, score, now=self.now))

    @precondition(lambda self: self.online)
    @rule(data=st.data())
    def puppet_goes_offline(self, data: st.DataObject) -> None:
        puppet = data.draw(st.sampled_from(sorted(self.online)))
        self.step(lambda s, _: rules.detach(s, puppet, f"s-{puppet}", self.now))
        self.online.discard(puppet)

    @precondition(lambda self: self.puppets)
    @rule(data=st.data(), keep=st.booleans())
    def puppet_leaves(self, data: st.DataObject, keep: bool) -> None:
        puppet = data.draw(st.sampled_from(sorted(self.puppets)))
        if self.step(lambda s, _: rules.leave(s, puppet, keep_ballots=keep)) is None:
            self.puppets.discard(puppet)
            self.online.discard(puppet)

    # the observer as facilitator

    @rule(
        action=st.sampled_from(["open", "reveal", "revote", "lock"]),
        case=st.sampled_from(CASES),
    )
    def facilitator_acts_on_a_case(self, action: str, case: str) -> None:
        self.step(lambda s, _: control(s, action, case))

    @rule(action=st.sampled_from(["open_all", "reveal_all"]))
    def facilitator_acts_on_all(self, action: str) -> None:
        self.step(lambda s, _: control(s, action))

    @rule(case=st.sampled_from(CASES), seconds=st.integers(1, 3))
    def countdown_runs_out(self, case: str, seconds: int) -> None:
        if self.step(lambda s, _: rules.countdown(s, FACILITATOR, case, seconds, self.now)):
            return
        self.step(lambda s, _: rules.close_overdue(s, self.now + seconds))

    @rule(on=st.booleans())
    def auto_reveal(self, on: bool) -> None:
        self.step(lambda s, _: rules.set_auto_reveal(s, FACILITATOR, on))

    @rule()
    def sweep(self) -> None:
        if self.step(lambda s, _: rules.remove_idle(s, FACILITATOR)) is None:
            self.puppets &= {p.id for p in self.worlds["a"].participants}

    @rule()
    def nudge(self) -> None:
        self.step(lambda s, _: rules.nudge(s, FACILITATOR, None, self.now + 100))

    # what holds in every state

    @invariant()
    def nobody_is_shown_as_having_voted(self) -> None:
        if hasattr(self, "worlds"):
            state = snapshot.state(self.worlds["a"])
            assert all(p["voted"] == [] for p in state["participants"])

    @invariant()
    def shown_results_hold_three_scores(self) -> None:
        if not hasattr(self, "worlds"):
            return
        for case in snapshot.state(self.worlds["a"])["cases"]:
            results = case["results"]
            if case["status"] in ("revealed", "locked"):
                assert (results is None) == case["withheld"]
                assert results is None or results["n"] >= MIN_CROWD
            for past in case["history"]:
                assert past["n"] is None or past["n"] >= MIN_CROWD


ObserverCannotLinkScores.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_an_observer_with_puppets_learns_no_score_tied_to_a_name = ObserverCannotLinkScores.TestCase
