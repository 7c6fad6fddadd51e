"""The session's rules as pure transitions: a session and a request in, a new session out.

Nothing here does I/O or reads a clock, so every rule can be tested on its own: a rule that
depends on the time (a countdown) is given it, and every instance replaying the change gives
it the same one (server.ops). A request that breaks a rule raises RuleError with a message fit
to show the person who made it. A transition that changes nothing returns the very same
object, so the store can skip the write.
"""

from __future__ import annotations

import hmac
import math
import unicodedata
from collections.abc import Callable, Iterable
from itertools import compress
from operator import is_not
from typing import Literal

from msgspec.structs import replace

from server.models import (
    MIN_CROWD,
    CaseState,
    Decision,
    Former,
    Nudge,
    Participant,
    PeopleIndex,
    Role,
    Round,
    Session,
    evolve,
    name_key,
    scored,
)
from server.text import N_

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
# Every command a facilitator may send: the status changes above, and those with rules of
# their own below (countdown, auto_reveal, hand_over, promote, demote, remove, nudge, door,
# remove_idle, decide).
Command = Literal[
    "open",
    "open_all",
    "reveal",
    "reveal_all",
    "revote",
    "lock",
    "finish",
    "countdown",
    "auto_reveal",
    "hand_over",
    "promote",
    "demote",
    "remove",
    "nudge",
    "door",
    "remove_idle",
    "decide",
]
COMMANDS: tuple[Command, ...] = (
    *ACTIONS,
    "countdown",
    "auto_reveal",
    "hand_over",
    "promote",
    "demote",
    "remove",
    "nudge",
    "door",
    "remove_idle",
    "decide",
)

NAME_MAX = 40
REASON_MAX = 280
# The longest countdown: a day, time enough to score asynchronously.
COUNTDOWN_MAX = 86_400
# The shortest time between two reminders to vote in a session: a reminder is a ping on
# everyone's screen, not a hammer.
NUDGE_INTERVAL = 10


class RuleError(Exception):
    """A request the rules refuse; str(error) is the message for the user, in English. Messages
    are marked with N_ (server.text) and translated where they leave the server. `code` says
    why, for a program (a connection refused at the door carries it)."""

    code = "refused"


class DoorClosed(RuleError):
    code = "door_closed"


class Full(RuleError):
    code = "full"


# Invisible or direction-changing characters make names that look like someone else's; the
# zero-width joiner stays allowed because emoji sequences (family, flags of people) need it.
_ALLOWED_FORMAT = {"\u200d"}
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
INVISIBLE_IN_NAME = N_(
    "Names cannot contain control characters, line breaks or invisible characters."
)
NO_NAME = N_("Please enter a name.")
NOT_HERE = N_("You are not part of this session any more; please join again.")
NOT_FACILITATOR = N_("Only the facilitator can do that.")
FINISHED = N_("This session has finished.")
PERSON_GONE = N_("That person is not part of this session any more.")


def clean_name(raw: object) -> str:
    """A participant name: 1-40 visible characters, runs of spaces folded into one."""
    if not isinstance(raw, str):
        raise RuleError(NO_NAME)
    name = unicodedata.normalize("NFC", raw).strip()
    for char in name:
        if unicodedata.category(char) in _REFUSED_CATEGORIES and char not in _ALLOWED_FORMAT:
            raise RuleError(INVISIBLE_IN_NAME)
    name = " ".join(name.split())
    if not name:
        raise RuleError(NO_NAME)
    if len(name) > NAME_MAX:
        raise RuleError(N_("Names can be at most %(limit)d characters long.", limit=NAME_MAX))
    return name


INVISIBLE_IN_REASON = N_("Reasons cannot contain control characters or invisible characters.")


def clean_reason(raw: str | None) -> str | None:
    """A reason given with a ballot: plain text of at most 280 characters, every run of spaces
    and line breaks folded into one space; nothing (None) when it is empty."""
    if raw is None:
        return None
    reason = " ".join(unicodedata.normalize("NFC", raw).split())
    for char in reason:
        if unicodedata.category(char) in _REFUSED_CATEGORIES and char not in _ALLOWED_FORMAT:
            raise RuleError(INVISIBLE_IN_REASON)
    if len(reason) > REASON_MAX:
        raise RuleError(N_("A reason can be at most %(limit)d characters long.", limit=REASON_MAX))
    return reason or None


DOOR_CLOSED = N_(
    "The facilitator has closed this session to newcomers; ask them to open it for you."
)


