"""The session's rules: joining, names, ballots and the facilitator's controls."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server import rules
from server.models import CaseState, Nudge, Participant, Session
from server.rules import INVISIBLE_IN_NAME, RuleError
from server.security import hash_token
from tests.factories import (
    FACILITATOR,
    LIMIT,
    case_in,
    cast,
    control,
    new_session,
    person,
    scored,
    team,
    with_people,
)

# --- names


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Alice", "Alice"),
        ("  Alice  ", "Alice"),
        ("\tBob\n", "Bob"),
        ("Ana María", "Ana María"),
        ("e\u0301mile", "\u00e9mile"),  # NFC: a combining accent becomes one character
        ("x" * 40, "x" * 40),
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),
        ("<b>bold</b> & co", "<b>bold</b> & co"),
    ],
)
def test_clean_name_trims_and_keeps_text_literally(raw: str, clean: str) -> None:
    assert rules.clean_name(raw) == clean


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "Please enter a name."),
        ("   ", "Please enter a name."),
        ("\t\n ", "Please enter a name."),
        (None, "Please enter a name."),
        (42, "Please enter a name."),
        ("x" * 41, "Names can be at most 40 characters long."),
        ("  " + "x" * 41 + "  ", "Names can be at most 40 characters long."),
        ("Al\x00ice", INVISIBLE_IN_NAME),
        ("Al\nice", INVISIBLE_IN_NAME),
        ("Al\x1bice", INVISIBLE_IN_NAME),
        ("Al\u2028ice", INVISIBLE_IN_NAME),
    ],
)
def test_clean_name_refuses_unusable_names(raw: object, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        rules.clean_name(raw)
    assert str(caught.value) == message


def test_a_name_of_forty_one_characters_counts_after_trimming() -> None:
    assert rules.clean_name(" " + "y" * 40 + " ") == "y" * 40


# --- joining


def test_join_adds_the_participant_and_keeps_the_others() -> None:
    session = team("Alice")
    bob = person("Bob")
    joined = rules.join(session, bob, limit=10)
    assert [p.name for p in joined.participants] == ["Fay", "Alice", "Bob"]
    assert joined.participant("bob") == bob
    # The original session is untouched (transitions are pure).
    assert [p.name for p in session.participants] == ["Fay", "Alice"]


@pytest.mark.parametrize("clash", ["Alice", "alice", "ALICE", "aLiCe"])
def test_names_are_unique_whatever_their_case(clash: str) -> None:
    session = team("Alice")
    with pytest.raises(RuleError, match="already here; pick another name"):
        rules.join(session, person(clash, pid="other"), limit=10)
    assert [p.name for p in session.participants] == ["Fay", "Alice"]


def test_names_that_differ_only_by_case_folding_clash() -> None:
    session = team("Straße")
    with pytest.raises(RuleError, match="'STRASSE' is already here"):
        rules.join(session, person("STRASSE", pid="other"), limit=10)


def test_a_full_room_refuses_newcomers() -> None:
    # Capacity counts everyone but the facilitators: Alice fills a room of one.
    session = with_people(new_session(), person("Fay", "facilitator"), person("Alice"))
    with pytest.raises(RuleError) as caught:
        rules.join(session, person("Bob"), limit=1)
    assert str(caught.value) == "This session is full (1 people); ask the facilitator."
    assert len(session.participants) == 2
    assert rules.join(session, person("Bob"), limit=2).participant("bob") is not None


def test_a_facilitator_gets_into_a_full_room() -> None:
    session = with_people(new_session(), person("Alice"), person("Bob"))
    joined = rules.join(session, person("Fay", "facilitator"), limit=2)
    assert joined.participant("fay") is not None
    # ...and still does not take a seat from anyone else.
    with pytest.raises(RuleError, match="full"):
        rules.join(joined, person("Carol"), limit=2)


def test_spectators_count_towards_the_room_limit() -> None:
    session = with_people(new_session(), person("Watcher", "spectator"))
    with pytest.raises(RuleError, match="full"):
        rules.join(session, person("Bob"), limit=1)


def test_a_finished_session_takes_only_spectators() -> None:
    session = control(team("Alice"), "finish")
    with pytest.raises(RuleError) as caught:
        rules.join(session, person("Bob"), limit=10)
    assert "finished" in str(caught.value)
    with pytest.raises(RuleError, match="finished"):
        rules.join(session, person("Boss", "facilitator"), limit=10)
    watched = rules.join(session, person("Carol", "spectator"), limit=10)
    assert [p.name for p in watched.participants] == ["Fay", "Alice", "Carol"]
    assert len(session.participants) == 2


def test_find_by_token_recognises_a_returning_participant() -> None:
    session = team("Alice")
    alice = session.participant("alice")
    assert alice is not None
    assert rules.find_by_token(session, alice.token_hash) == alice
    assert rules.find_by_token(session, "0" * 64) is None


# --- presence


def member(session: Session, participant_id: str) -> Participant:
    found = session.participant(participant_id)
    assert found is not None, participant_id
    return found


def test_attach_marks_a_participant_online() -> None:
    session = team("Alice")
    assert member(session, "alice").online is False
    online = rules.attach(session, "alice", "sid-1")
    alice = online.participant("alice")
    assert alice is not None
    assert alice.online
    assert alice.sids == ("sid-1",)
    assert member(online, "fay").online is False


def test_one_person_may_have_several_sockets() -> None:
    session = rules.attach(rules.attach(team("Alice"), "alice", "tab-1"), "alice", "tab-2")
    assert member(session, "alice").sids == ("tab-1", "tab-2")
    assert len(session.participants) == 2  # the same person, not a duplicate
    one_left = rules.detach(session, "alice", "tab-1", NOW)
    alice = one_left.participant("alice")
    assert alice is not None
    assert alice.online
    assert alice.sids == ("tab-2",)
    gone = rules.detach(one_left, "alice", "tab-2", NOW)
    assert member(gone, "alice").online is False
    assert gone.participant("alice") is not None  # offline, but still part of the session


def test_attach_can_promote_to_facilitator_and_otherwise_keeps_the_role() -> None:
    session = team("Alice")
    kept = rules.attach(session, "alice", "sid-1")
    assert member(kept, "alice").role == "voter"
    promoted = rules.attach(session, "alice", "sid-2", "facilitator")
    assert member(promoted, "alice").role == "facilitator"


def test_attach_refuses_someone_who_is_not_in_the_session() -> None:
    session = team("Alice")
    with pytest.raises(RuleError, match="not part of this session"):
        rules.attach(session, "mallory", "sid-1")
    assert [p.id for p in session.participants] == ["fay", "alice"]


def test_detach_of_an_unknown_socket_or_person_changes_nothing() -> None:
    session = rules.attach(team("Alice"), "alice", "sid-1")
    assert rules.detach(session, "alice", "sid-other", NOW) is session
    assert rules.detach(session, "mallory", "sid-1", NOW) is session


# --- voting


def open_case(*voters: str, case: str = "realtime") -> Session:
    return control(team(*voters), "open", case)


def ballots(session: Session, case_id: str = "realtime") -> dict[str, int | None]:
    case = session.case(case_id)
    assert case is not None
    return dict(case.ballots)


def test_a_vote_on_an_open_case_is_recorded() -> None:
    session = rules.vote(open_case("Alice"), "alice", "realtime", 3)
    assert ballots(session) == {"alice": 3}


def test_the_facilitator_votes_too() -> None:
    session = rules.vote(open_case("Alice"), "fay", "realtime", 0)
    assert ballots(session) == {"fay": 0}


def test_abstaining_is_a_ballot_without_a_score() -> None:
    session = rules.vote(open_case("Alice"), "alice", "realtime", None)
    assert ballots(session) == {"alice": None}
    assert "alice" in ballots(session)


def test_a_vote_can_be_changed_until_the_reveal() -> None:
    session = rules.vote(open_case("Alice"), "alice", "realtime", 1)
    session = rules.vote(session, "alice", "realtime", 4)
    assert ballots(session) == {"alice": 4}
    session = rules.vote(session, "alice", "realtime", None)
    assert ballots(session) == {"alice": None}
    session = rules.vote(session, "alice", "realtime", 2)
    assert ballots(session) == {"alice": 2}


@pytest.mark.parametrize("score", [0, 2, 4, None])
def test_casting_the_same_vote_again_changes_nothing(score: int | None) -> None:
    session = rules.vote(open_case("Alice"), "alice", "realtime", score)
    assert rules.vote(session, "alice", "realtime", score) is session


def test_abstaining_differs_from_scoring_zero() -> None:
    session = rules.vote(open_case("Alice"), "alice", "realtime", 0)
    changed = rules.vote(session, "alice", "realtime", None)
    assert changed is not session
    assert ballots(changed) == {"alice": None}


def test_ballots_on_one_case_leave_other_cases_alone() -> None:
    session = control(open_case("Alice"), "open", "performance")
    session = rules.vote(session, "alice", "performance", 4)
    assert ballots(session, "performance") == {"alice": 4}
    assert ballots(session, "realtime") == {}


def _refused_vote(
    session: Session, participant: str, case_id: str, score: int | None, message: str
) -> None:
    with pytest.raises(RuleError) as caught:
        rules.vote(session, participant, case_id, score)
    assert str(caught.value) == message


def test_a_pending_case_takes_no_votes() -> None:
    session = team("Alice")
    _refused_vote(session, "alice", "realtime", 3, "Voting on this case has not started yet.")
    assert ballots(session) == {}


def test_a_revealed_case_takes_no_votes() -> None:
    session = scored(team("Alice"), "realtime", {"alice": 2})
    _refused_vote(session, "alice", "realtime", 4, "Voting on this case is closed.")
    assert ballots(session) == {"alice": 2}


def test_a_locked_case_takes_no_votes() -> None:
    session = control(scored(team("Alice"), "realtime", {"alice": 2}), "lock", "realtime")
    _refused_vote(session, "alice", "realtime", 4, "Voting on this case is closed.")
    assert ballots(session) == {"alice": 2}


def test_a_vote_on_an_unknown_case_is_refused() -> None:
    session = open_case("Alice")
    _refused_vote(session, "alice", "cobol", 3, "There is no case 'cobol' in this session.")
    assert all(not c.ballots for c in session.cases)


def test_spectators_cannot_vote() -> None:
    session = with_people(open_case("Alice"), person("Watcher", "spectator"))
    _refused_vote(session, "watcher", "realtime", 3, "Spectators watch without voting.")
    assert ballots(session) == {}


def test_a_stranger_cannot_vote() -> None:
    session = open_case("Alice")
    _refused_vote(
        session,
        "mallory",
        "realtime",
        3,
        "You are not part of this session any more; please join again.",
    )
    assert ballots(session) == {}


# --- facilitator controls


def _refused(session: Session, action: str, case_id: str | None, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        control(session, action, case_id)
    assert str(caught.value) == message


@pytest.mark.parametrize("action", rules.ACTIONS)
def test_only_the_facilitator_steers_the_session(action: str) -> None:
    session = cast(open_case("Alice"), "realtime", {"alice": 3})
    for who in ("alice", "mallory"):
        with pytest.raises(RuleError) as caught:
            rules.control(session, who, action, "realtime")
        assert str(caught.value) == "Only the facilitator can do that."
    watched = with_people(session, person("Watcher", "spectator"))
    with pytest.raises(RuleError, match="Only the facilitator"):
        rules.control(watched, "watcher", action, "realtime")
    assert session.case("realtime") == CaseState(
        id="realtime", status="voting", ballots={"alice": 3}
    )


def test_an_unknown_action_is_refused() -> None:
    session = team("Alice")
    _refused(session, "explode", "realtime", "Unknown action 'explode'.")
    assert all(c.status == "pending" for c in session.cases)


@pytest.mark.parametrize("action", sorted(rules.CASE_ACTIONS))
def test_a_case_action_needs_a_case(action: str) -> None:
    session = team("Alice")
    _refused(session, action, None, f"Say which case to {action}.")


@pytest.mark.parametrize("action", sorted(rules.CASE_ACTIONS))
def test_a_case_action_on_an_unknown_case_is_refused(action: str) -> None:
    session = team("Alice")
    _refused(session, action, "cobol", "There is no case 'cobol' in this session.")


def status_after(session: Session, case_id: str = "realtime") -> str:
    case = session.case(case_id)
    assert case is not None
    return case.status


def in_status(status: str) -> Session:
    """A session whose `realtime` case is in `status`, with Alice's ballot of 3 if voted."""
    session = team("Alice")
    if status == "pending":
        return session
    session = cast(control(session, "open", "realtime"), "realtime", {"alice": 3})
    if status == "voting":
        return session
    session = control(session, "reveal", "realtime")
    if status == "revealed":
        return session
    return control(session, "lock", "realtime")


