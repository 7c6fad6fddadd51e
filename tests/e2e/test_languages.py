"""A real browser choosing its language: the footer switch, the browser's own language, and the
landing page's script speaking the page's language."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Person, api_state, join
from tests.live import LiveServer, create_session

pytestmark = pytest.mark.e2e


def serious_violations(page: Page) -> list[dict[str, Any]]:
    results = Axe().run(page)
    violations: list[dict[str, Any]] = results.response["violations"]
    return [v for v in violations if v.get("impact") in ("serious", "critical")]


def test_the_footer_switch_turns_the_landing_page_german(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    page = person().page
    page.goto(server.url + "/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    switch = page.get_by_role("navigation", name="Language")
    expect(switch.get_by_role("link", name="English")).to_have_attribute("aria-current", "true")

    switch.get_by_role("link", name="Deutsch").click()
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Wählt euren Stack als Team \N{EN DASH} nicht nach Lautstärke."
    )
    german_switch = page.get_by_role("navigation", name="Sprache")
    expect(german_switch.get_by_role("link", name="Deutsch")).to_have_attribute(
        "aria-current", "true"
    )
    assert "/?lang=de" in page.url

    # The script's own messages (t() in static/js/index.js) are German too.
    page.get_by_role("button", name="Sitzung anlegen").click()
    expect(page.locator("#create-error")).to_have_text(
        "Gib der Sitzung einen Titel, damit alle wissen, was sie bewerten."
    )
    page.get_by_label("Was entscheidet ihr?").fill("Welche Queue?")
    page.get_by_label("Dein Name").fill("Franzi")
    page.get_by_label("Fragenkatalog").select_option("__custom__")
    expect(page.locator("#template-description")).to_have_text(
        "Füg einen eigenen Fragenkatalog als JSON ein."
    )
    page.get_by_label("Deine Vorlage (JSON)").fill('{"title": "kaputt",')
    page.get_by_role("button", name="Sitzung anlegen").click()
    expect(page.locator("#create-error")).to_contain_text("Diese Vorlage ist kein gültiges JSON: ")
    assert serious_violations(page) == []

    # The choice is remembered: a plain address stays German, until English is chosen.
    page.goto(server.url + "/join")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_role("heading", level=1)).to_have_text("Einer Sitzung beitreten")
    page.get_by_role("navigation", name="Sprache").get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Join a session")
    assert re.search(r"/join\?lang=en$", page.url)


def test_a_german_browser_gets_german_pages_and_server_messages(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    someone = person()
    someone.expected.append("status of 400")
    page = someone.page
    page.context.set_extra_http_headers({"Accept-Language": "de-AT,de;q=0.9,en;q=0.5"})
    page.goto(server.url + "/")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    page.get_by_label("Was entscheidet ihr?").fill("Welche Queue?")
    page.get_by_label("Dein Name").fill("Franzi")
    page.get_by_label("Fragenkatalog").select_option("__custom__")
    page.get_by_label("Deine Vorlage (JSON)").fill('{"title": "Ohne Fragen"}')
    page.get_by_role("button", name="Sitzung anlegen").click()
    # The server's refusal, in the page's language, field by field.
    expect(page.locator("#create-error")).to_contain_text("stacks: fehlt; cases: fehlt")
    expect(page.get_by_role("button", name="Sitzung anlegen")).to_be_enabled()


def test_a_german_room_speaks_german_from_the_deck_to_the_verdict(
    server: LiveServer, person: Callable[..., Person]
) -> None:
    # A session made in English (the API's default deck); its people read it in German.
    created = create_session(server.url)
    room_url = f"{server.url}/s/{created['id']}?lang=de"
    fran = person().page
    join(fran, f"{room_url}#f={created['facilitator_token']}", "Franzi")
    anna = person().page
    join(anna, room_url, "Anna")
    title = anna.get_by_test_id("case-realtime").get_by_role("heading", level=3)
    expect(title).to_have_text("Live-Updates sind zentral")
    expect(anna.get_by_test_id("score-realtime-0")).to_have_attribute("title", "0: Gar nicht")
    expect(anna.locator("#case-realtime .scale-key")).to_contain_text("Sehr stark")

    mobile = "Vor allem ein Backend für eine mobile App"
    fran.get_by_test_id("control-open-mobile_backend").click()
    expect(anna.get_by_test_id("roombar-status")).to_contain_text(mobile)
    anna.get_by_test_id("score-mobile_backend-4").click()
    fran.get_by_test_id("score-mobile_backend-3").click()
    fran.get_by_test_id("control-reveal-mobile_backend").click()
    german = f"Zieht Firebase / Supabase statt Django in Betracht: „{mobile}“."
    expect(anna.get_by_test_id("verdict")).to_have_text(german)
    # The API keeps the English sentence; its parts are what the page phrased.
    advice = api_state(server.url, created["id"])["recommendation"]
    assert advice["verdict"] == (
        'Consider Firebase / Supabase instead of Django: "Mostly a backend for a mobile app".'
    )
    assert advice["verdict_parts"]["reasons"] == ["mobile_backend"]

    screen = person().page
    screen.goto(f"{server.url}/s/{created['id']}/present?lang=de")
    expect(screen.get_by_test_id("verdict")).to_have_text(german)
    expect(screen.locator("#view-results")).to_contain_text(mobile)