def join(session: Session, participant: Participant, *, limit: int) -> Session:
    """Add a new participant; names are unique in a session, as people read them (models.
    name_key). A facilitator (who comes with the facilitator link) always gets in; anyone
    else only while the door is open and fewer than `limit` others are in."""
    leads = participant.role == "facilitator"
    if session.status == "finished" and participant.role != "spectator":
        raise RuleError(N_("This session has finished; you can still look at the results."))
    if not leads and not session.door_open:
        raise DoorClosed(DOOR_CLOSED)
    if not leads and len(session.participants) >= limit and _others(session) >= limit:
        raise Full(N_("This session is full (%(limit)d people); ask the facilitator.", limit=limit))
    people = session.people()
    if name_key(participant.name) in people.names:
        raise RuleError(
            N_(
                "Someone called %(name)s is already here; pick another name.",
                name=repr(participant.name),
            )
        )
    participants = (*session.participants, participant)
    return evolve(session, people.appended(participants), participants=participants)


def _others(session: Session) -> int:
    """How many people count towards a session's capacity: everyone but its facilitators."""
    return len(session.participants) - sum(p.role == "facilitator" for p in session.participants)


LINK_DEAD = N_(
    "This facilitator link no longer gives control of this session. You can still join it as "
    "a participant."
)
# The link of a facilitator whose own link is being made (by the instance holding their
# socket, which alone can hand them its token: realtime.RoomNamespace.ensure_link).
LINK_PENDING = "-"


def link_of(session: Session, p: Participant) -> str | None:
    """The hash of the link that gives `p` control, if they facilitate and have one: their
    own, or the session's first link if they are the first facilitator without one."""
    if p.role != "facilitator" or p.link == LINK_PENDING:
        return None
    if p.link:
        return p.link
    if session.facilitator_hash and p is _first_holder(session):
        return session.facilitator_hash
    return None


def _first_holder(session: Session) -> Participant | None:
    """Who holds the session's first link: the first facilitator with no link of their own."""
    return next((p for p in session.participants if p.role == "facilitator" and not p.link), None)


def link_owner(session: Session, link: str) -> Participant | None:
    """The facilitator whom the link `link` (its token's hash) names, if any."""
    for p in session.participants:
        own = link_of(session, p)
        if own is not None and hmac.compare_digest(own, link):
            return p
    return None


def check_link(session: Session, link: str) -> None:
    """A facilitator link (the hash of its token) still gives control of the session: it names
    a facilitator, or it is the session's first link and nobody holds it yet. Checked when a
    change is applied, not only at the door, so a link presented just before its holder gave
    up the role cannot promote anyone after it."""
    if link_owner(session, link) is not None:
        return
    first = session.facilitator_hash
    if first and _first_holder(session) is None and hmac.compare_digest(first, link):
        return
    raise RuleError(LINK_DEAD)


def give_link(session: Session, participant_id: str, link: str) -> Session:
    """A facilitator without a link of their own gets one (`link`: its token's hash). Changes
    nothing if they have one already or no longer facilitate (another instance was first)."""
    p = session.participant(participant_id)
    if p is None or link_of(session, p) is not None or p.role != "facilitator":
        return session
    return _update_participant(session, participant_id, lambda q: replace(q, link=link))


def needs_link(session: Session, p: Participant) -> bool:
    """Whether `p` facilitates without a link that gives them control."""
    return p.role == "facilitator" and link_of(session, p) is None


def _keep_first_link(before: Session, after: Session) -> Session:
    """Once the holder of the session's first link no longer facilitates, the link gives
    nobody control: nor may it pass to the next facilitator without a link."""
    holder = _first_holder(before) if before.facilitator_hash else None
    if holder is None:
        return after
    now = after.participant(holder.id)
    if now is not None and now.role == "facilitator" and now.link == holder.link:
        return after
    return evolve(after, facilitator_hash="")


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
        # Back online: no longer away, whatever the time.
        return replace(p, sids=sids, role=role or p.role, offline_since=None, away=False)

    return _update_participant(session, participant_id, change)


def detach(session: Session, participant_id: str, sid: str, now: float) -> Session:
    """A socket went away at `now`; the participant stays, offline if it was their last.

    Going offline does not reveal anything with auto-reveal: someone whose connection blinked
    is still waited for, until they have been away long enough (mark_away)."""
    participant = session.participant(participant_id)
    if participant is None or sid not in participant.sids:
        return session
    return _update_participant(session, participant_id, lambda p: _without_socket(p, sid, now))


def _without_socket(p: Participant, sid: str, now: float) -> Participant:
    sids = tuple(s for s in p.sids if s != sid)
    return replace(p, sids=sids, offline_since=None if sids else now)


