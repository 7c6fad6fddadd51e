"""A real browser against a live server: what people see and do in a stackvote session."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PHONE, Person, api_state, join
from tests.live import LiveServer, create_session

pytestmark = pytest.mark.e2e

HOSTILE = "<img src=x onerror=alert(1)>"


def shown(value: float | None) -> str:
    """How the room prints a statistic: 3, 2.5, 0.83, or a dash."""
    if value is None:
        return "\u2013"
    if float(value).is_integer():
        return str(int(value))
    return str(round(value, 2))


def test_creating_a_session_lands_the_creator_in_the_room_as_facilitator(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    page = person().page
    page.goto(server.url + "/")
    page.get_by_label("What are you deciding?").fill("Backend for the booking app")
    page.get_by_label("Your name").fill("Fran")
    page.get_by_role("button", name="Create session").click()

    page.wait_for_url(re.compile(r"/s/[^/#]+$"))
    assert "#" not in page.url, "the facilitator token must leave the address bar"
    session_id = page.url.rsplit("/", 1)[1]
    stored = page.evaluate(f"localStorage.getItem('stackvote:{session_id}:facilitator')")
    assert stored, "the facilitator token is kept for reconnects"

    # The creator is in the room at once, as its facilitator: no second form to fill in.
    expect(page.locator("#room")).to_have_attribute("data-state", "joined")
    expect(page.locator("#join")).to_be_hidden()
    expect(page.get_by_test_id("control-open_all")).to_be_visible()
    expect(page.get_by_test_id("presence")).to_contain_text("Fran")
    expect(page.get_by_test_id("presence")).to_contain_text("Facilitator")
    expect(page.locator("#room-title")).to_have_text("Backend for the booking app")
    private_link = page.locator("#facilitator-url").input_value()
    assert private_link.endswith(f"/s/{session_id}#f={stored}")

    # The invite link goes to the clipboard, and the button says so.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_test_id("copy-link").click()
    expect(page.get_by_test_id("copy-link")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == page.url
    expect(page.get_by_test_id("qr")).to_have_attribute("alt", re.compile("QR code"))


def test_bad_custom_template_is_explained_without_sending(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    author = person()
    author.expected.append("status of 400")
    page = author.page
    page.goto(server.url + "/")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

    page.get_by_label("What are you deciding?").fill("Which queue?")
    page.get_by_label("Your name").fill("Fran")
    page.get_by_label("Question set").select_option("__custom__")
    page.get_by_label("Your template (JSON)").fill('{"title": "oops",')
    page.get_by_role("button", name="Create session").click()

    expect(page.locator("#create-error")).to_contain_text("isn't valid JSON")
    assert posts == []

    # The server's own reasons reach the form too: every problem, in the editor's words.
    page.get_by_label("Your template (JSON)").fill('{"title": "No cases"}')
    page.get_by_role("button", name="Create session").click()
    expect(page.locator("#create-error")).to_have_text(
        "The template has 2 problems: stacks: is required; cases: is required"
    )
    assert len(posts) == 1
    bad_id = '{"title": "x", "stacks": [{"id": "Bad Id", "name": "n"}], "cases": []}'
    page.get_by_label("Your template (JSON)").fill(bad_id)
    page.get_by_role("button", name="Create session").click()
    expect(page.locator("#create-error")).to_contain_text("stacks.0.id: must be lower-case letters")
    expect(page.locator("#create-error")).not_to_contain_text("Expected")
    assert "/s/" not in page.url

    # The built-in example is a valid template of its own.
    page.get_by_role("button", name="Insert an example").click()
    page.get_by_role("button", name="Create session").click()
    page.wait_for_url(re.compile(r"/s/[^/#]+$"))
    expect(page.get_by_test_id("case-relations")).to_contain_text("many relations")


def test_a_team_scores_reveals_and_sees_the_servers_numbers(
    server: LiveServer, person: Callable[..., Person], output_dir: Path
) -> None:
    created = create_session(server.url, title="Backend for the booking app")
    session_id = created["id"]

    fran = person()
    join(fran.page, created["facilitator_url"], "Fran")
    ana, ben, cleo = person(), person(), person()
    join(ana.page, created["join_url"], "Ana")
    join(ben.page, created["join_url"], "Ben")
    join(cleo.page, created["join_url"], "Cleo")
    everyone = [fran, ana, ben, cleo]
    for someone in everyone:
        expect(someone.page.get_by_test_id("presence").locator("li")).to_have_count(4)

    # Nothing is open yet, so there is nothing to score.
    expect(ana.page.get_by_test_id("score-realtime-3")).to_be_hidden()
    fran.page.get_by_test_id("control-open_all").click()
    for someone in everyone:
        expect(someone.page.get_by_test_id("votes-realtime")).to_have_text("0 of 4 voted")

    # Buttons for Ana and Cleo, digit keys for Ben; everyone sees the count move.
    ana.page.get_by_test_id("score-realtime-4").click()
    for someone in everyone:
        expect(someone.page.get_by_test_id("votes-realtime")).to_have_text("1 of 4 voted")
    expect(ana.page.get_by_test_id("score-realtime-4")).to_have_attribute("aria-pressed", "true")

    ben.page.get_by_test_id("case-realtime").focus()
    ben.page.keyboard.press("4")
    ben.page.get_by_test_id("case-prototype").focus()
    ben.page.keyboard.press("0")
    ben.page.get_by_test_id("case-content_admin").focus()
    ben.page.keyboard.press("4")
    ben.page.get_by_test_id("case-python_team").focus()
    ben.page.keyboard.press("4")
    expect(ben.page.get_by_test_id("score-prototype-0")).to_have_attribute("aria-pressed", "true")

    ballots = [
        (ana, {"prototype": "1", "content_admin": "2", "python_team": "4"}),
        (cleo, {"realtime": "3", "prototype": "abstain", "content_admin": "0", "python_team": "4"}),
        (fran, {"realtime": "3", "prototype": "1", "content_admin": "1"}),
    ]
    for someone, choices in ballots:
        for case, score in choices.items():
            button = someone.page.get_by_test_id(f"score-{case}-{score}")
            button.click()
            expect(button).to_have_attribute("aria-pressed", "true")

    for someone in everyone:
        page = someone.page
        expect(page.get_by_test_id("votes-realtime")).to_have_text("4 of 4 voted")
        expect(page.get_by_test_id("votes-prototype")).to_have_text("4 of 4 voted")
        expect(page.get_by_test_id("votes-python_team")).to_have_text("3 of 4 voted")
        # Hidden mode: who voted is public, the scores are not.
        expect(page.get_by_test_id("results-realtime")).to_be_hidden()
        expect(page.get_by_test_id("case-realtime").locator(".ballots li")).to_have_count(0)
        expect(page.get_by_test_id("verdict")).to_be_hidden()
    assert all(c["results"] is None for c in api_state(server.url, session_id)["cases"])
    expect(
        fran.page.locator('[data-testid="case-python_team"] [data-role="waiting"]')
    ).to_have_text("Waiting for you.")

    # A reload is the same person with the same choices, not a newcomer.
    ben.page.reload()
    expect(ben.page.locator("#room")).to_have_attribute("data-state", "joined")
    expect(ben.page.get_by_test_id("score-realtime-4")).to_have_attribute("aria-pressed", "true")
    expect(ben.page.get_by_test_id("score-prototype-0")).to_have_attribute("aria-pressed", "true")
    for someone in everyone:
        presence = someone.page.get_by_test_id("presence")
        expect(presence.locator("li")).to_have_count(4)
        expect(presence.locator('li[data-online="true"]')).to_have_count(4)
    assert len(api_state(server.url, session_id)["participants"]) == 4

    fran.page.get_by_test_id("control-reveal_all").click()
    for someone in everyone:
        expect(someone.page.get_by_test_id("results-realtime")).to_be_visible()
        expect(someone.page.get_by_test_id("verdict")).to_be_visible()

    state = api_state(server.url, session_id)
    assert state["recommendation"] is not None
    for someone in everyone:
        page = someone.page
        expect(page.get_by_test_id("verdict")).to_have_text(state["recommendation"]["verdict"])
        ranking = page.get_by_test_id("ranking").locator(".ranking__label")
        expect(ranking).to_have_text([row["name"] for row in state["recommendation"]["ranking"]])
        for case in state["cases"]:
            results = case["results"]
            if not results or not results["n"]:
                continue
            card = page.get_by_test_id(f"case-{case['id']}")
            expect(page.get_by_test_id(f"median-{case['id']}")).to_have_text(
                shown(results["median"])
            )
            expect(page.get_by_test_id(f"consensus-{case['id']}")).to_have_text(
                shown(results["consensus"])
            )
            counts = card.locator(".histogram__count")
            expect(counts).to_have_text([str(n) for n in results["histogram"]])
    realtime = next(c for c in state["cases"] if c["id"] == "realtime")["results"]
    assert realtime["histogram"] == [0, 0, 0, 2, 2]
    # Not anonymous: after the reveal, names go with scores.
    expect(ana.page.get_by_test_id("results-content_admin")).to_contain_text("Ben: 4")
    expect(ana.page.get_by_test_id("results-content_admin")).to_contain_text("You: 2")

    # A contested case links to its card.
    contested = state["recommendation"]["contested"]
    if contested:
        expect(fran.page.locator("#rec-contested")).to_be_visible()

    fran.page.get_by_test_id("ranking").locator("summary").first.click()
    fran.page.screenshot(path=str(output_dir / "room-revealed.png"), full_page=True)
    cleo.page.set_viewport_size(PHONE)
    cleo.page.screenshot(path=str(output_dir / "room-phone.png"), full_page=True)

    # Finishing closes voting for everyone.
    fran.page.get_by_test_id("control-finish").click()
    fran.page.get_by_test_id("control-finish").click()
    for someone in everyone:
        expect(someone.page.locator("#finished-banner")).to_be_visible()
        expect(someone.page.get_by_test_id("control-open-realtime")).to_be_hidden()
    assert api_state(server.url, session_id)["session"]["status"] == "finished"


def test_names_are_shown_as_text_never_markup(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created = create_session(server.url, title=f"Pick a stack {HOSTILE}")
    mallory, fran = person(), person()
    join(fran.page, created["facilitator_url"], "Fran")
    join(mallory.page, created["join_url"], HOSTILE)

    for someone in (fran, mallory):
        page = someone.page
        presence = page.get_by_test_id("presence")
        expect(presence).to_contain_text(HOSTILE)
        expect(page.locator("#room-title")).to_have_text(f"Pick a stack {HOSTILE}")
        assert presence.locator("img").count() == 0
        assert page.locator("main img:not([data-testid=qr])").count() == 0

    fran.page.get_by_test_id("control-open-realtime").click()
    mallory.page.get_by_test_id("score-realtime-2").click()
    expect(
        fran.page.locator('[data-testid="case-realtime"] [data-role="waiting"]')
    ).to_contain_text("Waiting for you")
    fran.page.get_by_test_id("control-reveal-realtime").click()
    expect(fran.page.get_by_test_id("results-realtime")).to_contain_text(f"{HOSTILE}: 2")
    assert fran.page.get_by_test_id("results-realtime").locator("img").count() == 0
    assert not fran.dialogs and not mallory.dialogs


def test_a_taken_name_is_refused_with_a_clear_message(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created = create_session(server.url)
    first, second = person(), person()
    join(first.page, created["join_url"], "Dana")

    second.page.goto(created["join_url"])
    second.page.get_by_test_id("join-name").fill("dana")
    second.page.get_by_test_id("join-submit").click()
    expect(second.page.get_by_test_id("join-error")).to_contain_text("already")
    expect(second.page.locator("#room")).to_have_attribute("data-state", "joining")

    # A spectator watches without score buttons.
    second.page.get_by_test_id("join-name").fill("Eve")
    second.page.get_by_test_id("join-spectator").check()
    second.page.get_by_test_id("join-submit").click()
    expect(second.page.locator("#room")).to_have_attribute("data-state", "joined")
    expect(second.page.get_by_test_id("presence")).to_contain_text("Watching")
    state = json.loads(second.page.evaluate("JSON.stringify(localStorage)"))
    assert any(key.endswith(":me") for key in state)


def test_open_anonymous_session_shows_the_spread_live_without_names(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created = create_session(server.url, mode="open", anonymous=True)
    fran, ana, bo, cy = person(), person(), person(), person()
    join(fran.page, created["facilitator_url"], "Fran")
    for someone, name in ((ana, "Ana"), (bo, "Bo"), (cy, "Cy")):
        join(someone.page, created["join_url"], name)

    fran.page.get_by_test_id("control-open-realtime").click()
    ana.page.get_by_test_id("score-realtime-3").click()
    fran.page.get_by_test_id("score-realtime-1").click()
    # Two votes in, none shown yet: the chart waits for a step of three people, and says so.
    batching = ana.page.get_by_test_id("batching-realtime")
    expect(batching).to_contain_text("2 votes aren't in the chart yet")
    expect(ana.page.get_by_test_id("results-realtime")).to_contain_text("No scores yet")
    bo.page.get_by_test_id("score-realtime-4").click()
    cy.page.get_by_test_id("score-realtime-0").click()
    for someone in (fran, ana):
        results = someone.page.get_by_test_id("results-realtime")
        # Open mode: the spread shows while voting (the first three votes now); anonymous:
        # never who gave what.
        expect(results).to_be_visible()
        expect(results.locator(".histogram__count")).to_have_text(["0", "1", "0", "1", "1"])
        expect(someone.page.get_by_test_id("batching-realtime")).to_contain_text(
            "1 vote isn't in the chart yet"
        )
        expect(results.locator(".ballots")).to_be_hidden()
        expect(results).not_to_contain_text("Ana")
        expect(someone.page.get_by_test_id("median-realtime")).to_have_text("3")

    fran.page.get_by_test_id("control-reveal-realtime").click()
    expect(ana.page.locator('[data-testid="case-realtime"] [data-role="mine"]')).to_have_text(
        "You scored 3 (Clearly)."
    )
    expect(ana.page.get_by_test_id("score-realtime-3")).to_be_hidden()

    # A re-vote starts a new round and forgets everyone's previous choice.
    fran.page.get_by_test_id("control-revote-realtime").click()
    expect(ana.page.locator('[data-testid="case-realtime"] [data-role="round"]')).to_have_text(
        "Round 2"
    )
    expect(ana.page.get_by_test_id("votes-realtime")).to_have_text("0 of 4 voted")
    expect(ana.page.get_by_test_id("score-realtime-3")).to_have_attribute("aria-pressed", "false")
    ana.page.get_by_test_id("case-realtime").focus()
    ana.page.keyboard.press("a")
    expect(ana.page.get_by_test_id("score-realtime-abstain")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(fran.page.get_by_test_id("votes-realtime")).to_have_text("1 of 4 voted")

    # Voting on a question that isn't open is refused politely, not silently.
    ana.page.get_by_test_id("case-prototype").focus()
    ana.page.keyboard.press("2")
    expect(ana.page.locator("#toast")).to_contain_text("isn't open")


def test_the_invite_qr_code_is_drawn(server: LiveServer, person: Callable[..., Person]) -> None:
    created = create_session(server.url)
    page = person().page
    join(page, created["join_url"], "Ana")
    qr = page.get_by_test_id("qr")
    expect(qr).to_be_visible()
    page.wait_for_function("document.querySelector('[data-testid=qr]').complete")
    assert qr.evaluate("img => img.naturalWidth") > 0
