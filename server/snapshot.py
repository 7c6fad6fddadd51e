"""What others may see of a session: the `state` snapshot, its `delta`s, results and the
recommendation.

This is the one place that decides what leaves the server. Scores of a case, and the reasons
given with them, are included only when the case's results are visible (revealed, or open
mode); who scored what is never included in an anonymous session, nor who has voted (only how
many), nor the scores of a round fewer than MIN_CROWD people scored. A delta is built from the
very same views as the snapshot and lists a part only when its view differs from the one last
sent, so it can never tell more than two snapshots side by side would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter, is_not
from typing import Any, Protocol

import msgspec

from server import engine
from server.models import CaseState, Participant, Round, Session


def case_results(session: Session, case: CaseState) -> dict[str, Any] | None:
    if not session.results_visible(case):
        return None
    ballots = case.ballots
    live_and_anonymous = session.anonymous and case.status == "voting"
    if live_and_anonymous:
        # Live results of an anonymous session move in batches (rules.vote says why).
        ballots = case.shown
    results = engine.case_results(ballots.values()).as_dict()
    if not session.anonymous:
        results["ballots"] = ballots_in_join_order(session, case.ballots)
    # Reasons show with the scores; in an anonymous session only once revealed, because the
    # live scores there move in batches and a reason would tell whose score just arrived.
    results["reasons"] = [] if live_and_anonymous else reasons(session, case.ballots, case.reasons)
    earlier = history(session, case)
    results["history"] = earlier
    # How agreement moved since the round before, and whether another round is worth it
    # (only for a revealed or locked round: live scores in open mode are not a round yet).
    previous = earlier[-1]["consensus"] if earlier else None
    results["change"] = engine.consensus_change(previous, results["consensus"])
    results["revote_suggested"] = case.status in ("revealed", "locked") and (
        engine.revote_suggested(
            results["band"], results["iqr"], results["consensus"], _consensus_by_round(earlier)
        )
    )
    return results


def reasons(
    session: Session, ballots: dict[str, int | None], given: dict[str, str]
) -> list[dict[str, Any]]:
    """The reasons given with ballots, each with its score: in the order people joined, or,
    in an anonymous session, without names and in an order that names nobody (by score, then
    text), since who has voted is public and join order would pair reasons with people."""
    if not given:
        return []
    if session.anonymous:
        found = [(ballots.get(pid), text) for pid, text in given.items() if pid in ballots]
        found.sort(key=lambda r: (r[0] is None, r[0] or 0, r[1]))
        return [{"score": score, "text": text} for score, text in found]
    positions = session.people().positions
    order = sorted(
        (pid for pid in given if pid in ballots),
        key=lambda pid: (pid not in positions, positions.get(pid, 0), pid),
    )
    return [{"participant": pid, "score": ballots[pid], "text": given[pid]} for pid in order]


def history(session: Session, case: CaseState) -> list[dict[str, Any]]:
    """The earlier rounds of a case, as SPEC §4 `history` lists them, each with `change`: how
    much consensus grew since the round before (None for the first round). A round of an
    anonymous session closed with too few scores shows none (its figures are None)."""
    rounds: list[dict[str, Any]] = []
    for past in case.history:
        stats = past_results(session, past)
        previous = rounds[-1]["consensus"] if rounds else None
        rounds.append(
            {
                "round": past.round,
                **{key: stats[key] for key in _ROUND_KEYS},
                "change": engine.consensus_change(previous, stats["consensus"]),
            }
        )
    return rounds


_ROUND_KEYS = ("n", "histogram", "median", "iqr", "consensus", "band")


def past_results(session: Session, past: Round) -> dict[str, Any]:
    """The figures of an earlier round (engine.case_results), all None where the round's
    scores were withheld."""
    stats = engine.case_results(past.ballots.values()).as_dict()
    if not session.crowd_enough(past.ballots):
        return dict.fromkeys(stats)
    return stats


def _consensus_by_round(rounds: list[dict[str, Any]]) -> tuple[float | None, ...]:
    return tuple(r["consensus"] for r in rounds)


def ballots_in_join_order(session: Session, ballots: dict[str, int | None]) -> list[dict[str, Any]]:
    """Who scored what, in the order people joined (the same on every instance, whatever
    order the ballots were read back in); ballots of people no longer listed come last."""
    listed = [
        {"participant": p.id, "score": ballots[p.id]}
        for p in session.participants
        if p.id in ballots
    ]
    if len(listed) < len(ballots):
        present = {b["participant"] for b in listed}
        listed += [
            {"participant": pid, "score": ballots[pid]}
            for pid in sorted(ballots)
            if pid not in present
        ]
    return listed


@dataclass(frozen=True)
class AdviceInputs:
    """What the engine's advice over a session depends on: the revealed cases as counted,
    the stacks and the tie rule. `key` tells equal inputs apart from unequal ones (the
    template of a session never changes, so its id stands for the fits and titles)."""

    key: tuple[Any, ...]
    cases: tuple[engine.CaseInput, ...]
    stacks: tuple[engine.StackInfo, ...]
    favourite: str | None
    seed: str

    def recommend(self, *, every_flip: bool = False) -> dict[str, Any] | None:
        advice = engine.recommend(
            self.cases, self.stacks, self.favourite, self.seed, every_flip=every_flip
        )
        return None if advice is None else advice.as_dict()

    def flip_of(self, stack: str) -> dict[str, Any] | None:
        """One stack's smallest flip: {"stack", "flip", "can_win"}; None for a stack the
        template does not have or while nothing is revealed."""
        if not self.cases or all(s.id != stack for s in self.stacks):
            return None
        found, can_win = engine.flip_of(self.cases, self.stacks, self.favourite, stack)
        return {
            "stack": stack,
            "flip": None if found is None else found.as_dict(),
            "can_win": can_win,
        }


def advice_inputs(session: Session) -> AdviceInputs:
    """The inputs of the engine's advice: the revealed cases (in open mode too: live scores
    are still moving, so only what the facilitator revealed counts towards the decision)."""
    template = session.template
    inputs = []
    for case in session.cases:
        if case.status not in ("revealed", "locked") or session.withheld(case):
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
                histogram=results.histogram,
                iqr=results.iqr,
                consensus=results.consensus,
                earlier=_consensus_by_round(history(session, case)),
            )
        )
    key = (
        session.id,
        template.id,
        tuple((c.id, c.median, c.histogram, c.iqr, c.consensus, c.band, c.earlier) for c in inputs),
    )
    # Seeded by the session (the engine adds a digest of its inputs): the same figures on
    # every instance and reload, moving only when a reveal, lock or re-vote changes them.
    return AdviceInputs(
        key,
        tuple(inputs),
        tuple(engine.StackInfo(id=s.id, name=s.name) for s in template.stacks),
        template.favourite,
        session.id,
    )


def recommendation(session: Session, *, every_flip: bool = False) -> dict[str, Any] | None:
    """The engine's advice over the revealed cases, worked out here and now (server.advice
    works it out off the event loop). `every_flip`: every stack's smallest flip, as the
    record gives them; else the runner-up's only, as the room is sent it."""
    return advice_inputs(session).recommend(every_flip=every_flip)


