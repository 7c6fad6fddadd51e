"""Several real instances in a real browser: one Redis behind them, nginx in front, failures.

Every part is a real process: `python -m server serve` instances sharing a redis-server, the
repo's nginx.conf in front of them, and Chromium pages in separate contexts (one per person).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Person, api_state, join
from tests.live import LiveServer, create_session, free_port, live_server
from tests.redis_server import RedisServer, redis_server
from tests.test_deploy import nginx_binary, nginx_in_front_of

pytestmark = pytest.mark.e2e

# Generous but bounded: instances talk through Redis, and reconnects wait for the client's backoff.
SLOW = 15_000
LIVE = "Live"
STORAGE_DOWN = "Server reconnecting\u2026"
# What Chromium logs when a socket to a stopped instance fails; expected where we stop one.
SOCKET_FAILED = "WebSocket connection to"

# Records every value the connection indicator takes, so a test can tell that a page really
# left its connected state before it came back.
WATCH_CONNECTION = """() => {
  const node = document.querySelector('[data-testid="connection"]');
  window.connectionStates = [node.dataset.state];
  new MutationObserver(() => window.connectionStates.push(node.dataset.state)).observe(
    node, { attributes: true, attributeFilter: ["data-state"] });
}"""


def me(page: Page, session_id: str) -> dict[str, Any]:
    """What the page keeps about its person (name, token, participant id)."""
    stored: dict[str, Any] = json.loads(
        page.evaluate(f"localStorage.getItem('stackvote:{session_id}:me')")
    )
    return stored


def vote(someone: Person, case: str, score: int | str) -> None:
    """Press a score button and wait for the server's acknowledgement (it then shows pressed)."""
    button = someone.page.get_by_test_id(f"score-{case}-{score}")
    button.click()
    expect(button).to_have_attribute("aria-pressed", "true", timeout=SLOW)


def expect_live(page: Page) -> None:
    connection = page.get_by_test_id("connection")
    expect(connection).to_have_attribute("data-state", "connected", timeout=SLOW)
    expect(connection).to_have_text(LIVE)


def closed_before_servers(person: Callable[..., Person], stack: ExitStack) -> Callable[[], Person]:
    """Make people whose pages close before the servers entered on `stack` stop.

    Otherwise the pages would notice the servers going away and log socket errors."""

    def make() -> Person:
        someone = person()
        stack.callback(someone.context.close)
        return someone

    return make


def reload(someone: Person) -> None:
    """Reload the page: the same person comes back on a new connection."""
    page = someone.page
    page.reload()
    expect(page.locator("#room")).to_have_attribute("data-state", "joined")
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "connected")


def sockets_accepted(server: LiveServer) -> int:
    """WebSocket connections the instance accepted so far (uvicorn logs each one)."""
    return sum(
        1
        for line in server.log().splitlines()
        if '"WebSocket /socket.io/' in line and "[accepted]" in line
    )


def connected_through(backends: list[LiveServer], action: Callable[[], None]) -> LiveServer:
    """Run `action`, which opens exactly one socket through the proxy; say which instance got it."""
    before = [sockets_accepted(b) for b in backends]
    action()
    deadline = time.monotonic() + 10
    while True:
        grew = [b for b, n in zip(backends, before, strict=True) if sockets_accepted(b) > n]
        if grew:
            assert len(grew) == 1, "one page opened sockets on two instances"
            return grew[0]
        assert time.monotonic() < deadline, "no instance logged the page's socket"
        time.sleep(0.05)


def test_two_instances_share_one_room(
    redis: RedisServer, tmp_path: Path, person: Callable[..., Person]
) -> None:
    env = {"STACKVOTE_REDIS_URL": redis.url}
    with ExitStack() as stack:
        a = stack.enter_context(live_server(tmp_path, env))
        b = stack.enter_context(live_server(tmp_path, env))
        new_person = closed_before_servers(person, stack)
        created = create_session(a.url, title="Two instances, one room")
        session_id = created["id"]

        # The facilitator runs the room from instance A, the team joins on instance B.
        fran = new_person()
        join(fran.page, created["facilitator_url"], "Fran")
        assert fran.page.url.startswith(a.url + "/")
        ana, ben = new_person(), new_person()
        join(ana.page, f"{b.url}/s/{session_id}", "Ana")
        join(ben.page, f"{b.url}/s/{session_id}", "Ben")
        everyone = [fran, ana, ben]
        for someone in everyone:
            expect(someone.page.get_by_test_id("presence").locator("li")).to_have_count(3)

        fran.page.get_by_test_id("control-open-realtime").click()
        for someone in everyone:
            expect(someone.page.get_by_test_id("votes-realtime")).to_have_text("0 of 3 voted")

        # Votes cast on B move the count on A, live.
        vote(ana, "realtime", 4)
        expect(fran.page.get_by_test_id("votes-realtime")).to_have_text(
            "1 of 3 voted", timeout=SLOW
        )
        vote(ben, "realtime", 2)
        expect(fran.page.get_by_test_id("votes-realtime")).to_have_text(
            "2 of 3 voted", timeout=SLOW
        )
        vote(fran, "realtime", 3)
        for someone in everyone:
            expect(someone.page.get_by_test_id("votes-realtime")).to_have_text(
                "3 of 3 voted", timeout=SLOW
            )
            expect(someone.page.get_by_test_id("results-realtime")).to_be_hidden()

        # Revealed on A, the same histogram shows on B.
        fran.page.get_by_test_id("control-reveal-realtime").click()
        for someone in everyone:
            results = someone.page.get_by_test_id("results-realtime")
            expect(results.locator(".histogram__count")).to_have_text(
                ["0", "0", "1", "1", "1"], timeout=SLOW
            )
            expect(someone.page.get_by_test_id("median-realtime")).to_have_text("3")

        # Both instances tell the same story, and it is the one on every screen.
        from_a, from_b = api_state(a.url, session_id), api_state(b.url, session_id)
        assert from_a == from_b
        realtime = next(c for c in from_a["cases"] if c["id"] == "realtime")
        assert realtime["results"]["histogram"] == [0, 0, 1, 1, 1]
        verdict = from_a["recommendation"]["verdict"]
        assert verdict
        for someone in everyone:
            expect(someone.page.get_by_test_id("verdict")).to_have_text(verdict, timeout=SLOW)


