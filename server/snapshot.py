"""What others may see of a session: the `state` snapshot, results and the recommendation.

This is the one place that decides what leaves the server. Scores of a case are included only
when the case's results are visible (revealed, or open mode); who scored what is never included
in an anonymous session.
"""

from __future__ import annotations

from typing import Any

from server import engine
from server.models import CaseState, Session


def case_results(session: Session, case: CaseState) -> dict[str, Any] | None:
    if not session.results_visible(case):
        return None
    ballots = case.ballots
    if session.anonymous and case.status == "voting":
        # Live results of an anonymous session move in batches (rules.vote says why).
        ballots = case.shown
    results = engine.case_results(ballots.values()).as_dict()
    if not session.anonymous:
        results["ballots"] = [
            {"participant": participant, "score": score}
            for participant, score in case.ballots.items()
        ]
    return results


def recommendation(session: Session) -> dict[str, Any] | None:
    """The engine's advice over the revealed cases (in open mode too: live scores are still
    moving, so only what the facilitator revealed counts towards the decision)."""
    template = session.template
    inputs = []
    for case in session.cases:
        if case.status not in ("revealed", "locked"):
            continue
        results = engine.case_results(case.ballots.values())
        spec = template.case(case.id)
        if results.median is None or spec is None:
            continue
        inputs.append(
            engine.CaseInput(
                id=case.id,
                title=spec.title,
                median=results.median,
                fit=spec.fit,
                band=results.band,
            )
        )
    stacks = [engine.StackInfo(id=s.id, name=s.name) for s in template.stacks]
    advice = engine.recommend(inputs, stacks, favourite=template.favourite)
    return None if advice is None else advice.as_dict()


def summary(session: Session) -> dict[str, Any]:
    return {
        "id": session.id,
        "title": session.title,
        "mode": session.mode,
        "anonymous": session.anonymous,
        "status": session.status,
    }


def state(session: Session) -> dict[str, Any]:
    """The snapshot every participant of the session receives (the `state` event)."""
    titles = {c.id: c.title for c in session.template.cases}
    return {
        "version": session.version,
        "session": summary(session),
        "participants": [
            {
                "id": p.id,
                "name": p.name,
                "role": p.role,
                "online": p.online,
                "voted": [c.id for c in session.cases if p.id in c.ballots],
            }
            for p in session.participants
        ],
        "cases": [
            {
                "id": c.id,
                "title": titles.get(c.id, c.id),
                "status": c.status,
                "round": c.round,
                "votes_in": len(c.ballots),
                "results": case_results(session, c),
            }
            for c in session.cases
        ],
        "recommendation": recommendation(session),
    }


def own_ballots(session: Session, participant_id: str) -> dict[str, int | None]:
    """A participant's own current ballots (sent only to them, so a reload keeps their choices)."""
    return {c.id: c.ballots[participant_id] for c in session.cases if participant_id in c.ballots}