# The session's own fields its summary shows as they are (then its decision and nudge).
_PLAIN = ("id", "title", "mode", "anonymous", "status", "auto_reveal", "door_open")
_plain = attrgetter(*_PLAIN)


def summary(session: Session) -> dict[str, Any]:
    found: dict[str, Any] = dict(zip(_PLAIN, _plain(session), strict=True))
    found["decision"] = None if session.decision is None else msgspec.to_builtins(session.decision)
    found["nudge"] = nudge_view(session)
    return found


def nudge_view(session: Session) -> dict[str, Any] | None:
    """The last reminder to vote, naming only the cases it was about that are still being
    voted on in the same round; None once there are none (or there was no reminder)."""
    nudge = session.nudge
    if nudge is None:
        return None
    cases = [
        c.id for c in session.cases if c.status == "voting" and nudge.cases.get(c.id) == c.round
    ]
    return {"at": nudge.at, "cases": cases, "by": nudge.by or None} if cases else None


def participant_view(session: Session, p: Participant) -> dict[str, Any]:
    """A participant as everyone sees them. In an anonymous session nobody is told who has
    voted (`voted` is empty; each case's `votes_in` says how many): together with the moment
    a count goes up, a name on a list would say whose ballot just arrived."""
    return {
        "id": p.id,
        "name": p.name,
        "role": p.role,
        "online": p.online,
        # Not waited for (models.Participant.here): away, or offline since before the
        # server last recorded it.
        "away": not p.here,
        "voted": [] if session.anonymous else [c.id for c in session.cases if p.id in c.ballots],
    }


