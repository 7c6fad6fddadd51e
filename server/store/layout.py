"""How a session is laid out in Redis: a few hashes per session, so that a change writes only
the fields it changes (a vote: one ballot, its sequence number, the version).

All keys of a session carry its id in braces (a Redis Cluster hash tag), so they live on one
node and one script can change them together.

    <prefix>:{id}          meta: v version, u last change, st status, on people online,
                           ar auto-reveal (1 or 0), f the facilitator link's hash once it
                           changed, m the parts that never change (title, template, join
                           code, ...), x expiry
    <prefix>:{id}:p        participant id -> {"n": place in the list, "p": participant}
    <prefix>:{id}:c        case id -> {"status", "round", "deadline"}
    <prefix>:{id}:h        case id -> earlier rounds (with their reasons)
    <prefix>:{id}:u        case id -> anonymous ballots not shown yet
    <prefix>:{id}:b:<case> participant id -> score (null = abstain); "~" + participant id ->
                           [client, seq] of their last vote; "=" + participant id -> the score
                           shown so far (anonymous sessions in open mode); "!" + participant
                           id -> the reason given with the ballot

A vote writes its ballot's fields (score, sequence number, reason) in the one hash of its case.
A join code is a key of its own, <prefix>:code:<code> -> session id (server.store.redis).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from server.models import (
    CaseState,
    CaseStatus,
    Decision,
    Former,
    Mode,
    Nudge,
    Participant,
    Round,
    Session,
    Template,
)

SEQUENCE = "~"
SHOWN = "="
REASON = "!"


class _Static(msgspec.Struct, frozen=True):
    id: str
    title: str
    mode: Mode
    anonymous: bool
    template: Template
    facilitator_hash: str
    created_at: float
    join_code: str | None = None


class _Person(msgspec.Struct, frozen=True):
    n: int
    p: Participant


class _Head(msgspec.Struct, frozen=True):
    status: CaseStatus
    round: int
    deadline: float | None = None


_encode = msgspec.json.Encoder().encode
_static = msgspec.json.Decoder(_Static).decode
_person = msgspec.json.Decoder(_Person).decode
_head = msgspec.json.Decoder(_Head).decode
_rounds = msgspec.json.Decoder(tuple[Round, ...]).decode
_names = msgspec.json.Decoder(tuple[str, ...]).decode
_score = msgspec.json.Decoder(int | None).decode
_sequence = msgspec.json.Decoder(tuple[str, int]).decode
_text = msgspec.json.Decoder(str).decode
_decision = msgspec.json.Decoder(Decision).decode
_nudge = msgspec.json.Decoder(Nudge).decode
_former = msgspec.json.Decoder(dict[str, Former]).decode


class Keys:
    def __init__(self, prefix: str, session_id: str) -> None:
        self.meta = f"{prefix}:{{{session_id}}}"
        self.people = self.meta + ":p"
        self.cases = self.meta + ":c"
        self.history = self.meta + ":h"
        self.unshown = self.meta + ":u"
        self.feed = self.meta + ":feed"

    def ballots(self, case_id: str) -> str:
        return f"{self.meta}:b:{case_id}"

    def all(self, case_ids: Iterable[str]) -> list[str]:
        fixed = [self.meta, self.people, self.cases, self.history, self.unshown]
        return fixed + [self.ballots(c) for c in case_ids]


# key -> field -> new value, or None to delete the field.
Writes = dict[str, dict[str, bytes | None]]


def everything(keys: Keys, session: Session) -> Writes:
    """The writes that store a whole session."""
    empty = msgspec.structs.replace(
        session,
        participants=(),
        cases=tuple(CaseState(id=c.id, status="pending", round=0) for c in session.cases),
        status="active",
        version=0,
        updated_at=0.0,
        auto_reveal=False,
        door_open=True,
        decision=None,
        nudge=None,
        former={},
    )
    found = changes(keys, empty, session)
    static = _Static(
        id=session.id,
        title=session.title,
        mode=session.mode,
        anonymous=session.anonymous,
        template=session.template,
        facilitator_hash=session.facilitator_hash,
        created_at=session.created_at,
        join_code=session.join_code,
    )
    found[keys.meta] |= {"m": _encode(static), "st": session.status.encode()}
    found[keys.meta].setdefault("on", b"0")
    return found


def changes(keys: Keys, before: Session, after: Session) -> Writes:
    """The fields that differ between two versions of a session (found by identity: the rules
    replace only what they change)."""
    out: Writes = {
        keys.meta: {"v": str(after.version).encode(), "u": repr(after.updated_at).encode()}
    }
    if after.status != before.status:
        out[keys.meta]["st"] = after.status.encode()
    if after.auto_reveal != before.auto_reveal:
        out[keys.meta]["ar"] = b"1" if after.auto_reveal else b"0"
    if after.door_open != before.door_open:
        out[keys.meta]["do"] = b"1" if after.door_open else b"0"
    if after.nudge != before.nudge:
        out[keys.meta]["nu"] = None if after.nudge is None else _encode(after.nudge)
    if after.former is not before.former and after.former != before.former:
        out[keys.meta]["fo"] = _encode(after.former)
    if after.decision != before.decision:
        out[keys.meta]["dc"] = None if after.decision is None else _encode(after.decision)
    if after.facilitator_hash != before.facilitator_hash:
        out[keys.meta]["f"] = _encode(after.facilitator_hash)
    if after.participants is not before.participants:
        old = {p.id: p for p in before.participants}
        people = out.setdefault(keys.people, {})
        for n, p in enumerate(after.participants):
            if old.pop(p.id, None) is not p:
                people[p.id] = _encode(_Person(n=n, p=p))
        for gone in old:
            people[gone] = None
        if old:
            # Someone left the list and those after them moved up: their places are written
            # again, so that a newcomer's place never equals an older one's.
            places = before.people().positions
            for n, p in enumerate(after.participants):
                if p.id not in people and places.get(p.id) != n:
                    people[p.id] = _encode(_Person(n=n, p=p))
        online = sum(1 for p in after.participants if p.sids)
        out[keys.meta]["on"] = str(online).encode()
    if after.cases is not before.cases:
        was = {c.id: c for c in before.cases}
        for case in after.cases:
            if was.get(case.id) is not case:
                _case_changes(keys, was.get(case.id), case, out)
    return {key: fields for key, fields in out.items() if fields}


def _case_changes(keys: Keys, before: CaseState | None, after: CaseState, out: Writes) -> None:
    before = before or CaseState(id=after.id, status="pending", round=0)
    if (before.status, before.round, before.deadline) != (
        after.status,
        after.round,
        after.deadline,
    ):
        out.setdefault(keys.cases, {})[after.id] = _encode(
            _Head(after.status, after.round, after.deadline)
        )
    if before.history != after.history:
        out.setdefault(keys.history, {})[after.id] = _encode(after.history)
    if before.unshown != after.unshown:
        out.setdefault(keys.unshown, {})[after.id] = (
            _encode(after.unshown) if after.unshown else None
        )
    ballots = out.setdefault(keys.ballots(after.id), {})
    _dict_changes(before.ballots, after.ballots, "", ballots)
    _dict_changes(before.sequence, after.sequence, SEQUENCE, ballots)
    _dict_changes(before.shown, after.shown, SHOWN, ballots)
    _dict_changes(before.reasons, after.reasons, REASON, ballots)


def _dict_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], mark: str, out: dict[str, bytes | None]
) -> None:
    if before is after:
        return
    for key, value in after.items():
        if key not in before or before[key] != value:
            out[mark + key] = _encode(value)
    for key in before.keys() - after.keys():
        out[mark + key] = None


def load(session_id: str, raw: list[dict[bytes, bytes]], case_ids: list[str]) -> Session | None:
    """A session from the hashes of `Keys.all(case_ids)`, read in that order (None if the
    meta hash is gone)."""
    meta, people, cases, history, unshown, *per_case = raw
    if not meta:
        return None
    static = _static(meta[b"m"])
    persons = sorted((_person(v) for v in people.values()), key=lambda x: x.n)
    states = []
    for case_id, ballots_raw in zip(case_ids, per_case, strict=True):
        key = case_id.encode()
        head = _head(cases[key]) if key in cases else _Head("pending", 1)
        ballots, sequence, shown, reasons = {}, {}, {}, {}
        for field, value in ballots_raw.items():
            name = field.decode()
            if name.startswith(SEQUENCE):
                sequence[name[1:]] = _sequence(value)
            elif name.startswith(SHOWN):
                shown[name[1:]] = _score(value)
            elif name.startswith(REASON):
                reasons[name[1:]] = _text(value)
            else:
                ballots[name] = _score(value)
        states.append(
            CaseState(
                id=case_id,
                status=head.status,
                round=head.round,
                ballots=ballots,
                history=_rounds(history[key]) if key in history else (),
                sequence=sequence,
                shown=shown,
                unshown=_names(unshown[key]) if key in unshown else (),
                reasons=reasons,
                deadline=head.deadline,
            )
        )
    return Session(
        id=session_id,
        title=static.title,
        mode=static.mode,
        anonymous=static.anonymous,
        template=static.template,
        facilitator_hash=_text(meta[b"f"]) if b"f" in meta else static.facilitator_hash,
        created_at=static.created_at,
        updated_at=float(meta[b"u"]),
        status="finished" if meta.get(b"st") == b"finished" else "active",
        version=int(meta[b"v"]),
        participants=tuple(x.p for x in persons),
        cases=tuple(states),
        auto_reveal=meta.get(b"ar") == b"1",
        door_open=meta.get(b"do") != b"0",
        decision=_decision(meta[b"dc"]) if b"dc" in meta else None,
        nudge=_nudge(meta[b"nu"]) if b"nu" in meta else None,
        former=_former(meta[b"fo"]) if b"fo" in meta else {},
        join_code=static.join_code,
    )


def join_code(meta: Mapping[Any, Any]) -> str | None:
    """The session's join code, from its meta hash (None if it has none)."""
    return _static(meta[b"m"]).join_code if b"m" in meta else None


def case_ids(meta: Mapping[Any, Any]) -> list[str] | None:
    """The session's case ids, from its meta hash (None if there is none)."""
    if b"m" not in meta:
        return None
    return [c.id for c in _static(meta[b"m"]).template.cases]
