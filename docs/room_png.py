"""Make docs/room.png, the README's picture of a room: a session of five run in a real server,
three questions revealed, seen by its facilitator in Chromium at 1280 px.

    python docs/room_png.py          (needs the [test] extra and /usr/bin/chromium)
"""

from __future__ import annotations

import asyncio
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.live import create_session, join, live_server

OUT = Path(__file__).with_name("room.png")
SCORES = {
    "realtime": [4, 3, 4, 3],
    "event_driven": [3, 4, 2, 3],
    "python_team": [1, 2, None, 1],
}


async def others_vote(url: str, session_id: str) -> None:
    people = [
        await join(url, {"session": session_id, "name": name})
        for name in ("Ana", "Ben", "Chidi", "Dara")
    ]
    for case, scores in SCORES.items():
        for member, score in zip(people, scores, strict=True):
            await member.vote(case, score, reason="We push live prices" if score == 4 else None)
    for member in people:
        await member.client.disconnect()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, live_server(Path(tmp)) as server:
        created = create_session(server.url, title="Pricing service: which stack?")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(created["facilitator_url"])
            page.get_by_test_id("join-name").fill("Fran")
            page.get_by_test_id("join-submit").click()
            expect(page.get_by_test_id("facilitator-bar")).to_be_visible()
            for case in SCORES:
                page.get_by_test_id(f"control-open-{case}").click()
                expect(page.get_by_test_id(f"case-{case}")).to_have_attribute(
                    "data-status", "voting"
                )
            # (in a thread of its own: sync Playwright's event loop runs in this one)
            with ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, others_vote(server.url, created["id"])).result()
            for case, score in (("realtime", 4), ("event_driven", 3), ("python_team", 1)):
                page.get_by_test_id(f"score-{case}-{score}").click()
                page.get_by_test_id(f"control-reveal-{case}").click()
            expect(page.get_by_test_id("verdict")).not_to_be_empty()
            page.evaluate("() => window.scrollTo(0, 0)")
            page.screenshot(path=str(OUT), full_page=False)
            browser.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