def test_through_the_proxy_people_outlive_their_instance(
    tmp_path: Path, person: Callable[..., Person]
) -> None:
    nginx_binary()  # skips (or fails, if the proxy is required) before anything starts
    # The instances must know the address people use (browsers send it as their Origin), as
    # docker-compose.yml tells them; so pick the proxy's port before starting them.
    proxy_port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    with ExitStack() as stack:
        # A Redis of our own: the only instances it has ever seen are the two below.
        store = stack.enter_context(redis_server(data))
        env = {
            "STACKVOTE_REDIS_URL": store.url,
            "STACKVOTE_PUBLIC_URL": f"http://127.0.0.1:{proxy_port}",
            # Short, so the survivor releases the dead instance's sockets within the test.
            "STACKVOTE_INSTANCE_TTL_SECONDS": "3",
        }
        a = stack.enter_context(live_server(tmp_path, env))
        b = stack.enter_context(live_server(tmp_path, env))
        backends = [a, b]
        proxy = stack.enter_context(nginx_in_front_of(backends, tmp_path, port=proxy_port))
        assert proxy == env["STACKVOTE_PUBLIC_URL"]
        new_person = closed_before_servers(person, stack)
        created = create_session(proxy, title="Behind the proxy")
        session_id = created["id"]
        assert created["join_url"] == f"{proxy}/s/{session_id}"

        names = ["Fran", "Ana", "Ben"]
        people = {name: new_person() for name in names}
        fran = people["Fran"]
        instance: dict[str, LiveServer] = {}
        for name, someone in people.items():
            someone.expected.append(SOCKET_FAILED)
            url = created["facilitator_url"] if someone is fran else created["join_url"]
            instance[name] = connected_through(
                backends, functools.partial(join, someone.page, url, name)
            )

        # The proxy keeps a room on one instance (it hashes the room each page names when it
        # connects): every page of this session is on the same one, also after a reload.
        assert len({s.url for s in instance.values()}) == 1, instance
        home = instance["Ana"]
        instance["Ana"] = connected_through(backends, functools.partial(reload, people["Ana"]))
        assert instance["Ana"] is home
        survivor = b if home is a else a
        moved = list(names)

        # A short session: open everything, score one question, reveal it.
        for someone in people.values():
            expect(someone.page.get_by_test_id("presence").locator("li")).to_have_count(3)
        fran.page.get_by_test_id("control-open_all").click()
        for someone in people.values():
            expect(someone.page.get_by_test_id("votes-realtime")).to_have_text("0 of 3 voted")
        for someone, score in zip(people.values(), [1, 3, 3], strict=True):
            vote(someone, "realtime", score)
        for someone in people.values():
            expect(someone.page.get_by_test_id("votes-realtime")).to_have_text(
                "3 of 3 voted", timeout=SLOW
            )
        fran.page.get_by_test_id("control-reveal-realtime").click()
        for someone in people.values():
            expect(
                someone.page.get_by_test_id("results-realtime").locator(".histogram__count")
            ).to_have_text(["0", "1", "0", "2", "0"], timeout=SLOW)
        # Everyone scores a second question, so there is a choice to remember.
        chosen = {"Fran": 0, "Ana": 2, "Ben": 4}
        for name, someone in people.items():
            vote(someone, "prototype", chosen[name])
        for someone in people.values():
            expect(someone.page.get_by_test_id("votes-prototype")).to_have_text(
                "3 of 3 voted", timeout=SLOW
            )
            someone.page.evaluate(WATCH_CONNECTION)
        ids = {
            name: me(someone.page, session_id)["participant_id"] for name, someone in people.items()
        }

        # The room's instance dies without a word: every page moves to the survivor.
        home.process.kill()
        home.process.wait()

        for name in moved:
            page = people[name].page
            page.wait_for_function("window.connectionStates.includes('reconnecting')", timeout=SLOW)
            expect_live(page)
        for name, someone in people.items():
            page = someone.page
            # The same person, not a newcomer: one entry each, and my choice is still mine.
            presence = page.get_by_test_id("presence")
            expect(presence.locator("li")).to_have_count(3)
            expect(presence.locator('li[data-online="true"]')).to_have_count(3, timeout=SLOW)
            expect(presence.locator(f'li[data-participant="{ids[name]}"]')).to_contain_text(
                f"{name} (you)"
            )
            assert me(page, session_id)["participant_id"] == ids[name]
            expect(page.get_by_test_id(f"score-prototype-{chosen[name]}")).to_have_attribute(
                "aria-pressed", "true"
            )
        participants = api_state(proxy, session_id)["participants"]
        assert sorted(p["name"] for p in participants) == sorted(names)

        # They can still vote, and everyone sees it.
        for count, name in enumerate(moved, start=1):
            vote(people[name], "content_admin", 4)
            for someone in people.values():
                expect(someone.page.get_by_test_id("votes-content_admin")).to_have_text(
                    f"{count} of 3 voted", timeout=SLOW
                )

        # Once the survivor releases the dead instance's sockets, nobody shows offline.
        deadline = time.monotonic() + 15
        while "releasing its sockets" not in survivor.log():
            assert time.monotonic() < deadline, "the survivor never released the dead instance"
            time.sleep(0.1)
        for someone in people.values():
            presence = someone.page.get_by_test_id("presence")
            expect(presence.locator('li[data-online="true"]')).to_have_count(3)
        fran.page.get_by_test_id("control-reveal-content_admin").click()
        expect(fran.page.get_by_test_id("results-content_admin")).to_be_visible(timeout=SLOW)
        state = api_state(proxy, session_id)
        content_admin = next(c for c in state["cases"] if c["id"] == "content_admin")
        assert content_admin["results"]["n"] == 3
        expected = [str(n) for n in content_admin["results"]["histogram"]]
        for someone in people.values():
            page = someone.page
            expect(
                page.get_by_test_id("results-content_admin").locator(".histogram__count")
            ).to_have_text(expected, timeout=SLOW)
            expect(page.get_by_test_id("verdict")).to_have_text(
                state["recommendation"]["verdict"], timeout=SLOW
            )
            expect_live(page)


