"""The session's rules as pure transitions: a session and a request in, a new session out.

Nothing here does I/O or reads a clock, so every rule can be tested on its own. A request that
breaks a rule raises RuleError with a message fit to show the person who made it. A transition
that changes nothing returns the very same object, so the store can skip the write.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Literal

from msgspec.structs import replace

from server.models import CaseState, Participant, Role, Round, Session, evolve

Action = Literal["open", "open_all", "reveal", "reveal_all", "revote", "lock", "finish"]
ACTIONS: tuple[Action, ...] = (
    "open",
    "open_all",
    "reveal",
    "reveal_all",
    "revote",
    "lock",
    "finish",
)
CASE_ACTIONS: frozenset[str] = frozenset({"open", "reveal", "revote", "lock"})

NAME_MAX = 40


class RuleError(Exception):
    """A request the rules refuse; str(error) is the message for the user."""


# Invisible or direction-changing characters make names that look like someone else's; the
# zero-width joiner stays allowed because emoji sequences (family, flags of people) need it.
_ALLOWED_FORMAT = {"\u200d"}
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
INVISIBLE_IN_NAME = "Names cannot contain control characters, line breaks or invisible characters."


def clean_name(raw: object) -> str:
    """A participant name: 1-40 visible characters, runs of spaces folded into one."""
    if not isinstance(raw, str):
        raise RuleError("Please enter a name.")
    name = unicodedata.normalize("NFC", raw).strip()
    for char in name:
        if unicodedata.category(char) in _REFUSED_CATEGORIES and char not in _ALLOWED_FORMAT:
            raise RuleError(INVISIBLE_IN_NAME)
    name = " ".join(name.split())
    if not name:
        raise RuleError("Please enter a name.")
    if len(name) > NAME_MAX:
        raise RuleError(f"Names can be at most {NAME_MAX} characters long.")
    return name


def join(session: Session, participant: Participant, *, limit: int) -> Session:
    """Add a new participant; names are unique in a session, whatever their case."""
    if session.status == "finished" and participant.role != "spectator":
        raise RuleError("This session has finished; you can still look at the results.")
    if len(session.participants) >= limit:
        raise RuleError(f"This session is full ({limit} people); ask the facilitator.")
    people = session.people()
    if participant.name.casefold() in people.names:
        raise RuleError(f"Someone called {participant.name!r} is already here; pick another name.")
    participants = (*session.participants, participant)
    return evolve(session, people.appended(participants), participants=participants)


def find_by_token(session: Session, token_hash: str) -> Participant | None:
    found = session.people().tokens.get(token_hash)
    return None if found is None else session.participant(found)


def attach(session: Session, participant_id: str, sid: str, role: Role | None = None) -> Session:
    """A socket now speaks for this participant (a join or a reconnect)."""

    participant = session.participant(participant_id)
    if participant is not None and sid in participant.sids and role in (None, participant.role):
        return session

    def change(p: Participant) -> Participant:
        sids = p.sids if sid in p.sids else (*p.sids, sid)
        return replace(p, sids=sids, role=role or p.role)

    return _update_participant(session, participant_id, change)


def detach(session: Session, participant_id: str, sid: str) -> Session:
    """A socket went away; the participant stays, offline if it was their last."""
    participant = session.participant(participant_id)
    if participant is None or sid not in participant.sids:
        return session
    return _update_participant(
        session, participant_id, lambda p: replace(p, sids=tuple(s for s in p.sids if s != sid))
    )


def drop_sockets(session: Session, prefix: str) -> Session:
    """Forget every socket whose id starts with `prefix` (those of a server instance that died)."""
    if not any(s.startswith(prefix) for p in session.participants for s in p.sids):
        return session
    participants = tuple(
        replace(p, sids=tuple(s for s in p.sids if not s.startswith(prefix)))
        if any(s.startswith(prefix) for s in p.sids)
        else p
        for p in session.participants
    )
    return evolve(session, session.people().same_people(participants), participants=participants)


def _update_participant(
    session: Session, participant_id: str, change: Callable[[Participant], Participant]
) -> Session:
    people = session.people()
    position = people.positions.get(participant_id)
    if position is None:
        raise RuleError("You are not part of this session any more; please join again.")
    old = session.participants
    changed = change(old[position])
    if (changed.id, changed.name, changed.token_hash) != (
        old[position].id,
        old[position].name,
        old[position].token_hash,
    ):
        raise ValueError("a participant's id, name and token never change")  # pragma: no cover
    participants = (*old[:position], changed, *old[position + 1 :])
    return evolve(session, people.same_people(participants), participants=participants)


def vote(
    session: Session,
    participant_id: str,
    case_id: str,
    score: int | None,
    *,
    client: str | None = None,
    seq: int | None = None,
    round: int | None = None,
) -> Session:
    """Record (or change) a ballot on an open case; None is an abstention.

    With a (client, seq) pair a vote is applied at most once: the same pair again, or an older
    number from the same client, leaves the session as it is (the newest vote wins).
    """
    participant = session.participant(participant_id)
    if participant is None:
        raise RuleError("You are not part of this session any more; please join again.")
    if not participant.counts:
        raise RuleError("Spectators watch without voting.")
    if session.status == "finished":
        raise RuleError("This session has finished; votes are closed.")
    case = _case(session, case_id)
    if client is not None and seq is not None:
        last = case.sequence.get(participant_id)
        if last is not None and last[0] == client and seq <= last[1]:
            return session
    if case.status != "voting":
        raise RuleError(_not_open_message(case))
    if round is not None and round != case.round:
        raise RuleError("This case was opened again for a new round; please vote again.")
    sequence = case.sequence
    if client is not None and seq is not None:
        sequence = {**case.sequence, participant_id: (client, seq)}
    unchanged = participant_id in case.ballots and case.ballots[participant_id] == score
    if unchanged and sequence is case.sequence:
        return session
    ballots = {**case.ballots, participant_id: score}
    changed = replace(case, ballots=ballots, sequence=sequence)
    if session.anonymous and session.mode == "open" and not unchanged:
        changed = _show_in_batches(changed, participant_id)
    return _replace_case(session, changed)


# Live results of an anonymous session must not let anyone watching tell who voted what.
# Who has voted is public (everyone sees "7 of 9 voted"), so if the histogram moved with every
# ballot, a watcher would pair each new name with each new bar. Instead, a ballot joins the
# shown results only together with at least one other, and the two most recent changes are
# always held back, so even the reveal (which shows everything) adds at least two at once:
# every voter stays behind at least one other possible score.
BATCH = 2
HELD_BACK = 2


def _show_in_batches(case: CaseState, participant_id: str) -> CaseState:
    unshown = (*(p for p in case.unshown if p != participant_id), participant_id)
    if len(unshown) < BATCH + HELD_BACK:
        return replace(case, unshown=unshown)
    ready = unshown[:-HELD_BACK]
    shown = {**case.shown, **{p: case.ballots[p] for p in ready}}
    return replace(case, shown=shown, unshown=unshown[-HELD_BACK:])


def _not_open_message(case: CaseState) -> str:
    if case.status == "pending":
        return "Voting on this case has not started yet."
    return "Voting on this case is closed."


def control(session: Session, participant_id: str, action: str, case_id: str | None) -> Session:
    """A facilitator's command; only facilitators may steer the session."""
    participant = session.participant(participant_id)
    if participant is None or participant.role != "facilitator":
        raise RuleError("Only the facilitator can do that.")
    if action not in ACTIONS:
        raise RuleError(f"Unknown action {action!r}.")
    if session.status == "finished":
        raise RuleError("This session has finished.")
    if action in CASE_ACTIONS:
        if case_id is None:
            raise RuleError(f"Say which case to {action}.")
        case = _case(session, case_id)
        return _replace_case(session, _CASE_RULES[action](case))
    if action == "open_all":
        return _every_case(session, "pending", lambda c: replace(c, status="voting"))
    if action == "reveal_all":
        return _every_case(session, "voting", lambda c: replace(c, status="revealed"))
    # finish: what was being voted on is revealed; everything revealed is locked for the record.
    finished = _every_case(
        session, "voting", lambda c: replace(c, status="locked"), require_any=False
    )
    finished = _every_case(
        finished, "revealed", lambda c: replace(c, status="locked"), require_any=False
    )
    return evolve(finished, status="finished")