# Rule table: (action, starting status) -> resulting status, or the refusal message.
ALLOWED = [
    ("open", "pending", "voting"),
    ("reveal", "voting", "revealed"),
    ("revote", "revealed", "voting"),
    ("lock", "voting", "locked"),
    ("lock", "revealed", "locked"),
]
OPEN_REFUSED = "This case is already open or done; use re-vote to score it again."
REVEAL_REFUSED = "Only a case that is being voted on can be revealed."
REVOTE_REFUSED = "Only a revealed case can be voted on again."
LOCK_REFUSED = "Only an open or revealed case can be locked."
REFUSED = [
    ("open", "voting", OPEN_REFUSED),
    ("open", "revealed", OPEN_REFUSED),
    ("open", "locked", OPEN_REFUSED),
    ("reveal", "pending", REVEAL_REFUSED),
    ("reveal", "revealed", REVEAL_REFUSED),
    ("reveal", "locked", REVEAL_REFUSED),
    ("revote", "pending", REVOTE_REFUSED),
    ("revote", "voting", REVOTE_REFUSED),
    ("revote", "locked", "This question is locked: its result is final."),
    ("lock", "pending", LOCK_REFUSED),
    ("lock", "locked", LOCK_REFUSED),
]


@pytest.mark.parametrize(("action", "start", "end"), ALLOWED)
def test_allowed_case_transitions(action: str, start: str, end: str) -> None:
    session = in_status(start)
    after = control(session, action, "realtime")
    assert status_after(after) == end
    assert status_after(session) == start
    # Only the named case moves.
    assert all(c.status == "pending" for c in after.cases if c.id != "realtime")


@pytest.mark.parametrize(("action", "start", "message"), REFUSED)
def test_refused_case_transitions(action: str, start: str, message: str) -> None:
    session = in_status(start)
    before = session.case("realtime")
    _refused(session, action, "realtime", message)
    assert session.case("realtime") == before


def test_reveal_keeps_the_ballots() -> None:
    session = control(in_status("voting"), "reveal", "realtime")
    assert ballots(session) == {"alice": 3}


