"""The template editor in a real browser: edit a set, see the server's checks, export, use it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Locator, Page, ViewportSize, expect

from tests.e2e.conftest import Person, join
from tests.live import LiveServer

pytestmark = pytest.mark.e2e

NARROW: ViewportSize = {"width": 320, "height": 720}
SMALL_PHONE: ViewportSize = {"width": 375, "height": 812}


def open_editor(page: Page, url: str) -> None:
    page.goto(url + "/")
    page.get_by_test_id("open-editor").click()
    page.wait_for_url(re.compile(r"/templates/new$"))
    expect(page.get_by_test_id("check-status")).to_have_attribute("data-state", "ok")


def case_card(page: Page, number: int) -> Locator:
    return page.get_by_test_id("case").nth(number - 1)


def no_sideways_scroll(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"


def serious_axe_violations(page: Page) -> list[str]:
    results = Axe().run(page)
    found: list[str] = [
        f"{v['id']}: {v['help']} ({len(v['nodes'])})"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    return found


def test_build_a_set_from_the_django_one_check_export_and_run_it(
    server: LiveServer, person: Callable[..., Person], output_dir: Path
) -> None:
    # The checks of a set with a mistake are answers, not failed requests: the console stays
    # clean (the test fails on any console error).
    author = person()
    page = author.page
    open_editor(page, server.url)

    # The editor starts from the built-in set; loading it again is explicit too.
    page.get_by_test_id("load-builtin").click()
    expect(page.get_by_test_id("start-status")).to_contain_text("Loaded")
    expect(page.get_by_label("Title", exact=True)).to_have_value(
        "Is Django right for this project?"
    )
    expect(page.get_by_test_id("case")).to_have_count(11)

    # Rename the first question.
    first = case_card(page, 1)
    first.get_by_label("Question", exact=True).fill("Live features matter most")

    # Add one: it lands at the end, focused, with an id made from its title.
    page.get_by_test_id("add-case").click()
    expect(page.get_by_test_id("case")).to_have_count(12)
    added = case_card(page, 12)
    title = added.get_by_label("Question", exact=True)
    expect(title).to_be_focused()
    page.keyboard.type("Strict compliance rules apply")
    expect(added.get_by_label("Id")).to_have_value("strict_compliance_rules_apply")
    added.get_by_label("Go", exact=True).fill("-1")
    added.get_by_label("Django", exact=True).fill("2")

    # Emptying the title: the server's rule shows next to the field and in the summary.
    title.fill("")
    expect(title).to_have_attribute("aria-invalid", "true")
    error = added.locator(".editor__error")
    expect(error).to_have_count(1)
    expect(error).to_contain_text("must be text of 1 to 120 characters")
    described = title.get_attribute("aria-describedby") or ""
    assert error.get_attribute("id") in described.split()
    expect(page.get_by_test_id("check-status")).to_have_text("1 thing to fix:")
    expect(page.get_by_test_id("problems")).to_contain_text("Question 12 · Question")
    # Blank is not empty, and the server says so too.
    title.fill("   ")
    expect(error).to_contain_text("must not be blank")
    # The summary's link takes the keyboard to the field.
    page.get_by_test_id("problems").get_by_role("link").focus()
    page.keyboard.press("Enter")
    expect(title).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("Strict compliance rules apply")
    expect(title).not_to_have_attribute("aria-invalid", "true")
    expect(error).to_have_count(0)
    expect(page.get_by_test_id("check-status")).to_have_attribute("data-state", "ok")

    # Moving a question by keyboard keeps focus on the control that moved it.
    added.get_by_role("button", name="Move question 12 up").click()
    moved = case_card(page, 11)
    expect(moved.get_by_label("Question", exact=True)).to_have_value(
        "Strict compliance rules apply"
    )
    expect(moved.get_by_role("button", name="Move question 11 up")).to_be_focused()
    moved.get_by_role("button", name="Move question 11 down").click()
    expect(case_card(page, 12).get_by_label("Question", exact=True)).to_have_value(
        "Strict compliance rules apply"
    )

    # A reload keeps the draft.
    page.reload()
    expect(page.get_by_test_id("start-status")).to_contain_text("draft from last time")
    expect(case_card(page, 1).get_by_label("Question", exact=True)).to_have_value(
        "Live features matter most"
    )
    expect(page.get_by_test_id("case")).to_have_count(12)
    expect(page.get_by_test_id("check-status")).to_have_attribute("data-state", "ok")

    assert serious_axe_violations(page) == []
    page.screenshot(path=str(output_dir / "editor-desktop.png"), full_page=True)

    # Export: a file named after the set, holding the edits.
    with page.expect_download() as caught:
        page.get_by_test_id("export").click()
    download = caught.value
    assert download.suggested_filename == "stackvote-template-is-django-right-for-this-project.json"
    exported = json.loads(Path(download.path()).read_text())
    assert exported["title"] == "Is Django right for this project?"
    assert exported["cases"][0] == {
        "id": "realtime",
        "title": "Live features matter most",
        "help": (
            "Chat, live dashboards, multiplayer play or push notifications are what people "
            "come for."
        ),
        "fit": {"django": -2, "flask": 1, "node": 2, "go": 2, "phoenix": 2},
    }
    assert exported["cases"][-1] == {
        "id": "strict_compliance_rules_apply",
        "title": "Strict compliance rules apply",
        "fit": {"django": 2, "go": -1},
    }
    assert exported["favourite"] == "django"
    assert len(exported["cases"]) == 12

    # A session from the set: the room shows the new and renamed questions.
    page.get_by_label("What are you deciding?").fill("Our compliance portal")
    page.get_by_role("button", name="Create session").click()
    page.wait_for_url(re.compile(r"/s/[^/#]+$"))
    join(page, page.url, "Fran")
    expect(page.locator("#room-title")).to_have_text("Our compliance portal")
    expect(page.get_by_test_id("case-strict_compliance_rules_apply")).to_contain_text(
        "Strict compliance rules apply"
    )
    expect(page.get_by_test_id("case-realtime")).to_contain_text("Live features matter most")


def test_a_blank_set_and_a_pasted_one_on_a_narrow_screen(
    server: LiveServer, person: Callable[..., Person], output_dir: Path
) -> None:
    author = person(NARROW)
    page = author.page
    open_editor(page, server.url)
    no_sideways_scroll(page)

    page.get_by_role("button", name="Start blank").click()
    expect(page.get_by_label("Title", exact=True)).to_be_focused()
    expect(page.get_by_test_id("check-status")).to_have_attribute("data-state", "problems")
    problems = page.get_by_test_id("problems")
    expect(problems).to_contain_text("Title: must be text of 1 to 120 characters")
    expect(problems).to_contain_text("Stack 1 · Name")
    no_sideways_scroll(page)

    # Undo brings the previous draft back.
    page.get_by_role("button", name="Undo").click()
    expect(page.get_by_label("Title", exact=True)).to_have_value(
        "Is Django right for this project?"
    )

    # A pasted set with a mistake: every problem is named where it is.
    pasted = {
        "title": "Which queue?",
        "stacks": [{"id": "kafka", "name": "Kafka"}, {"id": "kafka", "name": "RabbitMQ"}],
        "cases": [
            {"id": "replay", "title": "We replay old events", "fit": {"kafka": 3}},
            {"id": "routing", "title": "Rich routing rules"},
        ],
    }
    page.get_by_text("Paste JSON instead").click()
    page.get_by_label("Question set as JSON").fill(json.dumps(pasted))
    page.get_by_role("button", name="Load pasted JSON").click()
    expect(page.get_by_test_id("case")).to_have_count(2)
    expect(problems.get_by_role("listitem")).to_have_count(2)
    expect(problems).to_contain_text("Stack 2 · Id: another stack already has this id")
    expect(problems).to_contain_text("must be a number from \u22122 to 2")
    weight = case_card(page, 1).get_by_label("Kafka")
    expect(weight).to_have_attribute("aria-invalid", "true")

    # Creating is held back until the set is fixed.
    page.get_by_role("button", name="Create session").click()
    expect(page.locator("#session-error")).to_contain_text("Fix the 2 things")
    assert page.url.endswith("/templates/new")

    page.get_by_label("Id of stack 2").fill("rabbitmq")
    weight.fill("2")
    expect(page.get_by_test_id("check-status")).to_have_attribute("data-state", "ok")
    no_sideways_scroll(page)
    page.screenshot(path=str(output_dir / "editor-320.png"), full_page=True)
    page.set_viewport_size(SMALL_PHONE)
    no_sideways_scroll(page)
    page.screenshot(path=str(output_dir / "editor-375.png"), full_page=True)
    assert serious_axe_violations(page) == []