def drop_sockets(session: Session, prefix: str, now: float) -> Session:
    """Forget every socket whose id starts with `prefix` (those of a server instance that died,
    noticed at `now`)."""
    if not any(s.startswith(prefix) for p in session.participants for s in p.sids):
        return session

    def dropped(p: Participant) -> Participant:
        sids = tuple(s for s in p.sids if not s.startswith(prefix))
        return replace(p, sids=sids, offline_since=None if sids else now)

    participants = tuple(
        dropped(p) if any(s.startswith(prefix) for s in p.sids) else p for p in session.participants
    )
    return evolve(session, session.people().same_people(participants), participants=participants)


def take_over(
    session: Session, newcomer: Participant, sid: str, *, limit: int, link: str
) -> Session:
    """A facilitator link opened on a device that is nobody here yet.

    With the link's facilitator here already, the device becomes that person: same id,
    ballots and reasons, now known by `newcomer`'s token and connected through `sid` alone
    (their other sockets stop speaking for them, and their old token names nobody). With the
    session's first link and nobody holding it yet, `newcomer` joins as the facilitator. So a
    link never makes a second facilitator, however many devices open it at once: these changes
    are applied one after the other.
    """
    check_link(session, link)
    if session.participant(newcomer.id) is not None:
        return attach(session, newcomer.id, sid)  # joined by this very change, applied again
    facilitator = link_owner(session, link)
    if facilitator is None:
        if not newcomer.name:
            raise RuleError(NO_NAME)
        joined = join(session, replace(newcomer, role="facilitator"), limit=limit)
        return attach(joined, newcomer.id, sid)
    if facilitator.token_hash == newcomer.token_hash:
        return attach(session, facilitator.id, sid)  # taken over by this very change
    moved = replace(
        facilitator, token_hash=newcomer.token_hash, sids=(sid,), offline_since=None, away=False
    )
    position = session.people().positions[facilitator.id]
    old = session.participants
    participants = (*old[:position], moved, *old[position + 1 :])
    return evolve(session, PeopleIndex.of(participants), participants=participants)


def _update_participant(
    session: Session, participant_id: str, change: Callable[[Participant], Participant]
) -> Session:
    people = session.people()
    position = people.positions.get(participant_id)
    if position is None:
        raise RuleError(NOT_HERE)
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


TIME_UP = N_("Time is up for this case; voting on it is closed.")


def vote(
    session: Session,
    participant_id: str,
    case_id: str,
    score: int | None,
    *,
    reason: str | None = None,
    client: str | None = None,
    seq: int | None = None,
    round: int | None = None,
    now: float | None = None,
) -> Session:
    """Record (or change) a ballot on an open case; None is an abstention. A ballot is its
    score and its reason together: a vote without a reason leaves none.

    With a (client, seq) pair a vote is applied at most once: the same pair again, or an older
    number from the same client, leaves the session as it is (the newest vote wins). `now` is
    the time of the vote, for the case's deadline (None: no deadline is checked).
    """
    participant = session.participant(participant_id)
    if participant is None:
        raise RuleError(NOT_HERE)
    if not participant.counts:
        raise RuleError(N_("Spectators watch without voting."))
    if session.status == "finished":
        raise RuleError(N_("This session has finished; votes are closed."))
    case = _case(session, case_id)
    if client is not None and seq is not None:
        last = case.sequence.get(participant_id)
        if last is not None and last[0] == client and seq <= last[1]:
            return session
    if case.status != "voting":
        raise RuleError(_not_open_message(case))
    if now is not None and case.deadline is not None and now >= case.deadline:
        raise RuleError(TIME_UP)
    if round is not None and round != case.round:
        raise RuleError(N_("This case was opened again for a new round; please vote again."))
    sequence = case.sequence
    if client is not None and seq is not None:
        sequence = {**case.sequence, participant_id: (client, seq)}
    same_score = participant_id in case.ballots and case.ballots[participant_id] == score
    reasons = case.reasons
    if reason:
        if reasons.get(participant_id) != reason:
            reasons = {**reasons, participant_id: reason}
    elif participant_id in reasons:
        reasons = {p: text for p, text in reasons.items() if p != participant_id}
    if same_score and sequence is case.sequence and reasons is case.reasons:
        return session
    ballots = case.ballots if same_score else {**case.ballots, participant_id: score}
    changed = replace(case, ballots=ballots, sequence=sequence, reasons=reasons)
    if session.anonymous and session.mode == "open" and not same_score:
        changed = _show_in_steps(changed, participant_id)
    return _reveal_when_all_voted(_replace_case(session, changed), case_id)


# Live results of an anonymous session must not let anyone watching tell who voted what.
# Nobody is told who has voted (server.snapshot sends counts only), and the histogram does not
# move with every ballot: it moves in steps, each holding the changes of at least MIN_CROWD
# different people since the last step (a first ballot, a changed score, a ballot taken away),
# all of them at once. Changing one's own score again does not make a step bigger, so someone
# controlling several participants gets one ballot of an honest person into a step only
# alongside their own, and learns a score, never whose it is.


