"""The presenter view in a real browser, following a session that real people run."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from tests.e2e.conftest import Person, api_state, join
from tests.live import LiveServer, create_session
from tests.live import join as connect

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

BIG_SCREEN: ViewportSize = {"width": 1280, "height": 720}
FULL_HD: ViewportSize = {"width": 1920, "height": 1080}
PHONE: ViewportSize = {"width": 375, "height": 812}
NARROWEST: ViewportSize = {"width": 320, "height": 640}


def run_elsewhere(work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine on an event loop of its own (sync Playwright holds this thread's)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = asyncio.run(work())
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def command(server: LiveServer, page: Page, created: dict[str, Any], **payload: Any) -> None:
    """A facilitator command the room page has no button for, sent as the facilitator on
    `page` (their own token, so no new participant), over a real Socket.IO connection."""
    me = json.loads(page.evaluate(f"localStorage.getItem('stackvote:{created['id']}:me')"))
    auth = {
        "session": created["id"],
        "token": me["token"],
        "facilitator_token": created["facilitator_token"],
    }

    async def send() -> dict[str, Any]:
        member = await connect(server.url, auth)
        try:
            ack: dict[str, Any] = await member.call("control", payload)
            return ack
        finally:
            await member.client.disconnect()

    ack = run_elsewhere(send)
    assert ack["ok"], ack


def fits(page: Page, viewport: ViewportSize) -> tuple[bool, bool]:
    """At `viewport`: (no sideways scroll, no scroll at all)."""
    before = page.viewport_size
    page.set_viewport_size(viewport)
    sizes = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight,"
        " window.innerWidth, window.innerHeight]"
    )
    if before is not None:
        page.set_viewport_size(before)
    width, height, inner_width, inner_height = sizes
    return width <= inner_width, height <= inner_height


def test_the_presenter_view_follows_a_session_from_waiting_to_the_verdict(
    server: LiveServer, person: Callable[..., Person], output_dir: Path
) -> None:
    created = create_session(server.url, title="Backend for the booking app")
    screen = person(BIG_SCREEN).page
    screen.goto(f"{server.url}/s/{created['id']}/present")
    view = screen.get_by_test_id("present")
    announcer = screen.locator("#announcer")
    expect(screen.get_by_test_id("connection")).to_have_attribute("data-state", "connected")

    # Before anything is open: how to join, large.
    expect(view).to_have_attribute("data-view", "waiting")
    code = created["join_code"]
    expect(screen.get_by_test_id("join-code")).to_have_text(f"{code[:3]}-{code[3:]}")
    expect(screen.get_by_test_id("qr")).to_be_visible()
    screen.wait_for_function("document.querySelector('[data-testid=qr]').complete")
    assert screen.get_by_test_id("qr").evaluate("img => img.naturalWidth") > 0
    screen.screenshot(path=str(output_dir / "present-waiting.png"))
    screen.set_viewport_size(PHONE)
    screen.screenshot(path=str(output_dir / "present-waiting-phone.png"), full_page=True)
    screen.set_viewport_size(BIG_SCREEN)
    assert fits(screen, BIG_SCREEN) == (True, True)
    assert fits(screen, NARROWEST)[0], "sideways scroll at 320 px"

    fran, ana = person(), person()
    join(fran.page, created["facilitator_url"], "Fran")
    join(ana.page, created["join_url"], "Ana")
    # The screen is nobody: not in the people list, anywhere.
    expect(fran.page.get_by_test_id("presence").locator("li")).to_have_count(2)
    names = [p["name"] for p in api_state(server.url, created["id"])["participants"]]
    assert names == ["Fran", "Ana"]

    # A question opens: it fills the screen, with the count at 0 of the 2 who vote.
    fran.page.get_by_test_id("control-open-realtime").click()
    expect(view).to_have_attribute("data-view", "question")
    expect(screen.get_by_test_id("question-title")).to_have_text("Live updates are core")
    count = screen.get_by_test_id("question-count")
    expect(count).to_have_text("0 of 2 voted")
    expect(announcer).to_have_text("Voting is open: Live updates are core.")

    ana.page.get_by_test_id("score-realtime-4").click()
    expect(count).to_have_text("1 of 2 voted")
    fran.page.get_by_test_id("score-realtime-3").click()
    expect(count).to_have_text("2 of 2 voted")
    # Votes are never announced, and hidden scores stay hidden on the screen too.
    expect(announcer).to_have_text("Voting is open: Live updates are core.")
    expect(screen.get_by_test_id("view-results")).to_be_hidden()
    screen.screenshot(path=str(output_dir / "present-question.png"))
    assert fits(screen, BIG_SCREEN) == (True, True)
    assert fits(screen, FULL_HD) == (True, True)
    assert fits(screen, NARROWEST)[0], "sideways scroll at 320 px"

    # The reveal: the histogram, the median and agreement, and the verdict so far.
    fran.page.get_by_test_id("control-reveal-realtime").click()
    expect(view).to_have_attribute("data-view", "results")
    expect(announcer).to_have_text("Scores revealed: Live updates are core.")
    state = api_state(server.url, created["id"])
    realtime = next(c for c in state["cases"] if c["id"] == "realtime")["results"]
    columns = screen.get_by_test_id("results").locator(".present-hist__col")
    expect(columns).to_have_count(5)
    for score, expected in enumerate(realtime["histogram"]):
        expect(columns.nth(score)).to_have_attribute("data-count", str(expected))
    expect(columns.locator(".present-hist__label")).to_have_text(
        ["Not at all", "A little", "Somewhat", "Clearly", "Strongly"]
    )
    expect(screen.get_by_test_id("median-realtime")).to_have_text("3.5")
    expect(screen.get_by_test_id("consensus-realtime")).to_have_text(
        str(round(realtime["consensus"], 2))
    )
    expect(screen.get_by_test_id("verdict")).to_have_text(state["recommendation"]["verdict"])
    ranking = screen.get_by_test_id("ranking").locator(".present-ranking__name")
    expect(ranking).to_have_text([row["name"] for row in state["recommendation"]["ranking"]])
    screen.screenshot(path=str(output_dir / "present-revealed.png"))
    screen.emulate_media(color_scheme="dark")
    screen.screenshot(path=str(output_dir / "present-revealed-dark.png"))
    screen.emulate_media(color_scheme="light")
    screen.set_viewport_size(PHONE)
    screen.screenshot(path=str(output_dir / "present-revealed-phone.png"), full_page=True)
    screen.set_viewport_size(BIG_SCREEN)
    assert fits(screen, BIG_SCREEN) == (True, True)
    assert fits(screen, NARROWEST)[0], "sideways scroll at 320 px"

    # Several questions open at once: a compact list, each with its own count and countdown.
    fran.page.get_by_test_id("control-open_all").click()
    expect(view).to_have_attribute("data-view", "questions")
    items = screen.get_by_test_id("questions-list").locator("li")
    expect(items).to_have_count(len(state["cases"]) - 1)
    expect(screen.get_by_test_id("count-prototype")).to_have_text("0 of 2 voted")
    ana.page.get_by_test_id("score-prototype-1").click()
    expect(screen.get_by_test_id("count-prototype")).to_have_text("1 of 2 voted")
    command(server, fran.page, created, action="countdown", case="prototype", seconds=300)
    countdown = screen.locator('[data-case="prototype"] .present-countdown')
    expect(countdown).to_have_text(re.compile(r"^[45]:\d\d left$"))
    for case, score in (("content_admin", 0), ("python_team", 1), ("data_model", 1)):
        ana.page.get_by_test_id(f"score-{case}-{score}").click()
        fran.page.get_by_test_id(f"score-{case}-{score}").click()
    screen.screenshot(path=str(output_dir / "present-questions.png"))
    assert fits(screen, BIG_SCREEN) == (True, True)
    assert fits(screen, NARROWEST)[0], "sideways scroll at 320 px"

    fran.page.get_by_test_id("control-reveal_all").click()
    expect(view).to_have_attribute("data-view", "results")
    expect(
        screen.get_by_test_id("results").locator(".present-case-list__item[data-case]")
    ).to_have_count(len(state["cases"]) - 1)

    # Finished: the final verdict, first and large.
    fran.page.get_by_test_id("control-finish").click()
    fran.page.get_by_test_id("control-finish").click()
    expect(view).to_have_attribute("data-view", "finished")
    final = api_state(server.url, created["id"])
    assert final["session"]["status"] == "finished"
    verdict = final["recommendation"]["verdict"]
    expect(screen.locator("#rec-title")).to_have_text("Final recommendation")
    expect(screen.get_by_test_id("verdict")).to_have_text(verdict)
    expect(announcer).to_have_text(f"The session is finished. Recommendation: {verdict}")
    screen.screenshot(path=str(output_dir / "present-finished.png"))
    screen.set_viewport_size(FULL_HD)
    screen.screenshot(path=str(output_dir / "present-finished-1080.png"))
    screen.set_viewport_size(PHONE)
    screen.screenshot(path=str(output_dir / "present-finished-phone.png"), full_page=True)
    screen.set_viewport_size(BIG_SCREEN)
    assert fits(screen, BIG_SCREEN) == (True, True)
    assert fits(screen, FULL_HD) == (True, True)
    assert fits(screen, NARROWEST)[0], "sideways scroll at 320 px"

    # Through all of it, the screen never joined.
    assert len(api_state(server.url, created["id"])["participants"]) == 2


def test_a_screen_opened_late_shows_every_reveal_and_a_finish_without_a_verdict_says_so(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created = create_session(server.url, mode="open")
    fran = person()
    join(fran.page, created["facilitator_url"], "Fran")
    for case in ("realtime", "prototype"):
        fran.page.get_by_test_id(f"control-open-{case}").click()
        fran.page.get_by_test_id(f"score-{case}-abstain").click()
        expect(fran.page.get_by_test_id(f"votes-{case}")).to_have_text("1 of 1 voted")
        fran.page.get_by_test_id(f"control-reveal-{case}").click()
        expect(fran.page.get_by_test_id(f"results-{case}")).to_be_visible()

    # Opened after both reveals: it cannot know which came last, so it shows both.
    screen = person(BIG_SCREEN).page
    screen.goto(f"{server.url}/s/{created['id']}/present")
    expect(screen.get_by_test_id("present")).to_have_attribute("data-view", "results")
    rows = screen.get_by_test_id("results").locator(".present-case-list__item[data-case]")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Everyone who voted skipped this one.")
    # Nobody scored, so there is nothing to recommend yet.
    expect(screen.get_by_test_id("recommendation")).to_be_hidden()

    fran.page.get_by_test_id("control-finish").click()
    fran.page.get_by_test_id("control-finish").click()
    expect(screen.get_by_test_id("present")).to_have_attribute("data-view", "finished")
    expect(screen.get_by_test_id("verdict")).to_have_text(
        "No revealed question has scores, so there is no recommendation."
    )
    expect(screen.locator("#announcer")).to_have_text("The session is finished.")


def test_the_presenter_view_of_an_unknown_session_is_the_404_page(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    viewer = person(BIG_SCREEN)
    viewer.expected.append("status of 404")
    response = viewer.page.goto(f"{server.url}/s/no-such-session/present")
    assert response is not None and response.status == 404
    expect(viewer.page.locator("main")).to_contain_text("There is no session at this link")
