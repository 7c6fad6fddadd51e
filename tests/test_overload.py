"""Truthful acks under overload: a saturated server refuses some votes as "busy" (not counted,
try again) and the final tally is exactly the votes it acknowledged."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import ballots_of
from tests.live import LiveServer, Member, create_session, join, live_server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CASES = ["realtime", "prototype", "frontend_heavy", "performance", "mobile_backend"]


@pytest.fixture
def touchy(tmp_path: Path) -> Iterator[LiveServer]:
    """A server that counts itself busy at the slightest lag, so a burst overloads it. In
    memory: with the built-in file store, votes wait for the store's own thread, and a burst
    lengthens the acks' wait without lagging the event loop, which is what is tested here."""
    env = {"STACKVOTE_BUSY_LAG_MS": "2", "STACKVOTE_REDIS_URL": "memory://"}
    with live_server(tmp_path, env) as running:
        yield running


def fay_auth(created: dict[str, Any]) -> dict[str, Any]:
    return {"session": created["id"], "facilitator_token": created["facilitator_token"]}


async def patiently(url: str, auth: dict[str, Any]) -> Member:
    """Join, trying again while the server says it is busy (as the browser does)."""
    while True:
        member = await join(url, auth, refuse_ok=True)
        if member.client.connected:
            return member
        assert member.refused is not None and "busy" in member.refused, member.refused
        await asyncio.sleep(0.05)


async def test_under_overload_the_tally_is_exactly_the_acknowledged_votes(
    touchy: LiveServer,
) -> None:
    created = create_session(touchy.url, title="Overload")
    fay = await patiently(touchy.url, {**fay_auth(created), "name": "Fay"})
    while not (await fay.control("open_all"))["ok"]:
        await asyncio.sleep(0.05)
    voters = [
        await patiently(touchy.url, {"session": created["id"], "name": f"V{n}"}) for n in range(40)
    ]
    rng = random.Random(7)
    acks: dict[str, list[tuple[str, int, dict[str, Any]]]] = {}

    async def storm(member: Any) -> None:
        # Sent without waiting for answers: the server handles one socket's events in order.
        plan = [(rng.choice(CASES), rng.randrange(5)) for _ in range(60)]
        answers = await asyncio.gather(*(member.vote(case, score) for case, score in plan))
        acks.setdefault(member.id, []).extend(
            (c, s, a) for (c, s), a in zip(plan, answers, strict=True)
        )

    for _ in range(3):  # a few waves, so the lag builds up at least once
        await asyncio.gather(*(storm(m) for m in voters))

    refused = [a for per in acks.values() for _, _, a in per if not a["ok"]]
    assert refused, "the server was never busy: the test did not overload it"
    assert all("busy" in a["error"] and a["retry"] is True for a in refused)
    # What each person's ballot must be: their last vote the server said it counted.
    expected: dict[str, dict[str, int | None]] = {}
    for pid, per in acks.items():
        for case, score, ack in per:
            if ack["ok"]:
                expected.setdefault(case, {})[pid] = score
    while not (await fay.control("reveal_all"))["ok"]:
        await asyncio.sleep(0.05)
    state = httpx.get(f"{touchy.url}/api/sessions/{created['id']}").json()
    tally = ballots_of(state)
    for case in CASES:
        counted = {pid: score for (pid, c), score in tally.items() if c == case}
        assert counted == expected.get(case, {}), case
    for member in [fay, *voters]:
        await member.client.disconnect()
