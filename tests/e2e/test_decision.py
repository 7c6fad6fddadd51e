"""The team's decision in a real browser: the facilitator records it once a question is revealed,
everyone in the room and the presenter view see it, the results page and the ADR export carry
it, and a note is shown as the text it is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from tests.e2e.checks import assert_no_sideways_scroll, axe_problems
from tests.e2e.conftest import Person, api_state, join
from tests.live import LiveServer, create_session

pytestmark = pytest.mark.e2e

NARROW: ViewportSize = {"width": 320, "height": 640}
BIG_SCREEN: ViewportSize = {"width": 1280, "height": 720}
NOTE = "The team knows Go.\nWe revisit this after the pilot."


def revealed_room(
    server: LiveServer, person: Callable[..., Person]
) -> tuple[dict[str, Any], Page, Page]:
    """A session run by Fay where Ana and Fay scored the first question and it is revealed."""
    created = create_session(server.url)
    fay = person().page
    join(fay, created["facilitator_url"], "Fay")
    ana = person(NARROW).page
    join(ana, created["join_url"], "Ana")
    fay.get_by_test_id("control-open-realtime").click()
    ana.get_by_test_id("score-realtime-4").click()
    fay.get_by_test_id("score-realtime-3").click()
    expect(fay.get_by_test_id("votes-realtime")).to_have_text("2 of 2 voted")
    fay.get_by_test_id("control-reveal-realtime").click()
    expect(ana.get_by_test_id("verdict")).not_to_be_empty()
    return created, fay, ana


def test_the_facilitator_records_the_decision_and_everyone_sees_it(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created = create_session(server.url)
    fay = person().page
    join(fay, created["facilitator_url"], "Fay")
    ana = person(NARROW).page
    join(ana, created["join_url"], "Ana")
    # Nothing revealed yet: nothing to decide on.
    expect(fay.get_by_test_id("decide")).to_be_hidden()

    fay.get_by_test_id("control-open-realtime").click()
    ana.get_by_test_id("score-realtime-4").click()
    fay.get_by_test_id("score-realtime-3").click()
    fay.get_by_test_id("control-reveal-realtime").click()
    screen = person(BIG_SCREEN).page
    screen.goto(f"{server.url}/s/{created['id']}/present")
    expect(screen.get_by_test_id("recommendation")).to_be_visible()

    form = fay.get_by_test_id("decide")
    expect(form).to_be_visible()
    # No decision yet: the recommended option is chosen, and the form's fields have labels.
    top = api_state(server.url, created["id"])["recommendation"]["ranking"][0]
    choice = fay.get_by_label("What the team chose")
    expect(choice).to_have_value(top["stack"])
    expect(choice.locator("option:checked")).to_have_text(f"{top['name']} (recommended)")
    note = fay.get_by_label("Note", exact=True)
    expect(fay.get_by_test_id("decision")).to_be_hidden()
    # A voter has no form, and nothing to see before the decision.
    expect(ana.get_by_test_id("decide")).to_be_hidden()
    expect(ana.get_by_test_id("decision")).to_be_hidden()

    choice.select_option("go")
    note.fill(NOTE)
    expect(form).to_contain_text(f"{len(NOTE)} of 2000 characters")
    fay.get_by_test_id("decide-submit").click()

    for page in (fay, ana):
        decision = page.get_by_test_id("decision")
        expect(decision).to_contain_text("The team decided: Go")
        expect(decision).to_contain_text("Recorded by Fay")
        # The note keeps its line break; Go is not the recommendation, and that is said.
        expect(page.get_by_test_id("decision-note")).to_have_text(NOTE)
        expect(page.get_by_test_id("decision-differs")).to_have_text(
            f"The scores recommended {top['name']}; the team chose differently."
        )
    assert ana.get_by_test_id("decision-note").inner_text() == NOTE
    expect(ana.get_by_test_id("decide")).to_be_hidden()
    expect(ana.get_by_test_id("roombar-status")).to_have_text("The team decided: Go")
    assert_no_sideways_scroll(ana)
    decided = api_state(server.url, created["id"])["session"]["decision"]
    assert (decided["stack"], decided["note"], decided["by"]) == ("go", NOTE, "Fay")

    # The presenter view shows it large, by the verdict, and still fits the screen.
    expect(screen.get_by_test_id("decision-stack")).to_have_text("Go")
    expect(screen.get_by_test_id("decision-note")).to_have_text(NOTE)
    sizes = screen.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    assert sizes == [BIG_SCREEN["width"], BIG_SCREEN["height"]]

    # The form shows the decision now, to change it.
    expect(choice).to_have_value("go")
    expect(note).to_have_value(NOTE)
    expect(fay.get_by_role("heading", name="Change the decision")).to_be_visible()
    # The form and the decision pass axe's serious and critical rules, for both of them.
    assert axe_problems(fay) == []
    assert axe_problems(ana) == []

    # The ADR export, from the room's decision record, is the accepted decision.
    link = ana.locator(".record").get_by_test_id("export-adr")
    expect(link).to_have_text("Download as ADR")
    with ana.expect_download() as caught:
        link.click()
    download = caught.value
    assert download.suggested_filename == f"stackvote-{created['id']}-adr.md"
    adr = Path(download.path()).read_text()
    assert adr.startswith("---\nstatus: accepted")
    assert 'Chosen option: "Go"' in adr

    # The results page says it too, and offers the ADR beside the other exports.
    ana.goto(f"{server.url}/s/{created['id']}/results")
    record = ana.get_by_test_id("decision")
    expect(record).to_contain_text("The team decided: Go")
    expect(record).to_contain_text("Recorded by Fay.")
    expect(ana.get_by_test_id("export-adr")).to_have_attribute("download", "")
    assert_no_sideways_scroll(ana)


def test_a_note_is_text_and_something_else_needs_one(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    created, fay, ana = revealed_room(server, person)
    fay.get_by_test_id("control-finish").click()
    fay.get_by_test_id("control-finish").click()
    expect(ana.locator("#room-status")).to_have_text("Finished")
    # Still decidable once finished; "Something else" without a note is refused by the form.
    choice = fay.get_by_test_id("decide-stack")
    choice.select_option(label="Something else")
    fay.get_by_test_id("decide-submit").click()
    expect(fay.get_by_test_id("decide-error")).to_have_text(
        "Say what the team decided: pick an option or write a note."
    )
    expect(ana.get_by_test_id("decision")).to_be_hidden()

    # With the keyboard: a note with markup in it, saved by Enter on the button.
    note = fay.get_by_test_id("decide-note")
    note.focus()
    fay.keyboard.type("<b>x</b> & <img src=x onerror=alert(1)>")
    fay.keyboard.press("Tab")
    expect(fay.get_by_test_id("decide-submit")).to_be_focused()
    fay.keyboard.press("Enter")
    expect(fay.get_by_test_id("decide-error")).to_be_empty()

    for page in (fay, ana):
        expect(page.get_by_test_id("decision")).to_contain_text("The team decided: something else")
        shown = page.get_by_test_id("decision-note")
        expect(shown).to_have_text("<b>x</b> & <img src=x onerror=alert(1)>")
        expect(shown.locator("b, img")).to_have_count(0)
    expect(ana.get_by_test_id("roombar-status")).to_contain_text("The team decided: something else")

    screen = person(BIG_SCREEN).page
    screen.goto(f"{server.url}/s/{created['id']}/present")
    expect(screen.get_by_test_id("decision-stack")).to_have_text("Something else")
    expect(screen.get_by_test_id("decision-note")).to_have_text(
        "<b>x</b> & <img src=x onerror=alert(1)>"
    )
    ana.goto(f"{server.url}/s/{created['id']}/results")
    record = ana.get_by_test_id("decision")
    expect(record).to_contain_text("<b>x</b> & <img src=x onerror=alert(1)>")
    expect(record.locator("b, img")).to_have_count(0)


def test_the_decision_in_german(server: LiveServer, person: Callable[..., Person]) -> None:
    created = create_session(server.url)
    german = {"extra_http_headers": {"Accept-Language": "de"}}
    fay = person(NARROW, **german).page
    join(fay, created["facilitator_url"], "Fay")
    fay.get_by_test_id("control-open-realtime").click()
    fay.get_by_test_id("score-realtime-3").click()
    fay.get_by_test_id("control-reveal-realtime").click()
    fay.get_by_label("Wofür sich das Team entschieden hat").select_option("go")
    fay.get_by_label("Notiz", exact=True).fill("Kurz begründet.")
    fay.get_by_test_id("decide-submit").click()
    expect(fay.get_by_test_id("decision")).to_contain_text("Das Team hat entschieden: Go")
    expect(fay.get_by_test_id("decision")).to_contain_text("Festgehalten von Fay")
    expect(fay.locator(".record").get_by_test_id("export-adr")).to_have_text(
        "Als ADR herunterladen"
    )
    assert_no_sideways_scroll(fay)
