"""How sure the verdict is, in the browser: the win share, what would flip it, and rounds side by
side."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Person, join
from tests.live import LiveServer, create_session

pytestmark = pytest.mark.e2e

FLIP = "Django would win if \u201cRaw speed is critical\u201d were 1 instead of 2."


def scored(page: Page, case: str, score: int) -> None:
    page.get_by_test_id(f"score-{case}-{score}").click()
    expect(page.get_by_test_id(f"choice-{case}")).to_contain_text(f"Your score: {score}")


def test_the_panel_says_how_sure_and_what_would_flip_it(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created = create_session(server.url)
    url = f"{server.url}/s/{created['id']}"
    fran = person().page
    join(fran, created["facilitator_url"], "Fran")
    team = {"Fran": fran}
    for name in ("Ana", "Ben", "Cai"):
        team[name] = person().page
        join(team[name], url, name)
    fran.get_by_test_id("control-open-performance").click()
    fran.get_by_test_id("control-open-data_model").click()
    # Half the team finds raw speed critical, half not at all; all agree on the data model.
    for (_, page), speed in zip(team.items(), [0, 4, 0, 4], strict=True):
        scored(page, "performance", speed)
        scored(page, "data_model", 2)
    fran.get_by_test_id("control-reveal_all").click()

    ana = team["Ana"]
    # Go and Rust weigh raw speed alike, and nothing else revealed sets them apart: a tie, said
    # as one (not "Rust cannot come first"), with the resamples' wins shared between them.
    expect(ana.get_by_test_id("verdict")).to_have_text(
        "Go and Rust score the same: the team's scores cannot separate them yet."
    )
    sure = ana.get_by_test_id("rec-sure")
    expect(sure).to_have_attribute("data-confidence", "tied")
    expect(sure).to_contain_text("A tie: Go and Rust score the same")
    flip = ana.get_by_test_id("rec-flip")
    expect(flip).to_contain_text("only questions where they differ can separate them")
    expect(flip).not_to_contain_text("cannot come first")
    ranking = ana.get_by_test_id("ranking")
    expect(ranking.locator(".ranking__share").first).to_have_text(re.compile(r"^ \d+%$"))
    ranking.locator('details[data-stack="rust"] summary').click()
    expect(ranking.locator('.ranking__odds[data-stack="rust"]')).to_contain_text("Level with Go")
    ranking.locator('details[data-stack="django"] summary').click()
    # Django is not the runner-up: what would put it first is worked out when asked.
    odds = ranking.locator('.ranking__odds[data-stack="django"]')
    expect(odds).not_to_contain_text(FLIP)
    odds.get_by_role("button", name="What would put it first?").click()
    expect(odds).to_contain_text(FLIP)
    expect(odds.get_by_role("button")).to_have_count(0)

    # The printable record says the same, and where each stack stands.
    ana.goto(f"{url}/results")
    expect(ana.get_by_test_id("sure")).to_contain_text("A tie: Go and Rust score the same")
    expect(ana.locator('[data-testid="how-sure"] tr[data-stack="django"]')).to_contain_text(FLIP)
    expect(ana.locator('[data-testid="how-sure"] tr[data-stack="rust"]')).to_contain_text(
        "Level with Go"
    )


def test_a_revote_shows_round_two_beside_round_one(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created = create_session(server.url)
    url = f"{server.url}/s/{created['id']}"
    fran = person().page
    join(fran, created["facilitator_url"], "Fran")
    ana = person().page
    join(ana, url, "Ana")
    fran.get_by_test_id("control-open-realtime").click()
    scored(fran, "realtime", 0)
    scored(ana, "realtime", 4)
    fran.get_by_test_id("control-reveal-realtime").click()
    fran.get_by_test_id("control-revote-realtime").click()
    scored(fran, "realtime", 3)
    scored(ana, "realtime", 4)
    fran.get_by_test_id("control-reveal-realtime").click()

    history = ana.get_by_test_id("history-realtime").locator("li")
    expect(history).to_have_count(2)
    expect(history.nth(0)).to_contain_text("This round: Round 2: median 3.5")
    # The list holds this round too, so its title no longer says "earlier".
    title = ana.get_by_test_id("history-realtime").get_by_role("heading")
    expect(title).to_have_text("Every round")
    expect(history.nth(0)).to_contain_text("agreement grew by")
    expect(history.nth(1)).to_contain_text("Round 1: median 2")


def test_two_voters_are_too_few_for_a_percentage(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created = create_session(server.url)
    fran = person().page
    join(fran, created["facilitator_url"], "Fran")
    ana = person().page
    join(ana, f"{server.url}/s/{created['id']}", "Ana")
    fran.get_by_test_id("control-open-realtime").click()
    scored(fran, "realtime", 1)
    scored(ana, "realtime", 3)
    fran.get_by_test_id("control-reveal-realtime").click()
    sure = ana.get_by_test_id("rec-sure")
    expect(sure).to_have_attribute("data-confidence", "too_few")
    expect(sure).to_contain_text("Too few scores to say how sure this is")
    expect(sure).not_to_contain_text("%")
    expect(ana.get_by_test_id("ranking").locator(".ranking__share")).to_have_count(0)
    expect(ana.locator("#recommendation")).not_to_contain_text("A clear result")
    record = ana.context.request.get(f"{server.url}/api/sessions/{created['id']}/results.md").text()
    assert "Confidence: too few scores to tell." in record
    ana.goto(f"{server.url}/s/{created['id']}/results")
    expect(ana.get_by_test_id("sure")).to_contain_text("Too few scores")