def case_view(session: Session, c: CaseState) -> dict[str, Any]:
    spec = session.template.case(c.id)
    return {
        "id": c.id,
        "title": spec.title if spec else c.id,
        "status": c.status,
        "round": c.round,
        "votes_in": len(c.ballots),
        "results": case_results(session, c),
        # Closed without results: too few people scored it in an anonymous session.
        "withheld": session.withheld(c),
        "deadline": c.deadline,
        # Earlier rounds were shown to everyone when revealed; they stay in view during a
        # re-vote, whose own scores are still hidden (so `results` is null then).
        "history": history(session, c),
    }


# state()'s advice when none is given: worked out there and then.
_WORK_IT_OUT: Any = object()


def state(session: Session, advice: dict[str, Any] | None = _WORK_IT_OUT) -> dict[str, Any]:
    """The snapshot every participant of the session receives (the `state` event).
    `advice`: its recommendation, when it has been worked out already (a room's View holds
    the one its clients were sent)."""
    return {
        "version": session.version,
        "session": summary(session),
        "participants": [participant_view(session, p) for p in session.participants],
        "cases": [case_view(session, c) for c in session.cases],
        "recommendation": recommendation(session) if advice is _WORK_IT_OUT else advice,
    }


class Advisor(Protocol):
    """Where a View gets the advice for a session (server.advice.Advisor)."""

    def lookup(self, session: Session) -> tuple[bool, dict[str, Any] | None]:
        """(True, the advice) when it is known for the session as it is; else (False, None),
        and it is being worked out: the caller hears when it is ready."""
        ...


@dataclass
class Marks:
    """The parts of a session that may have changed (a superset: the views decide)."""

    session: bool = False
    participants: set[str] = field(default_factory=set)
    cases: set[str] = field(default_factory=set)
    # The advice for the session was worked out since.
    advice: bool = False

    def __bool__(self) -> bool:
        return self.session or bool(self.participants) or bool(self.cases) or self.advice

    def add(self, other: Marks) -> None:
        self.session |= other.session
        self.advice |= other.advice
        self.participants |= other.participants
        self.cases |= other.cases


def marks(before: Session, after: Session) -> Marks:
    """What changed between two versions of a session, found by identity: the rules replace
    only what they change, so an unchanged participant or case is the very same object."""
    found = Marks(session=_summary_changed(before, after))
    if before.participants is not after.participants:
        found.participants |= _people_changed(before.participants, after.participants)
    if before.cases is not after.cases:
        old_cases = {c.id: c for c in before.cases}
        for c in after.cases:
            was = old_cases.get(c.id)
            if was is c:
                continue
            found.cases.add(c.id)
            # Whose `voted` list changed: a first ballot, or a round that started empty.
            if was is None:
                found.participants |= c.ballots.keys()
            elif was.ballots is not c.ballots:
                found.participants |= was.ballots.keys() ^ c.ballots.keys()
    return found


def _summary_changed(before: Session, after: Session) -> bool:
    """Whether `summary` differs between the two (without building both: this runs for every
    change, and most changes are votes, which change none of it)."""
    if before is after:
        return False
    if _plain(before) != _plain(after) or (
        before.decision is not after.decision and before.decision != after.decision
    ):
        return True
    if before.nudge is None and after.nudge is None:
        return False
    return nudge_view(before) != nudge_view(after)