def _show_in_steps(case: CaseState, participant_id: str) -> CaseState:
    unshown = case.unshown
    if participant_id not in unshown:
        unshown = (*unshown, participant_id)
    if len(unshown) < MIN_CROWD:
        return replace(case, unshown=unshown)
    return replace(case, shown=dict(case.ballots), unshown=())


def _check_crowd(session: Session, cases: Iterable[CaseState], *, every: bool = False) -> None:
    """Refuse to reveal cases of an anonymous session that too few people scored (`every`:
    the facilitator asked to reveal every open case)."""
    short = [c for c in cases if c.status == "voting" and not session.crowd_enough(c.ballots)]
    if short and not every:
        raise RuleError(
            N_(
                "Not yet: in an anonymous session results show once at least %(crowd)d people "
                "have scored the question (skips don't count), and so far %(scored)d have. Wait "
                "for more scores, or lock the question to end voting on it for good, without "
                "results.",
                crowd=MIN_CROWD,
                scored=scored(short[0].ballots),
            )
        )
    if short:
        raise RuleError(
            N_(
                "Not yet: in an anonymous session results show once at least %(crowd)d people "
                "have scored a question (skips don't count), and %(count)d of the open "
                "questions have fewer. Reveal the others one by one, or wait for more scores.",
                crowd=MIN_CROWD,
                count=len(short),
            )
        )


def _not_open_message(case: CaseState) -> str:
    if case.status == "pending":
        return N_("Voting on this case has not started yet.")
    return N_("Voting on this case is closed.")


def control(session: Session, participant_id: str, action: str, case_id: str | None) -> Session:
    """A facilitator's command; only facilitators may steer the session."""
    participant = session.participant(participant_id)
    if participant is None or participant.role != "facilitator":
        raise RuleError(NOT_FACILITATOR)
    if action not in ACTIONS:
        raise RuleError(N_("Unknown action %(action)s.", action=repr(action)))
    if session.status == "finished":
        raise RuleError(FINISHED)
    if action in CASE_ACTIONS:
        if case_id is None:
            raise RuleError(N_("Say which case to %(action)s.", action=action))
        case = _case(session, case_id)
        if action == "reveal":
            _check_crowd(session, (case,))
        return _replace_case(session, _CASE_RULES[action](case))
    if action == "open_all":
        return _every_case(session, "pending", lambda c: replace(c, status="voting"))
    if action == "reveal_all":
        _check_crowd(session, session.cases, every=True)
        return _every_case(session, "voting", _revealed)
    # finish: what was being voted on is revealed; everything revealed is locked for the record.
    finished = _every_case(session, "voting", _locked, require_any=False)
    finished = _every_case(finished, "revealed", _locked, require_any=False)
    return evolve(finished, status="finished")


# Per-case transitions. Each names the state it starts from; any other start is an error a
# facilitator can understand (e.g. revealing a case nobody was asked to score yet). A case that
# leaves "voting" leaves its countdown behind.
def _open(case: CaseState) -> CaseState:
    if case.status != "pending":
        raise RuleError(N_("This case is already open or done; use re-vote to score it again."))
    return replace(case, status="voting")


def _reveal(case: CaseState) -> CaseState:
    if case.status != "voting":
        raise RuleError(N_("Only a case that is being voted on can be revealed."))
    return _revealed(case)


def _revealed(case: CaseState) -> CaseState:
    return replace(case, status="revealed", deadline=None)


def _locked(case: CaseState) -> CaseState:
    return replace(case, status="locked", deadline=None)


def _revote(case: CaseState) -> CaseState:
    # A new round starts empty; the old one is kept so the decision record shows the change.
    # A locked result is final: that is what locking is for.
    if case.status == "locked":
        raise RuleError(N_("This question is locked: its result is final."))
    if case.status != "revealed":
        raise RuleError(N_("Only a revealed case can be voted on again."))
    past = Round(round=case.round, status=case.status, ballots=case.ballots, reasons=case.reasons)
    return replace(
        case,
        status="voting",
        round=case.round + 1,
        ballots={},
        reasons={},
        history=(*case.history, past),
        shown={},
        unshown=(),
        deadline=None,
    )


def _lock(case: CaseState) -> CaseState:
    # Locking freezes the case for the record; a case still being voted on is revealed too.
    if case.status not in ("voting", "revealed"):
        raise RuleError(N_("Only an open or revealed case can be locked."))
    return _locked(case)


