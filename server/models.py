"""The data stackvote keeps: templates, sessions, participants, cases and their ballots."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal, NamedTuple

import msgspec
from msgspec import Meta, Struct
from msgspec.structs import replace

SCALE_MAX = 4

Role = Literal["facilitator", "voter", "spectator"]
Mode = Literal["hidden", "open"]
SessionStatus = Literal["active", "finished"]
CaseStatus = Literal["pending", "voting", "revealed", "locked"]
Score = Annotated[int, Meta(ge=0, le=SCALE_MAX)]

Ident = Annotated[
    str,
    Meta(
        pattern=r"^[a-z][a-z0-9_]{0,39}$",
        description="lower-case letters, digits and _ , starting with a letter, at most 40",
    ),
]
Title = Annotated[str, Meta(min_length=1, max_length=120)]
HelpText = Annotated[str, Meta(max_length=300)]
Weight = Annotated[float, Meta(ge=-2, le=2)]
ScaleLabel = Annotated[str, Meta(min_length=1, max_length=40)]

DEFAULT_SCALE: tuple[str, ...] = (
    "Not at all",
    "Barely",
    "Somewhat",
    "Clearly",
    "Strongly",
)


# An anonymous session shows the scores of a case only once at least this many people have
# scored it (abstentions not counted): with fewer, each score would be all but named.
MIN_CROWD = 3


def scored(ballots: dict[str, int | None]) -> int:
    """How many of these ballots are scores (not abstentions)."""
    return sum(score is not None for score in ballots.values())


class Stack(Struct, frozen=True, forbid_unknown_fields=True):
    id: Ident
    name: Title


class CaseSpec(Struct, frozen=True, forbid_unknown_fields=True):
    id: Ident
    title: Title
    help: HelpText = ""
    fit: dict[Ident, Weight] = {}


class Template(Struct, frozen=True, forbid_unknown_fields=True):
    """A deck of cases to score, and how each case weighs on each candidate stack."""

    title: Title
    stacks: Annotated[tuple[Stack, ...], Meta(min_length=1, max_length=20)]
    cases: Annotated[tuple[CaseSpec, ...], Meta(min_length=1, max_length=30)]
    id: Ident = "custom"
    description: Annotated[str, Meta(max_length=500)] = ""
    scale: Annotated[tuple[ScaleLabel, ...], Meta(min_length=5, max_length=5)] = DEFAULT_SCALE
    # The stack that wins ties: the one a team would pick unless a case says otherwise.
    favourite: Ident | None = None

    def stack_name(self, stack_id: str) -> str:
        return next((s.name for s in self.stacks if s.id == stack_id), stack_id)

    def case(self, case_id: str) -> CaseSpec | None:
        return next((c for c in self.cases if c.id == case_id), None)


class Participant(Struct, frozen=True):
    id: str
    name: str
    role: Role
    token_hash: str
    # Socket ids currently connected as this participant; online while non-empty.
    sids: tuple[str, ...] = ()
    # When their last socket went away (epoch seconds, the time of that change); None while
    # online, and for people whose going offline was never recorded.
    offline_since: float | None = None
    # Offline for longer than the server's away_after_seconds (rules.mark_away): not counted
    # in "n of m" nor waited for by auto-reveal, until they come back.
    away: bool = False
    # A facilitator's own link: the hash of its token. "" for everyone else, and for the
    # facilitator who holds the session's first link (Session.facilitator_hash);
    # rules.LINK_PENDING for a facilitator whose link is being made (rules.link_of).
    link: str = ""

    @property
    def online(self) -> bool:
        return bool(self.sids)

    @property
    def counts(self) -> bool:
        """Whether this person's ballots count (spectators only watch)."""
        return self.role != "spectator"

    @property
    def here(self) -> bool:
        """Whether the room waits for this person: online, or offline for a short while only
        (a connection that blinks). Away, or offline since before the server last recorded
        it, is not here; the participant view's `away` says the opposite of this."""
        return self.online or (not self.away and self.offline_since is not None)


class Tally(NamedTuple):
    """The count "`voted` of `of` voted" on a case: the one count the server, the room, the
    presenter view and the record all say (static/js/room/quorum.js is its twin in the
    browser)."""

    voted: int
    of: int