def test_a_storage_outage_shows_and_heals(tmp_path: Path, person: Callable[..., Person]) -> None:
    data = tmp_path / "redis"
    data.mkdir()
    with ExitStack() as stack:
        store = stack.enter_context(redis_server(data))
        env = {"STACKVOTE_REDIS_URL": store.url}
        a = stack.enter_context(live_server(tmp_path, env))
        b = stack.enter_context(live_server(tmp_path, env))
        new_person = closed_before_servers(person, stack)
        created = create_session(a.url, title="Through an outage")
        session_id = created["id"]
        fran, ana = new_person(), new_person()
        join(fran.page, created["facilitator_url"], "Fran")
        join(ana.page, f"{b.url}/s/{session_id}", "Ana")
        fran.page.get_by_test_id("control-open-realtime").click()
        expect(ana.page.get_by_test_id("score-realtime-3")).to_be_enabled()

        store.stop()
        for someone in (fran, ana):
            connection = someone.page.get_by_test_id("connection")
            expect(connection).to_have_attribute("data-state", "storage", timeout=SLOW)
            expect(connection).to_have_text(STORAGE_DOWN)
        for score in ("0", "3", "4", "abstain"):
            expect(ana.page.get_by_test_id(f"score-realtime-{score}")).to_be_disabled()
        expect(fran.page.get_by_test_id("control-reveal-realtime")).to_have_attribute(
            "aria-disabled", "true"
        )
        assert httpx.get(a.url + "/readyz").status_code == 503
        # Ana's Wi-Fi drops during the outage: reconnecting is refused while storage is down,
        # and her page keeps trying instead of sending her back to the join form.
        ana.expected.append("ERR_INTERNET_DISCONNECTED")
        ana.page.context.set_offline(True)
        ana.page.wait_for_timeout(1000)
        ana.page.context.set_offline(False)
        ana.page.wait_for_timeout(2500)
        expect(ana.page.get_by_test_id("join-name")).to_be_hidden()

        store.start()  # same port, same data directory: the session is still there
        for someone in (fran, ana):
            expect_live(someone.page)
        vote(ana, "realtime", 3)
        expect(fran.page.get_by_test_id("votes-realtime")).to_have_text(
            "1 of 2 voted", timeout=SLOW
        )
        vote(fran, "realtime", 4)
        expect(ana.page.get_by_test_id("votes-realtime")).to_have_text("2 of 2 voted", timeout=SLOW)
        fran.page.get_by_test_id("control-reveal-realtime").click()
        expect(
            ana.page.get_by_test_id("results-realtime").locator(".histogram__count")
        ).to_have_text(["0", "0", "0", "1", "1"], timeout=SLOW)
        assert httpx.get(b.url + "/readyz").status_code == 200
        state = api_state(b.url, session_id)
        assert [p["name"] for p in state["participants"]] == ["Fran", "Ana"]
