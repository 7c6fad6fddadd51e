"""Faults over real processes: an instance killed mid-session, Redis restarted under load."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from server.store.redis import RedisStore
from tests.factories import ballots_of, case_of, team
from tests.live import Member, create_session, facilitate, free_port, join, live_server
from tests.redis_server import RedisServer, redis_server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FAST_PRESENCE = {"STACKVOTE_INSTANCE_TTL_SECONDS": "2"}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, since these tests stop and restart it."""
    with redis_server(tmp_path) as running:
        yield running


def env(redis: RedisServer) -> dict[str, str]:
    return {"STACKVOTE_REDIS_URL": redis.url, **FAST_PRESENCE}


def participant(state: dict[str, Any], participant_id: str) -> dict[str, Any]:
    return next(p for p in state["participants"] if p["id"] == participant_id)


async def test_killing_an_instance_keeps_identity_and_votes(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    with (
        live_server(tmp_path, env(own_redis)) as doomed,
        live_server(tmp_path, env(own_redis)) as survivor,
    ):
        created = create_session(survivor.url)
        session = created["id"]
        fay = await facilitate(survivor.url, created)
        ann = await join(doomed.url, {"session": session, "name": "Ann"})
        bob = await join(doomed.url, {"session": session, "name": "Bob"})
        await fay.control("open_all")
        assert (await ann.vote("realtime", 4))["ok"]
        assert (await bob.vote("realtime", 1))["ok"]

        doomed.process.kill()
        killed = time.monotonic()
        # Ann's browser reconnects through the proxy and lands on the surviving instance.
        ann_again = await join(survivor.url, {"session": session, "token": ann.welcome["token"]})
        reconnected = time.monotonic() - killed
        assert ann_again.id == ann.id
        assert ann_again.welcome["ballots"] == {"realtime": 4}
        assert (await ann_again.vote("prototype", 2))["ok"]

        # Bob never comes back: once the dead instance misses its heartbeat he shows offline.
        state = await fay.until(lambda s: not participant(s, bob.id)["online"], timeout=15)
        offline_after = time.monotonic() - killed
        assert participant(state, ann.id)["online"]
        assert len(state["participants"]) == 3
        realtime = next(c for c in state["cases"] if c["id"] == "realtime")
        assert realtime["votes_in"] == 2
        print(f"\nreconnect after kill: {reconnected:.2f}s")
        print(f"stale presence cleared after: {offline_after:.1f}s")
        await fay.client.disconnect()
        await ann_again.client.disconnect()


async def test_restarting_redis_loses_no_acknowledged_vote(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    with (
        live_server(tmp_path, env(own_redis)) as one,
        live_server(tmp_path, env(own_redis)) as two,
    ):
        created = create_session(one.url)
        session = created["id"]
        fay = await facilitate(one.url, created)
        voters = [
            await join((one, two)[n % 2].url, {"session": session, "name": f"V{n}"})
            for n in range(6)
        ]
        await fay.control("open_all")
        acked: dict[tuple[str, str], int] = {}
        for n, member in enumerate(voters):
            ack = await member.vote("realtime", n % 5)
            assert ack["ok"]
            acked[(member.id, "realtime")] = n % 5

        own_redis.stop()
        stopped = time.monotonic()
        refused = await voters[0].vote("prototype", 3)
        assert refused["ok"] is False and "storage" in refused["error"]
        ready = httpx.get(one.url + "/readyz")
        assert ready.status_code == 503
        write = httpx.post(one.url + "/api/sessions", json={"title": "During the outage"})
        assert write.status_code == 503 and "storage" in write.json()["error"]
        await wait_for_event(voters[1], "status", {"storage": "unavailable"})

        own_redis.start()
        restarted = time.monotonic()
        recovered = await vote_until_ok(voters[0], "prototype", 3)
        acked[(voters[0].id, "prototype")] = 3
        ack = await voters[1].vote("prototype", 1)
        assert ack["ok"]
        acked[(voters[1].id, "prototype")] = 1
        reveal = await fay.control("reveal_all")
        assert reveal["ok"]
        final = await fay.until_version(reveal["version"], timeout=10)
        for member in voters:
            state = await member.until_version(reveal["version"], timeout=10)
            assert state["cases"] == final["cases"]
        assert ballots_of(final) == acked
        assert httpx.get(two.url + "/readyz").status_code == 200
        print(
            f"\nredis down for {restarted - stopped:.1f}s; "
            f"first vote accepted {recovered:.2f}s after restart"
        )
        for member in [fay, *voters]:
            await member.client.disconnect()


async def wait_for_event(member: Member, event: str, data: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (event, data) not in member.events:
        assert time.monotonic() < deadline, f"no {event} {data}: {member.events[-5:]}"
        await asyncio.sleep(0.05)


async def vote_until_ok(member: Member, case: str, score: int, timeout: float = 15) -> float:
    start = time.monotonic()
    while True:
        ack = await member.vote(case, score)
        if ack["ok"]:
            return time.monotonic() - start
        assert time.monotonic() - start < timeout, ack
        await asyncio.sleep(0.05)


def test_a_wrong_redis_url_fails_at_start_with_one_line() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--port", str(free_port()), "--redis-url", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach Redis" in lines[0] and "--redis-url" in lines[0]
    bad = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--redis-url", "http://nope"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "must start with one of redis://" in bad.stderr


async def test_sigterm_drains_and_a_new_instance_serves_the_same_session(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    with live_server(tmp_path, env(own_redis)) as first:
        created = create_session(first.url)
        session = created["id"]
        ann = await join(first.url, {"session": session, "name": "Ann"})
        fay = await facilitate(first.url, created)
        await fay.control("open_all")
        assert (await ann.vote("realtime", 3))["ok"]
        started = time.monotonic()
        first.process.send_signal(signal.SIGTERM)
        code = first.process.wait(timeout=30)
        drained = time.monotonic() - started
        # uvicorn shuts down cleanly, then exits by the signal it got.
        assert code in (0, -signal.SIGTERM), first.log()
        assert "Application shutdown complete" in first.log()
        print(f"\nSIGTERM with 2 open sockets: exited cleanly after {drained:.2f}s")
    with live_server(tmp_path, env(own_redis)) as second:
        back = await join(second.url, {"session": session, "token": ann.welcome["token"]})
        assert back.id == ann.id and back.welcome["ballots"] == {"realtime": 3}
        await back.client.disconnect()


async def test_redis_killed_outright_keeps_votes_acked_a_second_before(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    # The promise (appendfsync everysec): a vote acknowledged more than one second before
    # Redis dies survives; the last second of writes may be lost.
    with live_server(tmp_path, env(own_redis)) as app:
        created = create_session(app.url)
        session = created["id"]
        fay = await facilitate(app.url, created)
        await fay.control("open_all")
        voters = [await join(app.url, {"session": session, "name": f"V{n}"}) for n in range(4)]
        acked = {}
        for n, member in enumerate(voters):
            assert (await member.vote("performance", n))["ok"]
            acked[member.id] = n
        await asyncio.sleep(2.0)
        own_redis.stop(kill=True)
        own_redis.start()
        await vote_until_ok(voters[0], "constrained", 1)
        state = httpx.get(f"{app.url}/api/sessions/{session}").json()
        performance = next(c for c in state["cases"] if c["id"] == "performance")
        assert performance["votes_in"] == len(acked)
        reveal = await fay.control("reveal", "performance")
        final = await fay.until_version(reveal["version"])
        results = next(c for c in final["cases"] if c["id"] == "performance")["results"]
        assert {b["participant"]: b["score"] for b in results["ballots"]} == acked
        for member in [fay, *voters]:
            await member.client.disconnect()


async def test_a_stalled_redis_gives_quick_errors_and_everyone_converges_after(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    with (
        live_server(tmp_path, env(own_redis)) as one,
        live_server(tmp_path, env(own_redis)) as two,
    ):
        created = create_session(one.url)
        session = created["id"]
        fay = await facilitate(one.url, created)
        ann = await join(two.url, {"session": session, "name": "Ann"})
        await fay.control("open_all")
        assert own_redis.process is not None
        own_redis.process.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            # Sent to Redis, which stopped before answering: it may yet store it, so the
            # server must not say either way. No answer; the client will send it again.
            with pytest.raises(socketio.exceptions.TimeoutError):
                await ann.client.call("vote", {"case": "realtime", "score": 4}, timeout=8)
            await wait_for_event(fay, "status", {"storage": "unavailable"}, timeout=15)
            # Once storage is known to be down, a vote is refused at once: nothing was sent.
            refused_at = time.monotonic()
            ack = await ann.call("vote", {"case": "prototype", "score": 1})
            answered = time.monotonic() - refused_at
            assert ack["ok"] is False and "storage" in ack["error"] and ack["retry"] is True
            response = httpx.get(f"{one.url}/api/sessions/{session}", timeout=15)
            assert response.status_code == 503 and "storage" in response.json()["error"]
            assert httpx.get(f"{two.url}/readyz", timeout=15).status_code == 503
            remaining = 10 - (time.monotonic() - started)
            if remaining > 0:
                await asyncio.sleep(remaining)
        finally:
            own_redis.process.send_signal(signal.SIGCONT)
        resumed = time.monotonic()
        await vote_until_ok(ann, "realtime", 4)
        # The refused vote was not counted.
        state = await ann.call("sync")
        assert case_of(state, "prototype")["votes_in"] == 0
        version = (await ann.call("sync"))["version"]
        for member in (fay, ann):
            await member.until_version(version, timeout=10)
        converged = time.monotonic() - resumed
        print(
            f"\nRedis stopped 10 s: a vote was refused after {answered:.1f}s; "
            f"all clients on version {version} {converged:.2f}s after SIGCONT"
        )
        for member in (fay, ann):
            await member.client.disconnect()


async def test_leaving_during_an_outage_shows_offline_once_redis_is_back(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    with live_server(tmp_path, env(own_redis)) as app:
        created = create_session(app.url)
        fay = await facilitate(app.url, created)
        ann = await join(app.url, {"session": created["id"], "name": "Ann"})
        own_redis.stop()
        await ann.client.disconnect()  # her goodbye cannot be stored right now
        await asyncio.sleep(0.5)
        own_redis.start()
        state = await fay.until(lambda s: not participant(s, ann.id)["online"], timeout=15)
        assert participant(state, fay.id)["online"]
        await fay.client.disconnect()


async def test_after_redis_restarts_reads_find_a_fresh_connection(own_redis: RedisServer) -> None:
    store = RedisStore(own_redis.url, prefix="fresh")
    session = team("Ann", session_id="fresh-1", now=time.time())
    await store.create(session)
    # Several connections in the pool, idle when Redis goes.
    await asyncio.gather(*(store.get(session.id) for _ in range(5)))
    own_redis.stop()
    own_redis.start()
    # Each pooled connection is dead now; the first read on one must not say "unavailable".
    await store.ping()
    for _ in range(6):
        assert await store.versions([session.id]) in ({session.id: session.version}, {})
    await store.close()
