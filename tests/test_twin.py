"""The page's own counting and wording (static/js/room/quorum.js and dom.js, run in node) say
what the server says, on thousands of states a random walk over every rule makes: "K of M
voted" is Session.tally, and the agreement words advise a re-vote exactly when the server's
revote_suggested does (never once the case is locked or the session finished)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

from server import ops, snapshot
from server.models import Participant, Session
from server.rules import RuleError
from server.security import hash_token
from tests.factories import LIMIT, default_template, new_session
from tests.live import missing

TWIN = Path(__file__).parent / "js" / "twin.mjs"
CASES = [c.id for c in default_template().cases[:3]]
NAMES = ["Ann", "Ben", "Cat", "Dan", "Eve"]


def walk(rng: random.Random, steps: int) -> list[Session]:
    """One session through `steps` random changes (refusals included), and each state."""
    anonymous = rng.random() < 0.3
    session = new_session(mode=rng.choice(["hidden", "open"]), anonymous=anonymous)
    link = session.facilitator_hash
    fay = Participant(id="fay", name="Fay", role="facilitator", token_hash=hash_token("fay"))
    now = 1_000.0
    states = []
    session = ops.apply(session, ops.TakeOver(fay, "s-fay", LIMIT, link), now)
    for step in range(steps):
        now += rng.choice([0.5, 1.0, 30.0, 200.0])
        people = [p.id for p in session.participants] or ["fay"]
        who, whom = rng.choice(people), rng.choice(people)
        case = rng.choice(CASES)
        name = rng.choice(NAMES)
        options: list[ops.Op] = [
            ops.Join(
                Participant(id=name.lower(), name=name, role="voter", token_hash=name),
                f"s-{step}",
                LIMIT,
            ),
            ops.Vote(who, case, rng.choice([None, 0, 1, 2, 3, 4])),
            ops.Vote(who, case, rng.choice([0, 1, 2, 3, 4])),
            ops.Control("fay", rng.choice(["open", "reveal", "revote", "lock"]), case),
            ops.Control("fay", rng.choice(["open_all", "reveal_all"])),
            ops.Leave(who, rng.random() < 0.7),
            ops.Remove("fay", whom, rng.random() < 0.7),
            ops.Detach(who, f"s-{who}"),
            ops.Attach(who, f"s-{who}"),
            ops.MarkAway(60.0),
            ops.AutoReveal("fay", rng.random() < 0.5),
        ]
        if rng.random() < 0.02:
            options = [ops.Control("fay", "finish")]
        try:
            session = ops.apply(session, rng.choice(options), now)
        except RuleError:
            continue
        states.append(session)
    return states


def test_the_page_counts_and_words_as_the_server_does() -> None:
    node = shutil.which("node")
    if node is None:
        missing("NODE", "node is needed to run the page's own code on the server's states")
    rng = random.Random(19)
    sessions = [s for _ in range(60) for s in walk(rng, 60)]
    lines = "".join(json.dumps({"state": snapshot.state(s)}) + "\n" for s in sessions)
    out = subprocess.run(
        [node, str(TWIN)], input=lines, capture_output=True, text=True, timeout=120, check=True
    )
    said = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(said) == len(sessions)
    advised = 0
    for session, page in zip(sessions, said, strict=True):
        state = snapshot.state(session)
        for case, view, (voted, total, words) in zip(
            session.cases, state["cases"], page, strict=True
        ):
            assert (voted, total) == tuple(session.tally(case)), (case.id, state)
            assert voted <= total
            results = view["results"]
            can_revote = case.status == "revealed" and session.status != "finished"
            suggested = bool(results and results.get("revote_suggested")) and can_revote
            assert ("worth a re-vote" in words) == suggested, (words, results, case.status)
            advised += suggested
    # The walk reached the states that matter (else the test would prove little).
    assert advised > 0
    assert any(s.former for s in sessions)
