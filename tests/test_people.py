"""People coming and going, with a live server and real Socket.IO clients: the facilitator link
on a second device, leaving, reminders to vote, and people who are away."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server import rules
from tests.factories import case_of
from tests.live import (
    LiveServer,
    Member,
    create_session,
    facilitate,
    join,
    live_server,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Long enough that a delta showing someone offline goes out well before the one showing them
# away (changes are coalesced for a tenth of a second), short enough for a test.
AWAY_AFTER = 2


@pytest.fixture(scope="module")
def quick_away(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {"STACKVOTE_AWAY_AFTER_SECONDS": str(AWAY_AFTER)}
    with live_server(Path(tmp_path_factory.mktemp("away")), env) as running:
        yield running


async def close(*members: Member) -> None:
    for member in members:
        if member.client.connected:
            await member.client.disconnect()


def person(state: dict[str, Any], participant_id: str) -> dict[str, Any] | None:
    return next((p for p in state["participants"] if p["id"] == participant_id), None)


def voters(state: dict[str, Any]) -> int:
    """The m of "n of m": participants who vote and are not away."""
    return sum(1 for p in state["participants"] if p["role"] != "spectator" and not p["away"])


# --- the facilitator link on another device


async def test_the_facilitator_link_on_a_second_device_is_the_same_person(
    server: LiveServer,
) -> None:
    created = create_session(server.url)
    laptop = await facilitate(server.url, created)
    ann = await join(server.url, {"session": created["id"], "name": "Ann"})
    opened = await laptop.control("open", "realtime")
    assert (await laptop.vote("realtime", 3, reason="it must be live"))["ok"]
    voted = await ann.vote("realtime", 1)
    before = await ann.until_version(voted["version"])
    # The phone gives no name at all (and the laptop's name would have been "taken").
    phone = await join(
        server.url,
        {"session": created["id"], "name": "", "facilitator_token": created["facilitator_token"]},
    )
    assert phone.id == laptop.id
    assert phone.welcome["role"] == "facilitator"
    assert phone.welcome["token"] != laptop.welcome["token"]
    assert phone.welcome["ballots"] == {"realtime": 3}
    assert phone.welcome["reasons"] == {"realtime": "it must be live"}
    # The laptop is told, in words for people, and let go.
    told = await laptop.until_event("removed")
    assert told["reason"] == "moved" and "another device" in told["message"]
    await laptop.until_event("disconnect")
    assert not laptop.client.connected
    # Still two people, one of them Fay, online through the phone; nothing else changed.
    state = await ann.until(lambda s: s["version"] > before["version"])
    assert [(p["id"], p["name"], p["online"]) for p in state["participants"]] == [
        (laptop.id, "Fay", True),
        (ann.id, "Ann", True),
    ]
    assert voters(state) == voters(before) == 2
    assert case_of(state, "realtime")["votes_in"] == 2
    assert opened["ok"] and (await phone.control("reveal", "realtime"))["ok"]
    # The laptop's token no longer names Fay: with a name it is a newcomer, without one nobody.
    stale = {"session": created["id"], "token": laptop.welcome["token"]}
    nobody = await join(server.url, stale, refuse_ok=True)
    assert nobody.refused == "Please enter a name."
    newcomer = await join(server.url, {**stale, "name": "Laptop"})
    assert newcomer.id != laptop.id and newcomer.welcome["role"] == "voter"
    await close(phone, ann, newcomer)


async def test_the_link_opened_again_under_the_same_name_takes_over_again(
    server: LiveServer,
) -> None:
    created = create_session(server.url)
    first = await facilitate(server.url, created, name="Fay")
    second = await facilitate(server.url, created, name="Fay")
    assert second.id == first.id
    assert (await first.until_event("removed"))["reason"] == "moved"
    third = await facilitate(server.url, created, name="Someone else")
    assert third.id == first.id
    assert (await second.until_event("removed"))["reason"] == "moved"
    state = await third.call("sync")
    assert [(p["name"], p["role"]) for p in state["participants"]] == [("Fay", "facilitator")]
    assert (await third.control("open", "realtime"))["ok"]
    await close(first, second, third)


async def test_the_link_without_a_name_cannot_start_a_session(server: LiveServer) -> None:
    created = create_session(server.url)
    auth = {
        "session": created["id"],
        "name": " ",
        "facilitator_token": created["facilitator_token"],
    }
    refused = await join(server.url, auth, refuse_ok=True)
    assert refused.refused == "Please enter a name."
    # A name too long is still refused while nobody facilitates, and ignored once someone does.
    long = await join(server.url, {**auth, "name": "x" * 41}, refuse_ok=True)
    assert long.refused is not None and "at most 40" in long.refused
    fay = await facilitate(server.url, created)
    again = await join(server.url, {**auth, "name": "x" * 41})
    assert again.id == fay.id and person(again.state, fay.id)["name"] == "Fay"  # type: ignore[index]
    await close(fay, again)


# --- leaving


async def test_a_participant_leaves_and_their_token_stops_working(server: LiveServer) -> None:
    created = create_session(server.url)
    fay = await facilitate(server.url, created)
    ann = await join(server.url, {"session": created["id"], "name": "Ann"})
    ann_tab = await join(server.url, {"session": created["id"], "token": ann.welcome["token"]})
    await fay.control("open", "realtime")
    assert (await ann.vote("realtime", 4, reason="live matters"))["ok"]
    voted = await fay.vote("realtime", 2)
    await fay.until_version(voted["version"])
    ack = await ann.call("leave", {"keep_ballots": False})
    assert ack["ok"] is True and isinstance(ack["version"], int)
    for socket in (ann, ann_tab):
        told = await socket.until_event("removed")
        assert told["reason"] == "left" and told["message"]
        await socket.until_event("disconnect")
    state = await fay.until_version(ack["version"])
    assert [p["id"] for p in state["participants"]] == [fay.id]
    assert case_of(state, "realtime")["votes_in"] == 1
    nobody = await join(
        server.url, {"session": created["id"], "token": ann.welcome["token"]}, refuse_ok=True
    )
    assert nobody.refused == "Please enter a name."
    await close(fay)


async def test_leaving_keeps_the_ballots_unless_asked_not_to(server: LiveServer) -> None:
    created = create_session(server.url)
    fay = await facilitate(server.url, created)
    ann = await join(server.url, {"session": created["id"], "name": "Ann"})
    await fay.control("open", "realtime")
    assert (await ann.vote("realtime", 4))["ok"]
    ack = await ann.call("leave")
    assert ack["ok"], ack
    state = await fay.until_version(ack["version"])
    assert ann.id not in {p["id"] for p in state["participants"]}
    assert case_of(state, "realtime")["votes_in"] == 1
    revealed = await fay.control("reveal", "realtime")
    state = await fay.until_version(revealed["version"])
    assert case_of(state, "realtime")["results"]["ballots"] == [{"participant": ann.id, "score": 4}]
    await close(fay, ann)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"keep_ballots": "no"}, "keep_ballots must be true or false"),
        ({"everything": True}, "unknown field `everything`"),
        ("please", "expected a JSON object"),
    ],
)
async def test_a_bad_leave_gets_an_error_ack_and_changes_nothing(
    server: LiveServer, payload: Any, message: str
) -> None:
    created = create_session(server.url)
    fay = await facilitate(server.url, created)
    ann = await join(server.url, {"session": created["id"], "name": "Ann"})
    before = await fay.call("sync")
    ack = await ann.call("leave", payload)
    assert ack["ok"] is False and ack["error"].startswith(message), ack
    assert await fay.call("sync") == before
    assert ann.client.connected
    await close(fay, ann)


async def test_the_only_facilitator_cannot_leave(server: LiveServer) -> None:
    created = create_session(server.url)
    fay = await facilitate(server.url, created)
    ann = await join(server.url, {"session": created["id"], "name": "Ann"})
    ack = await fay.call("leave", {"keep_ballots": True})
    assert ack["ok"] is False and ack["error"].startswith(
        "Hand the session over or make someone else"
    )
    handed = await fay.control("hand_over", participant=ann.id)
    await fay.until_version(handed["version"])
    left = await fay.call("leave", {})
    assert left["ok"], left
    assert (await fay.until_event("removed"))["reason"] == "left"
    await close(fay, ann)


# --- roles: hand-over, co-facilitators, links of their own


async def test_a_hand_over_sends_the_receiver_a_link_of_her_own(server: LiveServer) -> None:
    created = create_session(server.url)
    fay = await facilitate(server.url, created)
    ann = await join(server.url, {"session": created["id"], "name": "Ann"})
    handed = await fay.control("hand_over", participant=ann.id)
    assert handed["ok"], handed
    told = await ann.until_event("role")
    assert told["role"] == "facilitator" and told["facilitator_token"]
    assert (await fay.until_event("role")) == {"role": "voter"}
    # Her token is a facilitator link: on a new device it is Ann, in charge.
    await ann.client.disconnect()
    tablet = await join(
        server.url,
        {"session": created["id"], "name": "", "facilitator_token": told["facilitator_token"]},
    )
    assert (tablet.id, tablet.welcome["role"]) == (ann.id, "facilitator")
    assert (await tablet.control("open", "realtime"))["ok"]
    # Fay's link is dead for a newcomer, and the page can ask before offering anything.
    stale = await join(
        server.url,
        {
            "session": created["id"],
            "name": "Eve",
            "facilitator_token": created["facilitator_token"],
        },
        refuse_ok=True,
    )
    assert stale.refused == rules.LINK_DEAD
    async with httpx.AsyncClient(base_url=server.url) as http:
        path = f"/api/sessions/{created['id']}/link"
        dead = await http.post(path, json={"facilitator_token": created["facilitator_token"]})
        alive = await http.post(path, json={"facilitator_token": told["facilitator_token"]})
        bad = await http.post(path, json={"facilitator_token": 3})
    assert dead.json() == {"valid": False, "message": rules.LINK_DEAD}
    assert alive.json() == {"valid": True, "facilitator": {"id": ann.id, "name": "Ann"}}
    assert bad.status_code == 400 and "facilitator_token" in bad.json()["error"]
    await close(fay, tablet)


async def test_co_facilitators_both_steer_and_the_last_is_kept(server: LiveServer) -> None:
    created = create_session(server.url)
    fay = await facilitate(server.url, created)
    ann = await join(server.url, {"session": created["id"], "name": "Ann"})
    ben = await join(server.url, {"session": created["id"], "name": "Ben"})
    assert (await ann.control("promote", participant=ben.id))["error"].startswith("Only")
    promoted = await fay.control("promote", participant=ann.id)
    assert promoted["ok"], promoted
    told = await ann.until_event("role")
    assert told["role"] == "facilitator" and told["facilitator_token"]
    # Both may reveal; Fay's link still gives control (she still facilitates).
    assert (await ann.control("open", "realtime"))["ok"]
    assert (await fay.control("reveal", "realtime"))["ok"]
    again = await join(
        server.url,
        {
            "session": created["id"],
            "token": fay.welcome["token"],
            "facilitator_token": created["facilitator_token"],
        },
    )
    assert again.welcome["role"] == "facilitator"
    # Fay steps down; Ann is then the last and cannot be demoted, nor leave.
    down = await fay.control("demote", participant=fay.id)
    assert down["ok"], down
    last = await ann.control("demote", participant=ann.id)
    assert last["ok"] is False and "only facilitator" in last["error"]
    assert (await ann.call("leave", {}))["ok"] is False
    roles = {p["name"]: p["role"] for p in (await ben.call("sync"))["participants"]}
    assert roles == {"Fay": "voter", "Ann": "facilitator", "Ben": "voter"}
    await close(fay, again, ann, ben)


# --- reminders


async def test_a_nudge_reaches_everyone_and_stays_in_the_state(server: LiveServer) -> None:
    created = create_session(server.url)
    fay = await facilitate(server.url, created)
    ann = await join(server.url, {"session": created["id"], "name": "Ann"})
    early = await fay.control("nudge")
    assert early == {
        "ok": False,
        "error": "Nothing is open for voting, so there is nobody to remind.",
    }
    assert ann.state["session"]["nudge"] is None
    await fay.control("open_all")
    refused = await ann.control("nudge")
    assert refused == {"ok": False, "error": "Only the facilitator can do that."}
    nudged = await fay.control("nudge", "realtime")
    assert nudged["ok"], nudged
    state = await ann.until_version(nudged["version"])
    reminder = state["session"]["nudge"]
    assert reminder["cases"] == ["realtime"] and isinstance(reminder["at"], float)
    # At most one reminder per ten seconds, whatever the case.
    again = await fay.control("nudge")
    assert again["ok"] is False and "you can send another in" in again["error"]
    # Someone coming in later sees the same reminder.
    late = await join(server.url, {"session": created["id"], "name": "Late"})
    assert late.state["session"]["nudge"] == reminder
    # Once the case is revealed, there is nothing left to be reminded of.
    revealed = await fay.control("reveal", "realtime")
    state = await ann.until_version(revealed["version"])
    assert state["session"]["nudge"] is None
    await close(fay, ann, late)


# --- away


async def test_someone_gone_for_long_is_away_and_no_longer_waited_for(
    quick_away: LiveServer,
) -> None:
    created = create_session(quick_away.url)
    fay = await facilitate(quick_away.url, created)
    ann = await join(quick_away.url, {"session": created["id"], "name": "Ann"})
    ben = await join(quick_away.url, {"session": created["id"], "name": "Ben"})
    await fay.control("auto_reveal", on=True)
    opened = await fay.control("open", "realtime")
    await fay.until_version(opened["version"])
    assert (await fay.vote("realtime", 2))["ok"]
    assert (await ann.vote("realtime", 3))["ok"]
    await ben.client.disconnect()
    # Ben is offline at first: still counted, still waited for...
    offline = await fay.until(lambda s: not person(s, ben.id)["online"])  # type: ignore[index]
    assert person(offline, ben.id)["away"] is False  # type: ignore[index]
    assert voters(offline) == 3
    assert case_of(offline, "realtime")["status"] == "voting"
    # ... then away: no longer counted, and the case is revealed without him.
    away = await fay.until(lambda s: person(s, ben.id)["away"], timeout=AWAY_AFTER + 10)  # type: ignore[index]
    assert voters(away) == 2
    assert case_of(away, "realtime")["status"] == "revealed"
    # A blip never revealed anything: every state before he was away was still voting.
    for state in fay.states:
        if case_of(state, "realtime")["status"] == "revealed":
            assert person(state, ben.id)["away"]  # type: ignore[index]
    # He comes back: no longer away.
    back = await join(quick_away.url, {"session": created["id"], "token": ben.welcome["token"]})
    assert back.id == ben.id
    state = await fay.until(lambda s: person(s, ben.id)["online"])  # type: ignore[index]
    assert person(state, ben.id)["away"] is False  # type: ignore[index]
    assert voters(state) == 3
    assert "offline_since" not in json.dumps(state)
    await close(fay, ann, back)
