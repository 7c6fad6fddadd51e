"""A live server and real Socket.IO clients: whole sessions, reconnects, hidden scores, order."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from server import engine, protocol, rules
from server.realtime import WATCHING
from tests.factories import case_of
from tests.live import LiveServer, Member, create_session, facilitate, join

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def start(
    server: LiveServer, voters: int = 3, **options: Any
) -> tuple[dict[str, Any], Member, list[Member]]:
    created = create_session(server.url, **options)
    facilitator = await facilitate(server.url, created)
    members = [
        await join(server.url, {"session": created["id"], "name": f"Voter {i}"})
        for i in range(voters)
    ]
    return created, facilitator, members


def same_but_flips(record: dict[str, Any], room: dict[str, Any]) -> bool:
    """Whether the record's advice is the room's, but for the flips the room was not told
    (can_win None: the record works them all out; the room gets them when it asks)."""
    asked_for = {r["stack"] for r in room["ranking"] if r["can_win"] is None}

    def trimmed(advice: dict[str, Any]) -> dict[str, Any]:
        rows = [
            {k: v for k, v in r.items() if k not in ("flip", "can_win")}
            if r["stack"] in asked_for
            else r
            for r in advice["ranking"]
        ]
        return {**advice, "ranking": rows}

    return trimmed(record) == trimmed(room)


async def leave(*members: Member) -> None:
    for member in members:
        if member.client.connected:
            await member.client.disconnect()


async def test_a_whole_session_reaches_an_explained_recommendation(server: LiveServer) -> None:
    created, fay, voters = await start(server)
    everyone = [fay, *voters]
    assert fay.welcome["role"] == "facilitator"
    assert [v.welcome["role"] for v in voters] == ["voter"] * 3

    assert (await fay.control("open_all"))["ok"]
    scores: dict[str, list[int | None]] = {
        "realtime": [4, 4, 3, 4],
        "event_driven": [3, 4, 4, 3],
        "content_admin": [0, 1, 0, None],
        "python_team": [1, 2, 1, 1],
    }
    for case, per_member in scores.items():
        for member, score in zip(everyone, per_member, strict=True):
            ack = await member.vote(case, score)
            assert ack["ok"], ack
    last = (await fay.vote("prototype", 0))["version"]

    for member in everyone:
        state = await member.until_version(last)
        assert case_of(state, "realtime")["votes_in"] == 4
        assert case_of(state, "prototype")["votes_in"] == 1
        assert all(c["results"] is None for c in state["cases"]), "hidden scores leaked"
        assert state["recommendation"] is None
    early = await voters[0].call("flip", {"stack": "go"})
    assert early == {
        "ok": False,
        "error": "Nothing is revealed yet, so no stack is ahead of another.",
    }

    reveal = await fay.control("reveal_all")
    for member in everyone:
        state = await member.until_advised(server.url, reveal["version"])
        for case, per_member in scores.items():
            expected = engine.case_results(per_member).as_dict()
            results = case_of(state, case)["results"]
            assert {k: results[k] for k in expected} == expected
        ballots = case_of(state, "realtime")["results"]["ballots"]
        assert {b["participant"]: b["score"] for b in ballots} == {
            m.id: s for m, s in zip(everyone, scores["realtime"], strict=True)
        }

    advice = fay.state["recommendation"]
    assert advice["ranking"][0]["stack"] in ("node", "go")
    # Node.js and Go weigh these four questions alike: the verdict is a tie, said as one.
    assert advice["verdict_parts"]["kind"] == "tied"
    assert advice["verdict"] == (
        "Node.js and Go score the same: the team's scores cannot separate them yet."
    )
    assert advice["ranking"][0]["tied_with"] == ["go"]
    top = advice["ranking"][0]
    assert {c["case"] for c in top["contributions"]} >= {"realtime", "event_driven"}

    async with httpx.AsyncClient(base_url=server.url) as http:
        document = (await http.get(f"/api/sessions/{created['id']}/results")).json()
        record = (await http.get(f"/api/sessions/{created['id']}/results.md")).text
    assert same_but_flips(document["recommendation"], advice)
    assert advice["verdict"].split(":")[0] in record.replace("\\", "")
    await leave(*everyone)


async def test_hidden_scores_cannot_be_observed_before_reveal(server: LiveServer) -> None:
    created, fay, (ann, bob, _) = await start(server)
    await fay.control("open", "realtime")
    ack = await ann.vote("realtime", 4)
    seen = await bob.until_version(ack["version"])
    async with httpx.AsyncClient(base_url=server.url) as http:
        api_state = (await http.get(f"/api/sessions/{created['id']}")).json()
        results = (await http.get(f"/api/sessions/{created['id']}/results")).json()
        csv = (await http.get(f"/api/sessions/{created['id']}/results.csv")).text
    for observed in (seen, api_state):
        case = case_of(observed, "realtime")
        assert case["votes_in"] == 1 and case["results"] is None
        voted = {p["id"]: p["voted"] for p in observed["participants"]}
        assert voted[ann.id] == ["realtime"]
    assert case_of(results, "realtime")["histogram"] is None
    assert csv.splitlines()[1].startswith("realtime,") and ",4," not in csv
    # Nothing a client can ask for reveals the score: the sync snapshot neither.
    synced = await bob.call("sync")
    assert case_of(synced, "realtime")["results"] is None
    assert '"score"' not in json.dumps([seen, api_state, results, synced])
    await leave(fay, ann, bob)


async def test_reconnect_with_the_token_is_the_same_person(server: LiveServer) -> None:
    created, fay, (ann, *_rest) = await start(server)
    await fay.control("open_all")
    await ann.vote("performance", 2)
    token, ann_id = ann.welcome["token"], ann.id
    await ann.client.disconnect()
    offline = await fay.until(
        lambda s: not next(p for p in s["participants"] if p["id"] == ann_id)["online"]
    )
    assert len(offline["participants"]) == 4

    again = await join(server.url, {"session": created["id"], "name": "ignored", "token": token})
    assert again.id == ann_id
    assert again.welcome["ballots"] == {"performance": 2}
    state = await fay.until(
        lambda s: next(p for p in s["participants"] if p["id"] == ann_id)["online"]
    )
    assert len(state["participants"]) == 4
    assert [p["name"] for p in state["participants"]].count("Voter 0") == 1
    assert case_of(state, "performance")["votes_in"] == 1
    await leave(fay, again, *_rest)


async def test_versions_strictly_increase_for_every_client(server: LiveServer) -> None:
    _created, fay, voters = await start(server, voters=4)
    await fay.control("open_all")
    cases = ["realtime", "prototype", "performance", "constrained", "team_skills"]

    async def busy(member: Member, offset: int) -> None:
        for i in range(20):
            ack = await member.vote(cases[(i + offset) % len(cases)], (i * 7 + offset) % 5)
            assert ack["ok"], ack

    await asyncio.gather(*(busy(m, n) for n, m in enumerate(voters)))
    final = (await fay.call("sync"))["version"]
    for member in [fay, *voters]:
        await member.until_version(final)
        versions = [s["version"] for s in member.states]
        assert versions == sorted(set(versions)), "a snapshot arrived out of order or twice"
    await leave(fay, *voters)


async def test_spectators_watch_but_do_not_vote(server: LiveServer) -> None:
    created, fay, (ann, *_) = await start(server, voters=1)
    watcher = await join(
        server.url, {"session": created["id"], "name": "Watcher", "role": "spectator"}
    )
    assert watcher.welcome["role"] == "spectator"
    await fay.control("open", "realtime")
    before = (await fay.call("sync"))["version"]
    refused = await watcher.vote("realtime", 3)
    assert refused == {"ok": False, "error": "Spectators watch without voting."}
    control = await watcher.control("reveal", "realtime")
    assert control == {"ok": False, "error": "Only the facilitator can do that."}
    assert (await fay.call("sync"))["version"] == before
    await leave(fay, ann, watcher)


async def watch(server: LiveServer, session_id: str) -> Member:
    """A watch-only connection, as the presenter screen opens one."""
    return await join(server.url, {"session": session_id, "watch": True})


async def test_a_watcher_follows_the_room_without_being_part_of_it(server: LiveServer) -> None:
    created, fay, (ann, bob) = await start(server, voters=2)
    # The room as the server has it (fay.state may not have seen the last arrival yet).
    people = [p["id"] for p in (await fay.call("sync"))["participants"]]
    screen = await watch(server, created["id"])
    # Nobody: no welcome, no seat, and its arrival changed nothing others could see.
    assert screen.welcome == {}
    assert screen.state == await fay.call("sync")

    await fay.control("open", "realtime")
    ack = await ann.vote("realtime", 3)
    seen = await screen.until_version(ack["version"])
    assert any(name == "delta" for name, _ in screen.events), "followed by deltas"
    assert case_of(seen, "realtime")["votes_in"] == 1
    assert case_of(seen, "realtime")["results"] is None, "hidden scores leaked to a watcher"
    assert [p["id"] for p in seen["participants"]] == people

    # It cannot vote or steer, and trying changes nothing.
    before = await fay.call("sync")
    for refused in (await screen.vote("realtime", 4), await screen.control("reveal", "realtime")):
        assert refused == {"ok": False, "error": WATCHING}
    assert await screen.call("sync") == before == await fay.call("sync")

    # Not counted: with the screen watching, everyone who votes has voted once Bob and Fay do.
    await fay.control("auto_reveal", on=True)
    await bob.vote("realtime", 1)
    last = await fay.vote("realtime", 2)
    revealed = await screen.until(lambda s: case_of(s, "realtime")["status"] == "revealed")
    assert revealed["version"] >= last["version"]
    assert case_of(revealed, "realtime")["results"]["histogram"] == [0, 1, 1, 1, 0]
    assert screen.gaps == 0

    # Leaving is as quiet as arriving: nobody goes offline.
    version = (await fay.call("sync"))["version"]
    await screen.client.disconnect()
    await asyncio.sleep(0.3)
    after = await fay.call("sync")
    assert after["version"] == version and all(p["online"] for p in after["participants"])
    await leave(fay, ann, bob)


async def test_a_watcher_of_an_anonymous_session_never_learns_who_scored_what(
    server: LiveServer,
) -> None:
    created, fay, voters = await start(server, voters=2, anonymous=True)
    screen = await watch(server, created["id"])
    await fay.control("open", "realtime")
    for n, member in enumerate([fay, *voters]):
        await member.vote("realtime", n, reason=f"reason {n}")
    ack = await fay.control("reveal", "realtime")
    state = await screen.until_version(ack["version"])
    assert case_of(state, "realtime")["results"]["n"] == 3
    # Nothing it was ever sent, snapshot or delta, paired a score or a reason with a person.
    sent = [*screen.states, *(data for name, data in screen.events if name == "delta")]
    for results in (c["results"] for s in sent for c in s.get("cases", ()) if c["results"]):
        assert "ballots" not in results
        assert all("participant" not in r for r in results["reasons"])
    await leave(fay, screen, *voters)


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"session": "no-such-session", "watch": True}, "There is no session at this link"),
        ({"session": "{id}", "watch": True, "name": "Screen"}, protocol.WATCH_ALONE),
        ({"session": "{id}", "watch": True, "facilitator_token": "x" * 32}, protocol.WATCH_ALONE),
    ],
)
async def test_bad_watchers_are_refused_with_a_clear_message(
    server: LiveServer, auth: dict[str, Any], message: str
) -> None:
    created, fay, _ = await start(server, voters=0)
    before = await fay.call("sync")
    auth = {k: (v.format(id=created["id"]) if isinstance(v, str) else v) for k, v in auth.items()}
    refused = await join(server.url, auth, refuse_ok=True)
    assert refused.refused is not None and message in refused.refused
    assert await fay.call("sync") == before
    await leave(fay)


async def test_facilitator_rights_come_back_with_the_facilitator_link(server: LiveServer) -> None:
    created, fay, (ann, *_) = await start(server, voters=1)
    token = fay.welcome["token"]
    await fay.client.disconnect()
    # The same browser (participant token) plus the facilitator link: same person, still in charge.
    back = await join(
        server.url,
        {
            "session": created["id"],
            "token": token,
            "facilitator_token": created["facilitator_token"],
        },
    )
    assert back.id == fay.id and back.welcome["role"] == "facilitator"
    assert (await back.control("open", "realtime"))["ok"]
    # A voter who learns nothing but ids cannot steer.
    assert not (await ann.control("reveal", "realtime"))["ok"]
    forged = await join(
        server.url,
        {"session": created["id"], "name": "Mallory", "facilitator_token": "not-the-token"},
        refuse_ok=True,
    )
    assert forged.refused == rules.LINK_DEAD
    await leave(back, ann)


async def test_anonymous_sessions_never_say_who_scored_what(server: LiveServer) -> None:
    created, fay, voters = await start(server, anonymous=True)
    await fay.control("open", "realtime")
    for n, member in enumerate([fay, *voters]):
        await member.vote("realtime", n % 5)
    ack = await fay.control("reveal", "realtime")
    state = await voters[0].until_version(ack["version"])
    results = case_of(state, "realtime")["results"]
    assert results["n"] == 4 and "ballots" not in results
    async with httpx.AsyncClient(base_url=server.url) as http:
        document = (await http.get(f"/api/sessions/{created['id']}/results")).json()
    assert "ballots" not in case_of(document, "realtime")
    await leave(fay, *voters)


async def test_watching_an_anonymous_open_session_does_not_tell_who_voted(
    server: LiveServer,
) -> None:
    created, fay, voters = await start(server, voters=4, anonymous=True, mode="open")
    watcher = await join(
        server.url, {"session": created["id"], "name": "Watcher", "role": "spectator"}
    )
    await fay.control("open", "realtime")
    # One at a time, each vote seen by the watcher before the next: the easiest case to attack.
    shown = []
    for score, member in enumerate([fay, *voters]):
        ack = await member.vote("realtime", score)
        state = await watcher.until_version(ack["version"])
        shown.append(case_of(state, "realtime")["results"]["n"])
    # The live histogram moved once three people had voted, not with each ballot.
    assert shown == [0, 0, 3, 3, 3]
    ack = await fay.control("reveal", "realtime")
    await watcher.until_version(ack["version"])
    sent = [*watcher.states, *(data for name, data in watcher.events if name == "delta")]
    people = [p for s in sent for p in s.get("participants", ())]
    assert people and all(p["voted"] == [] for p in people)
    await leave(fay, watcher, *voters)


async def test_open_mode_shows_scores_as_they_come(server: LiveServer) -> None:
    _created, fay, (ann, *_) = await start(server, voters=1, mode="open")
    await fay.control("open", "realtime")
    ack = await ann.vote("realtime", 3)
    state = await fay.until_version(ack["version"])
    assert case_of(state, "realtime")["results"]["histogram"] == [0, 0, 0, 1, 0]
    await leave(fay, ann)


async def test_revote_starts_a_new_round_and_keeps_the_old_one(server: LiveServer) -> None:
    created, fay, (ann, bob, _) = await start(server)
    await fay.control("open", "prototype")
    await ann.vote("prototype", 0)
    await bob.vote("prototype", 4)
    await fay.control("reveal", "prototype")
    ack = await fay.control("revote", "prototype")
    state = await ann.until_version(ack["version"])
    case = case_of(state, "prototype")
    assert (case["status"], case["round"], case["votes_in"]) == ("voting", 2, 0)
    assert (await ann.vote("prototype", 1))["ok"]
    async with httpx.AsyncClient(base_url=server.url) as http:
        document = (await http.get(f"/api/sessions/{created['id']}/results")).json()
    history = case_of(document, "prototype")["history"]
    assert [(h["round"], h["histogram"]) for h in history] == [(1, [1, 0, 0, 0, 1])]
    await leave(fay, ann, bob)


async def test_finish_locks_the_session(server: LiveServer) -> None:
    _created, fay, (ann, *_) = await start(server, voters=1)
    await fay.control("open", "realtime")
    await ann.vote("realtime", 2)
    ack = await fay.control("finish")
    state = await ann.until_version(ack["version"])
    assert state["session"]["status"] == "finished"
    assert case_of(state, "realtime")["status"] == "locked"
    assert case_of(state, "realtime")["results"]["n"] == 1
    assert not (await ann.vote("realtime", 3))["ok"]
    assert not (await fay.control("open", "prototype"))["ok"]
    await leave(fay, ann)


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"session": "no-such-session", "name": "Ann"}, "There is no session at this link"),
        ({"name": "Ann"}, "session is required"),
        ({"session": "{id}", "name": ""}, "Please enter a name."),
        ({"session": "{id}", "name": "   "}, "Please enter a name."),
        ({"session": "{id}", "name": "x" * 41}, "at most 40 characters"),
        ({"session": "{id}", "name": "line\nbreak"}, "control characters"),
        ({"session": "{id}", "name": "FAY"}, "is already here"),
        ({"session": "{id}", "name": 42}, "name must be text of 1 to 40 characters"),
        ({"session": "{id}", "name": "Ann", "role": "facilitator"}, 'role must be "voter"'),
    ],
)
async def test_bad_joins_are_refused_with_a_clear_message(
    server: LiveServer, auth: dict[str, Any], message: str
) -> None:
    created, fay, _ = await start(server, voters=0)
    before = (await fay.call("sync"))["version"]
    auth = {k: (v.format(id=created["id"]) if isinstance(v, str) else v) for k, v in auth.items()}
    refused = await join(server.url, auth, refuse_ok=True)
    assert refused.refused is not None and message in refused.refused
    after = await fay.call("sync")
    assert after["version"] == before and len(after["participants"]) == 1
    await leave(fay)


async def test_html_in_a_name_is_kept_as_text(server: LiveServer) -> None:
    created, fay, _ = await start(server, voters=0)
    name = "<img src=x onerror=alert(1)>"
    member = await join(server.url, {"session": created["id"], "name": name})
    assert any(p["name"] == name for p in member.state["participants"])
    await leave(fay, member)


@pytest.mark.parametrize(
    ("event", "payload", "message"),
    [
        ("vote", {"case": "realtime", "score": 5}, "score must be a whole number"),
        ("vote", {"case": "realtime", "score": -1}, "score must be a whole number"),
        ("vote", {"case": "realtime", "score": "3"}, "score must be a whole number"),
        ("vote", {"case": "realtime", "score": 2.5}, "score must be a whole number"),
        ("vote", {"case": "realtime"}, "score is required"),
        ("vote", {"case": "nope", "score": 1}, "There is no case 'nope'"),
        ("vote", {"case": "prototype", "score": 1}, "has not started yet"),
        ("vote", ["realtime", 1], "expected a JSON object"),
        ("vote", None, "expected a JSON object"),
        ("vote", {"case": "realtime", "score": 1, "extra": True}, "unknown field"),
        ("control", {"action": "reveal", "case": "realtime"}, "Only the facilitator"),
        ("control", {"action": "explode"}, "action must be one of"),
    ],
)
async def test_bad_events_get_an_error_ack_and_change_nothing(
    server: LiveServer, event: str, payload: Any, message: str
) -> None:
    _created, fay, (ann, *_) = await start(server, voters=1)
    await fay.control("open", "realtime")
    before = await fay.call("sync")
    ack = await ann.call(event, payload)
    assert ack["ok"] is False and message in ack["error"]
    after = await fay.call("sync")
    assert after == before
    await leave(fay, ann)


async def test_a_finished_vote_is_never_doubled_or_lost(server: LiveServer) -> None:
    _created, fay, voters = await start(server, voters=5)
    await fay.control("open", "realtime")
    # Everybody changes their mind many times at once; the last acknowledged ballot wins.
    final: dict[str, int] = {}

    async def flip(member: Member, n: int) -> None:
        for i in range(15):
            score = (n + i) % 5
            assert (await member.vote("realtime", score))["ok"]
            final[member.id] = score

    await asyncio.gather(*(flip(m, n) for n, m in enumerate(voters)))
    ack = await fay.control("reveal", "realtime")
    state = await fay.until_version(ack["version"])
    results = case_of(state, "realtime")["results"]
    assert results["n"] == 5
    assert {b["participant"]: b["score"] for b in results["ballots"]} == final
    await leave(fay, *voters)


async def test_reasons_stay_hidden_with_the_scores_until_the_reveal(server: LiveServer) -> None:
    created, fay, (ann, bob) = await start(server, voters=2)
    await fay.control("open", "realtime")
    secret = "Our <b>dashboards</b> must update live"
    ack = await ann.vote("realtime", 4, reason=secret)
    assert ack["ok"], ack
    seen = await bob.until_version(ack["version"])
    async with httpx.AsyncClient(base_url=server.url) as http:
        api_state = (await http.get(f"/api/sessions/{created['id']}")).json()
        exported = [
            (await http.get(f"/api/sessions/{created['id']}/results{suffix}")).text
            for suffix in ("", ".csv", ".md")
        ]
    synced = await bob.call("sync")
    assert "dashboards" not in json.dumps([seen, api_state, synced, exported])
    revealed = await fay.control("reveal", "realtime")
    state = await bob.until_version(revealed["version"])
    assert case_of(state, "realtime")["results"]["reasons"] == [
        {"participant": ann.id, "score": 4, "text": secret}
    ]
    async with httpx.AsyncClient(base_url=server.url) as http:
        record = (await http.get(f"/api/sessions/{created['id']}/results.md")).text
        table = (await http.get(f"/api/sessions/{created['id']}/results.csv")).text
    assert "Voter 0 (4): Our \\<b\\>dashboards\\</b\\> must update live" in record
    assert "Voter 0 (4): Our <b>dashboards</b> must update live" in table
    await leave(fay, ann, bob)


async def test_anonymous_reasons_come_without_names(server: LiveServer) -> None:
    _created, fay, (ann, bob) = await start(server, voters=2, anonymous=True)
    await fay.control("open", "realtime")
    await ann.vote("realtime", 4, reason="zebra")
    await bob.vote("realtime", 1, reason="apple")
    await fay.vote("realtime", 4, reason="aardvark")
    revealed = await fay.control("reveal", "realtime")
    state = await ann.until_version(revealed["version"])
    # By score, then text: an order that follows nobody.
    assert case_of(state, "realtime")["results"]["reasons"] == [
        {"score": 1, "text": "apple"},
        {"score": 4, "text": "aardvark"},
        {"score": 4, "text": "zebra"},
    ]
    assert ann.id not in json.dumps(case_of(state, "realtime")["results"])
    await leave(fay, ann, bob)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"case": "realtime", "score": 1, "reason": "x" * 281}, "at most 280 characters"),
        ({"case": "realtime", "score": 1, "reason": 5}, "reason must be text"),
        ({"case": "realtime", "score": 1, "reason": "a\u202eb"}, "invisible characters"),
    ],
)
async def test_a_bad_reason_gets_an_error_ack_and_counts_nothing(
    server: LiveServer, payload: dict[str, Any], message: str
) -> None:
    _created, fay, (ann,) = await start(server, voters=1)
    await fay.control("open", "realtime")
    before = await fay.call("sync")
    ack = await ann.call("vote", payload)
    assert ack["ok"] is False and message in ack["error"]
    assert await fay.call("sync") == before
    await leave(fay, ann)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"action": "countdown"}, "countdown needs seconds"),
        ({"action": "countdown", "seconds": -5}, "seconds must be a whole number from 0"),
        ({"action": "countdown", "seconds": 10**12}, "seconds must be a whole number from 0"),
        ({"action": "countdown", "seconds": "soon"}, "seconds must be a whole number from 0"),
        ({"action": "countdown", "seconds": 60, "case": "prototype"}, "being voted on"),
        ({"action": "countdown", "seconds": 60, "case": "cobol"}, "no case 'cobol'"),
        ({"action": "auto_reveal"}, "auto_reveal needs on"),
        ({"action": "auto_reveal", "on": "yes"}, "on must be true or false"),
        ({"action": "hand_over", "participant": "nobody"}, "not part of this session"),
        ({"action": "hand_over"}, "hand_over needs participant"),
        ({"action": "remove", "participant": "nobody", "keep_ballots": True}, "not part of"),
        ({"action": "remove", "participant": "nobody"}, "remove needs keep_ballots"),
        ({"action": "reveal"}, "Say which case to reveal"),
        ({"action": "lock", "seconds": 5}, "seconds goes only with countdown"),
        ({"action": "self_destruct"}, "action must be one of"),
    ],
)
async def test_bad_commands_get_an_error_ack_and_change_nothing(
    server: LiveServer, payload: dict[str, Any], message: str
) -> None:
    _created, fay, (ann,) = await start(server, voters=1)
    await fay.control("open", "realtime")
    before = await fay.call("sync")
    ack = await fay.call("control", payload)
    assert ack["ok"] is False and message in ack["error"], ack
    assert await fay.call("sync") == before
    await leave(fay, ann)


async def test_a_countdown_closes_voting_and_stopping_it_keeps_voting_open(
    server: LiveServer,
) -> None:
    _created, fay, (ann,) = await start(server, voters=1)
    await fay.control("open_all")
    assert (await fay.control("countdown", "prototype", seconds=3600))["ok"]
    stopped = await fay.control("countdown", "prototype", seconds=0)
    state = await ann.until_version(stopped["version"])
    assert case_of(state, "prototype")["deadline"] is None
    started = await fay.control("countdown", "realtime", seconds=1)
    state = await ann.until_version(started["version"])
    assert case_of(state, "realtime")["deadline"] is not None
    closed = await ann.until(lambda s: case_of(s, "realtime")["status"] == "revealed", 30)
    assert case_of(closed, "prototype")["status"] == "voting"
    assert (await ann.vote("prototype", 2))["ok"]
    await leave(fay, ann)


async def test_a_split_team_sees_how_sure_the_verdict_is_everywhere(server: LiveServer) -> None:
    created, fay, voters = await start(server)
    everyone = [fay, *voters]
    await fay.control("open", "performance")
    await fay.control("open", "data_model")
    # Half the team finds raw speed critical, half not at all; all agree on a rich data model.
    for member, speed in zip(everyone, [0, 4, 0, 4], strict=True):
        assert (await member.vote("performance", speed))["ok"]
        assert (await member.vote("data_model", 2))["ok"]
    ack = await fay.control("reveal_all")
    # The reveal's delta waits for its advice (a few ms, off the loop): at the ack's version
    # the room already has it.
    at_ack = await voters[0].until_version(ack["version"])
    assert at_ack["recommendation"] is not None
    seen = [await member.until_advised(server.url, ack["version"]) for member in everyone]
    advice = seen[1]["recommendation"]
    assert at_ack["recommendation"] == advice
    assert all(state["recommendation"] == advice for state in seen)

    # Go leads on the medians, and Rust scores exactly as Go does on both questions: a tie,
    # whose resampled wins the two share (the speed median is 2 or 4, theirs, in 11 of 16).
    ranking = {r["stack"]: r for r in advice["ranking"]}
    assert advice["ranking"][0]["stack"] == "go"
    assert advice["confidence"] == "tied"
    assert ranking["go"]["win_share"] == ranking["rust"]["win_share"]
    assert 0.6 < ranking["go"]["win_share"] + ranking["rust"]["win_share"] < 0.8
    assert ranking["go"]["interval"] == [0.0, 2.0]
    # Nothing revealed can separate them, and Rust shares first place: never "cannot win".
    assert advice["ranking"][1]["stack"] == "rust"
    assert (ranking["rust"]["can_win"], ranking["rust"]["flip"], advice["flip"]) == (
        True,
        None,
        None,
    )
    assert (ranking["go"]["tied_with"], ranking["rust"]["tied_with"]) == (["rust"], ["go"])
    # The room is sent the runner-up's flip only; the others' come when someone asks.
    assert (ranking["django"]["flip"], ranking["django"]["can_win"]) == (None, None)
    asked = await voters[0].call("flip", {"stack": "django"})
    sentence = "Django would win if \u201cRaw speed is critical\u201d were 1 instead of 2."
    assert (asked["ok"], asked["stack"], asked["can_win"]) == (True, "django", True)
    assert asked["flip"]["sentence"] == sentence
    assert asked["flip"]["changes"] == [{"case": "performance", "from": 2.0, "to": 1.0}]
    for wrong in ({"stack": "cobol"}, {"stack": 3}, {}, "django", {"stack": "go", "x": 1}):
        refused = await voters[0].call("flip", wrong)
        assert refused["ok"] is False and refused["error"], wrong
    # The split case is worth another round; the agreed one is not.
    assert advice["contested"] == ["performance"]
    assert case_of(seen[0], "performance")["results"]["revote_suggested"] is True
    assert case_of(seen[0], "data_model")["results"]["revote_suggested"] is False

    async with httpx.AsyncClient(base_url=server.url) as http:
        document = (await http.get(f"/api/sessions/{created['id']}/results")).json()
        record = (await http.get(f"/api/sessions/{created['id']}/results.md")).text
    assert same_but_flips(document["recommendation"], advice)
    # The record has every stack's flip, the same as the room is told when it asks.
    django = next(r for r in document["recommendation"]["ranking"] if r["stack"] == "django")
    assert (django["flip"], django["can_win"]) == (asked["flip"], True)
    assert "Confidence: a tie. Go and Rust score the same" in record
    # Django's row: its score range and what it would take (its share moves with the seed).
    assert f"| -1.00 to +1.00 | {sentence} |" in record
    rust = next(line for line in record.splitlines() if line.startswith("| Rust | "))
    assert rust.endswith("| Level with Go: the scores cannot separate them yet. |")
    await leave(*everyone)


async def test_rounds_show_whether_agreement_grew(server: LiveServer) -> None:
    created, fay, voters = await start(server)
    everyone = [fay, *voters]
    await fay.control("open", "performance")
    for member, speed in zip(everyone, [0, 4, 0, 4], strict=True):
        await member.vote("performance", speed)
    await fay.control("reveal", "performance")
    await fay.control("revote", "performance")
    for member, speed in zip(everyone, [0, 4, 4, 4], strict=True):
        await member.vote("performance", speed)
    ack = await fay.control("reveal", "performance")
    state = await voters[0].until_advised(server.url, ack["version"])
    results = case_of(state, "performance")["results"]
    [first] = results["history"]
    assert (first["round"], first["consensus"], first["change"]) == (1, 0.0, None)
    # Agreement grew, but the middle half of the team is now within one step: stop.
    assert results["change"] == results["consensus"] > 0.05
    assert results["iqr"] == 1.0
    assert results["revote_suggested"] is False
    assert state["recommendation"]["contested"] == []
    async with httpx.AsyncClient(base_url=server.url) as http:
        record = (await http.get(f"/api/sessions/{created['id']}/results.md")).text
        csv = (await http.get(f"/api/sessions/{created['id']}/results.csv")).text
    assert "- Raw speed is critical, round 1: median 2.0, consensus 0.00\n" in record
    assert "round 2 (this round): median 4.0, consensus 0.19, agreement grew by 0.19" in record
    rows = [line for line in csv.splitlines() if line.startswith("performance,")]
    assert [row.split(",")[2:4] for row in rows] == [["revoted", "1"], ["revealed", "2"]]
    await leave(*everyone)


async def test_a_locked_case_is_never_voted_on_again(server: LiveServer) -> None:
    _created, fay, (ann, *_) = await start(server, voters=1)
    await fay.control("open", "realtime")
    await ann.vote("realtime", 2)
    await fay.control("reveal", "realtime")
    locked = await fay.control("lock", "realtime")
    refused = await fay.control("revote", "realtime")
    assert not refused["ok"] and "final" in refused["error"]
    state = await ann.until_version(locked["version"])
    assert case_of(state, "realtime")["status"] == "locked"
    assert (await fay.call("sync"))["version"] == locked["version"]
    await leave(fay, ann)
