"""An anonymous session in a real browser: the room counts votes and never names who voted,
results show only once three people scored a question, and one closed with fewer says so."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from tests.e2e.checks import assert_no_sideways_scroll
from tests.e2e.conftest import Person, join
from tests.live import LiveServer, create_session

pytestmark = pytest.mark.e2e

NARROW: ViewportSize = {"width": 320, "height": 640}
BIG_SCREEN: ViewportSize = {"width": 1280, "height": 720}


def anonymous_room(
    server: LiveServer, person: Callable[..., Person], *names: str, **options: Any
) -> tuple[dict[str, Any], Page, list[Page]]:
    """A new anonymous session run by Fran (on a narrow screen), with `names` joined."""
    created = create_session(server.url, anonymous=True)
    fran = person(NARROW).page
    join(fran, created["facilitator_url"], "Fran")
    others = []
    for name in names:
        page = person(**options).page
        join(page, created["join_url"], name)
        others.append(page)
    return created, fran, others


def toolbar(page: Page) -> Page:
    """The facilitator's controls unfolded (on a phone they fold away under their summary)."""
    bar = page.get_by_test_id("facilitator-bar")
    if bar.get_attribute("open") is None:
        bar.locator("summary").click()
    return page


def test_the_room_counts_votes_names_nobody_and_reveals_from_three_scores(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    _created, fran, (ana, ben, cai) = anonymous_room(server, person, "Ana", "Ben", "Cai")
    fran.get_by_test_id("control-open-realtime").click()
    # The facilitator is told the rule before trying; the others don't need it.
    expect(fran.get_by_test_id("crowd-hint-realtime")).to_contain_text(
        "Results show once at least 3 people have scored this question (skips don't count)."
    )
    expect(ana.get_by_test_id("crowd-hint-realtime")).to_be_hidden()

    ana.get_by_test_id("score-realtime-3").click()
    ben.get_by_test_id("score-realtime-2").click()
    for page in (fran, ana, cai):
        expect(page.get_by_test_id("votes-realtime")).to_have_text("2 of 4 voted")

    # Two scores are not enough: the refusal shows by the button, readable on a phone.
    fran.get_by_test_id("control-reveal-realtime").click()
    refusal = fran.get_by_test_id("control-error-realtime")
    expect(refusal).to_be_visible()
    expect(refusal).to_contain_text("at least 3 people have scored the question")
    expect(refusal).to_contain_text("so far 2 have")
    expect(refusal).to_be_in_viewport()
    assert_no_sideways_scroll(fran)
    expect(fran.get_by_test_id("results-realtime")).to_be_hidden()

    # A reminder reaches whoever has no ballot, by their own browser's word.
    toolbar(fran).get_by_test_id("control-nudge").click()
    expect(cai.get_by_test_id("nudge-realtime")).to_be_visible()
    expect(ana.get_by_test_id("nudge-realtime")).to_be_hidden()

    cai.get_by_test_id("score-realtime-4").click()
    for page in (fran, ana, ben, cai):
        expect(page.get_by_test_id("votes-realtime")).to_have_text("3 of 4 voted")
        # Nobody is told who voted: no names waiting, no per-person tally.
        card = page.get_by_test_id("case-realtime")
        for name in ("Ana", "Ben", "Cai", "Fran"):
            expect(card).not_to_contain_text(name)
        expect(page.get_by_test_id("presence")).not_to_contain_text("scored")
    # My choice stays mine though the room's list of people never names me as voted.
    expect(ana.get_by_test_id("choice-realtime")).to_contain_text("Your score: 3")
    ana.reload()
    expect(ana.get_by_test_id("choice-realtime")).to_contain_text("Your score: 3")

    fran.get_by_test_id("control-reveal-realtime").click()
    for page in (fran, ana):
        results = page.get_by_test_id("results-realtime")
        expect(results).to_be_visible()
        expect(results.locator(".histogram__count")).to_have_text(["0", "0", "1", "1", "1"])
        expect(results.locator(".ballots")).to_be_hidden()
    expect(refusal).to_be_hidden()
    expect(ana.get_by_test_id("case-realtime").locator('[data-role="mine"]')).to_have_text(
        "You scored 3 (Clearly)."
    )


def test_a_question_closed_with_too_few_scores_says_so_and_stays_closed(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created, fran, (ana,) = anonymous_room(server, person, "Ana")
    screen = person(BIG_SCREEN).page
    screen.goto(f"{server.url}/s/{created['id']}/present")
    expect(screen.get_by_test_id("present")).to_have_attribute("data-view", "waiting")

    fran.get_by_test_id("control-open-realtime").click()
    ana.get_by_test_id("score-realtime-3").click()
    expect(fran.get_by_test_id("votes-realtime")).to_have_text("1 of 2 voted")
    fran.get_by_test_id("control-close-realtime").click()

    sentence = "Voting closed without results: fewer than 3 people scored this question."
    for page in (fran, ana):
        expect(page.get_by_test_id("withheld-realtime")).to_have_text(sentence)
        expect(page.get_by_test_id("results-realtime")).to_be_hidden()
        expect(page.get_by_test_id("case-realtime").locator('[data-role="status"]')).to_have_text(
            "Closed"
        )
    expect(ana.get_by_test_id("roombar-status")).to_have_text(
        "Voting closed without results: Live updates are core."
    )
    expect(screen.get_by_test_id("present")).to_have_attribute("data-view", "results")
    expect(screen.get_by_test_id("results")).to_contain_text(sentence)
    expect(screen.locator("#results-title")).to_have_text("Voting closed")
    # No scores to go on, so no recommendation.
    expect(screen.get_by_test_id("recommendation")).to_be_hidden()

    # Closing is a lock: final, so no re-vote is offered (a countdown that ends is not final).
    expect(fran.get_by_test_id("control-revote-realtime")).to_be_hidden()
    assert_no_sideways_scroll(fran)