class Round(Struct, frozen=True):
    """A finished round of a case, kept when the facilitator asks for a re-vote."""

    round: int
    status: CaseStatus
    ballots: dict[str, int | None]
    # participant id -> the reason they gave with their ballot (plain text), if they gave one.
    reasons: dict[str, str] = {}


class CaseState(Struct, frozen=True):
    id: str
    status: CaseStatus = "pending"
    round: int = 1
    # participant id -> score (None = abstain), for the current round only.
    ballots: dict[str, int | None] = {}
    history: tuple[Round, ...] = ()
    # participant id -> the reason given with the ballot (plain text), current round only.
    reasons: dict[str, str] = {}
    # When voting on this case ends (epoch seconds), if a countdown runs: votes arriving later
    # are refused, and the instances holding the session close it then (server.deadlines).
    deadline: float | None = None
    # participant id -> (client id, sequence number) of the last vote applied on this case, in
    # any round: a retried or late vote with an older number from the same client changes
    # nothing, so each vote counts once and the newest one wins.
    sequence: dict[str, tuple[str, int]] = {}
    # Anonymous sessions in open mode show live results only in batches (see rules.vote): the
    # ballots as last shown, and who changed theirs since, oldest change first.
    shown: dict[str, int | None] = {}
    unshown: tuple[str, ...] = ()


class Nudge(Struct, frozen=True):
    """The facilitator's last reminder to vote: when, and on which cases (id -> the round it
    was about, so a re-vote of the case is not nudged by an old reminder)."""

    at: float
    cases: dict[str, int]
    # Who sent it (a facilitator): their own browser does not remind them.
    by: str = ""


def name_key(name: str) -> str:
    """A name as people read it, for telling whether two names are the same: Unicode
    compatibility forms folded (full-width letters, the ligature "ﬁ", mathematical letters) and
    case folded ("ß" is "ss"). Normalised again after folding, since folding can undo it."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


class Decision(Struct, frozen=True):
    """What the team decided (the recommendation is advice): a stack of the template, or None
    for a decision the template's stacks do not name; a note; who recorded it, and when."""

    stack: str | None
    note: str
    by: str
    at: float


class Former(Struct, frozen=True):
    """Someone who left the session (or was removed) holding ballots: their name and role stay
    with the record, so a result keeps saying whose ballots it counts."""

    name: str
    role: Role


class PeopleIndex:
    """Where each participant of a session is, by id, by name (name_key) and by token hash,
    so that a room of a thousand people answers "who is this?" without a scan."""

    __slots__ = ("names", "participants", "positions", "tokens")

    def __init__(
        self,
        participants: tuple[Participant, ...],
        positions: dict[str, int],
        names: dict[str, str],
        tokens: dict[str, str],
    ) -> None:
        self.participants = participants
        self.positions = positions
        self.names = names
        self.tokens = tokens

    @classmethod
    def of(cls, participants: tuple[Participant, ...]) -> PeopleIndex:
        return cls(
            participants,
            {p.id: n for n, p in enumerate(participants)},
            {name_key(p.name): p.id for p in participants},
            {p.token_hash: p.id for p in participants},
        )

    def appended(self, participants: tuple[Participant, ...]) -> PeopleIndex:
        """The index of `participants`: these ones plus one newcomer at the end."""
        newcomer = participants[-1]
        return PeopleIndex(
            participants,
            {**self.positions, newcomer.id: len(participants) - 1},
            {**self.names, name_key(newcomer.name): newcomer.id},
            {**self.tokens, newcomer.token_hash: newcomer.id},
        )

    def same_people(self, participants: tuple[Participant, ...]) -> PeopleIndex:
        """The index of `participants`: the same people in the same places (ids, names and
        tokens unchanged; only their sockets or roles differ)."""
        return PeopleIndex(participants, self.positions, self.names, self.tokens)