def test_open_all_opens_every_waiting_case_only() -> None:
    session = scored(team("Alice"), "realtime", {"alice": 4})
    opened = control(session, "open_all")
    assert status_after(opened, "realtime") == "revealed"
    assert all(c.status == "voting" for c in opened.cases if c.id != "realtime")
    _refused(opened, "open_all", None, "No case is waiting.")


def test_reveal_all_reveals_every_open_case_only() -> None:
    session = control(control(team("Alice"), "open", "realtime"), "open", "prototype")
    revealed = control(session, "reveal_all")
    assert status_after(revealed, "realtime") == "revealed"
    assert status_after(revealed, "prototype") == "revealed"
    assert status_after(revealed, "performance") == "pending"
    _refused(revealed, "reveal_all", None, "No case is being voted on.")
    _refused(team("Alice"), "reveal_all", None, "No case is being voted on.")


def test_revote_keeps_the_old_round_and_starts_an_empty_one() -> None:
    session = scored(team("Alice", "Bob"), "realtime", {"alice": 4, "bob": 0, "fay": None})
    again = control(session, "revote", "realtime")
    case = again.case("realtime")
    assert case is not None
    assert case.status == "voting"
    assert case.round == 2
    assert case.ballots == {}
    assert len(case.history) == 1
    past = case.history[0]
    assert (past.round, past.status) == (1, "revealed")
    assert past.ballots == {"alice": 4, "bob": 0, "fay": None}
    # Voting in the new round does not touch the old one.
    again = rules.vote(again, "alice", "realtime", 2)
    case = again.case("realtime")
    assert case is not None
    assert case.ballots == {"alice": 2}
    assert case.history[0].ballots == {"alice": 4, "bob": 0, "fay": None}


def test_a_second_revote_keeps_both_rounds() -> None:
    session = scored(team("Alice"), "realtime", {"alice": 4})
    session = control(
        cast(control(session, "revote", "realtime"), "realtime", {"alice": 1}), "reveal", "realtime"
    )
    session = control(session, "revote", "realtime")
    case = session.case("realtime")
    assert case is not None
    assert case.round == 3
    assert [(r.round, r.status, r.ballots) for r in case.history] == [
        (1, "revealed", {"alice": 4}),
        (2, "revealed", {"alice": 1}),
    ]


def test_a_locked_result_is_final() -> None:
    session = control(scored(team("Alice"), "realtime", {"alice": 4}), "lock", "realtime")
    with pytest.raises(RuleError, match="locked: its result is final"):
        control(session, "revote", "realtime")


def test_lock_freezes_a_case() -> None:
    session = control(in_status("revealed"), "lock", "realtime")
    assert status_after(session) == "locked"
    assert ballots(session) == {"alice": 3}
    _refused_vote(session, "alice", "realtime", 1, "Voting on this case is closed.")


def test_finish_locks_open_and_revealed_cases_and_leaves_waiting_ones() -> None:
    session = scored(team("Alice"), "realtime", {"alice": 4})
    session = cast(control(session, "open", "prototype"), "prototype", {"alice": 1})
    finished = control(session, "finish")
    assert finished.status == "finished"
    assert status_after(finished, "realtime") == "locked"
    assert status_after(finished, "prototype") == "locked"
    assert status_after(finished, "performance") == "pending"
    assert ballots(finished, "prototype") == {"alice": 1}
    assert session.status == "active"


def test_a_finished_session_takes_no_votes() -> None:
    session = control(cast(open_case("Alice"), "realtime", {"alice": 2}), "finish")
    _refused_vote(session, "alice", "realtime", 4, "This session has finished; votes are closed.")
    assert ballots(session) == {"alice": 2}


@pytest.mark.parametrize(
    ("action", "case_id"),
    [
        ("open", "prototype"),
        ("open_all", None),
        ("reveal", "realtime"),
        ("reveal_all", None),
        ("revote", "realtime"),
        ("lock", "realtime"),
        ("finish", None),
    ],
)
def test_a_finished_session_takes_no_more_controls(action: str, case_id: str | None) -> None:
    session = control(scored(team("Alice"), "realtime", {"alice": 2}), "finish")
    _refused(session, action, case_id, "This session has finished.")
    assert status_after(session, "realtime") == "locked"
    assert status_after(session, "prototype") == "pending"


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("Ana\u00a0Lopez", "Ana Lopez"),  # a no-break space is folded into a plain one
        ("  Ana    Lopez ", "Ana Lopez"),
        (
            "\U0001f468\u200d\U0001f469\u200d\U0001f467",
            "\U0001f468\u200d\U0001f469\u200d\U0001f467",
        ),
        ("Zoë", "Zoë"),
    ],
)
def test_clean_name_keeps_real_names(raw: str, kept: str) -> None:
    assert rules.clean_name(raw) == kept


@pytest.mark.parametrize("raw", ["Ann\u202eeve", "A\u200bnn", "Ann\ufeff"])
def test_clean_name_refuses_invisible_lookalikes(raw: str) -> None:
    # Direction overrides and zero-width characters let one name pass for another.
    with pytest.raises(RuleError, match="invisible"):
        rules.clean_name(raw)


def _open_team() -> Session:
    return rules.control(team("Ann"), "fay", "open_all", None)


def test_a_retried_vote_counts_once_and_the_newest_wins() -> None:
    session = rules.vote(_open_team(), "ann", "realtime", 1, client="tab-aaaa", seq=1)
    newer = rules.vote(session, "ann", "realtime", 3, client="tab-aaaa", seq=2)
    # The first vote arrives again (its ack was lost): nothing changes, 3 stays.
    assert rules.vote(newer, "ann", "realtime", 1, client="tab-aaaa", seq=1) is newer
    assert rules.vote(newer, "ann", "realtime", 3, client="tab-aaaa", seq=2) is newer
    assert case_in(newer, "realtime").ballots == {"ann": 3}


def test_a_retry_after_the_case_closed_is_acknowledged_not_refused() -> None:
    voted = rules.vote(_open_team(), "ann", "realtime", 2, client="tab-aaaa", seq=7)
    revealed = rules.control(voted, "fay", "reveal", "realtime")
    assert rules.vote(revealed, "ann", "realtime", 2, client="tab-aaaa", seq=7) is revealed


def test_an_old_retry_never_lands_in_a_new_round() -> None:
    voted = rules.vote(_open_team(), "ann", "realtime", 2, client="tab-aaaa", seq=3)
    again = rules.control(
        rules.control(voted, "fay", "reveal", "realtime"), "fay", "revote", "realtime"
    )
    assert rules.vote(again, "ann", "realtime", 2, client="tab-aaaa", seq=3) is again
    assert case_in(again, "realtime").ballots == {}
    with pytest.raises(RuleError, match="new round"):
        rules.vote(again, "ann", "realtime", 1, client="tab-aaaa", seq=4, round=1)
    fresh_vote = rules.vote(again, "ann", "realtime", 1, client="tab-aaaa", seq=4, round=2)
    assert case_in(fresh_vote, "realtime").ballots == {"ann": 1}


def test_another_tab_of_the_same_person_is_another_client() -> None:
    session = rules.vote(_open_team(), "ann", "realtime", 4, client="tab-aaaa", seq=9)
    other = rules.vote(session, "ann", "realtime", 0, client="tab-bbbb", seq=1)
    assert case_in(other, "realtime").ballots == {"ann": 0}


# --- anonymous sessions in open mode: live results in steps of at least three people


def anonymous_open(voters: int) -> Session:
    names = [f"V{n}" for n in range(voters)]
    session = team(*names, mode="open", anonymous=True)
    return control(session, "open", "realtime")


