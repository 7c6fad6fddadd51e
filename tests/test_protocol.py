"""Payloads checked at the door: good ones pass, bad ones get a message a person can act on."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from server import protocol
from server.protocol import Auth, Control, CreateSession, Leave, ProtocolError, Vote, parse
from server.rules import Action

SCORE_HINT = "score must be a whole number from 0 to 4, or null to abstain"
CASE_HINT = "case must be the id of a case in this session"
ACTION_HINT = (
    "action must be one of open, open_all, reveal, reveal_all, revote, lock, finish, "
    "countdown, auto_reveal, hand_over, promote, demote, remove, nudge, door, remove_idle, decide"
)
REASON_HINT = "reason must be text of at most 280 characters"
SECONDS_HINT = "seconds must be a whole number from 0 to 86400"
PARTICIPANT_HINT = "participant must be the id of a participant in this session"
MODE_HINT = 'mode must be "hidden" or "open"'
ANONYMOUS_HINT = "anonymous must be true or false"
TITLE_HINT = "title must be text of 1 to 120 characters"
ROLE_HINT = 'role must be "voter" or "spectator"'
SESSION_HINT = "session must be a session id"
TEMPLATE_HINT = 'template must be "django" or a template object'
NAME_HINT = "name must be text of 1 to 40 characters"
TOKEN_HINTS = {
    "token": "token must be the participant token this server gave you",
    "facilitator_token": "facilitator_token must be the token from the facilitator link",
}


def refused(kind: type[Any], data: Any) -> str:
    """The message for a refused payload; also checks that parsing left the payload alone."""
    before = copy.deepcopy(data)
    with pytest.raises(ProtocolError) as caught:
        parse(kind, data)
    assert data == before
    return str(caught.value)


# --- vote


@pytest.mark.parametrize("score", [0, 1, 2, 3, 4, None])
def test_a_vote_accepts_every_score_and_abstaining(score: int | None) -> None:
    vote = parse(Vote, {"case": "realtime", "score": score})
    assert vote == Vote(case="realtime", score=score)


@pytest.mark.parametrize("score", ["3", 1.5, True, False, 5, -1, [3], {"value": 3}])
def test_a_vote_with_a_bad_score_is_refused(score: Any) -> None:
    assert refused(Vote, {"case": "realtime", "score": score}) == SCORE_HINT


def test_a_vote_must_say_its_score_even_to_abstain() -> None:
    assert refused(Vote, {"case": "realtime"}) == "score is required"


def test_a_vote_must_say_its_case() -> None:
    assert refused(Vote, {"score": 2}) == "case is required"


@pytest.mark.parametrize("case", ["", 7, None, "x" * 201])
def test_a_vote_with_a_bad_case_is_refused(case: Any) -> None:
    assert refused(Vote, {"case": case, "score": 2}) == CASE_HINT


def test_a_vote_with_an_unknown_field_is_refused() -> None:
    message = refused(Vote, {"case": "realtime", "score": 2, "weight": 9})
    assert message.startswith("unknown field `weight`")


@pytest.mark.parametrize("reason", ["", "Live dashboards are the product.", "x" * 280, None])
def test_a_vote_may_carry_a_reason_of_up_to_280_characters(reason: str | None) -> None:
    vote = parse(Vote, {"case": "realtime", "score": 3, "reason": reason})
    assert vote.reason == reason


@pytest.mark.parametrize("reason", ["x" * 281, 7, ["why"], {"text": "why"}, True])
def test_a_vote_with_a_bad_reason_is_refused(reason: Any) -> None:
    assert refused(Vote, {"case": "realtime", "score": 3, "reason": reason}) == REASON_HINT


# --- control


@pytest.mark.parametrize("action", ["open", "reveal", "revote", "lock"])
def test_a_case_control_is_accepted(action: Action) -> None:
    assert parse(Control, {"action": action, "case": "realtime"}) == Control(
        action=action, case="realtime"
    )


@pytest.mark.parametrize("action", ["open_all", "reveal_all", "finish"])
def test_a_session_control_needs_no_case(action: str) -> None:
    command = parse(Control, {"action": action})
    assert command.action == action
    assert command.case is None


@pytest.mark.parametrize("action", ["explode", "OPEN", "", 3, None])
def test_an_unknown_action_is_refused(action: Any) -> None:
    assert refused(Control, {"action": action, "case": "realtime"}) == ACTION_HINT


def test_a_control_must_say_its_action() -> None:
    assert refused(Control, {"case": "realtime"}) == "action is required"


def test_a_control_with_a_bad_case_is_refused() -> None:
    assert refused(Control, {"action": "open", "case": 12}) == CASE_HINT


def test_a_control_with_an_unknown_field_is_refused() -> None:
    message = refused(Control, {"action": "finish", "force": True})
    assert message.startswith("unknown field `force`")


@pytest.mark.parametrize(
    ("payload", "parsed"),
    [
        ({"action": "countdown", "seconds": 60}, Control(action="countdown", seconds=60)),
        (
            {"action": "countdown", "seconds": 86400, "case": "realtime"},
            Control(action="countdown", seconds=86400, case="realtime"),
        ),
        ({"action": "countdown", "seconds": 0}, Control(action="countdown", seconds=0)),
        ({"action": "auto_reveal", "on": False}, Control(action="auto_reveal", on=False)),
        (
            {"action": "hand_over", "participant": "a1b2c3"},
            Control(action="hand_over", participant="a1b2c3"),
        ),
        (
            {"action": "remove", "participant": "a1b2c3", "keep_ballots": True},
            Control(action="remove", participant="a1b2c3", keep_ballots=True),
        ),
        ({"action": "nudge"}, Control(action="nudge")),
        ({"action": "nudge", "case": "realtime"}, Control(action="nudge", case="realtime")),
    ],
)
def test_the_new_controls_are_accepted(payload: dict[str, Any], parsed: Control) -> None:
    assert parse(Control, payload) == parsed


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"action": "countdown"}, "countdown needs seconds: a whole number from 0 to 86400"),
        ({"action": "countdown", "seconds": -1}, SECONDS_HINT),
        ({"action": "countdown", "seconds": 86401}, SECONDS_HINT),
        ({"action": "countdown", "seconds": 10**30}, SECONDS_HINT),
        ({"action": "countdown", "seconds": 1.5}, SECONDS_HINT),
        ({"action": "countdown", "seconds": "60"}, SECONDS_HINT),
        ({"action": "countdown", "seconds": True}, SECONDS_HINT),
        ({"action": "countdown", "seconds": 60, "case": 3}, CASE_HINT),
        ({"action": "auto_reveal"}, "auto_reveal needs on: true or false"),
        ({"action": "nudge", "seconds": 10}, "seconds goes only with countdown"),
        ({"action": "nudge", "case": 7}, CASE_HINT),
        ({"action": "auto_reveal", "on": "yes"}, "on must be true or false"),
        ({"action": "auto_reveal", "on": 1}, "on must be true or false"),
        (
            {"action": "hand_over"},
            "hand_over needs participant: the id of a participant in this session",
        ),
        ({"action": "hand_over", "participant": ""}, PARTICIPANT_HINT),
        ({"action": "hand_over", "participant": 42}, PARTICIPANT_HINT),
        (
            {"action": "hand_over", "participant": "a1", "case": "realtime"},
            "hand_over is not about a case; leave case out",
        ),
        (
            {"action": "remove", "participant": "a1"},
            "remove needs keep_ballots: true or false",
        ),
        (
            {"action": "remove", "keep_ballots": False},
            "remove needs participant: the id of a participant in this session",
        ),
        (
            {"action": "remove", "participant": "a1", "keep_ballots": "no"},
            "keep_ballots must be true or false",
        ),
        (
            {"action": "reveal", "case": "realtime", "seconds": 5},
            "seconds goes only with countdown",
        ),
        ({"action": "open_all", "on": True}, "on goes only with auto_reveal"),
        (
            {"action": "countdown", "seconds": 5, "participant": "a1"},
            "participant goes only with hand_over, promote, demote and remove",
        ),
        ({"action": "finish", "keep_ballots": True}, "keep_ballots goes only with remove"),
    ],
)
def test_the_new_controls_refuse_bad_fields_clearly(payload: dict[str, Any], message: str) -> None:
    assert refused(Control, payload) == message


# --- auth


def test_auth_with_a_name_is_accepted_with_defaults() -> None:
    auth = parse(Auth, {"session": "abc", "name": "Alice"})
    assert auth == Auth(session="abc", name="Alice", token=None, facilitator_token=None)
    assert auth.role == "voter"


def test_auth_for_a_returning_facilitator_is_accepted() -> None:
    auth = parse(
        Auth, {"session": "abc", "token": "t" * 32, "facilitator_token": "f" * 32, "role": "voter"}
    )
    assert auth.token == "t" * 32
    assert auth.facilitator_token == "f" * 32
    assert auth.name is None


def test_auth_as_a_spectator_is_accepted() -> None:
    assert parse(Auth, {"session": "abc", "name": "Sam", "role": "spectator"}).role == "spectator"


def test_auth_must_name_the_session() -> None:
    assert refused(Auth, {"name": "Alice"}) == "session is required"


@pytest.mark.parametrize("session", ["", 42, None])
def test_auth_with_a_bad_session_is_refused(session: Any) -> None:
    assert refused(Auth, {"session": session, "name": "Alice"}) == SESSION_HINT


@pytest.mark.parametrize("role", ["facilitator", "admin", 1])
def test_auth_cannot_ask_for_facilitator_rights_by_role(role: Any) -> None:
    assert refused(Auth, {"session": "abc", "name": "Alice", "role": role}) == ROLE_HINT


@pytest.mark.parametrize("field", sorted(TOKEN_HINTS))
@pytest.mark.parametrize("value", ["", "x" * 201, 5])
def test_auth_with_an_empty_or_huge_token_is_refused(field: str, value: Any) -> None:
    assert refused(Auth, {"session": "abc", field: value}) == TOKEN_HINTS[field]


@pytest.mark.parametrize("name", [7, ["Alice"], {"first": "Alice"}])
def test_auth_with_a_name_that_is_not_text_is_refused(name: Any) -> None:
    assert refused(Auth, {"session": "abc", "name": name}) == NAME_HINT


def test_auth_with_an_unknown_field_is_refused() -> None:
    # A misspelt key must not be dropped silently: the facilitator would join as a plain voter.
    message = refused(Auth, {"session": "abc", "name": "Fay", "facilitatorToken": "f" * 32})
    assert message.startswith("unknown field `facilitatorToken`")


def test_auth_to_watch_takes_only_the_session() -> None:
    auth = parse(Auth, {"session": "abc", "watch": True})
    assert auth.watch and auth.name is None and auth.token is None
    assert not parse(Auth, {"session": "abc", "name": "Alice"}).watch


@pytest.mark.parametrize(
    "extra",
    [
        {"name": "Presenter"},
        {"token": "t" * 32},
        {"facilitator_token": "f" * 32},
        {"role": "spectator"},
    ],
)
def test_auth_to_watch_with_anything_of_a_participant_is_refused(extra: dict[str, Any]) -> None:
    # A watcher is nobody: it cannot also be someone (or become the facilitator) on the way in.
    message = refused(Auth, {"session": "abc", "watch": True, **extra})
    assert message == protocol.WATCH_ALONE


@pytest.mark.parametrize("watch", ["yes", 1, None])
def test_auth_with_a_watch_that_is_not_a_boolean_is_refused(watch: Any) -> None:
    assert refused(Auth, {"session": "abc", "watch": watch}) == "watch must be true or false"


# --- create session


def test_create_session_needs_only_a_title() -> None:
    request = parse(CreateSession, {"title": "Our next app"})
    assert request == CreateSession(title="Our next app")
    assert (request.template, request.mode, request.anonymous) == ("django", "hidden", False)


def test_create_session_takes_every_option() -> None:
    template = {"title": "T", "stacks": [], "cases": []}
    request = parse(
        CreateSession,
        {"title": "Pick", "template": template, "mode": "open", "anonymous": True},
    )
    # The template object is checked later, by the template parser.
    assert request.template == template
    assert request.mode == "open"
    assert request.anonymous is True


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "title is required"),
        ({"title": ""}, TITLE_HINT),
        ({"title": "x" * 121}, TITLE_HINT),
        ({"title": 5}, TITLE_HINT),
        ({"title": "T", "mode": "secret"}, MODE_HINT),
        ({"title": "T", "mode": None}, MODE_HINT),
        ({"title": "T", "anonymous": "yes"}, ANONYMOUS_HINT),
        ({"title": "T", "anonymous": 1}, ANONYMOUS_HINT),
        ({"title": "T", "template": ["django"]}, TEMPLATE_HINT),
        ({"title": "T", "template": 3}, TEMPLATE_HINT),
    ],
)
def test_create_session_refuses_bad_fields(payload: dict[str, Any], message: str) -> None:
    assert refused(CreateSession, payload) == message


def test_create_session_refuses_an_unknown_field() -> None:
    message = refused(CreateSession, {"title": "T", "facilitator": "me"})
    assert message.startswith("unknown field `facilitator`")


# --- shape


@pytest.mark.parametrize("kind", [Vote, Control, Auth, CreateSession])
@pytest.mark.parametrize("data", [None, "vote", 3, ["case", 2], True])
def test_a_payload_that_is_not_an_object_is_refused(kind: type[Any], data: Any) -> None:
    assert refused(kind, data) == "expected a JSON object"


def test_messages_never_show_schema_paths() -> None:
    for kind, data in [
        (Vote, {"case": "a", "score": 9}),
        (Vote, {"case": "a", "score": 1, "x": 1}),
        (Control, {"action": "nope"}),
        (CreateSession, {"title": "T", "colour": "red"}),
    ]:
        assert "$." not in refused(kind, data)


def test_acks_have_the_contract_shape() -> None:
    assert protocol.ok(7) == {"ok": True, "version": 7}
    assert protocol.error("Voting is closed.") == {"ok": False, "error": "Voting is closed."}


def test_event_names_match_the_contract() -> None:
    assert (protocol.WELCOME, protocol.STATE, protocol.VOTE, protocol.CONTROL) == (
        "welcome",
        "state",
        "vote",
        "control",
    )


def test_leave_keeps_the_ballots_unless_told_otherwise() -> None:
    assert parse(Leave, {}) == Leave(keep_ballots=True)
    assert parse(Leave, {"keep_ballots": False}) == Leave(keep_ballots=False)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"keep_ballots": "no"}, "keep_ballots must be true or false"),
        ({"keep_ballots": 0}, "keep_ballots must be true or false"),
        ({"keep_ballots": None}, "keep_ballots must be true or false"),
        ({"keep_ballots": True, "why": "bored"}, "unknown field `why`"),
        ([], "expected a JSON object"),
    ],
)
def test_a_bad_leave_is_refused(payload: Any, message: str) -> None:
    assert refused(Leave, payload).startswith(message)
