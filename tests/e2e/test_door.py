"""The facilitator's door and sweep in a real browser: closed to newcomers (those already in
come back, everyone sees it, the presenter view stops inviting), and everyone offline without
a ballot taken off the list in one go."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from tests.e2e.checks import assert_no_sideways_scroll
from tests.e2e.conftest import Person, api_state, join
from tests.live import LiveServer, create_session

pytestmark = pytest.mark.e2e

NARROW: ViewportSize = {"width": 320, "height": 640}
BIG_SCREEN: ViewportSize = {"width": 1280, "height": 720}
DOOR_CLOSED = "The facilitator has closed this session to newcomers; ask them to open it for you."


def try_to_join(page: Page, url: str, name: str) -> None:
    page.goto(url)
    page.get_by_test_id("join-name").fill(name)
    page.get_by_test_id("join-submit").click()


def test_a_closed_door_turns_newcomers_away_and_lets_people_back_in(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created = create_session(server.url)
    url = created["join_url"]
    fran = person().page
    join(fran, created["facilitator_url"], "Fran")
    ana = person(NARROW).page
    join(ana, url, "Ana")
    screen = person(BIG_SCREEN).page
    screen.goto(f"{server.url}/s/{created['id']}/present")
    expect(screen.get_by_test_id("qr")).to_be_visible()
    expect(ana.get_by_test_id("door-closed")).to_be_hidden()

    door = fran.get_by_test_id("control-door")
    expect(door).to_have_text("Close to newcomers")
    door.click()
    expect(door).to_have_text("Open to newcomers")
    assert api_state(server.url, created["id"])["session"]["door_open"] is False
    # Everyone in the room sees it, and the invitation says whom it still lets in.
    for page in (fran, ana):
        expect(page.get_by_test_id("door-closed")).to_have_text("Closed to newcomers")
        expect(page.get_by_test_id("invite-door")).to_be_visible()
    assert_no_sideways_scroll(ana)
    # The shared screen stops inviting people.
    expect(screen.get_by_test_id("waiting-door")).to_be_visible()
    expect(screen.get_by_test_id("qr")).to_be_hidden()
    expect(screen.get_by_test_id("join-code")).to_be_hidden()

    # Someone new is turned away with the server's words, once: no retrying behind their back.
    eve = person(NARROW)
    try_to_join(eve.page, url, "Eve")
    expect(eve.page.get_by_test_id("join-error")).to_have_text(DOOR_CLOSED)
    expect(eve.page.get_by_test_id("join-submit")).to_be_enabled()
    eve.page.wait_for_timeout(1500)
    expect(eve.page.get_by_test_id("connection")).to_have_attribute("data-state", "idle")
    expect(eve.page.get_by_test_id("join-error")).to_have_text(DOOR_CLOSED)
    assert_no_sideways_scroll(eve.page)
    # In German too.
    otto = person(NARROW, extra_http_headers={"Accept-Language": "de"})
    try_to_join(otto.page, url, "Otto")
    expect(otto.page.get_by_test_id("join-error")).to_contain_text(
        "Die Moderation hat diese Sitzung für Neue geschlossen"
    )

    # Someone who was here already comes back in (same browser, a reload).
    ana.reload()
    expect(ana.locator("#room")).to_have_attribute("data-state", "joined")
    expect(ana.get_by_test_id("connection")).to_have_attribute("data-state", "connected")
    expect(ana.get_by_test_id("door-closed")).to_be_visible()
    names = [p["name"] for p in api_state(server.url, created["id"])["participants"]]
    assert names == ["Fran", "Ana"]

    # Open again: the newcomer gets in, and the indicator goes.
    door.click()
    expect(door).to_have_text("Close to newcomers")
    expect(ana.get_by_test_id("door-closed")).to_be_hidden()
    expect(screen.get_by_test_id("qr")).to_be_visible()
    eve.page.get_by_test_id("join-submit").click()
    expect(eve.page.locator("#room")).to_have_attribute("data-state", "joined")


def test_the_sweep_removes_people_offline_without_a_ballot(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created = create_session(server.url)
    url = created["join_url"]
    fran = person(NARROW).page
    join(fran, created["facilitator_url"], "Fran")
    fran.get_by_test_id("facilitator-bar").locator("summary").click()
    ana, ben, dan = person(), person(), person()
    for someone, name in ((ana, "Ana"), (ben, "Ben"), (dan, "Dan")):
        join(someone.page, url, name)
    fran.get_by_test_id("control-open-realtime").click()
    ben.page.get_by_test_id("score-realtime-abstain").click()
    expect(fran.get_by_test_id("votes-realtime")).to_have_text("1 of 4 voted")

    sweep = fran.get_by_test_id("control-remove-idle")
    # Nobody is offline yet: nothing for it to do.
    expect(sweep).to_have_attribute("aria-disabled", "true")
    # Dan never voted and goes; Ben goes too, but his skip is a ballot, so he stays.
    dan.context.close()
    ben.context.close()
    presence = fran.get_by_test_id("presence")
    expect(presence.locator('[data-online="false"]')).to_have_count(2)
    expect(sweep).to_have_attribute("aria-disabled", "false")

    sweep.click()
    dialog = fran.get_by_test_id("confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Remove people who are offline and haven't voted?")
    fran.get_by_test_id("confirm-ok").click()
    expect(fran.locator("#toast")).to_have_text(
        "1 person removed: they were offline and hadn't voted."
    )
    expect(presence).not_to_contain_text("Dan")
    expect(presence).to_contain_text("Ben")
    names = [p["name"] for p in api_state(server.url, created["id"])["participants"]]
    assert names == ["Fran", "Ana", "Ben"]
    assert_no_sideways_scroll(fran)

    # Again: everyone offline now holds a ballot, and the server says so by the button.
    sweep.click()
    fran.get_by_test_id("confirm-ok").click()
    expect(fran.get_by_test_id("toolbar-error")).to_have_text(
        "Nobody to remove: everyone offline has scored something."
    )
    # Cancelling sends nothing.
    sweep.click()
    fran.get_by_test_id("confirm-cancel").click()
    expect(dialog).to_be_hidden()
    expect(presence.locator(".presence__item")).to_have_count(3)
