"""Plain helpers that build sessions, people and templates for the unit tests (no fixtures)."""

from __future__ import annotations

from typing import Any

from server import rules
from server.decks import builtin_templates, parse_template
from server.models import CaseState, Mode, Participant, Role, Session, Template
from server.security import hash_token
from server.store import Lifetimes

FACILITATOR = "fay"
LIMIT = 100


def lasting(seconds: float) -> Lifetimes:
    """Store lifetimes where every session, joined or not, lives `seconds` unchanged."""
    return Lifetimes(ttl_seconds=seconds, unjoined_ttl_seconds=seconds)


def default_template() -> Template:
    return builtin_templates()["django"]


def template_data(**changes: Any) -> dict[str, Any]:
    """A small valid custom template as decoded JSON, with top-level keys replaced by `changes`."""
    data: dict[str, Any] = {
        "title": "Which database?",
        "stacks": [
            {"id": "postgres", "name": "PostgreSQL"},
            {"id": "sqlite", "name": "SQLite"},
        ],
        "cases": [
            {"id": "scale", "title": "Many writers", "fit": {"postgres": 2, "sqlite": -1}},
            {"id": "embedded", "title": "Runs on a device", "fit": {"sqlite": 2}},
        ],
        "favourite": "postgres",
    }
    data.update(changes)
    return data


def custom_template(**changes: Any) -> Template:
    return parse_template(template_data(**changes))


def person(name: str, role: Role = "voter", *, pid: str | None = None) -> Participant:
    ident = pid or name.lower().replace(" ", "-")
    return Participant(id=ident, name=name, role=role, token_hash=hash_token(f"token-{ident}"))


def new_session(
    *,
    template: Template | None = None,
    mode: Mode = "hidden",
    anonymous: bool = False,
    session_id: str = "s1",
    title: str = "Our next project",
    now: float = 1_000.0,
) -> Session:
    chosen = template or default_template()
    return Session(
        id=session_id,
        title=title,
        mode=mode,
        anonymous=anonymous,
        template=chosen,
        facilitator_hash=hash_token("facilitator-secret"),
        created_at=now,
        updated_at=now,
        cases=tuple(CaseState(id=c.id) for c in chosen.cases),
    )


def with_people(session: Session, *people: Participant) -> Session:
    for p in people:
        session = rules.join(session, p, limit=LIMIT)
    return session


def team(*voters: str, **options: Any) -> Session:
    """A session with the facilitator `fay` and the named voters (ids: lower-case names)."""
    return with_people(
        new_session(**options), person("Fay", "facilitator"), *(person(n) for n in voters)
    )


def control(session: Session, action: str, case_id: str | None = None) -> Session:
    return rules.control(session, FACILITATOR, action, case_id)


def cast(session: Session, case_id: str, scores: dict[str, int | None]) -> Session:
    """Every listed participant votes on `case_id`."""
    for pid, score in scores.items():
        session = rules.vote(session, pid, case_id, score)
    return session


def scored(session: Session, case_id: str, scores: dict[str, int | None]) -> Session:
    """Open `case_id`, collect `scores` and reveal it."""
    return control(cast(control(session, "open", case_id), case_id, scores), "reveal", case_id)


def case_of(document: dict[str, Any], case_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in document["cases"] if c["id"] == case_id)
    return found


def ballots_of(state: dict[str, Any]) -> dict[tuple[str, str], int | None]:
    """Every visible ballot in a snapshot, as (participant id, case id) -> score."""
    return {
        (b["participant"], c["id"]): b["score"]
        for c in state["cases"]
        for b in (c["results"] or {}).get("ballots", [])
    }


def case_in(session: Session, case_id: str) -> CaseState:
    case = session.case(case_id)
    assert case is not None, case_id
    return case
