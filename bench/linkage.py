"""How many anonymous ballots an observer can tie to a name, from what the server sends it.

    python bench/linkage.py [--server-root DIR]

Runs `stackvote serve` from `--server-root` (default: this checkout; pass a `git worktree` of
an older commit to measure it the same way) and replays the passive attack on open, anonymous
sessions: a watcher only, 12 sessions of 6 voters who mostly agree, voting one after the other.

The observer's inference: who has voted, in what order (the participants' `voted` lists), and
each state of the live histogram, taken to hold the earliest voters. A ballot counts as linked
when exactly one score for that named person explains everything observed, and it is the score
they gave. Printed: ballots linked of ballots cast; exit status 0. (The active attack, with
puppets, is a test: tests/test_anonymity.py and tests/test_live_anonymity.py.)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tests.live as live  # noqa: E402
from tests.factories import case_of  # noqa: E402
from tests.live import create_session, facilitate, join, live_server  # noqa: E402

CASE = "realtime"


def linked(states: list[dict[str, Any]], honest: dict[str, int]) -> int:
    """How many voters have exactly one score consistent with what was seen."""
    order: list[str] = []
    steps: list[tuple[list[str], Counter[int]]] = []
    for state in states:
        for person in state["participants"]:
            if CASE in person["voted"] and person["id"] in honest and person["id"] not in order:
                order.append(person["id"])
        results = case_of(state, CASE)["results"]
        if results is None:
            continue
        shown = Counter({v: n for v, n in enumerate(results["histogram"]) if n})
        steps.append((list(order), shown))
    if not order:
        return 0  # nothing said who voted: no score can be tied to anyone
    possible: dict[str, set[int]] = {voter: set() for voter in order}
    for scores in itertools.product(range(5), repeat=len(order)):
        assignment = dict(zip(order, scores, strict=True))
        # The shown histogram holds some of the voters so far: the earliest ones, as a batch
        # release would have it.
        fits = all(
            any(Counter(assignment[v] for v in voters[:k]) == shown for k in range(len(voters) + 1))
            for voters, shown in steps
        )
        if fits:
            for voter, score in assignment.items():
                possible[voter].add(score)
    return sum(len(found) == 1 and found == {honest[v]} for v, found in possible.items())


async def passive(url: str, sessions: int, voters: int) -> tuple[int, int]:
    total = 0
    rng = random.Random(7)
    for _ in range(sessions):
        created = create_session(url, anonymous=True, mode="open")
        fay = await facilitate(url, created)
        people = [
            await join(url, {"session": created["id"], "name": f"V{n}"}) for n in range(voters)
        ]
        watcher = await join(url, {"session": created["id"], "name": "W", "role": "spectator"})
        await fay.control("open", CASE)
        honest: dict[str, int] = {}
        centre = rng.randrange(1, 4)
        for member in people:
            score = min(4, max(0, centre + rng.choice((-1, 0, 0, 0, 1))))
            ack = await member.vote(CASE, score)
            honest[member.id] = score
            await watcher.until_version(ack["version"])
        total += linked(watcher.states, honest)
        for member in (fay, watcher, *people):
            await member.client.disconnect()
    return total, sessions * voters


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server-root", type=Path, default=ROOT)
    args = parser.parse_args()
    live.ROOT = args.server_root.resolve()
    with tempfile.TemporaryDirectory() as tmp, live_server(Path(tmp)) as server:
        found, cast = await passive(server.url, 12, 6)
        print(f"passive, 12 sessions of 6: {found} of {cast} ballots linked")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("STACKVOTE_LOG_LEVEL", "warning")
    sys.exit(asyncio.run(main()))
