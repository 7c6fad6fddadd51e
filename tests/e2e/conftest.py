"""Browser fixtures for the end-to-end tests: one headless Chromium, a fresh context per person."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.live import missing

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = Path(__file__).resolve().parent / "output"
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}


@dataclass
class Person:
    """One person at their own browser: a page plus whatever went wrong in it."""

    page: Page
    context: BrowserContext
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    # Console errors a test provokes on purpose (e.g. a 400 from a bad request).
    expected: list[str] = field(default_factory=list)

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(x in e for x in self.expected)]


# Module scope, not session: while sync Playwright runs, its event loop counts as the thread's
# running loop, which would break every asyncio test collected after this directory.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        missing(
            "BROWSER", f"the browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def new_person(browser: Browser, viewport: ViewportSize | None = None, **options: Any) -> Person:
    """A person with a separate browser context (own storage, own connection) who notes what
    goes wrong in their page. `options`: more of Playwright's context options (color_scheme,
    storage_state...)."""
    context = browser.new_context(viewport=viewport or DESKTOP, **options)
    context.set_default_timeout(10_000)
    page = context.new_page()
    someone = Person(page=page, context=context)

    def on_console(message: ConsoleMessage) -> None:
        # CSP violations and script errors show up as console errors.
        if message.type == "error":
            someone.errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: someone.errors.append(f"uncaught: {exc}"))

    def on_dialog(dialog: Dialog) -> None:
        someone.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return someone


def problems_of(people: list[Person]) -> list[tuple[str, str]]:
    """What went wrong in these people's pages: unexpected console errors, and any dialog
    (stackvote never opens one; one means someone's text ran as script)."""
    problems = [(p.page.url, e) for p in people for e in p.unexpected_errors()]
    problems += [(p.page.url, f"dialog: {d}") for p in people for d in p.dialogs]
    return problems


@pytest.fixture
def person(browser: Browser) -> Iterator[Callable[..., Person]]:
    """Make people (see new_person); the test fails if their browsers reported errors."""
    people: list[Person] = []

    def make(viewport: ViewportSize | None = None, **options: Any) -> Person:
        someone = new_person(browser, viewport, **options)
        people.append(someone)
        return someone

    yield make
    problems = problems_of(people)
    for someone in people:
        someone.context.close()
    assert not problems, f"the browser reported errors: {problems}"


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT


def join(page: Page, url: str, name: str, *, spectator: bool = False) -> None:
    """Open a room link and join it under `name`, waiting until the page is live."""
    page.goto(url)
    page.get_by_test_id("join-name").fill(name)
    if spectator:
        page.get_by_test_id("join-spectator").check()
    page.get_by_test_id("join-submit").click()
    expect(page.locator("#room")).to_have_attribute("data-state", "joined")
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "connected")


def api_state(base_url: str, session_id: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/api/sessions/{session_id}")
    response.raise_for_status()
    state: dict[str, Any] = response.json()
    return state
