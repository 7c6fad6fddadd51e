"""What leaves the server: hidden scores stay hidden, anonymous ballots stay anonymous."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from server import engine, exports, rules, snapshot
from server.models import Session
from tests.factories import case_of, cast, control, person, scored, team, with_people

VOTES = {"alice": 4, "bob": 3, "fay": None}


def voting(**options: Any) -> Session:
    """`realtime` open with three ballots (one abstention), `prototype` open and empty."""
    session = control(
        control(team("Alice", "Bob", **options), "open", "realtime"), "open", "prototype"
    )
    return cast(session, "realtime", VOTES)


def dumped(document: dict[str, Any]) -> str:
    return json.dumps(document)


# --- the snapshot's shape


def test_the_snapshot_has_the_contract_shape() -> None:
    session = with_people(voting(), person("Watcher", "spectator"))
    state = snapshot.state(session)
    assert set(state) == {"version", "session", "participants", "cases", "recommendation"}
    assert state["version"] == session.version
    assert state["session"] == {
        "id": "s1",
        "title": "Our next project",
        "mode": "hidden",
        "anonymous": False,
        "status": "active",
        "auto_reveal": False,
        "door_open": True,
        "decision": None,
        "nudge": None,
    }
    # Nobody has connected yet: nobody is waited for (models.Participant.here).
    offline = {"online": False, "away": True}
    assert state["participants"] == [
        {"id": "fay", "name": "Fay", "role": "facilitator", **offline, "voted": ["realtime"]},
        {"id": "alice", "name": "Alice", "role": "voter", **offline, "voted": ["realtime"]},
        {"id": "bob", "name": "Bob", "role": "voter", **offline, "voted": ["realtime"]},
        {"id": "watcher", "name": "Watcher", "role": "spectator", **offline, "voted": []},
    ]
    assert [c["id"] for c in state["cases"]] == [c.id for c in session.template.cases]
    realtime = case_of(state, "realtime")
    assert set(realtime) == {
        "id",
        "title",
        "status",
        "round",
        "votes_in",
        "results",
        "withheld",
        "deadline",
        "history",
    }
    assert (realtime["deadline"], realtime["history"], realtime["withheld"]) == (None, [], False)
    assert realtime["title"] == "Live updates are core"
    assert (realtime["status"], realtime["round"]) == ("voting", 1)


def test_the_snapshot_shows_who_is_away_and_no_more() -> None:
    session = rules.attach(rules.attach(voting(), "bob", "sid-1"), "alice", "sid-2")
    session = rules.detach(session, "alice", "sid-2", 2_000.0)
    session = rules.mark_away(session, 2_000.0 + 60, 60)
    state = snapshot.state(session)
    seen = {p["id"]: (p["online"], p["away"]) for p in state["participants"]}
    assert seen == {"fay": (False, True), "alice": (False, True), "bob": (True, False)}
    # When someone went offline stays on the server.
    assert "2000" not in json.dumps(state)
    back = snapshot.state(rules.attach(session, "alice", "sid-3"))
    assert [p["away"] for p in back["participants"]] == [True, False, False]


def test_a_nudge_names_the_cases_still_open_in_the_same_round() -> None:
    # Cat, here, has voted on neither case; the reminder names both and who sent it.
    waiting = rules.attach(with_people(voting(), person("Cat")), "cat", "sid-cat")
    nudged = rules.nudge(waiting, "fay", None, 3_000.0)
    assert snapshot.state(nudged)["session"]["nudge"] == {
        "at": 3_000.0,
        "cases": ["realtime", "prototype"],
        "by": "fay",
    }
    revealed = rules.control(nudged, "fay", "reveal", "realtime")
    assert snapshot.summary(revealed)["nudge"] == {
        "at": 3_000.0,
        "cases": ["prototype"],
        "by": "fay",
    }
    assert snapshot.marks(nudged, revealed).session
    done = rules.control(revealed, "fay", "reveal", "prototype")
    assert snapshot.summary(done)["nudge"] is None
    # A new round of the case is not nudged by the old reminder.
    again = rules.control(done, "fay", "revote", "prototype")
    assert snapshot.summary(again)["nudge"] is None


def test_the_snapshot_shows_who_is_online() -> None:
    state = snapshot.state(rules.attach(voting(), "bob", "sid-1"))
    online = {p["id"]: p["online"] for p in state["participants"]}
    assert online == {"fay": False, "alice": False, "bob": True}


def test_the_snapshot_never_carries_secrets() -> None:
    session = voting()
    text = dumped(snapshot.state(session))
    assert session.facilitator_hash not in text
    for p in session.participants:
        assert p.token_hash not in text
    assert "token" not in text


# --- hidden mode


def test_hidden_scores_are_not_in_the_snapshot_before_the_reveal() -> None:
    state = snapshot.state(voting())
    realtime = case_of(state, "realtime")
    assert realtime["results"] is None
    assert realtime["votes_in"] == 3  # an abstention is a ballot too
    assert case_of(state, "prototype")["votes_in"] == 0
    assert state["recommendation"] is None
    text = dumped(state)
    for leaked in ('"score"', '"histogram"', '"mean"', '"median"', '"ballots"', '"consensus"'):
        assert leaked not in text


def test_who_voted_is_public_before_the_reveal_but_not_what() -> None:
    session = cast(voting(), "prototype", {"alice": 0})
    voted = {p["id"]: p["voted"] for p in snapshot.state(session)["participants"]}
    assert voted == {"fay": ["realtime"], "alice": ["realtime", "prototype"], "bob": ["realtime"]}
    prototype = session.case("prototype")
    assert prototype is not None
    assert snapshot.case_results(session, prototype) is None


def test_a_hidden_case_shows_its_results_once_revealed() -> None:
    state = snapshot.state(control(voting(), "reveal", "realtime"))
    results = case_of(state, "realtime")["results"]
    assert results["n"] == 2
    assert results["abstain"] == 1
    assert results["histogram"] == [0, 0, 0, 1, 1]
    assert results["median"] == 3.5
    assert results["mean"] == 3.5
    assert results["ballots"] == [
        {"participant": "fay", "score": None},
        {"participant": "alice", "score": 4},
        {"participant": "bob", "score": 3},
    ]
    # The other open case stays hidden.
    assert case_of(state, "prototype")["results"] is None


def test_results_match_the_engine() -> None:
    session = control(voting(), "reveal", "realtime")
    results = case_of(snapshot.state(session), "realtime")["results"]
    expected = engine.case_results(VOTES.values()).as_dict()
    own = ("ballots", "reasons", "history", "change", "revote_suggested")
    assert {k: v for k, v in results.items() if k not in own} == expected
    assert (results["reasons"], results["history"]) == ([], [])
    # The first round: nothing to compare with; [4, 3] agree strongly, so no re-vote.
    assert (results["change"], results["revote_suggested"]) == (None, False)


def test_a_locked_case_keeps_its_results_visible() -> None:
    session = control(control(voting(), "reveal", "realtime"), "lock", "realtime")
    assert case_of(snapshot.state(session), "realtime")["results"]["n"] == 2


def test_a_revote_hides_the_new_round_again() -> None:
    session = control(control(voting(), "reveal", "realtime"), "revote", "realtime")
    session = cast(session, "realtime", {"alice": 0})
    realtime = case_of(snapshot.state(session), "realtime")
    assert realtime["results"] is None
    assert realtime["round"] == 2
    assert realtime["votes_in"] == 1
    assert '"score"' not in dumped(snapshot.state(session))
    # The round everyone saw revealed stays in view while the new one is scored.
    [first] = realtime["history"]
    assert first["round"] == 1
    assert first["n"] == 2
    assert sum(first["histogram"]) == 2
    assert "ballots" not in first


# --- open mode


def test_open_mode_shows_live_results_while_voting() -> None:
    state = snapshot.state(voting(mode="open"))
    realtime = case_of(state, "realtime")
    assert realtime["status"] == "voting"
    assert realtime["results"]["histogram"] == [0, 0, 0, 1, 1]
    assert realtime["results"]["abstain"] == 1
    assert {b["participant"] for b in realtime["results"]["ballots"]} == {"alice", "bob", "fay"}
    # Nothing to show for a case nobody has scored, and nothing for one not yet open.
    assert case_of(state, "prototype")["results"]["n"] == 0
    assert case_of(state, "performance")["results"] is None


# --- anonymous sessions


def anonymous_revealed() -> Session:
    session = scored(
        team("Alice", "Bob", anonymous=True), "realtime", {"alice": 4, "bob": 1, "fay": 2}
    )
    session = control(session, "revote", "realtime")
    return scored_again(session)


def scored_again(session: Session) -> Session:
    ballots: dict[str, int | None] = {"alice": 3, "bob": 2, "fay": 2}
    return control(cast(session, "realtime", ballots), "reveal", "realtime")


def test_anonymous_sessions_never_show_ballots_in_the_snapshot() -> None:
    state = snapshot.state(anonymous_revealed())
    results = case_of(state, "realtime")["results"]
    assert "ballots" not in results
    assert results["histogram"] == [0, 0, 2, 1, 0]
    assert state["session"]["anonymous"] is True
    assert '"ballots"' not in dumped(state)
    assert '"participant"' not in dumped(state)


def test_anonymous_open_mode_shows_live_counts_but_no_ballots() -> None:
    session = with_people(voting(mode="open", anonymous=True), person("Carol"))
    state = snapshot.state(cast(session, "realtime", {"carol": 0}))
    realtime = case_of(state, "realtime")
    # Four ballots in: the first three are shown together, the fourth waits for two more.
    assert realtime["votes_in"] == 4
    assert (realtime["results"]["n"], realtime["results"]["abstain"]) == (2, 1)
    assert realtime["results"]["histogram"] == [0, 0, 0, 1, 1]
    assert '"ballots"' not in dumped(state)


def test_anonymous_live_results_move_only_in_steps_of_three_or_more() -> None:
    people = ["Ann", "Ben", "Cat", "Dan", "Eve", "Flo", "Gus"]
    session = control(
        with_people(team(mode="open", anonymous=True), *(person(n) for n in people)),
        "open",
        "realtime",
    )
    shown_sizes = []
    for n, name in enumerate(people):
        session = rules.vote(session, name.lower(), "realtime", n % 5)
        shown_sizes.append(case_of(snapshot.state(session), "realtime")["results"]["n"])
    assert shown_sizes == [0, 0, 3, 3, 3, 6, 6]
    revealed = case_of(snapshot.state(control(session, "reveal", "realtime")), "realtime")
    assert revealed["results"]["n"] == 7


def test_open_mode_that_is_not_anonymous_shows_every_ballot_at_once() -> None:
    session = control(team("Ann", mode="open"), "open", "realtime")
    session = rules.vote(session, "ann", "realtime", 3)
    assert case_of(snapshot.state(session), "realtime")["results"]["n"] == 1


def test_anonymous_sessions_never_show_ballots_in_the_results_document() -> None:
    document = exports.results(anonymous_revealed())
    realtime = case_of(document, "realtime")
    assert "ballots" not in realtime
    assert [set(r) for r in realtime["history"]] == [
        {
            "round",
            "n",
            "abstain",
            "histogram",
            "mean",
            "median",
            "iqr",
            "consensus",
            "band",
            "reasons",
            "change",
        }
    ]
    assert '"ballots"' not in dumped(document)
    assert '"participant"' not in dumped(document)


def test_anonymous_sessions_never_show_ballots_in_the_decision_record() -> None:
    record = exports.to_markdown(
        exports.results(anonymous_revealed()), datetime(2025, 1, 2, tzinfo=UTC)
    )
    assert "## Ballots" not in record
    assert "Alice: " not in record
    assert "Bob: " not in record
    assert "abstained" not in record


# --- recommendation


def test_there_is_no_recommendation_before_a_reveal() -> None:
    assert snapshot.recommendation(voting()) is None
    assert snapshot.recommendation(team("Alice")) is None


def test_a_case_where_everyone_abstained_gives_no_recommendation() -> None:
    session = scored(team("Alice"), "realtime", {"alice": None, "fay": None})
    assert snapshot.recommendation(session) is None


def test_a_revealed_case_produces_an_explained_recommendation() -> None:
    session = scored(team("Alice", "Bob"), "realtime", {"alice": 4, "bob": 4, "fay": 4})
    advice = snapshot.recommendation(session)
    assert advice is not None
    assert snapshot.state(session)["recommendation"] == advice
    assert set(advice) == {
        "ranking",
        "verdict",
        "verdict_parts",
        "robust",
        "close_call",
        "contested",
        "confidence",
        "flip",
    }
    ranking = advice["ranking"]
    assert len(ranking) == 9
    # A unanimous team: every resample gives the same answer, and on this one case Go and
    # Phoenix score exactly as Node.js does: the three share first place, a third each.
    assert ranking[0] == {
        "stack": "node",
        "name": "Node.js",
        "score": 2.0,
        "contributions": [{"case": "realtime", "value": 2.0}],
        "win_share": 0.3333,
        "interval": [2.0, 2.0],
        "flip": None,
        "can_win": True,
        "tied_with": ["go", "phoenix"],
    }
    assert advice["confidence"] == "tied"
    assert advice["verdict_parts"] == {
        "kind": "tied",
        "stack": "node",
        "favourite": "django",
        "reasons": [],
        "tied_with": ["go", "phoenix"],
        "close_call": None,
    }
    # Nothing separates them yet, and a tied stack is never "unable to come first".
    assert advice["flip"] is None
    assert (ranking[1]["stack"], ranking[1]["can_win"]) == ("go", True)
    assert ranking[1]["tied_with"] == ["node", "phoenix"]
    assert ranking[-1]["stack"] == "django"
    assert ranking[-1]["score"] == -2.0
    assert advice["verdict"] == (
        "Node.js, Go and Phoenix (Elixir) score the same: the team's scores cannot separate "
        "them yet."
    )
    assert advice["contested"] == []


def test_the_recommendation_ignores_cases_still_hidden() -> None:
    session = scored(team("Alice"), "content_admin", {"alice": 4, "fay": 4})
    session = cast(control(session, "open", "realtime"), "realtime", {"alice": 4, "fay": 4})
    advice = snapshot.recommendation(session)
    assert advice is not None
    assert advice["ranking"][0]["stack"] == "django"
    assert advice["verdict"] == "Django fits this project."
    every_case = {c["case"] for r in advice["ranking"] for c in r["contributions"]}
    assert every_case == {"content_admin"}


def test_a_split_team_is_flagged_as_contested() -> None:
    session = scored(
        team("Alice", "Bob", "Cy"), "realtime", {"alice": 0, "bob": 4, "cy": 0, "fay": 4}
    )
    advice = snapshot.recommendation(session)
    assert advice is not None
    assert advice["contested"] == ["realtime"]


# --- own ballots


def test_own_ballots_are_a_participants_current_choices_only() -> None:
    session = voting()
    assert snapshot.own_ballots(session, "alice") == {"realtime": 4}
    assert snapshot.own_ballots(session, "fay") == {"realtime": None}
    assert snapshot.own_ballots(session, "nobody") == {}
    session = cast(session, "prototype", {"alice": 0})
    assert snapshot.own_ballots(session, "alice") == {"realtime": 4, "prototype": 0}
    assert snapshot.own_ballots(session, "bob") == {"realtime": 3}


def test_own_ballots_forget_a_round_that_was_re_voted() -> None:
    session = control(control(voting(), "reveal", "realtime"), "revote", "realtime")
    assert snapshot.own_ballots(session, "alice") == {}


# --- reasons, history, deadlines, removals


def test_reasons_and_earlier_rounds_show_with_the_results() -> None:
    session = control(team("Alice", "Bob"), "open", "realtime")
    session = rules.vote(session, "bob", "realtime", 1, reason="Polling is fine")
    session = rules.vote(session, "alice", "realtime", 4, reason="Chat is the product")
    assert case_of(snapshot.state(session), "realtime")["results"] is None
    session = control(control(session, "reveal", "realtime"), "revote", "realtime")
    session = control(cast(session, "realtime", {"alice": 3}), "reveal", "realtime")
    results = case_of(snapshot.state(session), "realtime")["results"]
    assert results["reasons"] == []
    first = engine.case_results([1, 4]).as_dict()
    assert results["history"] == [
        {
            "round": 1,
            **{k: first[k] for k in ("n", "histogram", "median", "iqr", "consensus", "band")},
            "change": None,
        }
    ]
    # Round 2 is a single score: full agreement, up from round 1's.
    assert results["change"] == round(1.0 - first["consensus"], 3)
    previous = control(control(session, "revote", "realtime"), "reveal", "realtime")
    assert [
        r["round"] for r in case_of(snapshot.state(previous), "realtime")["results"]["history"]
    ] == [1, 2]


def test_reasons_are_listed_in_join_order_with_their_scores() -> None:
    session = control(team("Alice", "Bob"), "open", "realtime")
    session = rules.vote(session, "bob", "realtime", 1, reason="b")
    session = rules.vote(session, "fay", "realtime", None, reason="f")
    session = rules.vote(session, "alice", "realtime", 2)
    results = case_of(snapshot.state(control(session, "reveal", "realtime")), "realtime")["results"]
    assert results["reasons"] == [
        {"participant": "fay", "score": None, "text": "f"},
        {"participant": "bob", "score": 1, "text": "b"},
    ]


def test_ballots_and_reasons_of_someone_removed_stay_last() -> None:
    session = control(team("Alice", "Bob"), "open", "realtime")
    session = rules.vote(session, "alice", "realtime", 4, reason="a")
    session = rules.vote(session, "bob", "realtime", 2, reason="b")
    session = control(session, "reveal", "realtime")
    session = rules.remove(session, "fay", "alice", keep_ballots=False)
    results = case_of(snapshot.state(session), "realtime")["results"]
    assert results["ballots"] == [
        {"participant": "bob", "score": 2},
        {"participant": "alice", "score": 4},
    ]
    assert [r["participant"] for r in results["reasons"]] == ["bob", "alice"]


def test_a_case_shows_its_deadline() -> None:
    session = rules.countdown(voting(), "fay", "realtime", 30, 100.0)
    assert case_of(snapshot.state(session), "realtime")["deadline"] == 130.0
    assert case_of(snapshot.state(session), "prototype")["deadline"] is None


def test_own_ballots_and_reasons_go_to_their_owner() -> None:
    session = rules.vote(voting(), "alice", "prototype", 1, reason="mine")
    assert snapshot.own_ballots(session, "alice") == {"realtime": 4, "prototype": 1}
    assert snapshot.own_reasons(session, "alice") == {"prototype": "mine"}
    assert snapshot.own_reasons(session, "bob") == {}


# --- how sure the verdict is: nothing new leaks


def test_hidden_scores_do_not_move_the_win_shares_or_the_flips() -> None:
    revealed = scored(team("Alice", "Bob"), "realtime", {"alice": 4, "bob": 0, "fay": 2})
    before = snapshot.state(revealed)
    # Scores on a case still hidden change nothing a client sees but the vote counts.
    voted = cast(control(revealed, "open", "performance"), "performance", {"alice": 4, "bob": 4})
    after = snapshot.state(voted)
    assert after["recommendation"] == before["recommendation"]
    assert after["recommendation"]["ranking"][0]["win_share"] < 1.0


def test_anonymous_sessions_name_nobody_in_the_new_figures() -> None:
    state = snapshot.state(anonymous_revealed())
    advice = dumped(state["recommendation"])
    for pid in ("alice", "bob", "fay"):
        assert pid not in advice
    results = case_of(state, "realtime")["results"]
    assert set(results) == {
        "n",
        "abstain",
        "histogram",
        "mean",
        "median",
        "iqr",
        "consensus",
        "band",
        "reasons",
        "history",
        "change",
        "revote_suggested",
    }
