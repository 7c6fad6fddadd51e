"""What clients may send, checked at the door: event names, payload shapes and their errors."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct

from server.models import Ident, Mode, Score, Title
from server.rules import COMMANDS, COUNTDOWN_MAX, NOTE_MAX, REASON_MAX, Command
from server.text import N_, Text

# Server -> client events.
WELCOME = "welcome"
STATE = "state"
# What changed since the client's version (SPEC §5); `state` goes to joiners and on `sync`.
DELTA = "delta"
# Whether this server can reach its storage: {"storage": "ok" | "unavailable"}.
STATUS = "status"
# This connection no longer speaks for its participant: {"reason", "message"}, reason
# "removed" (by the facilitator), "left" (they left) or "moved" (the facilitator link was
# opened on another device, which is now this person); the connection closes after it.
REMOVED = "removed"
# Sent to a person whose role changed (hand-over, promote, demote): {"role",
# "facilitator_token"?}, the token of their own facilitator link when they became one.
ROLE = "role"
# Client -> server events.
VOTE = "vote"
CONTROL = "control"
SYNC = "sync"
LEAVE = "leave"
# What would put a stack first: {"stack"} -> ack {"ok", "stack", "flip", "can_win"} (the room
# is sent the runner-up's flip only; the others are worked out when someone asks).
FLIP = "flip"
# The only events a client may emit; any other name (`connect` and `disconnect` included) is
# refused before it reaches a handler (server.gate).
CLIENT_EVENTS = frozenset({VOTE, CONTROL, SYNC, LEAVE, FLIP})

Token = Annotated[str, Meta(min_length=1, max_length=200)]


class ProtocolError(ValueError):
    """A payload of the wrong shape; str(error) is the message for the sender (in English; its
    argument is a server.text.Text when the message can be translated)."""


# Messages raised inside __post_init__ reach parse() as plain text in msgspec's error; each is
# remembered here by its English so parse() can hand on the translatable one.
_RAISED: dict[str, Text] = {}


def _invalid(text: Text) -> ValueError:
    _RAISED.setdefault(str(text), text)
    return ValueError(text)


class CreateSession(Struct, forbid_unknown_fields=True):
    title: Title
    template: str | dict[str, Any] = "django"
    mode: Mode = "hidden"
    anonymous: bool = False


class LinkCheck(Struct, forbid_unknown_fields=True):
    """POST /api/sessions/<id>/link: whom a facilitator link names (the token in the body,
    never in a URL)."""

    facilitator_token: Token


class Auth(Struct, forbid_unknown_fields=True):
    session: Token
    name: str | None = None
    token: Token | None = None
    facilitator_token: Token | None = None
    role: Literal["voter", "spectator"] = "voter"
    # Watch only (a presenter screen): the room's snapshots and deltas, as a participant gets
    # them, without becoming one; it cannot vote or steer.
    watch: bool = False

    def __post_init__(self) -> None:
        joining = (self.name, self.token, self.facilitator_token)
        if self.watch and (any(f is not None for f in joining) or self.role != "voter"):
            raise ValueError(WATCH_ALONE)


WATCH_ALONE = N_("a watch-only connection takes only the session: no name, token or role")


ClientId = Annotated[str, Meta(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Sequence = Annotated[int, Meta(ge=1, le=2**53)]


class Vote(Struct, forbid_unknown_fields=True):
    case: Token
    score: Score | None
    # For exactly-once delivery: a client id (random per browser tab) and a number that grows
    # with each vote it sends; a client retries a vote with the same pair until it is acked.
    client: ClientId | None = None
    seq: Sequence | None = None
    # The round the voter saw; a vote meant for an earlier round is refused, not moved.
    round: Annotated[int, Meta(ge=1)] | None = None
    # Why, in a sentence: plain text, shown with the score once it is revealed.
    reason: Annotated[str, Meta(max_length=REASON_MAX)] | None = None

    def __post_init__(self) -> None:
        if (self.client is None) != (self.seq is None):
            raise _invalid(N_("client and seq go together"))


Seconds = Annotated[int, Meta(ge=0, le=COUNTDOWN_MAX)]

# Commands about the session or its people, never about one case.
_NOT_ABOUT_A_CASE = frozenset(
    {"hand_over", "promote", "demote", "remove", "auto_reveal", "door", "remove_idle", "decide"}
)

# The fields each command needs besides `action` (and `case`, which the rules check).
_NEEDS: dict[str, tuple[str, ...]] = {
    "countdown": ("seconds",),
    "auto_reveal": ("on",),
    "hand_over": ("participant",),
    "promote": ("participant",),
    "demote": ("participant",),
    "remove": ("participant", "keep_ballots"),
    "door": ("open",),
}
# The fields a command may come with, besides those it needs.
_MAY: dict[str, tuple[str, ...]] = {"decide": ("stack", "note")}
_WANTED = {
    "seconds": N_("seconds: a whole number from 0 to %(limit)d", limit=COUNTDOWN_MAX),
    "on": N_("on: true or false"),
    "participant": N_("participant: the id of a participant in this session"),
    "keep_ballots": N_("keep_ballots: true or false"),
    "open": N_("open: true or false"),
    "stack": N_("stack: the id of one of the session's options, or null"),
    "note": N_("note: text of at most %(limit)d characters", limit=NOTE_MAX),
}


class Control(Struct, forbid_unknown_fields=True):
    action: Command
    case: Token | None = None
    # countdown: how long voting stays open (0 stops the countdown).
    seconds: Seconds | None = None
    # auto_reveal: on or off.
    on: bool | None = None
    # hand_over, promote, demote and remove: whom it is about.
    participant: Token | None = None
    # remove: whether the ballots they cast so far stay counted.
    keep_ballots: bool | None = None
    # door: whether newcomers may join.
    open: bool | None = None
    # decide: the stack chosen (null: none of the template's) and a note.
    stack: Token | None = None
    note: Annotated[str, Meta(max_length=NOTE_MAX * 2)] | None = None

    def __post_init__(self) -> None:
        needs = _NEEDS.get(self.action, ())
        for name, wanted in _WANTED.items():
            given = getattr(self, name) is not None
            if name in needs and not given:
                raise _invalid(N_("%(action)s needs %(wanted)s", action=self.action, wanted=wanted))
            if given and name not in needs and name not in _MAY.get(self.action, ()):
                names = [a for a, fields in (*_NEEDS.items(), *_MAY.items()) if name in fields]
                users = " and ".join([", ".join(names[:-1]), names[-1]] if names[:-1] else names)
                raise _invalid(
                    N_("%(field)s goes only with %(actions)s", field=name, actions=users)
                )
        if self.action in _NOT_ABOUT_A_CASE and self.case is not None:
            raise _invalid(N_("%(action)s is not about a case; leave case out", action=self.action))


class FlipQuery(Struct, forbid_unknown_fields=True):
    """Which stack's smallest flip a client wants."""

    stack: Ident