@settings(max_examples=200, deadline=None)
@given(
    votes=st.lists(
        st.tuples(st.integers(0, 7), st.integers(0, 4) | st.none()), min_size=1, max_size=30
    )
)
def test_anonymous_live_results_move_in_steps_of_three_people_or_more(
    votes: list[tuple[int, int | None]],
) -> None:
    session = anonymous_open(8)
    pending: set[str] = set()
    shown_before: dict[str, int | None] = {}
    for voter, score in votes:
        before = case_in(session, "realtime").ballots
        session = rules.vote(session, f"v{voter}", "realtime", score)
        case = case_in(session, "realtime")
        if case.ballots != before:
            pending.add(f"v{voter}")
        if case.shown != shown_before:
            # A step: everything that changed since the last one, from at least 3 people.
            assert len(pending) >= 3
            assert case.shown == case.ballots
            pending.clear()
        assert set(case.unshown) == pending
        shown_before = dict(case.shown)


def test_changing_ones_own_score_again_does_not_make_a_step() -> None:
    session = anonymous_open(4)
    for score in (0, 1, 2, 3, 4, 0):
        session = rules.vote(session, "v0", "realtime", score)
    session = rules.vote(session, "v1", "realtime", 1)
    case = case_in(session, "realtime")
    assert case.shown == {} and case.unshown == ("v0", "v1")
    session = rules.vote(session, "v2", "realtime", 2)
    case = case_in(session, "realtime")
    assert case.shown == {"v0": 0, "v1": 1, "v2": 2} and case.unshown == ()


@pytest.mark.parametrize("mode", ["hidden", "open"])
def test_an_anonymous_session_keeps_the_ballots_of_people_who_go(mode: str) -> None:
    session = control(team("Ann", "Ben", mode=mode, anonymous=True), "open", "realtime")
    session = rules.vote(session, "ann", "realtime", 4)
    # Refused for Ann, who voted, and for Ben, who did not: the answer tells nothing.
    for whom in ("ann", "ben"):
        with pytest.raises(RuleError, match="votes stay counted"):
            rules.remove(session, FACILITATOR, whom, keep_ballots=False)
        with pytest.raises(RuleError, match="votes stay counted"):
            rules.leave(session, whom, keep_ballots=False)
    kept = rules.remove(session, FACILITATOR, "ann", keep_ballots=True)
    assert case_in(kept, "realtime").ballots == {"ann": 4}
    # With nothing being voted on, there is nothing to take out: going is allowed either way.
    closed = control(session, "lock", "realtime")
    assert rules.leave(closed, "ben", keep_ballots=False).participant("ben") is None


def test_a_new_round_starts_with_nothing_shown() -> None:
    session = anonymous_open(4)
    for n in range(4):
        session = rules.vote(session, f"v{n}", "realtime", n)
    session = control(control(session, "reveal", "realtime"), "revote", "realtime")
    case = case_in(session, "realtime")
    assert (case.shown, case.unshown, case.ballots) == ({}, (), {})


def test_sessions_that_are_not_anonymous_and_open_keep_no_batches() -> None:
    for options in ({"mode": "open"}, {"anonymous": True}):
        session = control(team("Ann", "Ben", **options), "open", "realtime")
        session = rules.vote(rules.vote(session, "ann", "realtime", 1), "ben", "realtime", 2)
        assert case_in(session, "realtime").unshown == ()


# --- reasons


def test_a_reason_is_kept_with_the_ballot() -> None:
    session = rules.vote(open_case("Alice"), "alice", "realtime", 3, reason="Live dashboards")
    case = case_in(session, "realtime")
    assert (case.ballots, case.reasons) == ({"alice": 3}, {"alice": "Live dashboards"})


def test_a_vote_without_a_reason_leaves_none() -> None:
    session = rules.vote(open_case("Alice"), "alice", "realtime", 3, reason="Live dashboards")
    session = rules.vote(session, "alice", "realtime", 2)
    assert case_in(session, "realtime").reasons == {}


def test_changing_only_the_reason_is_a_change_and_the_same_reason_is_not() -> None:
    session = rules.vote(open_case("Alice"), "alice", "realtime", 3, reason="one")
    assert rules.vote(session, "alice", "realtime", 3, reason="one") is session
    changed = rules.vote(session, "alice", "realtime", 3, reason="two")
    assert case_in(changed, "realtime").reasons == {"alice": "two"}
    assert case_in(changed, "realtime").ballots is case_in(session, "realtime").ballots


def test_an_abstention_may_carry_a_reason() -> None:
    session = rules.vote(open_case("Alice"), "alice", "realtime", None, reason="Not my area")
    assert case_in(session, "realtime").reasons == {"alice": "Not my area"}


def test_a_revote_keeps_the_reasons_with_their_round() -> None:
    session = rules.vote(open_case("Alice"), "alice", "realtime", 4, reason="chat is core")
    session = control(control(session, "reveal", "realtime"), "revote", "realtime")
    case = case_in(session, "realtime")
    assert case.reasons == {}
    assert case.history[0].reasons == {"alice": "chat is core"}


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (None, None),
        ("", None),
        ("   \n ", None),
        ("  we  ship\nweekly  ", "we ship weekly"),
        ("<b>not markup</b> & co", "<b>not markup</b> & co"),
        ("e\u0301", "\u00e9"),
        ("x" * 280, "x" * 280),
    ],
)
def test_clean_reason_folds_spaces_and_keeps_text_literally(
    raw: str | None, clean: str | None
) -> None:
    assert rules.clean_reason(raw) == clean


@pytest.mark.parametrize("raw", ["a\x00b", "a\u202eb", "a\u200bb"])
def test_clean_reason_refuses_invisible_characters(raw: str) -> None:
    with pytest.raises(RuleError, match="invisible"):
        rules.clean_reason(raw)


def test_clean_reason_refuses_more_than_280_characters() -> None:
    with pytest.raises(RuleError, match="at most 280"):
        rules.clean_reason("x" * 281)


# --- countdowns

NOW = 5_000.0


def counting_down(seconds: int = 60, case_id: str | None = "realtime") -> Session:
    session = control(control(team("Alice", "Bob"), "open", "realtime"), "open", "prototype")
    return rules.countdown(session, "fay", case_id, seconds, NOW)


def test_a_countdown_sets_the_deadline_of_one_case() -> None:
    session = counting_down(60)
    assert case_in(session, "realtime").deadline == NOW + 60
    assert case_in(session, "prototype").deadline is None
    assert rules.next_deadline(session) == NOW + 60


def test_a_countdown_without_a_case_covers_every_case_being_voted_on() -> None:
    session = counting_down(90, None)
    deadlines = {c.id: c.deadline for c in session.cases}
    assert deadlines["realtime"] == deadlines["prototype"] == NOW + 90
    assert all(d is None for c, d in deadlines.items() if c not in ("realtime", "prototype"))


def test_a_new_countdown_replaces_the_running_one_and_zero_stops_it() -> None:
    session = rules.countdown(counting_down(60), "fay", "realtime", 30, NOW + 10)
    assert case_in(session, "realtime").deadline == NOW + 40
    stopped = rules.countdown(session, "fay", "realtime", 0, NOW + 11)
    assert case_in(stopped, "realtime").deadline is None
    assert rules.next_deadline(stopped) is None