class Session(Struct, frozen=True, dict=True):
    id: str
    title: str
    mode: Mode
    anonymous: bool
    template: Template
    # The hash of the first facilitator link's token (the one made with the session). It
    # belongs to the first facilitator without a link of their own (rules.link_of), or to
    # whoever opens it while nobody facilitates; empty once its holder gave up the role, so
    # that it no longer gives control. Facilitators made later have links of their own.
    facilitator_hash: str
    created_at: float
    updated_at: float
    status: SessionStatus = "active"
    version: int = 1
    participants: tuple[Participant, ...] = ()
    cases: tuple[CaseState, ...] = ()
    # Reveal a case as soon as everyone here who votes has voted on it (rules.vote and others).
    auto_reveal: bool = False
    # The short code people may type at /join instead of opening the link (never changes).
    join_code: str | None = None
    # The last reminder to vote (rules.nudge), if any.
    nudge: Nudge | None = None
    # Whether newcomers may join (rules.set_door): people already in come back and facilitator
    # links get in either way.
    door_open: bool = True
    # The team's own decision (rules.decide), once recorded; a later one replaces it.
    decision: Decision | None = None
    # participant id -> who they were, for people gone from the list who hold ballots.
    former: dict[str, Former] = {}

    def people(self) -> PeopleIndex:
        """The index of this session's participants (built once, carried along by `evolve`)."""
        index: PeopleIndex | None = self.__dict__.get("_people")
        if index is None or index.participants is not self.participants:
            index = PeopleIndex.of(self.participants)
            self.__dict__["_people"] = index
        return index

    def participant(self, participant_id: str) -> Participant | None:
        position = self.people().positions.get(participant_id)
        return None if position is None else self.participants[position]

    def case(self, case_id: str) -> CaseState | None:
        return next((c for c in self.cases if c.id == case_id), None)

    def results_visible(self, case: CaseState) -> bool:
        """Scores leave the server only for revealed cases (in an anonymous session, once
        enough people scored them), or live in open mode."""
        if case.status in ("revealed", "locked"):
            return self.crowd_enough(case.ballots)
        return self.mode == "open" and case.status == "voting"

    def crowd_enough(self, ballots: dict[str, int | None]) -> bool:
        """Whether a round with these ballots may show its scores: always, unless the session
        is anonymous and fewer than MIN_CROWD people scored."""
        return not self.anonymous or scored(ballots) >= MIN_CROWD

    def holds_ballot(self, pid: str) -> bool:
        """Whether `pid` has a ballot on some case, in its current round or an earlier one."""
        return any(
            pid in case.ballots or any(pid in past.ballots for past in case.history)
            for case in self.cases
        )

    def waiting(self, case: CaseState) -> int:
        """How many people here who vote hold no ballot on `case` (the room waits for them)."""
        return sum(1 for p in self.participants if p.counts and p.here and p.id not in case.ballots)

    def tally(self, case: CaseState) -> Tally:
        """Who voted on `case`, of whom. `voted` is every ballot of its round (skips too, and
        the ballots of people who left, which stay counted); `of` adds everyone here who
        votes and has not, so `voted` <= `of` by construction. In an anonymous session nobody
        is told who voted, so `of` is what everyone can count: the people here who vote, or
        `voted` if that is more."""
        voted = len(case.ballots)
        if self.anonymous:
            here = sum(1 for p in self.participants if p.counts and p.here)
            return Tally(voted, max(voted, here))
        return Tally(voted, voted + self.waiting(case))

    def withheld(self, case: CaseState) -> bool:
        """A case closed without showing its results: too few people scored it in an
        anonymous session (closed by a countdown, a lock or the end of the session)."""
        return case.status in ("revealed", "locked") and not self.crowd_enough(case.ballots)


def evolve(session: Session, index: PeopleIndex | None = None, **changes: Any) -> Session:
    """The session with `changes` (msgspec's replace), keeping the participants' index: the
    same one when they did not change, or `index` when the caller built the new one."""
    found = session.__dict__.get("_people")
    new = replace(session, **changes)
    if index is None and found is not None and found.participants is new.participants:
        index = found
    if index is not None:
        new.__dict__["_people"] = index
    return new


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Session)


def dump_session(session: Session) -> bytes:
    return _encoder.encode(session)


def load_session(data: bytes | str) -> Session:
    return _decoder.decode(data)
