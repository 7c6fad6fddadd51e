"""Several real server processes on one real Redis: every client sees every vote, exactly once."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_lib

from tests.factories import ballots_of, case_of
from tests.live import LiveServer, Member, create_session, facilitate, join, live_server
from tests.redis_server import RedisServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def instances(
    redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[LiveServer]]:
    tmp = Path(tmp_path_factory.mktemp("instances"))
    with ExitStack() as stack:
        yield [
            stack.enter_context(live_server(tmp, {"STACKVOTE_REDIS_URL": redis.url}))
            for _ in range(3)
        ]


async def facilitator_and_ann(
    made: LiveServer, facilitating: LiveServer, joining: LiveServer, title: str
) -> tuple[dict[str, Any], Member, Member]:
    """A session created on `made`, run from `facilitating`, with Ann joined on `joining`."""
    created = create_session(made.url, title=title)
    facilitator = await facilitate(facilitating.url, created)
    ann = await join(joining.url, {"session": created["id"], "name": "Ann"})
    return created, facilitator, ann


async def test_a_vote_on_one_instance_reaches_clients_on_the_others(
    instances: list[LiveServer],
) -> None:
    a, b, c = instances
    created, fay, ann = await facilitator_and_ann(a, b, c, "Across instances")
    assert (await fay.control("open", "realtime"))["ok"]
    ack = await ann.vote("realtime", 4)
    seen = await fay.until_version(ack["version"])
    assert case_of(seen, "realtime")["votes_in"] == 1
    # Every instance serves the same session from Redis.
    for instance in instances:
        state = httpx.get(f"{instance.url}/api/sessions/{created['id']}").json()
        assert state["version"] >= ack["version"]
    for member in (fay, ann):
        await member.client.disconnect()


async def test_a_watcher_alone_on_an_instance_follows_the_room(
    instances: list[LiveServer],
) -> None:
    a, b, c = instances
    created, fay, ann = await facilitator_and_ann(a, a, b, "On the big screen")
    # The only socket of this session on instance c: its copy must follow the others' changes.
    screen = await join(c.url, {"session": created["id"], "watch": True})
    await fay.control("open", "realtime")
    await ann.vote("realtime", 4)
    ack = await fay.control("reveal", "realtime")
    seen = await screen.until_version(ack["version"])
    assert case_of(seen, "realtime")["results"]["histogram"] == [0, 0, 0, 0, 1]
    assert [p["name"] for p in seen["participants"]] == ["Fay", "Ann"]
    for member in (fay, ann, screen):
        await member.client.disconnect()


async def test_interleaved_votes_across_instances_are_exact(instances: list[LiveServer]) -> None:
    created = create_session(instances[0].url, title="Busy room")
    session = created["id"]
    fay = await facilitate(instances[0].url, created)
    await fay.control("open_all")
    cases = [c["id"] for c in fay.state["cases"]]
    voters: list[Member] = []
    for n in range(20):
        voters.append(
            await join(instances[n % len(instances)].url, {"session": session, "name": f"V{n}"})
        )
    rng = random.Random(20261125)
    expected: dict[tuple[str, str], int | None] = {}
    acked = 0

    async def cast(member: Member, plan: list[tuple[str, int | None]]) -> None:
        nonlocal acked
        for case, score in plan:
            ack = await member.vote(case, score)
            assert ack["ok"], ack
            expected[(member.id, case)] = score
            acked += 1
            await asyncio.sleep(rng.random() * 0.005)

    plans = [
        [(rng.choice(cases), rng.choice([0, 1, 2, 3, 4, None])) for _ in range(26)] for _ in voters
    ]
    await asyncio.gather(*(cast(m, p) for m, p in zip(voters, plans, strict=True)))
    assert acked == 520

    ack = await fay.control("reveal_all")
    final = await fay.until_version(ack["version"])
    for member in voters:
        state = await member.until_version(ack["version"], timeout=10)
        assert state["cases"] == final["cases"], "a client's tally differs from the server's"
    server_state = httpx.get(f"{instances[2].url}/api/sessions/{session}").json()
    assert server_state["cases"] == final["cases"]
    assert ballots_of(final) == expected
    assert sum(case["votes_in"] for case in final["cases"]) == len(expected)
    for member in [fay, *voters]:
        await member.client.disconnect()


async def test_redis_holds_only_hashes_of_tokens(
    instances: list[LiveServer], redis: RedisServer
) -> None:
    created = create_session(instances[0].url, title="Secrets")
    fay = await facilitate(instances[1].url, created)
    client = redis_lib.Redis(port=redis.port, decode_responses=True)
    stored = " ".join(
        str(value)
        for key in client.keys("*")
        if client.type(key) == "hash"
        for value in client.hvals(key)
    )
    client.close()
    assert created["id"] in stored  # we are looking at the right data
    for secret in (created["facilitator_token"], fay.welcome["token"]):
        assert secret not in stored
    await fay.client.disconnect()


def test_per_address_limits_hold_across_instances(redis: RedisServer, tmp_path: Path) -> None:
    # One address, two instances, 3 creations a minute: the fourth is refused wherever it goes.
    env = {
        "STACKVOTE_REDIS_URL": redis.url,
        "STACKVOTE_LIMIT_CREATES": "3/minute",
        "STACKVOTE_LIMIT_JOIN_CODES": "3/minute",
    }
    redis.flush()
    with live_server(tmp_path, env) as a, live_server(tmp_path, env) as b:
        statuses = [
            httpx.post(server.url + "/api/sessions", json={"title": "t"}).status_code
            for server in (a, b, a, b, a, b)
        ]
        # So are guesses at join codes.
        guesses = [
            httpx.get(server.url + "/join/ZZZZZZ").status_code for server in (a, b, a, b, a, b)
        ]
    # The buckets live in Redis: leave none behind, empty, for the tests after this one.
    redis.flush()
    assert statuses == [201, 201, 201, 429, 429, 429]
    assert guesses == [404, 404, 404, 429, 429, 429]


async def test_a_join_code_made_on_one_instance_works_on_the_others(
    instances: list[LiveServer],
) -> None:
    created = create_session(instances[0].url, title="Code")
    for instance in instances:
        response = httpx.get(f"{instance.url}/join/{created['join_code'].lower()}")
        assert response.status_code == 303
        assert response.headers["location"] == f"/s/{created['id']}"


def status_of(state: dict[str, Any], case: str) -> str:
    found: str = case_of(state, case)["status"]
    return found


async def test_a_countdown_set_on_one_instance_closes_voting_everywhere_once(
    instances: list[LiveServer],
) -> None:
    a, b, _ = instances
    _created, fay, ann = await facilitator_and_ann(a, a, b, "Countdown")
    opened = await fay.control("open", "realtime")
    # A change reaches the other instance a moment after it is acknowledged: Ann votes once
    # she has seen it, as a person would.
    await ann.until_version(opened["version"])
    assert (await ann.vote("realtime", 3, reason="Live dashboards are the product"))["ok"]
    started = await fay.control("countdown", "realtime", seconds=2)
    assert started["ok"], started
    counting = await ann.until_version(started["version"])
    deadline = case_of(counting, "realtime")["deadline"]
    assert isinstance(deadline, float)
    # Nobody on either instance closes it: the instances' timers do.
    closed = await ann.until(lambda s: status_of(s, "realtime") == "revealed", timeout=30)
    assert closed["version"] == started["version"] + 1, "one closing change, no more"
    realtime = case_of(closed, "realtime")
    assert realtime["deadline"] is None
    assert realtime["results"]["reasons"] == [
        {"participant": ann.id, "score": 3, "text": "Live dashboards are the product"}
    ]
    late = await ann.vote("realtime", 1)
    assert not late["ok"] and "closed" in late["error"]
    # The next change through either instance follows the closing one directly: no second
    # closing change was stored in between.
    assert (await fay.control("open", "prototype"))["version"] == closed["version"] + 1
    for member in (fay, ann):
        state = await member.call("sync")
        assert status_of(state, "realtime") == "revealed"
        await member.client.disconnect()


async def test_auto_reveal_is_decided_once_when_voters_on_two_instances_finish(
    instances: list[LiveServer],
) -> None:
    a, b, c = instances
    created, fay, ann = await facilitator_and_ann(a, a, b, "Auto-reveal")
    ben = await join(c.url, {"session": created["id"], "name": "Ben"})
    assert (await fay.control("auto_reveal", on=True))["ok"]
    opened = await fay.control("open", "realtime")
    await asyncio.gather(ann.until_version(opened["version"]), ben.until_version(opened["version"]))
    assert (await fay.vote("realtime", 2))["ok"]
    acks = await asyncio.gather(ann.vote("realtime", 3), ben.vote("realtime", 4))
    assert all(ack["ok"] for ack in acks), acks
    final_version = max(ack["version"] for ack in acks)
    # Three votes, three changes: the reveal came with the last vote, not as a change of its own.
    assert final_version == opened["version"] + 3
    for member in (fay, ann, ben):
        state = await member.until_version(final_version, timeout=10)
        assert status_of(state, "realtime") == "revealed"
        assert case_of(state, "realtime")["results"]["n"] == 3
    assert status_of((await fay.call("sync")), "realtime") == "revealed"
    for member in (fay, ann, ben):
        await member.client.disconnect()


async def test_a_removed_person_on_another_instance_is_told_and_disconnected(
    instances: list[LiveServer],
) -> None:
    a, b, _ = instances
    created, fay, ann = await facilitator_and_ann(a, a, b, "Removal")
    token = ann.welcome["token"]
    opened = await fay.control("open", "realtime")
    await ann.until_version(opened["version"])
    assert (await ann.vote("realtime", 4))["ok"]
    removed = await fay.control("remove", participant=ann.id, keep_ballots=False)
    assert removed["ok"], removed
    told = await ann.until_event("removed", timeout=10)
    assert "removed you" in told["message"]
    await ann.until_event("disconnect", timeout=10)
    assert not ann.client.connected
    state = await fay.until_version(removed["version"])
    assert ann.id not in {p["id"] for p in state["participants"]}
    assert case_of(state, "realtime")["votes_in"] == 0
    # The token no longer names Ann: coming back with it makes a newcomer.
    again = await join(b.url, {"session": created["id"], "name": "Ann", "token": token})
    assert again.id != ann.id
    assert again.welcome["token"] != token
    for member in (fay, again):
        await member.client.disconnect()


async def test_hand_over_across_instances_moves_control_at_once(
    instances: list[LiveServer],
) -> None:
    a, b, _ = instances
    created, fay, ann = await facilitator_and_ann(a, a, b, "Hand-over")
    refused = await ann.control("open", "realtime")
    assert not refused["ok"]
    handed = await fay.control("hand_over", participant=ann.id)
    assert handed["ok"], handed
    # Ann's socket on the other instance steers as soon as the change reaches it (no reconnect);
    # Fay's no longer does.
    state = await ann.until_version(handed["version"])
    assert {p["id"]: p["role"] for p in state["participants"]} == {
        fay.id: "voter",
        ann.id: "facilitator",
    }
    assert (await ann.control("open", "realtime"))["ok"]
    assert not (await fay.control("reveal", "realtime"))["ok"]
    # Each is told by the instance holding their socket; Ann gets a link of her own, made on
    # hers, which works on the other instance too.
    told = await ann.until_event("role", timeout=10)
    assert told["role"] == "facilitator" and told["facilitator_token"]
    assert (await fay.until_event("role", timeout=10)) == {"role": "voter"}
    tablet = await join(
        a.url,
        {"session": created["id"], "name": "", "facilitator_token": told["facilitator_token"]},
    )
    assert (tablet.id, tablet.welcome["role"]) == (ann.id, "facilitator")
    assert (await ann.until_event("removed", timeout=10))["reason"] == "moved"
    ann = tablet
    # The facilitator link stopped giving control: a newcomer with it is refused...
    link_only = await join(
        b.url,
        {
            "session": created["id"],
            "name": "Zoe",
            "facilitator_token": created["facilitator_token"],
        },
        refuse_ok=True,
    )
    assert link_only.refused is not None and "no longer gives control" in link_only.refused
    # ...and Fay, coming back with her token and the old link, is herself, as a voter.
    await fay.client.disconnect()
    back = await join(
        a.url,
        {
            "session": created["id"],
            "token": fay.welcome["token"],
            "facilitator_token": created["facilitator_token"],
        },
    )
    assert back.id == fay.id and back.welcome["role"] == "voter"
    for member in (ann, back):
        await member.client.disconnect()


async def test_the_facilitator_link_on_another_instance_moves_the_same_person(
    instances: list[LiveServer],
) -> None:
    a, b, _ = instances
    created, laptop, ann = await facilitator_and_ann(a, a, b, "Take-over")
    opened = await laptop.control("open", "realtime")
    await ann.until_version(opened["version"])
    voted = await laptop.vote("realtime", 3)
    await ann.until_version(voted["version"])
    phone = await join(
        b.url,
        {"session": created["id"], "name": "", "facilitator_token": created["facilitator_token"]},
    )
    assert phone.id == laptop.id and phone.welcome["ballots"] == {"realtime": 3}
    # The laptop, on the other instance, is told and let go.
    told = await laptop.until_event("removed", timeout=10)
    assert told["reason"] == "moved"
    await laptop.until_event("disconnect", timeout=10)
    state = await phone.call("sync")
    assert [p["id"] for p in state["participants"]] == [laptop.id, ann.id]
    assert (await phone.control("reveal", "realtime"))["ok"]
    # Its old token, on its own instance, no longer names Fay.
    stale = await join(
        a.url, {"session": created["id"], "token": laptop.welcome["token"]}, refuse_ok=True
    )
    assert stale.refused == "Please enter a name."
    for member in (phone, ann):
        await member.client.disconnect()


AWAY_AFTER = 2


@pytest.fixture(scope="module")
def quick_away(
    redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[LiveServer]]:
    tmp = Path(tmp_path_factory.mktemp("away"))
    env = {"STACKVOTE_REDIS_URL": redis.url, "STACKVOTE_AWAY_AFTER_SECONDS": str(AWAY_AFTER)}
    with ExitStack() as stack:
        yield [stack.enter_context(live_server(tmp, env)) for _ in range(3)]


async def test_one_instance_marks_someone_away_and_every_instance_agrees(
    quick_away: list[LiveServer],
) -> None:
    a, b, c = quick_away
    created = create_session(a.url, title="Away")
    session = created["id"]
    # Every instance holds the session: each keeps a timer for Ben being away.
    fay = await facilitate(a.url, created)
    ben = await join(a.url, {"session": session, "name": "Ben"})
    ann = await join(b.url, {"session": session, "name": "Ann"})
    cat = await join(c.url, {"session": session, "name": "Cat"})
    await ben.client.disconnect()

    def ben_of(state: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = next(p for p in state["participants"] if p["id"] == ben.id)
        return found

    offline = await fay.until(lambda s: not ben_of(s)["online"], timeout=10)
    assert ben_of(offline)["away"] is False
    seen = [
        await member.until(lambda s: ben_of(s)["away"], timeout=AWAY_AFTER + 10)
        for member in (fay, ann, cat)
    ]
    # Three timers fired; one change was stored, and everyone sees it at the same version.
    assert {s["version"] for s in seen} == {offline["version"] + 1}
    stored = httpx.get(f"{c.url}/api/sessions/{session}").json()
    assert stored["version"] == offline["version"] + 1
    assert ben_of(stored)["away"] is True
    for member in (fay, ann, cat):
        await member.client.disconnect()
