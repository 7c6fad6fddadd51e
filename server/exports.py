"""The results of a session as a document: JSON, CSV and a Markdown decision record."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from typing import Any

from server import engine, snapshot
from server.models import Round, Session

_STAT_KEYS = (
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


# results()' advice when none is given: worked out there and then.
_WORK_IT_OUT: Any = object()


def results(session: Session, advice: dict[str, Any] | None = _WORK_IT_OUT) -> dict[str, Any]:
    """The results document (GET /api/sessions/<id>/results); hidden scores (and the reasons
    given with them) stay hidden. `advice`: the recommendation with every stack's flip, if
    worked out already (server.advice). `history` holds each earlier round in full: its results,
    ballots and reasons, as they were revealed before the re-vote, and `change`: how much
    consensus grew since the round before."""
    titles = {c.id: c.title for c in session.template.cases}
    cases = []
    for case in session.cases:
        stats = snapshot.case_results(session, case) or dict.fromkeys(_STAT_KEYS)
        cases.append(
            {
                "id": case.id,
                "title": titles.get(case.id, case.id),
                "status": case.status,
                "round": case.round,
                **stats,
                "history": [
                    {**_past_round(session, past), "change": summary["change"]}
                    for past, summary in zip(
                        case.history, snapshot.history(session, case), strict=True
                    )
                ],
            }
        )
    return {
        "session": {
            # A reminder to vote is of the moment, not part of the record.
            **{k: v for k, v in snapshot.summary(session).items() if k != "nudge"},
            "template": session.template.title,
            "version": session.version,
        },
        # Everyone listed, then those who left holding ballots (`left`: their ballots count).
        "participants": [
            *(_person(session, p.id, p.name, p.role, left=False) for p in session.participants),
            *(
                _person(session, pid, f.name, f.role, left=True)
                for pid, f in session.former.items()
                if session.participant(pid) is None
            ),
        ],
        "cases": cases,
        "stacks": [{"id": s.id, "name": s.name} for s in session.template.stacks],
        "recommendation": (
            snapshot.recommendation(session, every_flip=True) if advice is _WORK_IT_OUT else advice
        ),
    }


def _person(session: Session, pid: str, name: str, role: str, *, left: bool) -> dict[str, Any]:
    """A participant in the record. `voted`: whether they hold a ballot on any case, in any
    round (skips count); null in an anonymous session, which never says who voted."""
    voted = None if session.anonymous else session.holds_ballot(pid)
    return {"id": pid, "name": name, "role": role, "left": left, "voted": voted}


def _past_round(session: Session, past: Round) -> dict[str, Any]:
    # Earlier rounds were revealed before the re-vote, so their scores are public (unless
    # too few people scored one in an anonymous session: then it showed nothing, nor does this).
    stats = snapshot.past_results(session, past)
    if not session.crowd_enough(past.ballots):
        return {"round": past.round, **stats, "reasons": []}
    if not session.anonymous:
        stats["ballots"] = snapshot.ballots_in_join_order(session, past.ballots)
    stats["reasons"] = snapshot.reasons(session, past.ballots, past.reasons)
    return {"round": past.round, **stats}


# Spreadsheet programs run cells that start like a formula; a leading quote makes them text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value


CSV_COLUMNS = (
    "case",
    "title",
    "status",
    "round",
    "votes",
    "abstain",
    "score_0",
    "score_1",
    "score_2",
    "score_3",
    "score_4",
    "mean",
    "median",
    "iqr",
    "consensus",
    "agreement",
    "reasons",
)


def _score_word(score: int | None) -> str:
    return "abstained" if score is None else str(score)


def _reason_lines(reasons: list[dict[str, Any]] | None, names: dict[str, str]) -> list[str]:
    """Each reason as "Name (score): text", or "score: text" without names (anonymous)."""
    lines = []
    for reason in reasons or ():
        if "participant" in reason:
            who = names.get(reason["participant"], "someone who left")
            lines.append(f"{who} ({_score_word(reason['score'])}): {reason['text']}")
        else:
            lines.append(f"{_score_word(reason['score'])}: {reason['text']}")
    return lines


# The status of a round that was voted on again.
REVOTED = "revoted"


def to_csv(document: dict[str, Any]) -> str:
    """One row per case and round: each earlier round (status "revoted"), then the current."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    names = _names(document)
    for case in document["cases"]:
        rounds = [(past, REVOTED, past["round"]) for past in case["history"]]
        for stats, status, number in [*rounds, (case, case["status"], case["round"])]:
            histogram = stats["histogram"] or [None] * 5
            row = [
                case["id"],
                case["title"],
                status,
                number,
                stats["n"],
                stats["abstain"],
                *histogram,
                stats["mean"],
                stats["median"],
                stats["iqr"],
                stats["consensus"],
                stats["band"],
                # One reason per line within the cell.
                "\n".join(_reason_lines(stats["reasons"], names)),
            ]
            writer.writerow([_cell(v) for v in row])
    return out.getvalue()