_CASE_RULES: dict[str, Callable[[CaseState], CaseState]] = {
    "open": _open,
    "reveal": _reveal,
    "revote": _revote,
    "lock": _lock,
}


def _case(session: Session, case_id: str) -> CaseState:
    case = session.case(case_id)
    if case is None:
        raise RuleError(N_("There is no case %(case)s in this session.", case=repr(case_id)))
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
        raise RuleError(
            N_("No case is waiting.") if status == "pending" else N_("No case is being voted on.")
        )
    return evolve(
        session, cases=tuple(change(c) if c.status == status else c for c in session.cases)
    )


def _facilitator(session: Session, participant_id: str) -> None:
    participant = session.participant(participant_id)
    if participant is None or participant.role != "facilitator":
        raise RuleError(NOT_FACILITATOR)
    if session.status == "finished":
        raise RuleError(FINISHED)


# --- countdowns
#
# Closing voting means revealing: the contract's statuses have no "closed but hidden", so a
# countdown that ends does what the facilitator's reveal does (and a case that is revealed can
# still be re-voted or locked). In an anonymous session a case too few people scored is closed
# the same way with its results withheld (models.Session.withheld): nothing shown, and it can
# still be voted on again (unlike a case the facilitator locked, whose result is final).


def countdown(
    session: Session, participant_id: str, case_id: str | None, seconds: int, now: float
) -> Session:
    """Voting on a case (or, without one, on every case being voted on) ends `seconds` after
    `now`; 0 stops the countdown. A new countdown replaces the one running."""
    _facilitator(session, participant_id)
    if not 0 <= seconds <= COUNTDOWN_MAX:
        raise RuleError(
            N_("A countdown lasts from 1 to %(limit)d seconds (0 stops it).", limit=COUNTDOWN_MAX)
        )
    deadline = None if seconds == 0 else now + seconds
    if case_id is None:
        return _every_case(session, "voting", lambda c: replace(c, deadline=deadline))
    case = _case(session, case_id)
    if case.status != "voting":
        raise RuleError(N_("Only a case that is being voted on can have a countdown."))
    if case.deadline == deadline:
        return session
    return _replace_case(session, replace(case, deadline=deadline))


def close_overdue(session: Session, now: float) -> Session:
    """Voting ends on every case whose deadline has passed by `now`: each is revealed. Once
    done there is nothing overdue left, so the same change again (another instance's timer)
    changes nothing."""
    if not any(_overdue(c, now) for c in session.cases):
        return session
    return evolve(
        session,
        cases=tuple(_revealed(c) if _overdue(c, now) else c for c in session.cases),
    )


def _overdue(case: CaseState, now: float) -> bool:
    return case.status == "voting" and case.deadline is not None and case.deadline <= now


def next_deadline(session: Session) -> float | None:
    """The earliest deadline of a case still being voted on, if any."""
    return min(
        (c.deadline for c in session.cases if c.status == "voting" and c.deadline is not None),
        default=None,
    )


# --- auto-reveal


def set_auto_reveal(session: Session, participant_id: str, on: bool) -> Session:
    """Reveal each case once everyone present who votes has voted on it (checked at once, and
    again whenever a vote comes in or someone leaves)."""
    _facilitator(session, participant_id)
    if session.auto_reveal == on:
        return session
    return _reveal_when_all_voted(evolve(session, auto_reveal=on))


def everyone_here_voted(session: Session, case: CaseState) -> bool:
    """Whether every participant who votes (not a spectator) and is here has a ballot on
    `case`, and at least one of them is online. Here means online, or offline for a short
    while only (not yet away): a connection that blinks does not trigger a reveal, and people
    long gone do not hold the room up. An anonymous session also waits for enough scores."""
    if not session.crowd_enough(case.ballots):
        return False
    online = False
    for p in session.participants:
        if p.counts and p.here:
            if p.id not in case.ballots:
                return False
            online = online or p.online
    return online


def _reveal_when_all_voted(session: Session, case_id: str | None = None) -> Session:
    """With auto-reveal on, reveal the cases being voted on (or just `case_id`) that everyone
    present has voted on. Part of the change that completed them, so every instance replaying
    that change reveals the same cases in the same step."""
    if not session.auto_reveal:
        return session
    done = {
        c.id
        for c in session.cases
        if c.status == "voting"
        and (case_id is None or c.id == case_id)
        and everyone_here_voted(session, c)
    }
    if not done:
        return session
    return evolve(session, cases=tuple(_revealed(c) if c.id in done else c for c in session.cases))


# --- reminders


