"""The facilitator's tools and the room's manners, in a real browser: what is announced, where
changes show up, focus and keys, reasons, timers, auto-reveal, earlier rounds, people."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, ViewportSize, WebSocketRoute, expect

from tests.e2e.conftest import PHONE, Person, api_state, join
from tests.live import LiveServer, create_session

pytestmark = pytest.mark.e2e

NARROW: ViewportSize = {"width": 320, "height": 640}
LONG_NAME = "Maximiliane Wolkenstein-Oberhausenbergerin"[:40]


def room(server: LiveServer, **body: Any) -> tuple[dict[str, Any], str]:
    created = create_session(server.url, **body)
    return created, f"{server.url}/s/{created['id']}"


def facilitate(someone: Person, created: dict[str, Any], name: str = "Fran") -> Page:
    join(someone.page, created["facilitator_url"], name)
    expect(someone.page.get_by_test_id("facilitator-bar")).to_be_visible()
    return someone.page


def fran_and_ana(
    server: LiveServer, person: Callable[..., Person], **body: Any
) -> tuple[dict[str, Any], str, Page, Page]:
    """A new session run by Fran, with Ana joined: (created, join url, Fran's page, Ana's)."""
    created, url = room(server, **body)
    fran = facilitate(person(), created)
    ana = person().page
    join(ana, url, "Ana")
    return created, url, fran, ana


def score_with_reason(page: Page, case: str, score: int, reason: str) -> None:
    page.get_by_test_id(f"case-{case}").locator(".why__summary").click()
    page.get_by_test_id(f"reason-{case}").fill(reason)
    page.get_by_test_id(f"score-{case}-{score}").click()
    expect(page.get_by_test_id(f"choice-{case}")).to_contain_text(f"Your score: {score}")


def record_announcements(page: Page) -> None:
    """Keep every text the polite live region is given, in order."""
    page.evaluate(
        """() => {
          window.__spoken = [];
          const node = document.getElementById("announcer");
          new MutationObserver(() => {
            if (node.textContent) window.__spoken.push(node.textContent);
          }).observe(node, {childList: true, characterData: true, subtree: true});
        }"""
    )


def spoken(page: Page) -> list[str]:
    said: list[str] = page.evaluate("window.__spoken")
    return said


def no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.evaluate("window.innerWidth")
    assert width <= viewport, f"the page is {width} px wide in a {viewport} px window"


def test_a_round_is_announced_by_its_moments_not_by_each_ballot(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created, url = room(server)
    fran = facilitate(person(), created)
    voters = [person(), person(), person()]
    for someone, name in zip(voters, ["Ana", "Ben", "Cai"], strict=True):
        join(someone.page, url, name)
    listener = voters[0].page
    record_announcements(listener)

    fran.get_by_test_id("control-open-realtime").click()
    expect(listener.get_by_test_id("score-realtime-2")).to_be_enabled()
    for score, someone in enumerate(voters):
        someone.page.get_by_test_id(f"score-realtime-{score}").click()
        expect(fran.get_by_test_id("votes-realtime")).to_have_text(f"{score + 1} of 4 voted")
    fran.get_by_test_id("score-realtime-4").click()
    expect(listener.get_by_test_id("waiting")).to_be_hidden()
    fran.get_by_test_id("control-reveal-realtime").click()
    expect(listener.get_by_test_id("results-realtime")).to_be_visible()
    # The live region is given its text a frame after the change (so a repeat is heard again).
    listener.wait_for_function("() => window.__spoken.some((s) => s.includes('Scores revealed'))")

    said = " | ".join(spoken(listener))
    assert re.search(r"Voting is open: Live updates are core\.", said), said
    assert said.count("Everyone has voted on Live updates are core.") == 1, said
    assert "Scores revealed: Live updates are core." in said, said
    # Four ballots and not one of them read out.
    assert "of 4 voted" not in said, said
    assert len(spoken(listener)) <= 4, said


def test_a_reveal_shows_where_the_person_has_scrolled_and_controls_stay_in_reach(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created, url = room(server)
    fran = facilitate(person(), created)
    ana = person(PHONE).page
    join(ana, url, "Ana")
    fran.get_by_test_id("control-open-realtime").click()
    ana.get_by_test_id("score-realtime-3").click()
    expect(ana.get_by_test_id("choice-realtime")).to_contain_text("Your score: 3")

    ana.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    fran.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    # The facilitator's controls scroll with the bar: reachable from the bottom of the page.
    expect(fran.get_by_test_id("control-reveal_all")).to_be_in_viewport()
    fran.get_by_test_id("control-reveal_all").click()

    status = ana.get_by_test_id("roombar-status")
    expect(status).to_have_text("Scores revealed: Live updates are core.")
    expect(status).to_be_in_viewport()
    ana.get_by_test_id("roombar-event").click()
    expect(ana.get_by_test_id("results-realtime")).to_be_in_viewport()
    expect(ana.get_by_test_id("case-realtime")).to_be_focused()


def test_joining_before_anything_opens_says_what_happens_next_and_takes_focus(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created, url = room(server)
    facilitate(person(), created)
    ana = person(NARROW).page
    join(ana, url, LONG_NAME)

    waiting = ana.get_by_test_id("waiting")
    expect(waiting).to_contain_text("Waiting for the first question")
    expect(waiting).to_contain_text("Fran will open the questions")
    expect(waiting).to_contain_text("2 people are here")
    expect(ana.locator("#waiting-title")).to_be_focused()
    expect(waiting).to_be_in_viewport()
    no_sideways_scroll(ana)


def test_scores_take_arrow_keys_and_one_tab_stop_per_question_with_their_meaning_in_view(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created, url = room(server)
    fran = facilitate(person(), created)
    fran.get_by_test_id("control-open_all").click()
    ana = person(PHONE).page
    join(ana, url, "Ana")

    # Focus starts on the first open question's scores, not on <body>.
    first = ana.get_by_test_id("score-realtime-0")
    expect(first).to_be_focused()
    ana.keyboard.press("ArrowRight")
    ana.keyboard.press("ArrowRight")
    expect(ana.get_by_test_id("score-realtime-2")).to_be_focused()
    ana.keyboard.press("Enter")
    expect(ana.get_by_test_id("score-realtime-2")).to_have_attribute("aria-pressed", "true")
    ana.keyboard.press("ArrowLeft")
    ana.keyboard.press("ArrowLeft")
    ana.keyboard.press("ArrowLeft")
    expect(ana.get_by_test_id("score-realtime-abstain")).to_be_focused()

    # From one question's scores to the next question's in three Tabs (reason, weights, next).
    for _ in range(3):
        ana.keyboard.press("ArrowRight")
    expect(ana.get_by_test_id("score-realtime-2")).to_be_focused()
    for _ in range(3):
        ana.keyboard.press("Tab")
    expect(ana.get_by_test_id("score-prototype-0")).to_be_focused()

    # On a phone the words of the scale are on screen, not in tooltips, and say the same as
    # the hint above the questions and the buttons' names.
    card = ana.get_by_test_id("case-realtime")
    expect(card.locator(".scale-key")).to_be_visible()
    expect(card.locator(".scale-key")).to_contain_text("0 Not at all")
    expect(card.locator(".scale-key")).to_contain_text("can\u2019t judge")
    expect(ana.locator("#keyboard-hint")).to_contain_text("0 (Not at all) to 4 (Strongly)")
    expect(ana.get_by_role("button", name="4: Strongly").first).to_be_visible()
    expect(ana.get_by_test_id("choice-realtime")).to_have_text(
        "Your score: 2 (Somewhat). You can change it until the reveal."
    )
    no_sideways_scroll(ana)


def test_reasons_travel_with_scores_and_show_at_the_reveal(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created, _url, fran, ana = fran_and_ana(server, person)
    fran.get_by_test_id("control-open-realtime").click()

    score_with_reason(ana, "realtime", 4, "Chat is the whole product")
    # Hidden until the reveal: nobody else sees it yet.
    expect(fran.get_by_test_id("reasons-realtime")).to_be_hidden()
    state = api_state(server.url, created["id"])
    assert "Chat is the whole product" not in str(state)

    # Changing only the reason sends it again with the same score.
    ana.get_by_test_id("reason-realtime").fill("Chat and presence are the product")
    ana.get_by_test_id("reason-save-realtime").click()
    expect(ana.get_by_test_id("reason-save-realtime")).to_be_enabled()

    fran.get_by_test_id("control-reveal-realtime").click()
    reasons = fran.get_by_test_id("reasons-realtime")
    expect(reasons).to_contain_text("Chat and presence are the product")
    expect(reasons).to_contain_text("Ana, who scored 4")
    expect(reasons).not_to_contain_text("Chat is the whole product")


def test_reasons_in_an_anonymous_session_name_nobody(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    _created, url, fran, ana = fran_and_ana(server, person, anonymous=True)
    ben = person().page
    join(ben, url, "Ben")
    fran.get_by_test_id("control-open-realtime").click()
    score_with_reason(ana, "realtime", 3, "Websockets everywhere")
    # An anonymous question shows its scores once three people have scored it.
    ben.get_by_test_id("score-realtime-2").click()
    fran.get_by_test_id("score-realtime-1").click()
    expect(fran.get_by_test_id("votes-realtime")).to_have_text("3 of 3 voted")
    fran.get_by_test_id("control-reveal-realtime").click()
    reasons = fran.get_by_test_id("reasons-realtime")
    expect(reasons).to_contain_text("Websockets everywhere")
    expect(reasons).to_contain_text("someone who scored 3")
    expect(reasons).not_to_contain_text("Ana")


def test_a_timer_counts_down_on_everyones_screen_and_can_be_stopped(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created, _url, fran, ana = fran_and_ana(server, person)
    fran.get_by_test_id("control-open-realtime").click()
    card = fran.get_by_test_id("case-realtime")
    card.locator('select[data-role="timer-seconds"]').select_option("120")
    fran.get_by_test_id("control-countdown-realtime").click()

    expect(ana.get_by_test_id("deadline-realtime")).to_have_text(
        re.compile(r"Voting closes in (2:00|1:5\d)")
    )
    deadline = api_state(server.url, created["id"])["cases"][0]["deadline"]
    assert deadline is not None

    fran.get_by_test_id("control-stop-countdown-realtime").click()
    expect(ana.get_by_test_id("deadline-realtime")).to_be_hidden()
    assert api_state(server.url, created["id"])["cases"][0]["deadline"] is None


def test_auto_reveal_shows_the_scores_once_everyone_has_voted(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created, _url, fran, ana = fran_and_ana(server, person)
    fran.get_by_test_id("auto-reveal").check()
    expect(ana.get_by_test_id("waiting")).to_be_visible()
    assert api_state(server.url, created["id"])["session"]["auto_reveal"] is True

    fran.get_by_test_id("control-open-realtime").click()
    ana.get_by_test_id("score-realtime-1").click()
    expect(fran.get_by_test_id("results-realtime")).to_be_hidden()
    # Fran scores the last one with the keyboard; the reveal takes her score buttons away,
    # and focus stays on the question rather than falling to the page.
    fran.get_by_test_id("score-realtime-3").focus()
    fran.keyboard.press("Enter")
    expect(ana.get_by_test_id("results-realtime")).to_be_visible()
    expect(ana.get_by_test_id("median-realtime")).to_have_text("2")
    expect(fran.get_by_test_id("results-realtime")).to_be_visible()
    expect(fran.get_by_test_id("case-realtime")).to_be_focused()
    # A reload keeps the switch as the server has it.
    fran.reload()
    expect(fran.get_by_test_id("auto-reveal")).to_be_checked()


def test_a_switch_refused_for_now_stays_as_clicked_and_is_sent_again(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    """A click that lands while the server is busy ("retry": nothing was done) is not lost:
    the switch keeps what was asked for, the control goes again, and no error is shown."""
    created, url = room(server)
    fran = person().page
    refused: list[str] = []

    def refuse_the_first_switch(ws: WebSocketRoute) -> None:
        upstream = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            # Socket.IO over Engine.IO: "42" an event, then its namespace and ack id.
            found = re.fullmatch(r"42(/[^,]*,)?(\d+)(\[.*)", str(message), re.DOTALL)
            if found and not refused and '"auto_reveal"' in found[3]:
                refused.append(found[3])
                busy = {"ok": False, "error": "The server is busy.", "retry": True}
                ws.send(f"43{found[1] or ''}{found[2]}{json.dumps([busy])}")
                return
            upstream.send(message)

        ws.on_message(from_page)

    fran.route_web_socket(re.compile(r"/socket\.io/"), refuse_the_first_switch)
    join(fran, created["facilitator_url"], "Fran")
    ana = person().page
    join(ana, url, "Ana")

    fran.get_by_test_id("auto-reveal").check()
    # The switch stays on while the control goes again (a second or two later).
    expect(fran.get_by_test_id("auto-reveal")).to_be_checked()
    for _ in range(100):
        if api_state(server.url, created["id"])["session"]["auto_reveal"]:
            break
        fran.wait_for_timeout(100)
    assert refused, "the page's first switch was not the one refused"
    assert api_state(server.url, created["id"])["session"]["auto_reveal"] is True
    expect(fran.get_by_test_id("auto-reveal")).to_be_checked()
    expect(fran.get_by_test_id("toolbar-error")).to_be_hidden()
    expect(fran.locator("#toast")).to_be_empty()


def test_a_revote_keeps_the_earlier_round_in_view(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    _created, url, fran, ana = fran_and_ana(server, person)
    fran.get_by_test_id("control-open-realtime").click()
    ana.get_by_test_id("score-realtime-0").click()
    fran.get_by_test_id("score-realtime-4").click()
    expect(fran.get_by_test_id("votes-realtime")).to_have_text("2 of 2 voted")
    fran.get_by_test_id("control-reveal-realtime").click()
    fran.get_by_test_id("control-revote-realtime").click()

    history = ana.get_by_test_id("history-realtime")
    expect(history).to_be_visible()
    expect(history).to_contain_text("Round 1: median 2")
    expect(history).to_contain_text("2 scores")
    expect(ana.get_by_test_id("results-realtime")).to_be_hidden()
    expect(ana.get_by_test_id("score-realtime-0")).to_have_attribute("aria-pressed", "false")

    # The printable record shows the earlier round during the re-vote too.
    ana.goto(f"{url}/results")
    expect(ana.locator("main")).to_contain_text("Round 1")


def test_words_that_went_stale_are_gone(server: LiveServer, person: Callable[..., Person]) -> None:
    created, _url, fran, ana = fran_and_ana(server, person)
    mode = ana.locator("#room-mode")
    expect(mode).to_have_text("Scores hidden until reveal")
    expect(ana.get_by_test_id("presence")).to_contain_text("0 of 11 scored")

    fran.get_by_test_id("control-open-realtime").click()
    ana.get_by_test_id("score-realtime-0").click()
    fran.get_by_test_id("score-realtime-4").click()
    expect(fran.get_by_test_id("votes-realtime")).to_have_text("2 of 2 voted")
    fran.get_by_test_id("control-reveal-realtime").click()
    # Weak agreement: the verdict's stability is not announced as "holds up" on its own.
    robust = ana.get_by_test_id("rec-robust")
    expect(robust).not_to_have_text(re.compile("^Holds up"))
    lock = fran.get_by_test_id("control-lock-realtime")
    expect(lock).to_have_accessible_description(re.compile("no more re-votes"))
    # Locking locks: the card offers no re-vote afterwards.
    expect(fran.get_by_test_id("control-revote-realtime")).to_be_visible()
    lock.click()
    expect(ana.get_by_test_id("case-realtime").locator('[data-role="status"]')).to_have_text(
        "Locked"
    )
    expect(fran.get_by_test_id("control-revote-realtime")).to_be_hidden()
    expect(lock).to_be_hidden()

    fran.get_by_test_id("control-finish").click()
    fran.get_by_test_id("control-finish").click()
    expect(ana.locator("#room-status")).to_have_text("Finished")
    expect(mode).to_be_hidden()
    printable = ana.locator(f'.record a[href="/s/{created["id"]}/results"]')
    assert printable.get_attribute("download") is None, "the printable page opens in the browser"
    exports = ana.locator(".record a[download]")
    names = [exports.nth(i).get_attribute("download") for i in range(exports.count())]
    assert f"stackvote-{created['id']}.json" in names


def test_the_facilitator_hands_over_and_removes_people(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created, url = room(server)
    fran = facilitate(person(), created)
    ana, ben = person().page, person().page
    join(ana, url, "Ana")
    join(ben, url, "Ben")

    fran.get_by_role("button", name="Remove (Ben)").click()
    expect(fran.get_by_test_id("confirm")).to_be_visible()
    fran.get_by_test_id("confirm-ok").click()
    expect(ben.get_by_test_id("join-error")).to_contain_text("removed")
    expect(fran.get_by_test_id("presence")).not_to_contain_text("Ben")
    # Ben is offered no name of his and no room he is not in any more.
    expect(ben.get_by_test_id("join-name")).to_have_value("")
    expect(ben.locator(".room-body")).to_be_hidden()

    fran.get_by_role("button", name="Hand over (Ana)").click()
    fran.get_by_test_id("confirm-ok").click()
    expect(ana.get_by_test_id("facilitator-bar")).to_be_visible()
    expect(fran.get_by_test_id("facilitator-bar")).to_be_hidden()
    # Both are told, in the toast (an alert, so screen readers say it too).
    expect(ana.locator("#toast")).to_contain_text("You are a facilitator")
    expect(fran.locator("#toast")).to_contain_text("voter")
    roles = {p["name"]: p["role"] for p in api_state(server.url, created["id"])["participants"]}
    assert roles == {"Fran": "voter", "Ana": "facilitator"}
    # Ana has a facilitator link of her own; it works on another device, as Ana.
    expect(ana.locator("#facilitator-link")).to_be_visible()
    link = ana.locator("#facilitator-url").input_value()
    assert link.startswith(url + "#f=") and link != created["facilitator_url"]
    tablet = person().page
    tablet.goto(link)
    expect(tablet.locator("#join-continue-text")).to_contain_text("Ana")
    # Fran's link no longer gives control, and says so before offering anything.
    stranger = person().page
    stranger.goto(created["facilitator_url"])
    expect(stranger.get_by_test_id("join-error")).to_contain_text("no longer gives control")
    expect(stranger.get_by_test_id("join-continue")).to_be_hidden()
    expect(stranger.get_by_test_id("join-submit")).to_be_visible()


def test_co_facilitators_both_steer_and_the_last_one_stays(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created, url = room(server)
    fran = facilitate(person(), created)
    ana = person().page
    join(ana, url, "Ana")
    # Only one facilitator: nobody can step down.
    expect(fran.get_by_role("button", name="Step down")).to_have_count(0)

    fran.get_by_role("button", name="Make co-facilitator (Ana)").click()
    expect(ana.get_by_test_id("facilitator-bar")).to_be_visible()
    expect(ana.locator("#toast")).to_contain_text("You are a facilitator")
    expect(ana.locator("#facilitator-link")).to_be_visible()
    # Both steer: Ana opens, Fran reveals.
    ana.get_by_test_id("control-open-realtime").click()
    expect(fran.get_by_test_id("control-reveal-realtime")).to_be_visible()
    fran.get_by_test_id("control-reveal-realtime").click()
    expect(ana.get_by_test_id("case-realtime")).to_have_attribute("data-status", "revealed")

    # Fran steps down; Ana, the last facilitator now, cannot.
    fran.get_by_role("button", name="Step down").click()
    fran.get_by_test_id("confirm-ok").click()
    expect(fran.get_by_test_id("facilitator-bar")).to_be_hidden()
    expect(fran.locator("#toast")).to_contain_text("no longer facilitate")
    expect(fran.locator("#facilitator-link")).to_be_hidden()
    expect(ana.get_by_role("button", name="Step down")).to_have_count(0)
    expect(ana.get_by_role("button", name="Make co-facilitator (Fran)")).to_be_visible()
    roles = {p["name"]: p["role"] for p in api_state(server.url, created["id"])["participants"]}
    assert roles == {"Fran": "voter", "Ana": "facilitator"}


def test_a_nudge_highlights_the_question_for_those_who_have_not_voted(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created, url = room(server)
    fran = facilitate(person(), created)
    ana, ben = person().page, person().page
    join(ana, url, "Ana")
    join(ben, url, "Ben")
    fran.get_by_test_id("control-open-realtime").click()
    ana.get_by_test_id("score-realtime-2").click()
    expect(fran.get_by_test_id("votes-realtime")).to_have_text("1 of 3 voted")

    fran.get_by_test_id("control-nudge").click()
    expect(fran.locator("#toast")).to_have_text("Reminder sent to 2 people who haven't voted yet.")
    # Fran sent it: she is not reminded by her own nudge.
    expect(fran.get_by_test_id("nudge-realtime")).to_be_hidden()
    expect(ben.get_by_test_id("nudge-realtime")).to_be_visible()
    expect(ben.get_by_test_id("case-realtime")).to_have_attribute("data-nudged", "true")
    expect(ben.get_by_test_id("roombar-status")).to_contain_text("waiting for your score")
    # Whoever has voted is left in peace.
    expect(ana.get_by_test_id("nudge-realtime")).to_be_hidden()
    # A second nudge straight away is refused, and the facilitator is told why, by the button.
    fran.get_by_test_id("control-nudge").click()
    expect(fran.get_by_test_id("toolbar-error")).to_contain_text("reminder just now")
    # Voting ends the reminder.
    ben.get_by_test_id("score-realtime-1").click()
    expect(ben.get_by_test_id("nudge-realtime")).to_be_hidden()
    # Once everyone here has voted there is nobody to remind: the button says so.
    expect(fran.get_by_test_id("control-nudge")).to_have_attribute("aria-disabled", "false")
    fran.get_by_test_id("score-realtime-2").click()
    expect(fran.get_by_test_id("control-nudge")).to_have_attribute("aria-disabled", "true")


def test_someone_leaves_by_themselves(server: LiveServer, person: Callable[..., Person]) -> None:
    created, _url, fran, ana = fran_and_ana(server, person)
    # The only facilitator has no leave button: someone must run the session.
    expect(fran.get_by_test_id("leave")).to_be_hidden()

    ana.get_by_test_id("leave").click()
    expect(ana.get_by_test_id("confirm")).to_contain_text("Leave this session?")
    ana.get_by_test_id("confirm-ok").click()
    expect(ana.get_by_test_id("join-error")).to_contain_text("You left this session")
    expect(fran.get_by_test_id("presence")).not_to_contain_text("Ana")
    names = [p["name"] for p in api_state(server.url, created["id"])["participants"]]
    assert names == ["Fran"]
    # Back as someone new, by choice.
    ana.get_by_test_id("join-submit").click()
    expect(fran.get_by_test_id("presence")).to_contain_text("Ana")


def test_the_facilitator_link_on_another_device_moves_the_same_person(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created, url = room(server)
    laptop = facilitate(person(), created)
    ana = person().page
    join(ana, url, "Ana")
    laptop.get_by_test_id("control-open-realtime").click()
    laptop.get_by_test_id("score-realtime-4").click()
    expect(ana.get_by_test_id("votes-realtime")).to_have_text("1 of 2 voted")

    phone = person(PHONE).page
    phone.goto(created["facilitator_url"])
    expect(phone.get_by_test_id("join-continue")).to_be_visible()
    expect(phone.locator("#join-continue-text")).to_contain_text("Fran")
    phone.get_by_test_id("join-continue").click()
    expect(phone.locator("#room")).to_have_attribute("data-state", "joined")

    # The same person: the same ballot, still two people, control on the phone only.
    expect(phone.get_by_test_id("score-realtime-4")).to_have_attribute("aria-pressed", "true")
    expect(ana.get_by_test_id("votes-realtime")).to_have_text("1 of 2 voted")
    expect(phone.get_by_test_id("facilitator-bar")).to_be_visible()
    expect(laptop.get_by_test_id("join-continue")).to_be_visible()
    expect(laptop.locator("#join-continue-text")).to_contain_text("on another device")
    names = [p["name"] for p in api_state(server.url, created["id"])["participants"]]
    assert names == ["Fran", "Ana"]

    # And back again on the laptop.
    laptop.get_by_test_id("join-continue").click()
    expect(laptop.get_by_test_id("facilitator-bar")).to_be_visible()
    expect(phone.get_by_test_id("join-continue")).to_be_visible()


def test_the_creator_lands_in_the_room_and_the_landing_page_lists_their_sessions(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    fran = person().page
    fran.goto(server.url + "/")
    fran.get_by_label("What are you deciding?").fill("Queue for the billing jobs")
    fran.get_by_label("Your name").fill("Fran")
    fran.get_by_role("button", name="Create session").click()
    expect(fran.get_by_test_id("facilitator-bar")).to_be_visible()
    expect(fran.get_by_test_id("presence")).to_contain_text("Fran")
    session_id = fran.url.rsplit("/", 1)[1]

    # Someone else's session, joined from a link.
    _, other_url = room(server, title="Mobile backend")
    join(fran, other_url, "Fran")

    fran.goto(server.url + "/")
    recent = fran.get_by_test_id("recent")
    expect(recent).to_be_visible()
    items = recent.locator(".recent__item")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text("Mobile backend")
    expect(items.nth(0)).to_contain_text("You joined")
    expect(items.nth(1)).to_contain_text("Queue for the billing jobs")
    expect(items.nth(1)).to_contain_text("You ran it")
    expect(items.nth(1)).to_contain_text("In progress")
    # The name is offered again for the next session.
    expect(fran.get_by_label("Your name")).to_have_value("Fran")

    items.nth(0).get_by_role("button", name="Forget “Mobile backend”").click()
    expect(items).to_have_count(1)
    items.nth(0).get_by_role("link").click()
    expect(fran).to_have_url(re.compile(f"/s/{session_id}$"))
    expect(fran.get_by_test_id("facilitator-bar")).to_be_visible()


def test_the_join_form_says_how_this_session_shows_scores(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    page = person(NARROW).page
    _, hidden = room(server)
    page.goto(hidden)
    expect(page.locator("#join-lead")).to_contain_text("stay private until the reveal")
    _, live = room(server, mode="open")
    page.goto(live)
    expect(page.locator("#join-lead")).to_contain_text("sees the scores as they come in")
    _, anonymous = room(server, mode="open", anonymous=True)
    page.goto(anonymous)
    expect(page.locator("#join-lead")).to_contain_text("never who gave which")


@pytest.mark.parametrize("lang", ["en", "de"])
def test_on_a_small_phone_the_open_controls_keep_to_a_quarter_and_hide_no_focus(
    server: LiveServer, person: Callable[..., Person], lang: str
) -> None:
    created, url = room(server)
    fran = person({"width": 320, "height": 568}).page
    join(fran, f"{url}?lang={lang}#f={created['facilitator_token']}", "Fran")
    ana = person().page
    join(ana, url, "Ana")
    fran.locator("#facilitator-bar > summary").click()
    expect(fran.locator("#facilitator-bar")).to_have_attribute("open", "")
    fran.get_by_test_id("control-open-realtime").click()
    expect(fran.get_by_test_id("case-realtime")).to_have_attribute("data-status", "voting")
    height = fran.get_by_test_id("roombar").evaluate("bar => bar.getBoundingClientRect().height")
    assert height <= 568 / 4, f"the bar takes {height:.0f} px of 568"
    # ...and the controls are in it, in view, not scrolled away inside it.
    first = fran.get_by_test_id("control-open_all").bounding_box()
    bar = fran.get_by_test_id("roombar").bounding_box()
    assert first is not None and bar is not None
    assert first["y"] + first["height"] <= bar["y"] + bar["height"] + 1, (first, bar)

    fran.evaluate("() => window.scrollTo(0, 0)")
    hidden = []
    for stop in range(70):
        fran.keyboard.press("Tab")
        covered = fran.evaluate(
            """() => {
              const el = document.activeElement;
              const bar = document.getElementById("roombar");
              if (!el || el === document.body || bar.contains(el)) return null;
              const a = el.getBoundingClientRect(), b = bar.getBoundingClientRect();
              const under = a.bottom > b.top + 1 && a.top < b.bottom - 1;
              return under ? `${el.tagName}#${el.id}.${el.className} ${a.top}<${b.bottom}` : null;
            }"""
        )
        if covered:
            hidden.append((stop, covered))
    assert hidden == [], hidden


def test_a_voter_is_brought_to_the_question_just_opened_unless_they_looked_away(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created, url = room(server)
    fran = facilitate(person(), created)
    ana = person(PHONE, reduced_motion="reduce").page
    join(ana, url, "Ana")
    last = ana.get_by_test_id("case-python_team")
    expect(last).not_to_be_in_viewport()
    fran.get_by_test_id("control-open-python_team").click()
    expect(last).to_be_in_viewport()

    # Ana scrolls back up to read something else: the next question does not pull her away.
    ana.evaluate("() => window.scrollTo(0, 0)")
    fran.get_by_test_id("control-open-data_model").click()
    expect(ana.get_by_test_id("case-data_model")).to_have_attribute("data-status", "voting")
    expect(ana.get_by_test_id("case-data_model")).not_to_be_in_viewport()
    assert ana.evaluate("() => window.scrollY") == 0


def test_once_every_question_is_revealed_the_room_says_what_is_left(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    _created, _url, fran, ana = fran_and_ana(server, person)
    fran.get_by_test_id("control-open_all").click()
    fran.get_by_test_id("control-reveal_all").click()
    for page in (fran, ana):
        expect(page.get_by_test_id("waiting")).to_contain_text("Every question has been revealed")
        expect(page.get_by_test_id("waiting")).not_to_contain_text("Open a question below")
    # The bar shows the news of the reveal for a while, then where the session stands.
    status = {page: page.get_by_test_id("roombar-status") for page in (fran, ana)}
    expect(status[fran]).to_have_text(
        "Every question has been revealed. Record the decision or finish.", timeout=15_000
    )
    expect(status[ana]).to_have_text(
        "Every question has been revealed. Waiting for Fran to finish.", timeout=15_000
    )
    expect(ana.get_by_test_id("waiting")).not_to_contain_text("open the next question")


def test_a_ballot_of_someone_who_left_keeps_their_name(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    _created, _url, fran, ana = fran_and_ana(server, person)
    fran.get_by_test_id("control-open-realtime").click()
    ana.get_by_test_id("score-realtime-3").click()
    expect(fran.get_by_test_id("votes-realtime")).to_have_text("1 of 2 voted")
    ana.get_by_test_id("leave").click()
    ana.get_by_test_id("confirm-ok").click()
    expect(fran.get_by_test_id("presence")).not_to_contain_text("Ana")
    # Her ballot still counts, and the count stays true: 1 of 2, not 1 of 1.
    expect(fran.get_by_test_id("votes-realtime")).to_have_text("1 of 2 voted")
    fran.get_by_test_id("score-realtime-1").click()
    fran.get_by_test_id("control-reveal-realtime").click()
    ballots = fran.get_by_test_id("case-realtime").locator('[data-role="ballots"]')
    expect(ballots).to_contain_text("Ana (left): 3")


def test_the_small_things_people_noticed(server: LiveServer, person: Callable[..., Person]) -> None:
    created, url = room(server)
    # Before joining there is no connection to report, and a full name field says so.
    ana = person().page
    ana.goto(url)
    expect(ana.get_by_test_id("join-name")).to_be_visible()
    expect(ana.get_by_test_id("connection")).to_be_hidden()
    ana.get_by_test_id("join-name").fill("A" * 40)
    expect(ana.locator("#join-name-limit")).to_have_text("That's the limit: 40 characters.")
    ana.get_by_test_id("join-name").fill("Ana")
    expect(ana.locator("#join-name-limit")).to_be_hidden()
    ana.get_by_test_id("join-submit").click()
    expect(ana.get_by_test_id("connection")).to_have_attribute("data-state", "connected")

    # The invitation's link is shown whole at 1280 px, not cut at its box's edge.
    fran = facilitate(person({"width": 1280, "height": 900}), created)
    box = fran.locator("#join-url")
    assert box.evaluate(
        "el => el.scrollWidth <= el.clientWidth && el.scrollHeight <= el.clientHeight"
    )

    # On a touch screen the keyboard hint stays out of the way.
    phone = person(PHONE, has_touch=True, is_mobile=True).page
    join(phone, url, "Pia")
    expect(phone.locator(".hint-keys")).to_be_hidden()
    expect(ana.locator(".hint-keys")).to_be_visible()

    # Weak agreement after the end: no more advice to re-vote, and no invitation.
    fran.get_by_test_id("control-open-realtime").click()
    for page, score in ((fran, 0), (ana, 4), (phone, 2)):
        page.get_by_test_id(f"score-realtime-{score}").click()
    fran.get_by_test_id("control-reveal-realtime").click()
    expect(fran.locator("#rec-contested .while-open")).to_be_visible()
    fran.get_by_test_id("control-finish").click()
    fran.get_by_test_id("control-finish").click()
    expect(fran.locator("#room-status")).to_have_text("Finished")
    expect(fran.locator("#invite")).to_be_hidden()
    expect(fran.locator("#rec-contested .while-open")).to_be_hidden()
    expect(fran.locator("#rec-contested .once-finished")).to_be_visible()
    expect(fran.get_by_test_id("case-realtime")).not_to_contain_text("worth a re-vote")