# User text always lands mid-line (after a label, in a table cell), so only inline markup needs
# escaping: emphasis, code, links and images (via the brackets), HTML, table pipes.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~])")


def md_text(value: str) -> str:
    """User text as literal Markdown text: no links, images, HTML or table breaks."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(value.split()))


NO_VALUE = "\u2013"  # an en dash: "no value yet" in tables


def _num(value: float | None, digits: int = 2) -> str:
    return NO_VALUE if value is None else f"{value:.{digits}f}"


_AGREEMENT = {"strong": "strong", "moderate": "moderate", "weak": "weak: re-vote?"}


_CONFIDENCE = {
    "clear": "clear",
    "leaning": "leaning",
    "toss_up": "a toss-up",
    "too_few": "too few scores to tell",
    "tied": "a tie",
}


def _how_sure(advice: dict[str, Any]) -> list[str]:
    """How often each stack wins when the team's scores are resampled, the range of its
    score, and the smallest change of medians that would make it win."""
    top = advice["ranking"][0]
    if advice["confidence"] == "tied":
        level = [
            top["name"],
            *(r["name"] for r in advice["ranking"] if r["stack"] in top["tied_with"]),
        ]
        said = (
            f"Confidence: a tie. {md_text(engine.phrases(level))} score the same, so they "
            f"share first place; the tie rule lists {md_text(top['name'])} first."
        )
    elif advice["confidence"] == "too_few":
        said = (
            "Confidence: too few scores to tell. Fewer than 3 people scored the revealed "
            "questions, so drawing their scores again at random says nothing yet."
        )
    else:
        said = (
            f"Confidence: {_CONFIDENCE.get(advice['confidence'], advice['confidence'])}. "
            f"Drawing the team's scores again at random, {md_text(top['name'])} "
            f"comes first {top['win_share']:.0%} of the time."
        )
    lines = [
        "### How sure",
        "",
        said,
        "",
        "| Stack | Wins | Score range (90 %) | What it would take |",
        "|---|---:|---|---|",
    ]
    for entry in advice["ranking"]:
        if entry is top:
            takes = "Recommended now."
        elif top["stack"] in entry.get("tied_with", ()):
            takes = f"Level with {md_text(top['name'])}: the scores cannot separate them yet."
        elif entry["flip"] is not None:
            takes = md_text(entry["flip"]["sentence"])
        elif entry["can_win"]:
            takes = NO_VALUE
        else:
            takes = "Cannot win with any scores."
        low, high = entry["interval"]
        wins = NO_VALUE if advice["confidence"] == "too_few" else f"{entry['win_share']:.0%}"
        lines.append(f"| {md_text(entry['name'])} | {wins} | {low:+.2f} to {high:+.2f} | {takes} |")
    return [*lines, ""]


def _round_line(stats: dict[str, Any], current: bool = False) -> str:
    """A round of a case: its median and consensus, and how agreement moved since the round
    before."""
    line = (
        f"round {stats['round']}{' (this round)' if current else ''}: "
        f"median {_num(stats['median'], 1)}, consensus {_num(stats['consensus'])}"
    )
    change = stats["change"]
    if change is None:
        return line
    if change > 0:
        return f"{line}, agreement grew by {change:.2f}"
    if change < 0:
        return f"{line}, agreement fell by {-change:.2f}"
    return f"{line}, agreement unchanged"


def _names(document: dict[str, Any]) -> dict[str, str]:
    """Each participant's name for the record; those who left are marked so."""
    return {
        p["id"]: f"{p['name']} (left)" if p.get("left") else p["name"]
        for p in document["participants"]
    }


def _people_lines(document: dict[str, Any], names: dict[str, str]) -> list[str]:
    """Who took part: those who voted (people who left among them, marked so), then those who
    joined without voting; an anonymous record lists everyone who could vote together."""

    def line(label: str, people: list[dict[str, Any]]) -> str:
        listed = ", ".join(md_text(names[p["id"]]) for p in people) or "none"
        return f"- {label} ({len(people)}): {listed}"

    scoring = [p for p in document["participants"] if p["role"] != "spectator"]
    if document["session"]["anonymous"]:
        return [line("Participants", scoring)]
    lines = [line("Voters", [p for p in scoring if p["voted"]])]
    silent = [p for p in scoring if not p["voted"]]
    if silent:
        lines.append(line("Joined without voting", silent))
    return lines