def nudge(session: Session, participant_id: str, case_id: str | None, now: float) -> Session:
    """Remind those who have not voted yet on `case_id` (or, without one, on every case being
    voted on). Clients show it to whoever has not voted on a case it names, while that case is
    still being voted on in the same round."""
    _facilitator(session, participant_id)
    if case_id is None:
        voting = [c for c in session.cases if c.status == "voting"]
        if not voting:
            raise RuleError(N_("Nothing is open for voting, so there is nobody to remind."))
    else:
        case = _case(session, case_id)
        if case.status != "voting":
            raise RuleError(
                N_("This question is not open for voting, so there is nobody to remind.")
            )
        voting = [case]
    # Only where someone here who votes has not (the facilitator, who sends it, included:
    # clients do not show her own reminder to her).
    cases = {c.id: c.round for c in voting if session.waiting(c)}
    if not cases:
        raise RuleError(N_("Everyone here has voted already, so there is nobody to remind."))
    last = session.nudge
    if last is not None and now - last.at < NUDGE_INTERVAL:
        wait = max(1, math.ceil(last.at + NUDGE_INTERVAL - now))
        raise RuleError(
            N_("You sent a reminder just now; you can send another in %(wait)d s.", wait=wait)
        )
    return evolve(session, nudge=Nudge(at=now, cases=cases, by=participant_id))


# --- away
#
# Someone offline for `after` seconds is away: "n of m" leaves them out and auto-reveal stops
# waiting for them. Like a countdown, it is a change judged by its op's time (server.deadlines
# keeps the timer), so every instance agrees on who is away and when.


def mark_away(session: Session, now: float, after: float) -> Session:
    """Mark away everyone offline for at least `after` seconds at `now` (0: nobody ever), and
    reveal what nobody still here has to vote on. The same change again changes nothing."""
    if after <= 0 or not any(_due_away(p, now, after) for p in session.participants):
        return session
    participants = tuple(
        replace(p, away=True) if _due_away(p, now, after) else p for p in session.participants
    )
    marked = evolve(session, session.people().same_people(participants), participants=participants)
    return _reveal_when_all_voted(marked)


def _due_away(p: Participant, now: float, after: float) -> bool:
    return not p.online and not p.away and (p.offline_since or 0.0) + after <= now


def next_away(session: Session, after: float) -> float | None:
    """When the next person offline will have been so for `after` seconds, if anyone is."""
    if after <= 0:
        return None
    # Runs on every change to the people list (joins included): `sids` and `away` are read
    # directly, since a property call per participant doubled the cost in a room of 1,500.
    offline = [p.offline_since or 0.0 for p in session.participants if not p.sids and not p.away]
    return min(offline) + after if offline else None


# --- people


def hand_over(session: Session, participant_id: str, to: str) -> Session:
    """The facilitator role passes from `participant_id` to `to`: they steer from now on (with
    any co-facilitators), the giver becomes a voter, and the giver's link stops giving control
    (its holder would otherwise take the role back). The receiver's own link is made by the
    instance holding their socket (realtime), which tells them its token."""
    _facilitator(session, participant_id)
    if to == participant_id:
        raise RuleError(N_("You are facilitating already."))
    heir = session.participant(to)
    if heir is None:
        raise RuleError(PERSON_GONE)
    if heir.role == "facilitator":
        raise RuleError(N_("%(name)s is a facilitator already.", name=heir.name))
    if not heir.online:
        raise RuleError(
            N_(
                "%(name)s is not connected right now; hand over to someone who is.",
                name=heir.name,
            )
        )
    return _set_roles(session, {to: "facilitator", participant_id: "voter"})


def promote(session: Session, participant_id: str, whom: str) -> Session:
    """`whom` becomes a facilitator too (a co-facilitator): everyone who facilitates has the
    same controls, and a link of their own (made as hand_over says)."""
    _facilitator(session, participant_id)
    person = session.participant(whom)
    if person is None:
        raise RuleError(PERSON_GONE)
    if person.role == "facilitator":
        raise RuleError(N_("%(name)s is a facilitator already.", name=person.name))
    return _set_roles(session, {whom: "facilitator"})


def demote(session: Session, participant_id: str, whom: str) -> Session:
    """`whom` (a facilitator, perhaps the one asking: stepping down) takes part as a voter from
    now on, and their link stops giving control. The last facilitator cannot be demoted."""
    _facilitator(session, participant_id)
    person = session.participant(whom)
    if person is None:
        raise RuleError(PERSON_GONE)
    if person.role != "facilitator":
        raise RuleError(N_("%(name)s is not a facilitator.", name=person.name))
    if not any(p.role == "facilitator" and p.id != whom for p in session.participants):
        raise RuleError(
            N_(
                "%(name)s is the only facilitator: make someone else a facilitator first, or "
                "hand the session over.",
                name=person.name,
            )
        )
    return _set_roles(session, {whom: "voter"})


