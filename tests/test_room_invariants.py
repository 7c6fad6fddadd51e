"""Every rule together, as the server applies them (server.ops), with what must hold after
every step: counts within bounds and the same wherever they are derived, a locked case never
reopening, the session never without a facilitator once it had one, every facilitator's link
naming them alone, no hidden score in any view, and a record that keeps everyone who voted.

Hypothesis drives joins, reconnects, leaves, removals, hand-overs, promotions, demotions, new
devices, votes, abstentions, opens, reveals, re-votes, locks, countdowns, auto-reveal, the door,
sweeps, decisions and finishing, in any order, by anyone (refusals included).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from server import exports, ops, rules, snapshot
from server.models import Participant, Role, Session, evolve
from server.rules import RuleError
from server.security import hash_token
from tests.factories import LIMIT, default_template, new_session

NAMES = ("Ann", "Ben", "Cat", "Dan", "Eve")
CASES = tuple(c.id for c in default_template().cases[:3])
STACKS = (None, *(s.id for s in default_template().stacks[:2]))
scores = st.one_of(st.none(), st.integers(0, 4))
FIRST_LINK = "first-link"


def twin_tally(state: dict[str, Any], case: dict[str, Any]) -> tuple[int, int]:
    """static/js/room/quorum.js, line for line: the count the room and the presenter view say,
    from nothing but the snapshot they are sent."""
    voted = case["votes_in"]
    voters = [p for p in state["participants"] if p["role"] != "spectator" and not p["away"]]
    if state["session"]["anonymous"]:
        return voted, max(voted, len(voters))
    missing = [p for p in voters if case["id"] not in p["voted"]]
    return voted, voted + len(missing)


class Room(RuleBasedStateMachine):
    @initialize(
        mode=st.sampled_from(["hidden", "open"]),
        anonymous=st.booleans(),
        creator_first=st.booleans(),
        opened=st.booleans(),
    )
    def start(self, mode: str, anonymous: bool, creator_first: bool, opened: bool) -> None:
        session = new_session(mode=mode, anonymous=anonymous)  # type: ignore[arg-type]
        self.session = evolve(session, facilitator_hash=hash_token(FIRST_LINK))
        self.now = 2_000.0
        self.sockets = 0
        # Tokens of the links handed to people (hash -> token), as their browsers keep them.
        self.links: dict[str, str] = {hash_token(FIRST_LINK): FIRST_LINK}
        self.locked: set[str] = set()
        self.had_facilitator = False
        self.ever_voted: set[str] = set()
        if not creator_first:
            self.apply(ops.Join(self.newcomer("Zed"), self.socket(), LIMIT))
        self.apply(
            ops.TakeOver(
                self.newcomer("Fay", "facilitator"), self.socket(), LIMIT, hash_token(FIRST_LINK)
            )
        )
        for name in NAMES[:2]:
            self.apply(ops.Join(self.newcomer(name), self.socket(), LIMIT))
        if opened:
            self.apply(ops.Control("fay", "open_all"))

    # --- helpers

    def newcomer(self, name: str, role: Role = "voter") -> Participant:
        return Participant(
            id=name.lower(), name=name, role=role, token_hash=hash_token(f"t-{name}")
        )

    def socket(self) -> str:
        self.sockets += 1
        return f"i1:s{self.sockets}"

    def apply(self, op: ops.Op) -> str | None:
        """Apply `op` as the server does; returns the refusal, if any (nothing changed)."""
        self.now += 1.0
        before = self.session
        try:
            after = ops.apply(before, op, self.now)
        except RuleError as exc:
            event(f"{type(op).__name__} refused")
            return str(exc)
        event(f"{type(op).__name__} applied")
        self.check_step(before, after)
        self.session = after
        return None

    def people(self) -> list[str]:
        return [p.id for p in self.session.participants]

    def facilitators(self) -> list[str]:
        return [p.id for p in self.session.participants if p.role == "facilitator"]

    def anyone(self, data: st.DataObject, label: str) -> str:
        # Mostly someone here; sometimes someone who is not (refused, never a crash).
        pool = [*self.people(), "nobody"]
        return data.draw(st.sampled_from(pool), label=label)

    def by(self, data: st.DataObject) -> str:
        # Mostly a facilitator (most commands are theirs), sometimes anyone at all.
        pool = [*self.facilitators() * 4, *self.people(), "nobody"]
        return data.draw(st.sampled_from(pool), label="by")

    # --- people

    @rule(name=st.sampled_from(NAMES), spectator=st.booleans())
    def join(self, name: str, spectator: bool) -> None:
        person = self.newcomer(name, "spectator" if spectator else "voter")
        self.apply(ops.Join(person, self.socket(), LIMIT))

    @rule(data=st.data())
    def reconnect(self, data: st.DataObject) -> None:
        self.apply(ops.Attach(self.anyone(data, "who"), self.socket()))

    @rule(data=st.data())
    def goes_offline(self, data: st.DataObject) -> None:
        who = self.session.participant(self.anyone(data, "who"))
        if who is not None:
            for sid in who.sids:
                self.apply(ops.Detach(who.id, sid))

    @rule(after=st.sampled_from([0.5, 3.0, 30.0]))
    def time_passes_and_people_go_away(self, after: float) -> None:
        self.now += after
        self.apply(ops.MarkAway(after))
        self.apply(ops.Close())

    @rule(data=st.data(), keep=st.booleans())
    def leaves(self, data: st.DataObject, keep: bool) -> None:
        self.apply(ops.Leave(self.anyone(data, "who"), keep))

    @rule(data=st.data(), keep=st.booleans())
    def removes(self, data: st.DataObject, keep: bool) -> None:
        self.apply(ops.Remove(self.by(data), self.anyone(data, "whom"), keep))

    @rule(data=st.data())
    def sweeps(self, data: st.DataObject) -> None:
        self.apply(ops.RemoveIdle(self.by(data)))

    @rule(open=st.booleans(), data=st.data())
    def door(self, open: bool, data: st.DataObject) -> None:
        self.apply(ops.Door(self.by(data), open))

    # --- roles

    @rule(data=st.data())
    def hands_over(self, data: st.DataObject) -> None:
        self.apply(ops.HandOver(self.by(data), self.anyone(data, "to")))

    @rule(data=st.data())
    def promotes(self, data: st.DataObject) -> None:
        self.apply(ops.Promote(self.by(data), self.anyone(data, "whom")))

    @rule(data=st.data())
    def demotes(self, data: st.DataObject) -> None:
        self.apply(ops.Demote(self.by(data), self.anyone(data, "whom")))

    @precondition(
        lambda self: any(rules.needs_link(self.session, p) for p in self.session.participants)
    )
    @rule(data=st.data())
    def a_link_is_made(self, data: st.DataObject) -> None:
        waiting = [p.id for p in self.session.participants if rules.needs_link(self.session, p)]
        who = data.draw(st.sampled_from(waiting), label="who")
        token = f"link-{self.sockets}-{who}"
        self.links[hash_token(token)] = token
        self.apply(ops.GiveLink(who, hash_token(token)))

    @rule(data=st.data(), name=st.sampled_from(["", "Fay", "Ann"]))
    def a_link_is_opened_on_a_new_device(self, data: st.DataObject, name: str) -> None:
        link = data.draw(st.sampled_from(sorted(self.links)), label="link")
        device = Participant(
            id=f"device-{self.sockets}",
            name=name,
            role="facilitator",
            token_hash=hash_token(f"device-{self.sockets}"),
        )
        self.apply(ops.TakeOver(device, self.socket(), LIMIT, link))

    # --- voting and steering

    @rule(data=st.data(), case=st.sampled_from(CASES), score=scores)
    def votes(self, data: st.DataObject, case: str, score: int | None) -> None:
        who = self.anyone(data, "who")
        current = self.session.case(case)
        round_ = None if current is None else current.round
        if self.apply(ops.Vote(who, case, score, round=round_)) is None:
            self.ever_voted.add(who)

    @rule(case=st.sampled_from(CASES), given=st.lists(scores, min_size=1, max_size=len(NAMES)))
    def several_vote(self, case: str, given: list[int | None]) -> None:
        # A burst of votes on one question (so that open questions get ballots often).
        for who, score in zip(self.people(), given, strict=False):
            current = self.session.case(case)
            round_ = None if current is None else current.round
            if self.apply(ops.Vote(who, case, score, round=round_)) is None:
                self.ever_voted.add(who)

    @rule(
        data=st.data(),
        action=st.sampled_from(["open", "reveal", "revote", "lock"]),
        case=st.sampled_from(CASES),
    )
    def acts_on_a_case(self, data: st.DataObject, action: str, case: str) -> None:
        self.apply(ops.Control(self.by(data), action, case))

    @rule(data=st.data(), action=st.sampled_from(["open_all", "reveal_all", "finish"]))
    def acts_on_all(self, data: st.DataObject, action: str) -> None:
        self.apply(ops.Control(self.by(data), action))

    @rule(data=st.data(), case=st.sampled_from([None, *CASES]), seconds=st.integers(0, 3))
    def countdown(self, data: st.DataObject, case: str | None, seconds: int) -> None:
        self.apply(ops.Countdown(self.by(data), seconds, case))

    @rule(data=st.data(), on=st.booleans())
    def auto_reveal(self, data: st.DataObject, on: bool) -> None:
        self.apply(ops.AutoReveal(self.by(data), on))

    @rule(data=st.data(), case=st.sampled_from([None, *CASES]))
    def nudges(self, data: st.DataObject, case: str | None) -> None:
        self.apply(ops.Nudge(self.by(data), case))

    @rule(data=st.data(), stack=st.sampled_from(STACKS))
    def decides(self, data: st.DataObject, stack: str | None) -> None:
        self.apply(ops.Decide(self.by(data), stack, "We go with it."))

    # --- what holds after every step

    def check_step(self, before: Session, after: Session) -> None:
        for case in after.cases:
            if case.id in self.locked:
                assert case.status == "locked", f"{case.id} reopened after its lock"
        self.locked |= {c.id for c in after.cases if c.status == "locked"}
        if any(p.role == "facilitator" for p in before.participants):
            assert any(p.role == "facilitator" for p in after.participants), "no facilitator"

    @invariant()
    def counts_are_within_bounds_and_the_same_everywhere(self) -> None:
        state = snapshot.state(self.session)
        for case, view in zip(self.session.cases, state["cases"], strict=True):
            tally = self.session.tally(case)
            assert 0 <= tally.voted <= tally.of
            assert tally.voted == view["votes_in"] == len(case.ballots)
            # The room and the presenter view say what the server says.
            assert twin_tally(state, view) == tally

    @invariant()
    def the_session_keeps_a_facilitator_and_each_link_names_one(self) -> None:
        if self.facilitators():
            self.had_facilitator = True
        assert self.facilitators() or not self.had_facilitator
        seen: set[str] = set()
        for p in self.session.participants:
            link = rules.link_of(self.session, p)
            if p.role != "facilitator":
                assert link is None and p.link == ""
            elif link is not None:
                assert link not in seen, "two facilitators share a link"
                seen.add(link)
                assert rules.link_owner(self.session, link) == p
        # Any other link a browser holds gives nobody control.
        for link in set(self.links) - seen:
            owner = rules.link_owner(self.session, link)
            assert owner is None

    @invariant()
    def no_hidden_score_in_any_view(self) -> None:
        session = self.session
        state = snapshot.state(session)
        for case, view in zip(session.cases, state["cases"], strict=True):
            shown = case.status in ("revealed", "locked") or session.mode == "open"
            if not shown:
                assert view["results"] is None
            if session.anonymous and view["results"] is not None:
                assert "ballots" not in view["results"]
        if session.anonymous:
            assert all(p["voted"] == [] for p in state["participants"])
        document = exports.results(session)
        for case, row in zip(session.cases, document["cases"], strict=True):
            if session.mode == "hidden" and case.status not in ("revealed", "locked"):
                assert row.get("median") is None and not row.get("ballots")
        # Secrets never leave: no token or link hash in the snapshot or the record.
        text = repr(state) + repr(document)
        for p in session.participants:
            assert p.token_hash not in text
            assert not p.link or p.link == rules.LINK_PENDING or p.link not in text
        assert not session.facilitator_hash or session.facilitator_hash not in text

    @invariant()
    def the_record_keeps_everyone_who_holds_a_ballot(self) -> None:
        if self.session.anonymous:
            return
        document = exports.results(self.session)
        listed = {p["id"]: p for p in document["participants"]}
        for pid in self.holders(self.session.cases):
            assert pid in listed, f"{pid} holds a ballot but the record lost them"
            assert listed[pid]["voted"] is True
            assert listed[pid]["left"] == (self.session.participant(pid) is None)

    @staticmethod
    def holders(cases: Iterable[Any]) -> set[str]:
        found: set[str] = set()
        for case in cases:
            found |= set(case.ballots)
            for past in case.history:
                found |= set(past.ballots)
        return found


Room.TestCase.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
test_every_rule_together_keeps_the_room_true = Room.TestCase