def _people_changed(before: tuple[Participant, ...], after: tuple[Participant, ...]) -> set[str]:
    """Ids of the participants added, replaced or gone. People only ever join at the end or
    change in place, so the lists are compared position by position (in C: a room of a
    thousand costs microseconds); anything else is compared by id."""
    if len(after) >= len(before):
        replaced = list(compress(range(len(before)), map(is_not, before, after)))
        if all(after[i].id == before[i].id for i in replaced):
            return {after[i].id for i in replaced} | {p.id for p in after[len(before) :]}
    old = {p.id: p for p in before}
    found = {p.id for p in after if old.pop(p.id, None) is not p}
    return found | old.keys()


class View:
    """What the clients of one room were last sent, part by part, so that the next delta
    lists exactly the parts whose view changed since (SPEC §5 `delta`)."""

    def __init__(self, session: Session, advisor: Advisor | None = None) -> None:
        """`advisor`: where deltas get the advice, off the event loop (None: each delta that
        needs it works it out); the first view works it out at once."""
        self.advisor = advisor
        snapshot = state(session)
        self.version: int = snapshot["version"]
        self.session: dict[str, Any] = snapshot["session"]
        self.participants = {p["id"]: p for p in snapshot["participants"]}
        self.cases = {c["id"]: c for c in snapshot["cases"]}
        self.recommendation: dict[str, Any] | None = snapshot["recommendation"]

    def advice_pending(self, session: Session, changed: Marks) -> bool:
        """Whether the next delta would need advice the advisor does not have yet (it is then
        being worked out). Cheap unless a revealed or locked case changed."""
        if self.advisor is None or not changed.cases:
            return False
        decides = any(
            _counts(self.cases.get(c.id)) or c.status in ("revealed", "locked")
            for c in session.cases
            if c.id in changed.cases
        )
        return decides and not self.advisor.lookup(session)[0]

    def delta(self, session: Session, changed: Marks) -> dict[str, Any]:
        """The delta from the last view to `session` (which `changed` describes), and take it
        as the view from now on."""
        delta: dict[str, Any] = {"base": self.version, "version": session.version}
        self.version = session.version
        if changed.session:
            view = summary(session)
            if view != self.session:
                self.session = delta["session"] = view
        people, gone = [], []
        for pid in changed.participants:
            p = session.participant(pid)
            if p is None:
                if self.participants.pop(pid, None) is not None:
                    gone.append(pid)
                continue
            view = participant_view(session, p)
            if view != self.participants.get(pid):
                self.participants[pid] = view
                people.append(view)
        if people:
            # In the session's order, so a client appending newcomers keeps the same order.
            order = session.people().positions
            delta["participants"] = sorted(people, key=lambda v: order[v["id"]])
        if gone:
            delta["gone"] = sorted(gone)
        cases, decided = [], False
        for case in session.cases:
            if case.id not in changed.cases:
                continue
            before = self.cases.get(case.id)
            view = case_view(session, case)
            decided |= _counts(before) or _counts(view)
            if view != before:
                self.cases[case.id] = view
                cases.append(view)
        if cases:
            delta["cases"] = cases
        if decided or changed.advice:
            # Off the loop, the advice may come a moment after the cases it covers: then
            # this delta leaves it out and a later one (marked `advice`) brings it.
            known, advice = (
                (True, recommendation(session))
                if self.advisor is None
                else self.advisor.lookup(session)
            )
            if known and advice != self.recommendation:
                self.recommendation = delta["recommendation"] = advice
        return delta


def _counts(view: dict[str, Any] | None) -> bool:
    """Whether a case's view takes part in the recommendation (revealed or locked)."""
    return view is not None and view["status"] in ("revealed", "locked")


def own_ballots(session: Session, participant_id: str) -> dict[str, int | None]:
    """A participant's own current ballots (sent only to them, so a reload keeps their choices)."""
    return {c.id: c.ballots[participant_id] for c in session.cases if participant_id in c.ballots}


def own_reasons(session: Session, participant_id: str) -> dict[str, str]:
    """The reasons a participant gave with their current ballots (sent only to them)."""
    return {c.id: c.reasons[participant_id] for c in session.cases if participant_id in c.reasons}