# Per-case transitions. Each names the state it starts from; any other start is an error a
# facilitator can understand (e.g. revealing a case nobody was asked to score yet).
def _open(case: CaseState) -> CaseState:
    if case.status != "pending":
        raise RuleError("This case is already open or done; use re-vote to score it again.")
    return replace(case, status="voting")


def _reveal(case: CaseState) -> CaseState:
    if case.status != "voting":
        raise RuleError("Only a case that is being voted on can be revealed.")
    return replace(case, status="revealed")


def _revote(case: CaseState) -> CaseState:
    # A new round starts empty; the old one is kept so the decision record shows the change.
    if case.status not in ("revealed", "locked"):
        raise RuleError("Only a revealed case can be voted on again.")
    past = Round(round=case.round, status=case.status, ballots=case.ballots)
    return replace(
        case,
        status="voting",
        round=case.round + 1,
        ballots={},
        history=(*case.history, past),
        shown={},
        unshown=(),
    )


def _lock(case: CaseState) -> CaseState:
    # Locking freezes the case for the record; a case still being voted on is revealed too.
    if case.status not in ("voting", "revealed"):
        raise RuleError("Only an open or revealed case can be locked.")
    return replace(case, status="locked")


_CASE_RULES: dict[str, Callable[[CaseState], CaseState]] = {
    "open": _open,
    "reveal": _reveal,
    "revote": _revote,
    "lock": _lock,
}


def _case(session: Session, case_id: str) -> CaseState:
    case = session.case(case_id)
    if case is None:
        raise RuleError(f"There is no case {case_id!r} in this session.")
    return case


def _replace_case(session: Session, new: CaseState) -> Session:
    return evolve(session, cases=tuple(new if c.id == new.id else c for c in session.cases))


def _every_case(
    session: Session,
    status: str,
    change: Callable[[CaseState], CaseState],
    *,
    require_any: bool = True,
) -> Session:
    if require_any and not any(c.status == status for c in session.cases):
        raise RuleError(f"No case is {'waiting' if status == 'pending' else 'being voted on'}.")
    return evolve(
        session, cases=tuple(change(c) if c.status == status else c for c in session.cases)
    )