def _set_roles(session: Session, roles: dict[str, Role]) -> Session:
    """New roles for some people: a new facilitator waits for a link of their own
    (LINK_PENDING), someone who stops facilitating loses theirs."""

    def role(p: Participant) -> Participant:
        new = roles.get(p.id)
        if new is None or new == p.role:
            return p
        return replace(p, role=new, link=LINK_PENDING if new == "facilitator" else "")

    participants = tuple(role(p) for p in session.participants)
    changed = evolve(session, session.people().same_people(participants), participants=participants)
    return _keep_first_link(session, changed)


def remove(session: Session, participant_id: str, whom: str, *, keep_ballots: bool) -> Session:
    """`whom` leaves the list of participants; their token no longer names anyone here.

    Without `keep_ballots`, their ballots (and reasons) on cases still being voted on go too.
    What was revealed stays as everyone saw it: rewriting it would change a result people
    watched being made, and in an anonymous session would show what the removed person scored.
    """
    _facilitator(session, participant_id)
    if whom == participant_id:
        raise RuleError(N_("You cannot remove yourself; hand the session over first."))
    if session.participant(whom) is None:
        raise RuleError(PERSON_GONE)
    return _drop(session, whom, keep_ballots)


BALLOTS_STAY = N_(
    "In an anonymous session votes stay counted when someone leaves: taking them out would "
    "show what they were. To start a question afresh, re-vote it."
)
HAND_OVER_FIRST = N_(
    "Hand the session over or make someone else a facilitator first: you are its only "
    "facilitator, and nobody could run it after you leave."
)


def leave(session: Session, participant_id: str, *, keep_ballots: bool) -> Session:
    """A participant leaves by themselves, as if the facilitator had removed them (remove says
    what happens to their ballots). The only facilitator cannot leave: nobody could steer."""
    participant = session.participant(participant_id)
    if participant is None:
        raise RuleError(NOT_HERE)
    if participant.role == "facilitator" and not any(
        p.role == "facilitator" and p.id != participant_id for p in session.participants
    ):
        raise RuleError(HAND_OVER_FIRST)
    return _drop(session, participant_id, keep_ballots)


def _drop(session: Session, whom: str, keep_ballots: bool) -> Session:
    if not keep_ballots and session.anonymous and any(c.status == "voting" for c in session.cases):
        # Taking one person's ballots out of an anonymous count would show what they were (the
        # count before and after, or the live histogram's next step), so they stay counted;
        # a re-vote starts a question afresh. Refused whoever it is, voted or not: the refusal
        # itself must not say whether they had voted.
        raise RuleError(BALLOTS_STAY)
    participants = tuple(p for p in session.participants if p.id != whom)
    cases = session.cases
    if not keep_ballots:
        cases = tuple(_without(c, whom) for c in session.cases)
    gone = session.participant(whom)
    dropped = _keep_first_link(session, evolve(session, participants=participants, cases=cases))
    if gone is not None and dropped.holds_ballot(whom):
        # Their ballots stay in the results: so does who they were.
        who = Former(name=gone.name, role=gone.role)
        dropped = evolve(dropped, former={**session.former, whom: who})
    return _reveal_when_all_voted(dropped)


def _without(case: CaseState, whom: str) -> CaseState:
    if case.status != "voting" or whom not in case.ballots:
        return case
    # (Never in an anonymous session: _drop refuses, so the live histogram's steps and
    # `shown` need no change here.)
    return replace(
        case,
        ballots={p: s for p, s in case.ballots.items() if p != whom},
        reasons={p: r for p, r in case.reasons.items() if p != whom},
        sequence={p: q for p, q in case.sequence.items() if p != whom},
    )


def moved_between(before: Session, after: Session) -> set[str]:
    """Ids of the participants whose token changed between `before` and `after` (taken over
    on another device: their sockets from before no longer speak for them)."""
    old, new = before.participants, after.participants
    if old is new or before.people().tokens is after.people().tokens:
        return set()
    pairs: Iterable[tuple[Participant, Participant]]
    if len(new) >= len(old) and (not old or new[len(old) - 1].id == old[-1].id):
        # Nobody left: everyone is where they were; find who changed in C, not one by one
        # (a room of a thousand joining would otherwise cost a loop per join).
        pairs = ((old[i], new[i]) for i in compress(range(len(old)), map(is_not, old, new)))
    else:
        positions = after.people().positions
        pairs = ((p, new[positions[p.id]]) for p in old if p.id in positions)
    return {p.id for was, p in pairs if was is not p and was.token_hash != p.token_hash}