def test_votes_count_until_the_deadline_and_are_refused_from_it() -> None:
    session = counting_down(60)
    counted = rules.vote(session, "alice", "realtime", 3, now=NOW + 59.9)
    assert ballots(counted) == {"alice": 3}
    for late in (NOW + 60, NOW + 3600):
        with pytest.raises(RuleError) as caught:
            rules.vote(counted, "bob", "realtime", 1, now=late)
        assert str(caught.value) == rules.TIME_UP
    # Other cases keep taking votes.
    assert ballots(rules.vote(counted, "bob", "prototype", 1, now=NOW + 61), "prototype") == {
        "bob": 1
    }


def test_a_vote_retried_after_the_deadline_is_acknowledged_not_refused() -> None:
    session = rules.vote(counting_down(60), "alice", "realtime", 3, client="tab-aaaa", seq=1)
    again = rules.vote(session, "alice", "realtime", 3, client="tab-aaaa", seq=1, now=NOW + 61)
    assert again is session


def test_closing_reveals_the_overdue_cases_only_and_clears_their_deadline() -> None:
    session = rules.countdown(counting_down(60), "fay", "prototype", 120, NOW)
    assert rules.close_overdue(session, NOW + 59) is session
    closed = rules.close_overdue(session, NOW + 60)
    assert (status_after(closed), case_in(closed, "realtime").deadline) == ("revealed", None)
    assert status_after(closed, "prototype") == "voting"
    assert rules.next_deadline(closed) == NOW + 120


def test_closing_is_idempotent() -> None:
    closed = rules.close_overdue(counting_down(60), NOW + 61)
    assert rules.close_overdue(closed, NOW + 61) is closed
    assert rules.close_overdue(closed, NOW + 999) is closed


def test_a_case_that_leaves_voting_leaves_its_countdown() -> None:
    for action in ("reveal", "lock"):
        assert case_in(control(counting_down(), action, "realtime"), "realtime").deadline is None
    finished = control(counting_down(60, None), "finish")
    assert rules.next_deadline(finished) is None
    assert rules.close_overdue(finished, NOW + 61) is finished
    again = control(control(counting_down(), "reveal", "realtime"), "revote", "realtime")
    assert case_in(again, "realtime").deadline is None


@pytest.mark.parametrize(
    ("case_id", "seconds", "message"),
    [
        ("performance", 60, "Only a case that is being voted on can have a countdown."),
        ("cobol", 60, "There is no case 'cobol' in this session."),
        ("realtime", -1, "A countdown lasts from 1 to 86400 seconds (0 stops it)."),
        ("realtime", 86_401, "A countdown lasts from 1 to 86400 seconds (0 stops it)."),
    ],
)
def test_refused_countdowns(case_id: str, seconds: int, message: str) -> None:
    session = counting_down()
    with pytest.raises(RuleError) as caught:
        rules.countdown(session, "fay", case_id, seconds, NOW)
    assert str(caught.value) == message


def test_only_the_facilitator_starts_a_countdown() -> None:
    with pytest.raises(RuleError, match="Only the facilitator"):
        rules.countdown(counting_down(), "alice", "realtime", 60, NOW)
    with pytest.raises(RuleError, match="No case is being voted on"):
        rules.countdown(team("Alice"), "fay", None, 60, NOW)


# --- auto-reveal


def here(session: Session, *people: str) -> Session:
    for pid in people:
        session = rules.attach(session, pid, f"sid-{pid}")
    return session


def auto(*voters: str, online: tuple[str, ...] = ()) -> Session:
    session = here(open_case(*voters), *online)
    return rules.set_auto_reveal(session, "fay", True)


def test_auto_reveal_reveals_when_the_last_present_voter_votes() -> None:
    session = auto("Ann", "Ben", online=("fay", "ann", "ben"))
    session = rules.vote(session, "fay", "realtime", 2)
    session = rules.vote(session, "ann", "realtime", 3)
    assert status_after(session) == "voting"
    done = rules.vote(session, "ben", "realtime", None)
    assert status_after(done) == "revealed"
    assert ballots(done) == {"fay": 2, "ann": 3, "ben": None}


def test_an_absent_voter_does_not_hold_the_case_open() -> None:
    # Ben is listed but offline: the two who are here decide.
    session = auto("Ann", "Ben", online=("fay", "ann"))
    session = rules.vote(rules.vote(session, "fay", "realtime", 1), "ann", "realtime", 2)
    assert status_after(session) == "revealed"


def test_a_present_voter_who_has_not_voted_holds_it_open() -> None:
    session = auto("Ann", "Ben", online=("fay", "ann", "ben"))
    session = rules.vote(rules.vote(session, "fay", "realtime", 1), "ann", "realtime", 2)
    assert status_after(session) == "voting"


def test_spectators_are_not_waited_for() -> None:
    session = with_people(open_case("Ann"), person("Watcher", "spectator"))
    session = rules.set_auto_reveal(here(session, "fay", "ann", "watcher"), "fay", True)
    session = rules.vote(rules.vote(session, "fay", "realtime", 1), "ann", "realtime", 2)
    assert status_after(session) == "revealed"


def test_the_last_one_who_had_not_voted_going_offline_is_still_waited_for() -> None:
    session = auto("Ann", "Ben", online=("fay", "ann", "ben"))
    session = rules.vote(rules.vote(session, "fay", "realtime", 1), "ann", "realtime", 2)
    # A connection that blinks reveals nothing ...
    blinked = rules.detach(session, "ben", "sid-ben", NOW)
    assert status_after(blinked) == "voting"
    assert member(blinked, "ben").offline_since == NOW
    assert status_after(rules.mark_away(blinked, NOW + AWAY - 1, AWAY)) == "voting"
    # ... being away long enough does.
    gone = rules.mark_away(blinked, NOW + AWAY, AWAY)
    assert member(gone, "ben").away
    assert status_after(gone) == "revealed"
    # An instance that stopped: its sockets go all at once, with the same effect.
    dropped = rules.drop_sockets(session, "sid-b", NOW)
    assert status_after(dropped) == "voting"
    assert status_after(rules.mark_away(dropped, NOW + AWAY, AWAY)) == "revealed"


AWAY = 120.0


def test_away_is_marked_after_the_time_offline_and_lifted_on_return() -> None:
    session = here(team("Ann", "Ben"), "fay", "ann", "ben")
    session = rules.detach(session, "ann", "sid-ann", NOW)
    session = rules.detach(session, "ben", "sid-ben", NOW + 30)
    assert rules.next_away(session, AWAY) == NOW + AWAY
    assert rules.mark_away(session, NOW + AWAY - 0.001, AWAY) is session
    first = rules.mark_away(session, NOW + AWAY, AWAY)
    assert [p.id for p in first.participants if p.away] == ["ann"]
    # The same change again (another instance's timer) changes nothing.
    assert rules.mark_away(first, NOW + AWAY, AWAY) is first
    assert rules.next_away(first, AWAY) == NOW + 30 + AWAY
    both = rules.mark_away(first, NOW + 30 + AWAY, AWAY)
    assert [p.id for p in both.participants if p.away] == ["ann", "ben"]
    assert rules.next_away(both, AWAY) is None
    back = rules.attach(both, "ann", "sid-ann-2")
    ann = member(back, "ann")
    assert (ann.away, ann.offline_since, ann.online) == (False, None, True)


