"""Changes as data: every way a session can change, as a small record that any instance can
apply to its own copy and get the very same session.

An instance that accepts a change applies it to its copy (through server.rules), stores the
result and publishes the record; every other instance holding the room applies the same record
to its copy. So an op must carry everything its rule needs (ids, token hashes, limits, the
time), never read a clock, a random source or a setting: the same op on the same session gives
the same result everywhere.

Applying an op that has already been applied changes nothing (a repeated join, attach, vote
with the same sequence number...), so an op whose fate is unknown can safely be tried again.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from server import rules
from server.models import Participant, Role, Session, evolve


class Join(msgspec.Struct, frozen=True, tag="join"):
    """A new participant, connected through `sid`; `link`: the hash of the facilitator link
    that made them a facilitator, checked again when the op is applied."""

    participant: Participant
    sid: str
    limit: int
    link: str | None = None


class Attach(msgspec.Struct, frozen=True, tag="attach"):
    """A participant's socket (a reconnect), possibly taking up the facilitator role with the
    facilitator link (`link`: its token's hash)."""

    participant: str
    sid: str
    role: Role | None = None
    link: str | None = None


class Detach(msgspec.Struct, frozen=True, tag="detach"):
    participant: str
    sid: str


class DropSockets(msgspec.Struct, frozen=True, tag="drop"):
    """Every socket of an instance that stopped (their ids start with `prefix`)."""

    prefix: str


class Vote(msgspec.Struct, frozen=True, tag="vote"):
    participant: str
    case: str
    score: int | None
    client: str | None = None
    seq: int | None = None
    round: int | None = None
    reason: str | None = None


class Control(msgspec.Struct, frozen=True, tag="control"):
    participant: str
    action: str
    case: str | None = None


class Countdown(msgspec.Struct, frozen=True, tag="countdown"):
    """Voting on `case` (None: every case being voted on) ends `seconds` after the op's time."""

    participant: str
    seconds: int
    case: str | None = None


class AutoReveal(msgspec.Struct, frozen=True, tag="auto_reveal"):
    participant: str
    on: bool


class HandOver(msgspec.Struct, frozen=True, tag="hand_over"):
    participant: str
    to: str


class Promote(msgspec.Struct, frozen=True, tag="promote"):
    participant: str
    whom: str


class Demote(msgspec.Struct, frozen=True, tag="demote"):
    participant: str
    whom: str


class GiveLink(msgspec.Struct, frozen=True, tag="give_link"):
    """A facilitator without a link of their own gets one (`link`: its token's hash; the
    instance that made it tells them the token)."""

    participant: str
    link: str


class Remove(msgspec.Struct, frozen=True, tag="remove"):
    participant: str
    whom: str
    keep_ballots: bool


class TakeOver(msgspec.Struct, frozen=True, tag="take_over"):
    """The facilitator link (`link`: its token's hash) opened on a device that is nobody here
    yet: it becomes the facilitator already here, or `participant` joins as the facilitator
    (rules.take_over)."""

    participant: Participant
    sid: str
    limit: int
    link: str


class Leave(msgspec.Struct, frozen=True, tag="leave"):
    participant: str
    keep_ballots: bool


class Nudge(msgspec.Struct, frozen=True, tag="nudge"):
    """A reminder to vote on `case` (None: every case being voted on), at the op's time."""

    participant: str
    case: str | None = None


class MarkAway(msgspec.Struct, frozen=True, tag="away"):
    """Everyone offline for `after` seconds at the op's time is away (server.deadlines applies
    it; the setting travels with the op, so every instance marks the same people)."""

    after: float


class Door(msgspec.Struct, frozen=True, tag="door"):
    """The facilitator opens or closes the session to newcomers."""

    participant: str
    open: bool


class RemoveIdle(msgspec.Struct, frozen=True, tag="remove_idle"):
    """The facilitator removes everyone offline who holds no ballot."""

    participant: str


class Expire(msgspec.Struct, frozen=True, tag="expire"):
    """Everyone without a ballot offline for `after` seconds at the op's time leaves
    (server.deadlines applies it, like MarkAway)."""

    after: float


class Decide(msgspec.Struct, frozen=True, tag="decide"):
    """The team's decision, recorded by a facilitator at the op's time."""

    participant: str
    stack: str | None
    note: str


class Close(msgspec.Struct, frozen=True, tag="close"):
    """Voting ends on every case whose deadline has passed at the op's time (server.deadlines
    applies it; no person asks for it)."""


Op = (
    Join
    | Attach
    | Detach
    | DropSockets
    | Vote
    | Control
    | Countdown
    | AutoReveal
    | HandOver
    | Remove
    | TakeOver
    | Promote
    | Demote
    | GiveLink
    | Leave
    | Nudge
    | MarkAway
    | Door
    | RemoveIdle
    | Expire
    | Decide
    | Close
)


def change(session: Session, op: Op, now: float) -> Session:
    """The session after `op` at time `now`, by the rules (the same object when `op` changes
    nothing); raises rules.RuleError when a rule refuses it."""
    match op:
        case Join(participant=p, sid=sid, limit=limit, link=link):
            if session.participant(p.id) is not None:
                return rules.attach(session, p.id, sid)
            if link is not None:
                rules.check_link(session, link)
            return rules.attach(rules.join(session, p, limit=limit), p.id, sid)
        case Attach(participant=pid, sid=sid, role=role, link=link):
            if link is not None:
                rules.check_link(session, link)
            return rules.attach(session, pid, sid, role)
        case Detach(participant=pid, sid=sid):
            return rules.detach(session, pid, sid, now)
        case DropSockets(prefix=prefix):
            return rules.drop_sockets(session, prefix, now)
        case Vote():
            return rules.vote(
                session,
                op.participant,
                op.case,
                op.score,
                reason=op.reason,
                client=op.client,
                seq=op.seq,
                round=op.round,
                now=now,
            )
        case Control(participant=pid, action=action, case=case):
            return rules.control(session, pid, action, case)
        case Countdown(participant=pid, seconds=seconds, case=case):
            return rules.countdown(session, pid, case, seconds, now)
        case AutoReveal(participant=pid, on=on):
            return rules.set_auto_reveal(session, pid, on)
        case HandOver(participant=pid, to=to):
            return rules.hand_over(session, pid, to)
        case Promote(participant=pid, whom=whom):
            return rules.promote(session, pid, whom)
        case Demote(participant=pid, whom=whom):
            return rules.demote(session, pid, whom)
        case GiveLink(participant=pid, link=link):
            return rules.give_link(session, pid, link)
        case Remove(participant=pid, whom=whom, keep_ballots=keep):
            return rules.remove(session, pid, whom, keep_ballots=keep)
        case TakeOver(participant=p, sid=sid, limit=limit, link=link):
            return rules.take_over(session, p, sid, limit=limit, link=link)
        case Leave(participant=pid, keep_ballots=keep):
            return rules.leave(session, pid, keep_ballots=keep)
        case Nudge(participant=pid, case=case):
            return rules.nudge(session, pid, case, now)
        case MarkAway(after=after):
            return rules.mark_away(session, now, after)
        case Door(participant=pid, open=open):
            return rules.set_door(session, pid, open)
        case RemoveIdle(participant=pid):
            return rules.remove_idle(session, pid)
        case Expire(after=after):
            return rules.expire_idle(session, now, after)
        case Decide(participant=pid, stack=stack, note=note):
            return rules.decide(session, pid, stack, note, now)
        case Close():
            return rules.close_overdue(session, now)
    raise TypeError(f"not an op: {op!r}")  # pragma: no cover - the match is exhaustive


def apply(session: Session, op: Op, now: float) -> Session:
    """`change`, stamped: version one higher and touched `now`, unless nothing changed."""
    changed = change(session, op, now)
    if changed is session:
        return session
    return evolve(changed, version=session.version + 1, updated_at=now)


def replay(session: Session, ops: Sequence[Op], now: float) -> Session:
    """Apply ops that another instance applied and stored, in order, as it did."""
    for op in ops:
        after = apply(session, op, now)
        if after is session:
            raise ValueError(f"op {op!r} changed nothing at version {session.version}")
        session = after
    return session


class Record(msgspec.Struct, frozen=True):
    """What an instance publishes after storing a change: the ops, applied in order on top of
    version `base` at time `now`."""

    session: str
    base: int
    ops: tuple[Op, ...]
    now: float


_record_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(Record)


def dump_record(record: Record) -> bytes:
    return _record_encoder.encode(record)


def load_record(data: bytes | str) -> Record:
    return _record_decoder.decode(data)