def to_markdown(document: dict[str, Any], now: datetime) -> str:
    session = document["session"]
    names = _names(document)
    titles = {c["id"]: c["title"] for c in document["cases"]}
    lines = [
        f"# Decision record: {md_text(session['title'])}",
        "",
        f"- Date: {now:%Y-%m-%d %H:%M} UTC",
        f"- Template: {md_text(session['template'])}",
        f"- Session status: {session['status']}",
        *_people_lines(document, names),
        "",
        "## Decision",
        "",
    ]
    chosen, note = _decided(document)
    decision = session.get("decision")
    if decision is not None:
        option = md_text(chosen) if chosen else "none of the template's options"
        lines += [f"The team decided: **{option}** (recorded by {md_text(decision['by'])})."]
        if note:
            lines += ["", *(f"> {md_text(line)}" if line else ">" for line in note.split("\n"))]
        lines += ["", "The recommendation, for comparison:", ""]
    advice = document["recommendation"]
    if advice is None:
        lines += ["No case has been revealed yet, so there is no recommendation.", ""]
    else:
        lines += [md_text(advice["verdict"]), ""]
        if advice["close_call"]:
            lines.append(
                f"This is a close call: moving the median of "
                f"*{md_text(titles.get(advice['close_call'], advice['close_call']))}* "
                "by one step changes the winner."
            )
        else:
            lines.append("The verdict is robust: no single case moved by one step changes it.")
        if advice["contested"]:
            lines += [
                "",
                "Weak agreement on: "
                + ", ".join(md_text(titles.get(c, c)) for c in advice["contested"])
                + ". Consider a re-vote before trusting the decision.",
            ]
        lines += ["", "| Rank | Stack | Score | Main reasons |", "|---:|---|---:|---|"]
        for rank, entry in enumerate(advice["ranking"], start=1):
            reasons = "; ".join(
                f"{md_text(titles.get(c['case'], c['case']))} ({c['value']:+.2f})"
                for c in entry["contributions"][:3]
            )
            lines.append(
                f"| {rank} | {md_text(entry['name'])} | {entry['score']:+.2f} | {reasons} |"
            )
        lines += ["", *_how_sure(advice)]
    lines += [
        "## Cases",
        "",
        "| Case | Status | Round | Votes | Abstain | Median | Mean | Consensus | Agreement |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for case in document["cases"]:
        lines.append(
            f"| {md_text(case['title'])} | {case['status']} | {case['round']} | "
            f"{'' if case['n'] is None else case['n']} | "
            f"{'' if case['abstain'] is None else case['abstain']} | "
            f"{_num(case['median'], 1)} | {_num(case['mean'])} | {_num(case['consensus'])} | "
            f"{_AGREEMENT.get(case['band'] or '', NO_VALUE)} |"
        )
    ballots = [c for c in document["cases"] if c.get("ballots")]
    if ballots:
        lines += ["", "## Ballots", ""]
        for case in ballots:
            cast = ", ".join(
                f"{md_text(names.get(b['participant'], 'someone'))}: "
                f"{'abstained' if b['score'] is None else b['score']}"
                for b in case["ballots"]
            )
            lines.append(f"- {md_text(case['title'])}: {cast}")
    reasoned = [c for c in document["cases"] if c["reasons"]]
    if reasoned:
        lines += ["", "## Reasons", ""]
        for case in reasoned:
            lines.append(f"- {md_text(case['title'])}")
            lines += [f"  - {md_text(r)}" for r in _reason_lines(case["reasons"], names)]
    revoted = [c for c in document["cases"] if c["history"]]
    if revoted:
        lines += ["", "## Rounds", ""]
        for case in revoted:
            for past in case["history"]:
                lines.append(f"- {md_text(case['title'])}, {_round_line(past)}")
                lines += [f"  - {md_text(r)}" for r in _reason_lines(past["reasons"], names)]
            if case["n"] is not None:
                lines.append(f"- {md_text(case['title'])}, {_round_line(case, current=True)}")
                if case["revote_suggested"]:
                    lines.append("  - Agreement is still weak and growing: another round may help.")
    lines += ["", f"_Exported from stackvote, session version {session['version']}._", ""]
    return "\n".join(lines)


def _decided(document: dict[str, Any]) -> tuple[str | None, str]:
    """The chosen option's name (None when the team chose none of the template's stacks) and
    the note, from the team's decision."""
    decision = document["session"].get("decision")
    names = {s["id"]: s["name"] for s in document.get("stacks", ())}
    if decision is None:
        return None, ""
    stack = decision["stack"]
    return (None if stack is None else names.get(stack, stack)), decision["note"]


def to_adr(document: dict[str, Any], now: datetime) -> str:
    """The decision as an Architecture Decision Record in MADR 4 form, ready to commit as
    docs/decisions/NNNN-<slug>.md: the team's decision once made (status accepted), else the
    recommendation (status proposed)."""
    session = document["session"]
    advice = document["recommendation"]
    decision = session.get("decision")
    makers = [p["name"] for p in document["participants"] if p["role"] != "spectator"]
    status = "accepted" if decision is not None else "proposed"
    lines = [
        "---",
        f"status: {status}",
        f"date: {now:%Y-%m-%d}",
        "decision-makers: [" + ", ".join(_yaml_safe(n) for n in makers) + "]",
        "---",
        "",
        f"# {md_text(session['title'])}",
        "",
        "## Context and Problem Statement",
        "",
        f"The team scored how far each situation of the template *{md_text(session['template'])}* "
        "applies to this project (0: not at all, 4: strongly), to choose between the options "
        "below. The scores, their agreement and the recommendation come from a stackvote "
        "session.",
        "",
        "## Decision Drivers",
        "",
    ]
    shown = [c for c in document["cases"] if c["median"] is not None]
    for case in shown:
        agreement = case["band"] or NO_VALUE
        lines.append(
            f"* {md_text(case['title'])}: median {_num(case['median'], 1)} of 4, "
            f"{agreement} agreement (consensus {_num(case['consensus'])}, {case['n']} scores)"
        )
    if not shown:
        lines.append("* No question has been revealed yet.")
    lines += ["", "## Considered Options", ""]
    ranking = advice["ranking"] if advice else []
    for entry in ranking:
        lines.append(f"* {md_text(entry['name'])} (score {entry['score']:+.2f})")
    if not ranking:
        lines.append("* No option has been scored yet.")
    lines += ["", "## Decision Outcome", ""]
    chosen, note = _decided(document)
    if decision is not None:
        option = f'"{md_text(chosen)}"' if chosen else "none of the options above"
        if note and "\n" in note:
            # A note of several lines stays as written, quoted under the sentence.
            lines.append(f"Chosen option: {option}, because of what the team noted:")
            lines += ["", *(f"> {md_text(line)}".rstrip() for line in note.splitlines())]
        else:
            because = md_text(note.rstrip(".!? ")) if note else "the team decided so"
            lines.append(f"Chosen option: {option}, because {because}.")
        if advice and chosen and advice["ranking"][0]["name"] != chosen:
            lines += ["", f"The recommendation was different: {md_text(advice['verdict'])}"]
        lines += ["", f"Recorded by {md_text(decision['by'])}."]
    elif advice and (advice.get("verdict_parts") or {}).get("kind") in ("tied", "none"):
        # A shared top (or nothing revealed that moves any stack) proposes nothing.
        lines.append(
            f"Nothing is proposed yet: {md_text(advice['verdict'])} "
            "(the team has not recorded its decision yet)."
        )
    elif advice:
        top = advice["ranking"][0]
        lines.append(
            f'Proposed option: "{md_text(top["name"])}", because {md_text(advice["verdict"])} '
            "(the recommendation; the team has not recorded its decision yet)."
        )
    else:
        lines.append("Nothing is proposed yet: no question has been revealed.")
    lines += ["", "### Consequences", ""]
    if advice:
        # The consequences of what was chosen: the team's option where it is one of the
        # ranked stacks (none of the template's: no per-question fit to tell), else the
        # recommendation's.
        top = advice["ranking"][0]
        if decision is not None:
            top = next((r for r in advice["ranking"] if r["stack"] == decision["stack"]), None)
        titles = {c["id"]: c["title"] for c in document["cases"]}
        for part in top["contributions"][:3] if top else ():
            case = md_text(titles.get(part["case"], part["case"]))
            name, value = md_text(top["name"]), f"{part['value']:+.2f}"
            if part["value"] >= 0:
                lines.append(f"* Good, because {name} fits *{case}* ({value}).")
            else:
                lines.append(f"* Bad, because {name} is a poor fit for *{case}* ({value}).")
        if advice["contested"]:
            lines.append(
                "* Bad, because agreement is weak on "
                + ", ".join(md_text(titles.get(c, c)) for c in advice["contested"])
                + ": worth another round before relying on it."
            )
        flip = advice.get("flip")
        if flip:
            lines.append(f"* Neutral: what would change it: {md_text(flip['sentence'])}")
    else:
        lines.append("* None recorded yet.")
    lines += [
        "",
        "## More Information",
        "",
        f"Exported from stackvote on {now:%Y-%m-%d %H:%M} UTC, session version "
        f"{session['version']} ({session['status']}).",
        "",
    ]
    return "\n".join(lines)


def _yaml_safe(name: str) -> str:
    """A name as a YAML flow item: quoted, so that colons, commas or quotes in it stay text."""
    return '"' + " ".join(name.split()).replace("\\", "\\\\").replace('"', '\\"') + '"'
