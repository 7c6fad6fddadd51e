"""The results as documents: JSON shape, CSV safe to open in a spreadsheet, a Markdown record."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

import pytest

from server import exports, rules
from server.models import Session
from tests.factories import (
    case_of,
    cast,
    control,
    custom_template,
    person,
    scored,
    team,
    with_people,
)

NOW = datetime(2025, 3, 4, 5, 6, tzinfo=UTC)
STAT_KEYS = (
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
    "revote_suggested",
)


def decided() -> Session:
    """`realtime` revealed (then re-voted and revealed again), `performance` open, rest waiting."""
    session = scored(team("Alice", "Bob"), "realtime", {"alice": 4, "bob": 0, "fay": 2})
    session = control(session, "revote", "realtime")
    session = control(
        cast(session, "realtime", {"alice": 4, "bob": 3, "fay": None}), "reveal", "realtime"
    )
    return cast(control(session, "open", "performance"), "performance", {"alice": 4})


# --- the results document


def test_the_results_document_has_the_contract_shape() -> None:
    session = with_people(decided(), person("Watcher", "spectator"))
    document = exports.results(session)
    assert set(document) >= {"session", "cases", "recommendation"}
    assert document["session"] == {
        "id": "s1",
        "title": "Our next project",
        "mode": "hidden",
        "anonymous": False,
        "status": "active",
        "auto_reveal": False,
        "door_open": True,
        "decision": None,
        "template": "Is Django right for this project?",
        "version": session.version,
    }
    assert document["participants"] == [
        {"id": "fay", "name": "Fay", "role": "facilitator", "left": False, "voted": True},
        {"id": "alice", "name": "Alice", "role": "voter", "left": False, "voted": True},
        {"id": "bob", "name": "Bob", "role": "voter", "left": False, "voted": True},
        {"id": "watcher", "name": "Watcher", "role": "spectator", "left": False, "voted": False},
    ]
    assert [c["id"] for c in document["cases"]] == [c.id for c in session.template.cases]
    for case in document["cases"]:
        assert {"id", "title", "status", "round", *STAT_KEYS, "history"} <= set(case)


def test_revealed_cases_report_their_results() -> None:
    realtime = case_of(exports.results(decided()), "realtime")
    assert realtime["title"] == "Live updates are core"
    assert (realtime["status"], realtime["round"]) == ("revealed", 2)
    assert realtime["n"] == 2
    assert realtime["abstain"] == 1
    assert realtime["histogram"] == [0, 0, 0, 1, 1]
    assert realtime["median"] == 3.5
    assert realtime["ballots"] == [
        {"participant": "fay", "score": None},
        {"participant": "alice", "score": 4},
        {"participant": "bob", "score": 3},
    ]


@pytest.mark.parametrize("case_id", ["performance", "prototype"])
def test_hidden_cases_report_nulls(case_id: str) -> None:
    case = case_of(exports.results(decided()), case_id)
    assert all(case[key] is None for key in STAT_KEYS)
    assert "ballots" not in case
    assert case["history"] == []


def test_open_mode_reports_live_results() -> None:
    session = cast(
        control(team("Alice", mode="open"), "open", "realtime"), "realtime", {"alice": 2}
    )
    realtime = case_of(exports.results(session), "realtime")
    assert realtime["n"] == 1
    assert realtime["ballots"] == [{"participant": "alice", "score": 2}]


def test_earlier_rounds_are_kept_in_the_history() -> None:
    realtime = case_of(exports.results(decided()), "realtime")
    [first] = realtime["history"]
    assert first["round"] == 1
    assert first["histogram"] == [1, 0, 1, 0, 1]
    assert first["median"] == 2.0
    assert first["ballots"] == [
        {"participant": "fay", "score": 2},
        {"participant": "alice", "score": 4},
        {"participant": "bob", "score": 0},
    ]


def test_the_recommendation_covers_revealed_cases_only() -> None:
    document = exports.results(decided())
    advice = document["recommendation"]
    assert advice is not None
    cases = {c["case"] for r in advice["ranking"] for c in r["contributions"]}
    assert cases == {"realtime"}
    assert exports.results(team("Alice"))["recommendation"] is None


# --- CSV


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_the_csv_has_one_row_per_case_and_round() -> None:
    table = rows(exports.to_csv(exports.results(decided())))
    assert tuple(table[0]) == exports.CSV_COLUMNS
    # 11 cases, and the round of `realtime` that was voted on again.
    assert len(table) == 1 + 11 + 1
    records = [dict(zip(exports.CSV_COLUMNS, row, strict=True)) for row in table[1:]]
    assert [(r["case"], r["round"]) for r in records[:3]] == [
        ("realtime", "1"),
        ("realtime", "2"),
        ("prototype", "1"),
    ]
    first = records[0]
    assert (first["status"], first["votes"], first["median"]) == ("revoted", "3", "2.0")
    assert [first[f"score_{i}"] for i in range(5)] == ["1", "0", "1", "0", "1"]
    assert first["agreement"] == "weak"
    by_case = {r["case"]: r for r in records}
    realtime = by_case["realtime"]
    assert realtime["title"] == "Live updates are core"
    assert (realtime["status"], realtime["round"], realtime["votes"]) == ("revealed", "2", "2")
    assert [realtime[f"score_{i}"] for i in range(5)] == ["0", "0", "0", "1", "1"]
    assert realtime["median"] == "3.5"
    assert realtime["agreement"] == "strong"
    # A hidden case gives empty cells, not zeros.
    performance = by_case["performance"]
    assert performance["status"] == "voting"
    assert all(performance[key] == "" for key in exports.CSV_COLUMNS[4:])


def test_the_csv_lines_end_with_crlf() -> None:
    text = exports.to_csv(exports.results(team()))
    assert text.endswith("\r\n")
    assert text.count("\r\n") == 12


@pytest.mark.parametrize(
    "title",
    [
        '=HYPERLINK("http://evil.example","click")',
        "+1+1",
        "-2+3",
        "@SUM(A1:A9)",
        "=cmd|' /C calc'!A0",
    ],
)
def test_csv_cells_that_look_like_formulas_are_made_text(title: str) -> None:
    cases = [{"id": "sneaky", "title": title, "fit": {"postgres": 1}}]
    session = team(template=custom_template(cases=cases))
    table = rows(exports.to_csv(exports.results(session)))
    assert table[1][1] == "'" + title
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in table for cell in row)


def test_csv_keeps_ordinary_titles_as_they_are() -> None:
    cases = [{"id": "plain", "title": "Costs 5 = too much?"}, {"id": "x", "title": "'quoted'"}]
    session = team(template=custom_template(cases=cases))
    table = rows(exports.to_csv(exports.results(session)))
    assert [row[1] for row in table[1:]] == ["Costs 5 = too much?", "'quoted'"]


# --- Markdown decision record


def record(session: Session) -> str:
    return exports.to_markdown(exports.results(session), NOW)


def test_the_decision_record_states_the_verdict() -> None:
    session = decided()
    document = exports.results(session)
    text = exports.to_markdown(document, NOW)
    assert text.startswith("# Decision record: Our next project\n")
    assert "- Date: 2025-03-04 05:06 UTC" in text
    assert "- Voters (3): Fay, Alice, Bob" in text
    verdict = document["recommendation"]["verdict"]
    assert "Node.js" in verdict
    assert exports.md_text(verdict) in text
    assert "| 1 | Node.js | +1.75 | Live updates are core (+1.75) |" in text
    assert f"session version {session.version}" in text


def test_the_decision_record_without_a_reveal_says_so() -> None:
    text = record(team("Alice"))
    assert "No case has been revealed yet, so there is no recommendation." in text
    assert "| Rank |" not in text


def test_the_decision_record_lists_ballots_and_earlier_rounds() -> None:
    text = record(decided())
    assert "## Ballots" in text
    assert "- Live updates are core: Fay: abstained, Alice: 4, Bob: 3" in text
    assert "## Rounds" in text
    assert "- Live updates are core, round 1: median 2.0, consensus 0.33\n" in text
    assert (
        "- Live updates are core, round 2 (this round): median 3.5, consensus 0.81, "
        "agreement grew by 0.47\n"
    ) in text
    # The case that is still hidden appears in the table without numbers.
    assert (
        "| Raw speed is critical | voting | 1 |  |  | \u2013 | \u2013 | \u2013 | \u2013 |" in text
    )


def test_no_rounds_section_without_a_re_vote() -> None:
    text = record(scored(team("Alice"), "realtime", {"alice": 1}))
    assert "## Rounds" not in text
    assert "## Ballots" in text


NASTY = {
    "<script>alert(1)</script>": "\\<script\\>alert(1)\\</script\\>",
    "a | b": "a \\| b",
    "[x](y)": "\\[x\\](y)",
    "![img](http://evil.example/x.png)": "!\\[img\\](http://evil.example/x.png)",
    "**bold** _it_": "\\*\\*bold\\*\\* \\_it\\_",
    "# heading": "\\# heading",
}


@pytest.mark.parametrize(("raw", "escaped"), list(NASTY.items()))
def test_md_text_makes_user_text_literal(raw: str, escaped: str) -> None:
    assert exports.md_text(raw) == escaped


def test_md_text_keeps_user_text_on_one_line() -> None:
    assert (
        exports.md_text("line one\n\n## line two\r\n| x |") == "line one \\#\\# line two \\| x \\|"
    )


def test_the_decision_record_escapes_names_and_titles() -> None:
    cases = [
        {"id": "xss", "title": "<script>alert(1)</script>", "fit": {"postgres": 2}},
        {"id": "pipe", "title": "a | b", "fit": {"sqlite": 1}},
    ]
    template = custom_template(
        title="[click](http://evil.example)",
        stacks=[{"id": "postgres", "name": "<b>Pg</b>"}, {"id": "sqlite", "name": "Lite|SQL"}],
        cases=cases,
    )
    session = team(title="<img src=x onerror=alert(1)>", template=template)
    session = with_people(session, person("<script>x</script>", pid="mallory"))
    session = scored(session, "xss", {"mallory": 4, "fay": 3})
    session = scored(session, "pipe", {"mallory": 1})
    text = record(session)

    # No markup character from user text survives unescaped (the record itself uses none).
    assert not re.search(r"(?<!\\)[<>\[\]]", text)
    assert "# Decision record: \\<img src=x onerror=alert(1)\\>" in text
    assert "- Template: \\[click\\](http://evil.example)" in text
    assert "\\<script\\>x\\</script\\>" in text  # the participant's name, as text
    assert "\\<b\\>Pg\\</b\\>" in text
    assert "Lite\\|SQL" in text
    assert "| a \\| b | revealed |" in text
    # Every table row still has its 9 columns: no user text broke out of its cell.
    case_rows = [line for line in text.splitlines() if line.startswith("| ") and "revealed" in line]
    assert len(case_rows) == 2
    for line in case_rows:
        assert line.replace("\\|", "").count("|") == 10


def test_the_decision_record_names_a_close_call_and_contested_cases() -> None:
    template = custom_template(
        cases=[
            {"id": "scale", "title": "Many writers", "fit": {"postgres": 1}},
            {"id": "embedded", "title": "Runs on a device", "fit": {"sqlite": 1}},
        ]
    )
    session = team("Alice", template=template)
    session = scored(session, "scale", {"alice": 2, "fay": 2})
    session = scored(session, "embedded", {"alice": 0, "fay": 4})
    document = exports.results(session)
    advice = document["recommendation"]
    assert advice["close_call"] is not None
    assert advice["contested"] == ["embedded"]
    text = exports.to_markdown(document, NOW)
    assert "This is a close call" in text
    assert "Weak agreement on: Runs on a device. Consider a re-vote" in text
    assert "weak: re-vote?" in text


def test_the_decision_record_of_an_anonymous_session_has_no_ballots() -> None:
    session = scored(
        team("Alice", "Bob", anonymous=True), "realtime", {"alice": 4, "bob": 1, "fay": 2}
    )
    text = record(control(scored_again(session), "finish"))
    assert "## Ballots" not in text
    assert "Alice: 4" not in text
    assert "Bob: 1" not in text
    assert "## Rounds" in text
    assert "Session status: finished" in text


def scored_again(session: Session) -> Session:
    session = control(session, "revote", "realtime")
    ballots: dict[str, int | None] = {"alice": 3, "bob": 1, "fay": 2}
    return control(cast(session, "realtime", ballots), "reveal", "realtime")


# --- reasons


def reasoned(**options: object) -> Session:
    """`realtime` revealed with reasons in two rounds; `performance` open with a hidden one."""
    people = ("Alice", "Bob", "Carol") if options.get("anonymous") else ("Alice", "Bob")
    session = control(team(*people, **options), "open", "realtime")
    session = rules.vote(session, "alice", "realtime", 4, reason="Chat is the product")
    session = rules.vote(session, "bob", "realtime", None, reason="=cmd|' /C calc'!A0")
    if options.get("anonymous"):
        # Enough scores to reveal an anonymous session's question (rules.MIN_CROWD).
        session = cast(session, "realtime", {"fay": 2, "carol": 1})
    session = control(control(session, "reveal", "realtime"), "revote", "realtime")
    session = rules.vote(session, "alice", "realtime", 3, reason="Less *sure* now [x](y)")
    if options.get("anonymous"):
        session = cast(session, "realtime", {"fay": 2, "carol": 1})
    session = control(session, "reveal", "realtime")
    session = control(session, "open", "performance")
    return rules.vote(session, "bob", "performance", 2, reason="a hidden thought")


def test_the_results_document_carries_reasons_with_their_rounds() -> None:
    realtime = case_of(exports.results(reasoned()), "realtime")
    assert realtime["reasons"] == [
        {"participant": "alice", "score": 3, "text": "Less *sure* now [x](y)"}
    ]
    assert realtime["history"][0]["reasons"] == [
        {"participant": "alice", "score": 4, "text": "Chat is the product"},
        {"participant": "bob", "score": None, "text": "=cmd|' /C calc'!A0"},
    ]
    assert case_of(exports.results(reasoned()), "performance")["reasons"] is None


def test_anonymous_reasons_are_exported_without_names() -> None:
    document = exports.results(reasoned(anonymous=True))
    realtime = case_of(document, "realtime")
    assert realtime["reasons"] == [{"score": 3, "text": "Less *sure* now [x](y)"}]
    assert realtime["history"][0]["reasons"] == [
        {"score": 4, "text": "Chat is the product"},
        {"score": None, "text": "=cmd|' /C calc'!A0"},
    ]
    record = exports.to_markdown(document, NOW)
    assert "Alice (" not in record and "Bob (" not in record
    assert "- 3: Less \\*sure\\* now \\[x\\](y)" in record


def test_the_csv_has_the_reasons_one_per_line_in_a_cell() -> None:
    table = rows(exports.to_csv(exports.results(reasoned())))
    by_case = {row[0]: dict(zip(exports.CSV_COLUMNS, row, strict=True)) for row in table[1:]}
    assert by_case["realtime"]["reasons"] == "Alice (3): Less *sure* now [x](y)"
    assert by_case["performance"]["reasons"] == ""
    assert "hidden thought" not in exports.to_csv(exports.results(reasoned()))


def test_the_decision_record_lists_reasons_escaped_and_hidden_ones_not() -> None:
    record = exports.to_markdown(exports.results(reasoned()), NOW)
    assert "## Reasons" in record
    assert "  - Alice (3): Less \\*sure\\* now \\[x\\](y)" in record
    # Earlier rounds keep theirs.
    assert "  - Bob (abstained): =cmd\\|' /C calc'!A0" in record
    assert "hidden thought" not in record


def test_no_reasons_section_without_reasons() -> None:
    assert "## Reasons" not in exports.to_markdown(exports.results(decided()), NOW)


# --- people who left


def test_people_who_left_keep_their_names_in_the_record() -> None:
    session = scored(team("Alice", "Bob", "Cat"), "realtime", {"alice": 4, "bob": 1, "fay": 2})
    session = rules.remove(session, "fay", "alice", keep_ballots=True)
    session = rules.leave(session, "bob", keep_ballots=True)
    session = rules.leave(session, "cat", keep_ballots=True)  # held no ballot: simply gone
    document = exports.results(session)
    assert document["participants"][-2:] == [
        {"id": "alice", "name": "Alice", "role": "voter", "left": True, "voted": True},
        {"id": "bob", "name": "Bob", "role": "voter", "left": True, "voted": True},
    ]
    assert "cat" not in {p["id"] for p in document["participants"]}
    text = record(session)
    assert "- Voters (3): Fay, Alice (left), Bob (left)" in text
    assert "Alice (left): 4" in text and "Bob (left): 1" in text
    assert "?:" not in text