def test_a_second_tab_keeps_someone_here_and_zero_never_marks_anyone_away() -> None:
    session = rules.attach(here(team("Ann"), "fay", "ann"), "ann", "sid-ann-2")
    one_tab = rules.detach(session, "ann", "sid-ann", NOW)
    assert member(one_tab, "ann").offline_since is None
    assert rules.mark_away(one_tab, NOW + 10 * AWAY, AWAY) is one_tab
    offline = rules.detach(one_tab, "ann", "sid-ann-2", NOW)
    assert rules.next_away(offline, 0) is None
    assert rules.mark_away(offline, NOW + 10**9, 0) is offline


def test_people_whose_going_offline_was_never_recorded_are_away_at_once() -> None:
    # Sessions stored before the time was kept: nobody knows how long they have been gone.
    session = here(team("Ann"), "fay")
    assert rules.next_away(session, AWAY) == AWAY
    marked = rules.mark_away(session, NOW, AWAY)
    assert [p.id for p in marked.participants if p.away] == ["ann"]


def test_an_away_voter_is_not_waited_for_and_is_again_once_back() -> None:
    session = auto("Ann", "Ben", online=("fay", "ann", "ben"))
    session = rules.detach(session, "ben", "sid-ben", NOW)
    session = rules.mark_away(session, NOW + AWAY, AWAY)
    session = rules.vote(session, "fay", "realtime", 1)
    back = rules.attach(session, "ben", "sid-ben")
    assert status_after(rules.vote(back, "ann", "realtime", 2)) == "voting"
    assert status_after(rules.vote(session, "ann", "realtime", 2)) == "revealed"


def test_someone_coming_back_online_is_waited_for_again() -> None:
    session = auto("Ann", "Ben", online=("fay", "ann"))
    session = rules.vote(session, "fay", "realtime", 1)
    session = rules.attach(session, "ben", "sid-ben")
    session = rules.vote(session, "ann", "realtime", 2)
    assert status_after(session) == "voting"
    assert status_after(rules.vote(session, "ben", "realtime", 0)) == "revealed"


def test_nobody_here_means_nothing_is_revealed() -> None:
    session = auto("Ann")
    assert status_after(session) == "voting"
    assert status_after(rules.vote(session, "ann", "realtime", 3)) == "voting"


def test_turning_auto_reveal_on_reveals_what_is_already_complete() -> None:
    session = here(control(open_case("Ann"), "open", "prototype"), "fay", "ann")
    session = cast(session, "realtime", {"fay": 1, "ann": 2})
    session = cast(session, "prototype", {"fay": 1})
    on = rules.set_auto_reveal(session, "fay", True)
    assert (status_after(on), status_after(on, "prototype")) == ("revealed", "voting")
    assert rules.set_auto_reveal(on, "fay", True) is on


def test_without_auto_reveal_everyone_voting_changes_nothing_else() -> None:
    session = here(open_case("Ann"), "fay", "ann")
    session = cast(session, "realtime", {"fay": 1, "ann": 2})
    assert status_after(session) == "voting"


def test_only_the_facilitator_switches_auto_reveal() -> None:
    with pytest.raises(RuleError, match="Only the facilitator"):
        rules.set_auto_reveal(team("Ann"), "ann", True)


def test_auto_reveal_reveals_each_case_on_its_own() -> None:
    session = here(control(open_case("Ann"), "open", "prototype"), "fay", "ann")
    session = rules.set_auto_reveal(session, "fay", True)
    session = cast(session, "prototype", {"fay": 1, "ann": 2})
    assert (status_after(session), status_after(session, "prototype")) == ("voting", "revealed")


# --- handing over


def test_hand_over_moves_the_facilitator_role() -> None:
    session = here(team("Ann", "Ben"), "ann")
    handed = rules.hand_over(session, "fay", "ann")
    roles = {p.id: p.role for p in handed.participants}
    assert roles == {"fay": "voter", "ann": "facilitator", "ben": "voter"}
    # The new facilitator steers at once; the old one no longer can.
    assert status_after(control_by(handed, "ann", "open", "realtime")) == "voting"
    with pytest.raises(RuleError, match="Only the facilitator"):
        control_by(handed, "fay", "open", "realtime")


def control_by(session: Session, who: str, action: str, case_id: str | None = None) -> Session:
    return rules.control(session, who, action, case_id)


def test_hand_over_stops_the_facilitator_link() -> None:
    session = here(team("Ann"), "ann")
    link = session.facilitator_hash
    rules.check_link(session, link)
    assert rules.link_owner(session, link) == member(session, "fay")
    handed = rules.hand_over(session, "fay", "ann")
    assert handed.facilitator_hash == ""
    with pytest.raises(RuleError) as caught:
        rules.check_link(handed, link)
    assert str(caught.value) == rules.LINK_DEAD
    # Ann's own link is made by the instance holding her socket; until then she has none.
    assert member(handed, "ann").link == rules.LINK_PENDING
    assert rules.needs_link(handed, member(handed, "ann"))
    hers = hash_token("ann's link")
    linked = rules.give_link(handed, "ann", hers)
    assert not rules.needs_link(linked, member(linked, "ann"))
    assert rules.link_owner(linked, hers) == member(linked, "ann")
    # Another instance making one too changes nothing: the first one made stays.
    assert rules.give_link(linked, "ann", hash_token("another")) is linked
    with pytest.raises(RuleError, match="no longer gives control"):
        rules.check_link(linked, link)


def test_hand_over_leaves_co_facilitators_in_place() -> None:
    session = here(team("Ann", "Ben"), "ann", "ben")
    both = rules.promote(session, "fay", "ben")
    handed = rules.hand_over(both, "fay", "ann")
    roles = {p.id: p.role for p in handed.participants}
    assert roles == {"fay": "voter", "ann": "facilitator", "ben": "facilitator"}
    with pytest.raises(RuleError) as caught:
        rules.hand_over(handed, "ann", "ben")
    assert str(caught.value) == "Ben is a facilitator already."


def test_hand_over_keeps_everyone_s_ballots() -> None:
    session = here(cast(open_case("Ann"), "realtime", {"fay": 4, "ann": 1}), "ann")
    assert ballots(rules.hand_over(session, "fay", "ann")) == {"fay": 4, "ann": 1}


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("fay", "You are facilitating already."),
        ("mallory", "That person is not part of this session any more."),
        ("ben", "Ben is not connected right now; hand over to someone who is."),
    ],
)
def test_refused_hand_overs(to: str, message: str) -> None:
    session = here(team("Ann", "Ben"), "ann")
    with pytest.raises(RuleError) as caught:
        rules.hand_over(session, "fay", to)
    assert str(caught.value) == message
    with pytest.raises(RuleError, match="Only the facilitator"):
        rules.hand_over(session, "ann", "ann")


# --- co-facilitators


def test_a_promoted_facilitator_steers_too_with_a_link_of_her_own() -> None:
    session = here(team("Ann", "Ben"), "ann")
    first = session.facilitator_hash
    both = rules.promote(session, "fay", "ann")
    assert {p.id: p.role for p in both.participants} == {
        "fay": "facilitator",
        "ann": "facilitator",
        "ben": "voter",
    }
    # Both may steer; Fay's link still names Fay.
    opened = control_by(both, "ann", "open", "realtime")
    assert status_after(control_by(opened, "fay", "reveal", "realtime")) == "revealed"
    assert rules.link_owner(both, first) == member(both, "fay")
    hers = hash_token("ann's link")
    linked = rules.give_link(both, "ann", hers)
    # Ann's link on a new device moves Ann, not Fay.
    moved = rules.take_over(linked, device("tablet"), "sid-tablet", limit=LIMIT, link=hers)
    assert member(moved, "ann").sids == ("sid-tablet",)
    assert member(moved, "fay").token_hash == hash_token("token-fay")
    # A participant's ballots and the capacity: facilitators do not count against it.
    assert rules.promote(both, "ann", "ben").participant("ben") is not None