def removed_between(before: Session, after: Session) -> set[str]:
    """Ids of the participants listed in `before` and no longer in `after`. People join at the
    end and otherwise keep their places, so when the last of `before` is where it was, nobody
    left (one comparison, however large the room)."""
    old, new = before.participants, after.participants
    if old is new or not old:
        return set()
    if len(new) >= len(old) and new[len(old) - 1].id == old[-1].id:
        return set()
    positions = after.people().positions
    return {p.id for p in old if p.id not in positions}


# --- the door and the sweep
#
# A facilitator can close the session to newcomers (people already in come back, facilitator
# links always get in) and take out, in one change, everyone offline who holds no ballot: so a
# room filled with made-up people is theirs again in two clicks. People who never voted and
# have been offline for long go by themselves (expire_idle, on a timer like mark_away).


def set_door(session: Session, participant_id: str, open: bool) -> Session:
    """Open or close the session to newcomers."""
    _facilitator(session, participant_id)
    if session.door_open == open:
        return session
    return evolve(session, door_open=open)


NOBODY_IDLE = N_("Nobody to remove: everyone offline has scored something.")


def remove_idle(session: Session, participant_id: str) -> Session:
    """Remove everyone offline who holds no ballot (in this round or an earlier one), except
    facilitators."""
    _facilitator(session, participant_id)
    idle = _idle(session, lambda p: not p.online)
    if not idle:
        raise RuleError(NOBODY_IDLE)
    return _drop_all(session, idle)


def expire_idle(session: Session, now: float, after: float) -> Session:
    """Remove everyone who holds no ballot and has been offline for at least `after` seconds
    at `now` (0: nobody ever), except facilitators. The same change again changes nothing."""
    if after <= 0:
        return session
    idle = _idle(session, lambda p: _gone_for(p, now, after))
    return _drop_all(session, idle) if idle else session


def _gone_for(p: Participant, now: float, after: float) -> bool:
    return not p.online and (p.offline_since or 0.0) + after <= now


def next_expiry(session: Session, after: float) -> float | None:
    """When the next person offline without a ballot will have been so for `after` seconds."""
    if after <= 0:
        return None
    # Runs on every change to the people list: the longest offline first, and only until one
    # without a ballot is found (usually the first), rather than gathering every ballot.
    offline = sorted(
        (p.offline_since or 0.0, p.id)
        for p in session.participants
        if not p.sids and p.role != "facilitator"
    )
    for since, pid in offline:
        if not session.holds_ballot(pid):
            return since + after
    return None


def _idle(session: Session, gone: Callable[[Participant], bool]) -> set[str]:
    return {
        p.id
        for p in session.participants
        if p.role != "facilitator" and gone(p) and not session.holds_ballot(p.id)
    }


def _drop_all(session: Session, whom: set[str]) -> Session:
    # They hold no ballot, so only the list of people changes (and auto-reveal may now find
    # everyone still here has voted).
    participants = tuple(p for p in session.participants if p.id not in whom)
    return _reveal_when_all_voted(evolve(session, participants=participants))


# --- the team's decision

NOTE_MAX = 2000


def clean_note(raw: str) -> str:
    """A decision's note: plain text of at most 2,000 characters; line breaks kept (at most
    one blank line in a row), other control and invisible characters refused."""
    lines = [" ".join(line.split()) for line in unicodedata.normalize("NFC", raw).splitlines()]
    note = "\n".join(lines).strip()
    while "\n\n\n" in note:
        note = note.replace("\n\n\n", "\n\n")
    for char in note:
        if (
            char != "\n"
            and unicodedata.category(char) in _REFUSED_CATEGORIES
            and char not in _ALLOWED_FORMAT
        ):
            raise RuleError(INVISIBLE_IN_REASON)
    if len(note) > NOTE_MAX:
        raise RuleError(N_("A note can be at most %(limit)d characters long.", limit=NOTE_MAX))
    return note


def decide(
    session: Session, participant_id: str, stack: str | None, note: str, now: float
) -> Session:
    """Record the team's decision (a stack of the template, or None: something the template
    does not name, explained in the note). A facilitator records it, also once the session has
    finished; a later decision replaces it."""
    participant = session.participant(participant_id)
    if participant is None or participant.role != "facilitator":
        raise RuleError(NOT_FACILITATOR)
    if stack is not None and stack not in {s.id for s in session.template.stacks}:
        raise RuleError(N_("There is no option %(stack)s in this session.", stack=repr(stack)))
    note = clean_note(note)
    if stack is None and not note:
        raise RuleError(N_("Say what the team decided: pick an option or write a note."))
    last = session.decision
    if last is not None and (last.stack, last.note, last.by) == (stack, note, participant.name):
        return session
    return evolve(session, decision=Decision(stack=stack, note=note, by=participant.name, at=now))
