"""The team's own decision (`control decide`) and the decision as an Architecture Decision
Record (MADR 4) — SPEC §5 `decide` and `results.adr.md`."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest

from server import exports, ops, rules, snapshot
from server.models import Session
from server.rules import RuleError
from tests.factories import FACILITATOR, control, scored, team
from tests.live import LiveServer, create_session, facilitate, join

NOW = datetime(2026, 12, 4, 15, 30, tzinfo=UTC)


def decided_session(stack: str | None = "go", note: str = "Go fits our latency budget.") -> Session:
    session = scored(team("Ann", "Ben"), "realtime", {"ann": 4, "ben": 3, "fay": 4})
    session = scored(session, "performance", {"ann": 1, "ben": 2, "fay": 1})
    return ops.apply(session, ops.Decide(FACILITATOR, stack, note), 1_234.0)


def test_a_facilitator_records_the_teams_decision() -> None:
    session = decided_session()
    assert snapshot.summary(session)["decision"] == {
        "stack": "go",
        "note": "Go fits our latency budget.",
        "by": "Fay",
        "at": 1_234.0,
    }


def test_a_later_decision_replaces_it_and_the_same_one_changes_nothing() -> None:
    session = decided_session()
    again = rules.decide(session, FACILITATOR, "go", "Go fits our latency budget.", 2_000.0)
    assert again is session
    other = rules.decide(session, FACILITATOR, None, "We keep the monolith.", 2_000.0)
    assert other.decision is not None and (other.decision.stack, other.decision.at) == (
        None,
        2_000.0,
    )


@pytest.mark.parametrize(
    ("who", "stack", "note", "message"),
    [
        ("ann", "go", "", "Only the facilitator"),
        (FACILITATOR, "cobol", "", "no option 'cobol'"),
        (FACILITATOR, None, "   ", "pick an option or write a note"),
        (FACILITATOR, "go", "x" * 2001, "at most 2000 characters"),
        (FACILITATOR, "go", "hidden\u202etext", "invisible"),
    ],
)
def test_a_decision_is_checked(who: str, stack: str | None, note: str, message: str) -> None:
    session = team("Ann")
    with pytest.raises(RuleError, match=message):
        rules.decide(session, who, stack, note, 1.0)


def test_a_decision_may_come_after_the_session_finished_and_keeps_its_lines() -> None:
    session = control(team("Ann"), "finish")
    decided = rules.decide(session, FACILITATOR, "django", "One.\n\n\n\nTwo  words.", 5.0)
    assert decided.decision is not None and decided.decision.note == "One.\n\nTwo words."


def test_the_decision_record_carries_the_decision() -> None:
    record = exports.to_markdown(exports.results(decided_session()), NOW)
    decision = record.split("## Decision", 1)[1]
    assert "The team decided: **Go** (recorded by Fay)." in decision
    assert "> Go fits our latency budget." in decision
    assert "The recommendation, for comparison:" in decision


def test_the_adr_is_madr_shaped() -> None:
    adr = exports.to_adr(exports.results(decided_session()), NOW)
    front, body = adr.split("---\n", 2)[1:]
    assert front.splitlines() == [
        "status: accepted",
        "date: 2026-12-04",
        'decision-makers: ["Fay", "Ann", "Ben"]',
    ]
    headings = re.findall(r"^#+ .*$", body, re.M)
    assert headings == [
        "# Our next project",
        "## Context and Problem Statement",
        "## Decision Drivers",
        "## Considered Options",
        "## Decision Outcome",
        "### Consequences",
        "## More Information",
    ]
    assert 'Chosen option: "Go", because Go fits our latency budget.' in body
    assert "* Live updates are core: median 4.0 of 4" in body
    assert re.search(r"^\* Go \(score [+-]\d\.\d\d\)$", body, re.M)


def test_until_the_team_decides_the_adr_proposes_the_recommendation() -> None:
    session = scored(team("Ann"), "mobile_backend", {"ann": 4, "fay": 4})
    adr = exports.to_adr(exports.results(session), NOW)
    assert "status: proposed" in adr
    assert 'Proposed option: "' in adr and "has not recorded its decision yet" in adr
    empty = exports.to_adr(exports.results(team("Ann")), NOW)
    assert "Nothing is proposed yet" in empty and "No question has been revealed yet." in empty


def test_names_cannot_break_the_front_matter() -> None:
    session = team('A: "b", c')
    adr = exports.to_adr(exports.results(session), NOW)
    assert 'decision-makers: ["Fay", "A: \\"b\\", c"]' in adr


async def test_decide_over_the_socket_and_download_the_adr(server: LiveServer) -> None:
    created = create_session(server.url)
    fay = await facilitate(server.url, created)
    ann = await join(server.url, {"session": created["id"], "name": "Ann"})
    refused = await ann.control("decide", stack="go", note="mine")
    assert not refused["ok"]
    bad = await fay.control("decide", stack="go", note="x", case="realtime")
    assert not bad["ok"] and "not about a case" in bad["error"]
    ack = await fay.control("decide", stack="go", note="Latency matters most.")
    assert ack["ok"], ack
    state = await ann.until_version(ack["version"])
    assert state["session"]["decision"]["stack"] == "go"
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get(f"/api/sessions/{created['id']}/results.adr.md")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/markdown")
    assert "-adr.md" in response.headers["content-disposition"]
    assert response.text.startswith("---\nstatus: accepted\n")
    assert 'Chosen option: "Go", because Latency matters most.' in response.text
    for member in (fay, ann):
        await member.client.disconnect()


def test_the_adr_keeps_a_note_s_sentences_and_lines_whole() -> None:
    one = exports.to_adr(exports.results(decided_session()), NOW)
    assert "because Go fits our latency budget.\n" in one and ".." not in one
    session = rules.decide(
        decided_session(), FACILITATOR, "go", "Latency first.\n\nThen cost.", 6.0
    )
    several = exports.to_adr(exports.results(session), NOW)
    assert (
        'Chosen option: "Go", because of what the team noted:\n\n> Latency first.\n>\n> Then cost.'
        in several
    )


def test_the_adr_s_consequences_are_those_of_the_option_chosen() -> None:
    # The team chose Django although the scores point elsewhere: the consequences say what
    # choosing Django means on those questions, not what the recommendation would have brought.
    session = rules.decide(decided_session(), FACILITATOR, "django", "We know it well.", 6.0)
    adr = exports.to_adr(exports.results(session), NOW)
    consequences = adr.split("### Consequences", 1)[1]
    assert "* Bad, because Django is a poor fit for *Live updates are core* (-" in consequences
    assert "because Go fits" not in consequences
    none = rules.decide(decided_session(), FACILITATOR, None, "Something else.", 6.0)
    assert "fits *" not in exports.to_adr(exports.results(none), NOW).split("### Consequences")[1]


def test_an_adr_proposes_nothing_while_the_top_is_shared() -> None:
    # Node.js, Go and Phoenix weigh "live updates" alike: no option to propose yet.
    session = scored(team("Ann"), "realtime", {"ann": 4, "fay": 4})
    adr = exports.to_adr(exports.results(session), NOW)
    assert "Nothing is proposed yet: Node.js, Go and Phoenix (Elixir) score the same" in adr
    assert "Proposed option" not in adr