@pytest.mark.parametrize(
    ("who", "whom", "message"),
    [
        ("ann", "ben", "Only the facilitator can do that."),
        ("fay", "fay", "Fay is a facilitator already."),
        ("fay", "mallory", "That person is not part of this session any more."),
    ],
)
def test_refused_promotions(who: str, whom: str, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        rules.promote(team("Ann", "Ben"), who, whom)
    assert str(caught.value) == message


def test_the_last_facilitator_cannot_be_demoted() -> None:
    session = team("Ann")
    with pytest.raises(RuleError) as caught:
        rules.demote(session, "fay", "fay")
    assert str(caught.value) == (
        "Fay is the only facilitator: make someone else a facilitator first, or hand the "
        "session over."
    )
    with pytest.raises(RuleError, match="Ann is not a facilitator"):
        rules.demote(session, "fay", "ann")
    with pytest.raises(RuleError, match="Only the facilitator"):
        rules.demote(session, "ann", "fay")
    # With two, either may step down or demote the other; then the one left is the last.
    both = rules.give_link(rules.promote(session, "fay", "ann"), "ann", hash_token("ann"))
    down = rules.demote(both, "fay", "ann")
    assert member(down, "ann").role == "voter"
    with pytest.raises(RuleError, match="no longer gives control"):
        rules.check_link(down, hash_token("ann"))
    with pytest.raises(RuleError, match="only facilitator"):
        rules.demote(down, "fay", "fay")


def test_the_first_link_dies_with_its_holder_s_role_and_passes_to_nobody() -> None:
    # Ann joined before the facilitator, so she comes first in the list once promoted.
    session = with_people(new_session(), person("Ann"))
    first = session.facilitator_hash
    session = rules.take_over(session, device("laptop", "Fay"), "sid-1", limit=LIMIT, link=first)
    both = rules.promote(session, "new-laptop", "ann")
    assert rules.link_owner(both, first) == member(both, "new-laptop")
    for gone in (
        rules.demote(both, "ann", "new-laptop"),
        rules.leave(both, "new-laptop", keep_ballots=True),
        rules.remove(both, "ann", "new-laptop", keep_ballots=True),
        rules.hand_over(here(session, "ann"), "new-laptop", "ann"),
    ):
        assert gone.facilitator_hash == ""
        with pytest.raises(RuleError, match="no longer gives control"):
            rules.take_over(gone, device("phone"), "sid-2", limit=LIMIT, link=first)


# --- removing people


def test_remove_takes_the_person_and_their_open_ballots_away() -> None:
    session = scored(team("Ann", "Ben"), "prototype", {"ann": 4, "ben": 2})
    session = rules.vote(open_case_in(session), "ann", "realtime", 3, reason="why not")
    session = rules.vote(session, "ben", "realtime", 1)
    removed = rules.remove(session, "fay", "ann", keep_ballots=False)
    assert removed.participant("ann") is None
    assert [p.id for p in removed.participants] == ["fay", "ben"]
    assert ballots(removed) == {"ben": 1}
    assert case_in(removed, "realtime").reasons == {}
    # A revealed result stays as everyone saw it.
    assert ballots(removed, "prototype") == {"ann": 4, "ben": 2}
    # Their token names nobody any more.
    ann = session.participant("ann")
    assert ann is not None
    assert rules.find_by_token(removed, ann.token_hash) is None


def open_case_in(session: Session, case_id: str = "realtime") -> Session:
    return control(session, "open", case_id)


def test_remove_may_keep_the_ballots() -> None:
    session = cast(open_case("Ann", "Ben"), "realtime", {"ann": 3, "ben": 1})
    removed = rules.remove(session, "fay", "ann", keep_ballots=True)
    assert removed.participant("ann") is None
    assert ballots(removed) == {"ann": 3, "ben": 1}


def test_removing_the_last_one_who_had_not_voted_reveals_with_auto_reveal() -> None:
    session = auto("Ann", "Ben", online=("fay", "ann", "ben"))
    session = rules.vote(rules.vote(session, "fay", "realtime", 1), "ann", "realtime", 2)
    assert status_after(rules.remove(session, "fay", "ben", keep_ballots=False)) == "revealed"


def test_after_a_removal_the_name_is_free_and_joining_appends() -> None:
    session = rules.remove(team("Ann", "Ben"), "fay", "ann", keep_ballots=True)
    again = rules.join(session, person("Ann", pid="ann2"), limit=10)
    assert [p.id for p in again.participants] == ["fay", "ben", "ann2"]
    assert rules.removed_between(session, again) == set()


def test_removed_between_names_whoever_left() -> None:
    session = team("Ann", "Ben", "Cat")
    assert rules.removed_between(session, session) == set()
    joined = rules.join(session, person("Dan"), limit=10)
    assert rules.removed_between(session, joined) == set()
    for whom in ("ann", "cat"):
        gone = rules.remove(joined, "fay", whom, keep_ballots=True)
        assert rules.removed_between(joined, gone) == {whom}
        assert rules.removed_between(session, gone) == {whom}
    both = rules.remove(
        rules.remove(joined, "fay", "ben", keep_ballots=True), "fay", "dan", keep_ballots=True
    )
    assert rules.removed_between(joined, both) == {"ben", "dan"}


@pytest.mark.parametrize(
    ("who", "whom", "message"),
    [
        ("ann", "ben", "Only the facilitator can do that."),
        ("fay", "fay", "You cannot remove yourself; hand the session over first."),
        ("fay", "mallory", "That person is not part of this session any more."),
    ],
)
def test_refused_removals(who: str, whom: str, message: str) -> None:
    session = team("Ann", "Ben")
    with pytest.raises(RuleError) as caught:
        rules.remove(session, who, whom, keep_ballots=False)
    assert str(caught.value) == message


def test_a_finished_session_takes_none_of_the_new_commands() -> None:
    session = control(here(team("Ann"), "ann"), "finish")
    attempts: list[Callable[[], Session]] = [
        lambda: rules.countdown(session, "fay", None, 60, NOW),
        lambda: rules.set_auto_reveal(session, "fay", True),
        lambda: rules.hand_over(session, "fay", "ann"),
        lambda: rules.remove(session, "fay", "ann", keep_ballots=True),
    ]
    for attempt in attempts:
        with pytest.raises(RuleError, match="This session has finished"):
            attempt()


def test_a_link_of_another_session_is_refused() -> None:
    with pytest.raises(RuleError, match="no longer gives control"):
        rules.check_link(team("Ann"), "0" * 64)


# --- the facilitator link on another device


def device(token: str, name: str = "") -> Participant:
    """A device opening the facilitator link, as the server describes it (a fresh id and
    token; the name given, if any)."""
    return Participant(
        id=f"new-{token}", name=name, role="facilitator", token_hash=hash_token(token)
    )


def test_taking_over_moves_the_same_person_to_the_new_device() -> None:
    session = here(cast(open_case("Ann"), "realtime", {"fay": 3, "ann": 1}), "fay", "ann")
    session = rules.vote(session, "fay", "realtime", 3, reason="it must be live")
    link = session.facilitator_hash
    moved = rules.take_over(session, device("phone"), "sid-phone", limit=LIMIT, link=link)
    fay = member(moved, "fay")
    assert [p.id for p in moved.participants] == ["fay", "ann"]
    assert (fay.name, fay.role, fay.sids) == ("Fay", "facilitator", ("sid-phone",))
    assert ballots(moved) == {"fay": 3, "ann": 1}
    assert case_in(moved, "realtime").reasons == {"fay": "it must be live"}
    # The new token names Fay; the old one names nobody.
    assert rules.find_by_token(moved, hash_token("phone")) == fay
    assert rules.find_by_token(moved, hash_token("token-fay")) is None
    assert rules.moved_between(session, moved) == {"fay"}
    # The same change again (a retry, or another instance replaying it) changes nothing.
    again = rules.take_over(moved, device("phone"), "sid-phone", limit=LIMIT, link=link)
    assert again is moved


def test_the_link_joins_as_facilitator_only_while_nobody_facilitates() -> None:
    session = new_session()
    link = session.facilitator_hash
    with pytest.raises(RuleError, match="Please enter a name"):
        rules.take_over(session, device("laptop"), "sid-1", limit=LIMIT, link=link)
    first = rules.take_over(session, device("laptop", "Fay"), "sid-1", limit=LIMIT, link=link)
    assert [(p.id, p.role) for p in first.participants] == [("new-laptop", "facilitator")]
    # A second device at the same moment becomes that same person, whatever name it gave.
    second = rules.take_over(first, device("phone", "Fay"), "sid-2", limit=LIMIT, link=link)
    assert [(p.id, p.name, p.sids) for p in second.participants] == [
        ("new-laptop", "Fay", ("sid-2",))
    ]


def test_a_link_that_stopped_working_takes_nobody_over() -> None:
    session = here(team("Ann"), "ann")
    link = session.facilitator_hash
    handed = rules.hand_over(session, "fay", "ann")
    with pytest.raises(RuleError, match="no longer gives control"):
        rules.take_over(handed, device("phone"), "sid-phone", limit=LIMIT, link=link)
    with pytest.raises(RuleError, match="no longer gives control"):
        rules.take_over(session, device("phone"), "sid-phone", limit=LIMIT, link="0" * 64)


def test_moved_between_tells_taken_over_people_from_those_who_left() -> None:
    session = here(team("Ann", "Ben"), "fay", "ann", "ben")
    link = session.facilitator_hash
    assert rules.moved_between(session, session) == set()
    assert rules.moved_between(session, rules.detach(session, "ann", "sid-ann", NOW)) == set()
    both = rules.take_over(
        rules.leave(session, "ann", keep_ballots=True),
        device("phone"),
        "sid-phone",
        limit=LIMIT,
        link=link,
    )
    assert rules.moved_between(session, both) == {"fay"}
    assert rules.removed_between(session, both) == {"ann"}


# --- leaving


def test_leaving_is_like_being_removed() -> None:
    session = scored(team("Ann", "Ben"), "prototype", {"ann": 4, "ben": 2})
    session = rules.vote(open_case_in(session), "ann", "realtime", 3, reason="why not")
    session = rules.vote(session, "ben", "realtime", 1)
    left = rules.leave(session, "ann", keep_ballots=False)
    assert left == rules.remove(session, "fay", "ann", keep_ballots=False)
    assert [p.id for p in left.participants] == ["fay", "ben"]
    assert ballots(left) == {"ben": 1}
    assert ballots(left, "prototype") == {"ann": 4, "ben": 2}
    kept = rules.leave(session, "ann", keep_ballots=True)
    assert ballots(kept) == {"ann": 3, "ben": 1}
    assert rules.find_by_token(kept, hash_token("token-ann")) is None


def test_the_only_facilitator_cannot_leave() -> None:
    session = team("Ann")
    with pytest.raises(RuleError) as caught:
        rules.leave(session, "fay", keep_ballots=True)
    assert str(caught.value).startswith("Hand the session over or make someone else a facilitator")
    # Once handed over, the former facilitator is a voter and may go.
    handed = rules.hand_over(here(session, "ann"), "fay", "ann")
    assert [p.id for p in rules.leave(handed, "fay", keep_ballots=True).participants] == ["ann"]
    # One of two facilitators (from before the link moved people) may go too.
    two = with_people(team("Ann"), person("Fay2", "facilitator"))
    assert rules.leave(two, "fay", keep_ballots=True).participant("fay") is None
    with pytest.raises(RuleError, match="not part of this session"):
        rules.leave(session, "mallory", keep_ballots=True)


def test_the_last_one_who_had_not_voted_leaving_reveals_with_auto_reveal() -> None:
    session = auto("Ann", "Ben", online=("fay", "ann", "ben"))
    session = rules.vote(rules.vote(session, "fay", "realtime", 1), "ann", "realtime", 2)
    assert status_after(rules.leave(session, "ben", keep_ballots=True)) == "revealed"


# --- reminders


def test_a_nudge_names_the_open_cases_and_their_rounds() -> None:
    session = here(control(open_case("Ann"), "open", "prototype"), "fay", "ann")
    every = rules.nudge(session, "fay", None, NOW)
    assert every.nudge == Nudge(at=NOW, cases={"realtime": 1, "prototype": 1}, by="fay")
    one = rules.nudge(session, "fay", "prototype", NOW)
    assert one.nudge == Nudge(at=NOW, cases={"prototype": 1}, by="fay")


def test_a_nudge_names_only_cases_someone_here_has_not_voted_on() -> None:
    session = here(control(open_case("Ann"), "open", "prototype"), "fay", "ann")
    session = rules.vote(rules.vote(session, "fay", "realtime", 2), "ann", "realtime", 3)
    assert rules.nudge(session, "fay", None, NOW).nudge == Nudge(
        at=NOW, cases={"prototype": 1}, by="fay"
    )
    session = rules.vote(rules.vote(session, "fay", "prototype", 2), "ann", "prototype", None)
    with pytest.raises(RuleError, match="Everyone here has voted already"):
        rules.nudge(session, "fay", None, NOW)
    # Someone who is not here is not waited for, so not reminded either.
    gone = rules.vote(here(open_case("Ann"), "fay"), "fay", "realtime", 1)
    with pytest.raises(RuleError, match="Everyone here has voted already"):
        rules.nudge(gone, "fay", "realtime", NOW)


def test_nudges_are_at_most_one_per_interval() -> None:
    session = rules.nudge(here(open_case("Ann"), "ann"), "fay", None, NOW)
    with pytest.raises(RuleError) as caught:
        rules.nudge(session, "fay", "realtime", NOW + 3.5)
    assert str(caught.value) == "You sent a reminder just now; you can send another in 7 s."
    later = rules.nudge(session, "fay", "realtime", NOW + rules.NUDGE_INTERVAL)
    assert later.nudge is not None and later.nudge.at == NOW + rules.NUDGE_INTERVAL


@pytest.mark.parametrize(
    ("who", "case_id", "message"),
    [
        ("ann", None, "Only the facilitator can do that."),
        ("fay", "prototype", "This question is not open for voting, so there is nobody to remind."),
        ("fay", "cobol", "There is no case 'cobol' in this session."),
    ],
)
def test_refused_nudges(who: str, case_id: str | None, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        rules.nudge(open_case("Ann"), who, case_id, NOW)
    assert str(caught.value) == message


def test_nothing_open_means_nobody_to_nudge() -> None:
    with pytest.raises(RuleError, match="Nothing is open for voting"):
        rules.nudge(team("Ann"), "fay", None, NOW)
    with pytest.raises(RuleError, match="This session has finished"):
        rules.nudge(control(open_case("Ann"), "finish"), "fay", None, NOW)
