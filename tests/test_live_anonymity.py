"""Anonymity and a room that stays its facilitator's, against a running server, as people and
as an attacker with only the join link would try them (SPEC §5, "Anonymous sessions", `door`,
`remove_idle`, a facilitator link in a full session)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.factories import case_of
from tests.live import LiveServer, Member, create_session, facilitate, join, live_server, raw_socket

# A small room (four people besides facilitators) whose idle newcomers expire after 2 s.
SMALL = {"STACKVOTE_MAX_PARTICIPANTS": "4", "STACKVOTE_EXPIRE_IDLE_AFTER_SECONDS": "2"}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(Path(tmp_path_factory.mktemp("small")), SMALL) as running:
        yield running


async def people(
    server: LiveServer, created: dict[str, Any], count: int, prefix: str = "Voter"
) -> list[Member]:
    return [
        await join(server.url, {"session": created["id"], "name": f"{prefix} {n}"})
        for n in range(count)
    ]


async def leave(*members: Member) -> None:
    for member in members:
        if member.client.connected:
            await member.client.disconnect()


def everything_sent(member: Member) -> list[dict[str, Any]]:
    return [*member.states, *(data for name, data in member.events if name == "delta")]


# --- anonymity


async def test_the_puppet_attack_learns_nothing_about_who_voted(server: LiveServer) -> None:
    """The attack: three made-up voters and a watcher; after every real vote each puppet
    changes its score, so that any histogram change pairs a real ballot with known ones."""
    created = create_session(server.url, anonymous=True, mode="open")
    fay = await facilitate(server.url, created)
    honest = await people(server, created, 3, "Honest")
    puppets = await people(server, created, 3, "Puppet")
    watcher = await join(
        server.url, {"session": created["id"], "name": "Watcher", "role": "spectator"}
    )
    await fay.control("open", "realtime")
    for turn, member in enumerate([fay, *honest]):
        ack = await member.vote("realtime", (turn * 3) % 5)
        for n, puppet in enumerate(puppets):
            ack = await puppet.vote("realtime", (turn + n) % 5)
        await watcher.until_version(ack["version"])
    ack = await fay.control("reveal", "realtime")
    await watcher.until_version(ack["version"])
    # Nobody, the attacker's own people included, was ever told who had voted.
    for member in (watcher, *puppets, *honest):
        sent = [p for s in everything_sent(member) for p in s.get("participants", ())]
        assert sent and all(p["voted"] == [] for p in sent)
    assert case_of(watcher.state, "realtime")["results"]["n"] == 7
    await leave(fay, watcher, *honest, *puppets)


async def test_an_anonymous_reveal_needs_three_scores(server: LiveServer) -> None:
    created = create_session(server.url, anonymous=True)
    fay = await facilitate(server.url, created)
    ann, ben = await people(server, created, 2)
    await fay.control("open", "realtime")
    await fay.vote("realtime", None)  # a skip does not count
    for scored, member in enumerate((ann, ben), start=1):
        await member.vote("realtime", 4)
        refused = await fay.control("reveal", "realtime")
        assert not refused["ok"] and f"so far {scored} have" in refused["error"]
        assert not (await fay.control("reveal_all"))["ok"]
    await fay.vote("realtime", 1)
    ack = await fay.control("reveal", "realtime")
    assert ack["ok"]
    state = await ann.until_version(ack["version"])
    assert case_of(state, "realtime")["results"]["n"] == 3
    await leave(fay, ann, ben)


async def test_a_countdown_that_ends_with_one_score_shows_nothing(server: LiveServer) -> None:
    created = create_session(server.url, anonymous=True)
    fay = await facilitate(server.url, created)
    (ann,) = await people(server, created, 1)
    await fay.control("open", "realtime")
    await ann.vote("realtime", 4)
    await fay.control("countdown", "realtime", seconds=1)
    state = await ann.until(lambda s: case_of(s, "realtime")["withheld"], timeout=5)
    case = case_of(state, "realtime")
    assert (case["status"], case["results"], case["withheld"]) == ("revealed", None, True)
    assert state["recommendation"] is None
    refused = await ann.vote("realtime", 2)
    assert not refused["ok"]
    await leave(fay, ann)


async def test_an_anonymous_session_keeps_the_ballots_of_people_removed(
    server: LiveServer,
) -> None:
    created = create_session(server.url, anonymous=True)
    fay = await facilitate(server.url, created)
    ann, ben = await people(server, created, 2)
    await fay.control("open", "realtime")
    await ann.vote("realtime", 4)
    for whom in (ann, ben):  # the same answer whether they voted or not
        refused = await fay.control("remove", participant=whom.id, keep_ballots=False)
        assert not refused["ok"] and "stay counted" in refused["error"]
    assert (await fay.control("remove", participant=ann.id, keep_ballots=True))["ok"]
    await leave(fay, ann, ben)


# --- the facilitator always gets in; the door; the sweep; expiry


async def test_a_facilitator_link_enters_a_full_session(small: LiveServer) -> None:
    created = create_session(small.url)
    crowd = await people(small, created, 4)
    late = await join(small.url, {"session": created["id"], "name": "Late"}, refuse_ok=True)
    assert late.refused is not None and "full" in late.refused
    async with raw_socket(small.url) as raw:
        answer = await raw.join({"session": created["id"], "name": "Raw"})
    assert answer.startswith("44") and json.loads(answer[2:])["data"] == {"code": "full"}
    fay = await facilitate(small.url, created)
    assert fay.welcome["role"] == "facilitator"
    assert len(fay.state["participants"]) == 5
    assert (await fay.control("open", "realtime"))["ok"]
    await leave(fay, *crowd)


async def test_a_closed_door_turns_newcomers_away_and_lets_people_back(
    small: LiveServer,
) -> None:
    created = create_session(small.url)
    fay = await facilitate(small.url, created)
    (ann,) = await people(small, created, 1)
    ack = await fay.control("door", open=False)
    assert ack["ok"]
    state = await ann.until_version(ack["version"])
    assert state["session"]["door_open"] is False
    newcomer = await join(small.url, {"session": created["id"], "name": "New"}, refuse_ok=True)
    assert newcomer.refused is not None and "closed this session to newcomers" in newcomer.refused
    # Programs are told why too (the page then does not blame the name typed).
    async with raw_socket(small.url) as raw:
        answer = await raw.join({"session": created["id"], "name": "Raw"})
    assert answer.startswith("44") and json.loads(answer[2:])["data"] == {"code": "door_closed"}
    # Ann comes back as herself (her token); the facilitator link on a new device gets in.
    token = ann.welcome["token"]
    await ann.client.disconnect()
    back = await join(small.url, {"session": created["id"], "name": "Ann", "token": token})
    assert back.id == ann.id
    await fay.client.disconnect()
    fay_again = await facilitate(small.url, created, name="Fay")
    assert fay_again.welcome["role"] == "facilitator"
    assert not (await back.control("door", open=True))["ok"]  # only the facilitator
    assert (await fay_again.control("door", open=True))["ok"]
    newcomer = await join(small.url, {"session": created["id"], "name": "New"})
    await leave(fay_again, back, newcomer)


async def test_remove_idle_sweeps_a_room_filled_with_made_up_names(small: LiveServer) -> None:
    created = create_session(small.url)
    fay = await facilitate(small.url, created)
    await fay.control("open", "realtime")
    (voter,) = await people(small, created, 1, "Real")
    await voter.vote("realtime", 3)
    await voter.client.disconnect()  # offline, but holds a ballot: stays
    junk = await people(small, created, 3, "Junk")
    await leave(*junk)
    full = await join(small.url, {"session": created["id"], "name": "Late"}, refuse_ok=True)
    assert full.refused is not None and "full" in full.refused
    await fay.until(lambda s: sum(p["online"] for p in s["participants"]) == 1)
    ack = await fay.control("remove_idle")
    assert ack["ok"], ack
    state = await fay.until_version(ack["version"])
    assert [p["name"] for p in state["participants"]] == ["Fay", "Real 0"]
    # One change for all three.
    gone = [d["gone"] for name, d in fay.events if name == "delta" and "gone" in d]
    assert [sorted(g) for g in gone] == [sorted(m.id for m in junk)]
    again = await fay.control("remove_idle")
    assert not again["ok"] and "Nobody to remove" in again["error"]
    await leave(fay)


async def test_idle_newcomers_expire_by_themselves(small: LiveServer) -> None:
    created = create_session(small.url)
    fay = await facilitate(small.url, created)
    idle = await people(small, created, 2, "Idle")
    await leave(*idle)
    state = await fay.until(lambda s: len(s["participants"]) == 1, timeout=8)
    assert [p["name"] for p in state["participants"]] == ["Fay"]
    await leave(fay)


async def test_a_lookalike_name_is_refused(server: LiveServer) -> None:
    created = create_session(server.url)
    fay = await facilitate(server.url, created, name="F")
    for lookalike in ("\uff26", "f"):  # a full-width F, a small f
        refused = await join(
            server.url, {"session": created["id"], "name": lookalike}, refuse_ok=True
        )
        assert refused.refused is not None and "already here" in refused.refused
    await leave(fay)


async def test_door_and_sweep_by_hand_written_frames(server: LiveServer) -> None:
    """An attacker's raw socket: malformed commands get a clear error, a voter's are refused."""
    created = create_session(server.url)
    fay = await facilitate(server.url, created)
    async with raw_socket(server.url) as raw:
        answer = await raw.join({"session": created["id"], "name": "Mallory"})
        assert answer.startswith("40"), answer
        await raw.recv()  # welcome
        await raw.recv()  # state
        for n, payload in enumerate(
            [
                {"action": "door"},
                {"action": "door", "open": "no"},
                {"action": "door", "open": False, "case": "realtime"},
                {"action": "remove_idle", "open": True},
                {"action": "door", "open": False},
                {"action": "remove_idle"},
            ]
        ):
            await raw.send(f"42{n}" + json.dumps(["control", payload]))
            while not (frame := await raw.recv()).startswith(f"43{n}"):
                pass
            (ack,) = json.loads(frame[len(f"43{n}") :])
            assert ack["ok"] is False and ack["error"], (payload, ack)
    await asyncio.sleep(0.1)
    assert (await fay.call("sync"))["session"]["door_open"] is True
    await leave(fay)