class Leave(Struct, forbid_unknown_fields=True):
    """A participant leaving by themselves; `keep_ballots` as with `remove`."""

    keep_ballots: bool = True


# Messages for the fields people most often get wrong, in their terms rather than a schema's.
TITLE_HINT = N_("title must be text of 1 to 120 characters")
_FIELD_HINTS = {
    "score": N_("score must be a whole number from 0 to 4, or null to abstain"),
    "case": N_("case must be the id of a case in this session"),
    "action": N_("action must be one of %(actions)s", actions=", ".join(COMMANDS)),
    "reason": N_("reason must be text of at most %(limit)d characters", limit=REASON_MAX),
    "seconds": N_("seconds must be a whole number from 0 to %(limit)d", limit=COUNTDOWN_MAX),
    "on": N_("on must be true or false"),
    "participant": N_("participant must be the id of a participant in this session"),
    "keep_ballots": N_("keep_ballots must be true or false"),
    "mode": N_('mode must be "hidden" or "open"'),
    "anonymous": N_("anonymous must be true or false"),
    "title": TITLE_HINT,
    "role": N_('role must be "voter" or "spectator"'),
    "session": N_("session must be a session id"),
    "client": N_("client must be 8 to 64 letters, digits, - or _"),
    "seq": N_("seq must be a whole number from 1 up"),
    "round": N_("round must be a whole number from 1 up"),
    "name": N_("name must be text of 1 to 40 characters"),
    "token": N_("token must be the participant token this server gave you"),
    "facilitator_token": N_("facilitator_token must be the token from the facilitator link"),
    "template": N_('template must be "django" or a template object'),
    "watch": N_("watch must be true or false"),
}
_AT_FIELD = re.compile(r"at `\$\.(\w+)")
_MISSING = re.compile(r"missing required field `(\w+)`")
_UNKNOWN = re.compile(r"Object contains unknown field (`[^`]*`)\Z")

T = TypeVar("T")


def parse(kind: type[T], data: Any) -> T:
    """Check `data` (decoded JSON) against a payload type, or raise ProtocolError."""
    if not isinstance(data, dict):
        raise ProtocolError(N_("expected a JSON object"))
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise ProtocolError(_explain(str(exc))) from None


def _explain(message: str) -> str:
    if message in _RAISED:
        return _RAISED[message]
    missing = _MISSING.search(message)
    if missing:
        return N_("%(field)s is required", field=missing.group(1))
    field = _AT_FIELD.search(message)
    if field and field.group(1) in _FIELD_HINTS:
        return _FIELD_HINTS[field.group(1)]
    unknown = _UNKNOWN.match(message)
    if unknown:
        return N_("unknown field %(field)s", field=unknown.group(1))
    return message.replace("`$.", "`").replace("Object contains unknown field", "unknown field")


# Strings (skipped whole, so brackets inside them do not count) or a bracket.
_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
MAX_DEPTH = 32


def nesting_depth(body: bytes) -> int:
    """How deeply JSON text nests arrays and objects, without decoding it (decoders recurse,
    so a body of 30,000 brackets would exhaust the stack before any schema is checked)."""
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def ok(version: int) -> dict[str, Any]:
    return {"ok": True, "version": version}


def error(message: str, *, retry: bool = False) -> dict[str, Any]:
    """Not done (and, for a vote, not counted). `retry`: the refusal is for now only (busy,
    storage down, too fast), so a client may send the same thing again later."""
    answer: dict[str, Any] = {"ok": False, "error": message}
    if retry:
        answer["retry"] = True
    return answer
