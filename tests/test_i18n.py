"""Languages: which one each request and connection gets, German pages and messages, and a
catalogue that keeps up with the text wrapped in templates, scripts and the server."""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
from babel.messages.catalog import Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from starlette.exceptions import StarletteDeprecationWarning

from server import i18n, rules
from server.app import create_app
from server.decks import localized
from server.settings import Settings
from server.store import MemoryStore
from server.text import N_, Text
from tests.factories import cast, control, custom_template, new_session, person, scored, team
from tests.factories import with_people as joined
from tests.live import ROOT, LiveServer, create_session

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

PO = ROOT / "server" / "locale" / "de" / "LC_MESSAGES" / "messages.po"
POT = ROOT / "server" / "locale" / "messages.pot"


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def client(store: MemoryStore) -> TestClient:
    return TestClient(create_app(Settings(), store=store))


def put(store: MemoryStore, session: Any) -> Any:
    asyncio.run(store.create(session))
    return session


def html_lang(page: str) -> str:
    found = re.search(r'<html lang="([^"]*)">', page)
    assert found, "the page has no <html lang>"
    return found.group(1)


def page_catalogue(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="i18n">([^<]*)</script>', page)
    assert found, "the page embeds no catalogue for its scripts"
    catalogue: dict[str, Any] = json.loads(found.group(1))
    return catalogue


# --- choosing the language


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("de-AT", "de"),
        ("de-AT,de;q=0.9,en;q=0.8", "de"),
        ("DE", "de"),
        ("fr", "en"),
        ("fr-CH, fr;q=0.9", "en"),
        ("fr;q=1, de;q=0.5", "de"),
        ("en;q=0.2, de;q=0.9", "de"),
        ("de;q=0, en", "en"),
        ("*", "en"),
        ("", "en"),
        (None, "en"),
        ("de;q=banana", "en"),
        ("<script>, ;;;, ===", "en"),
        ("x" * 5000, "en"),
        (",".join(["fr"] * 500) + ",de", "en"),
    ],
)
def test_accept_language_is_negotiated_against_the_catalogues(
    header: str | None, expected: str
) -> None:
    assert i18n.negotiate(header) == expected


def test_pages_follow_the_browsers_language(client: TestClient) -> None:
    german = client.get("/", headers={"Accept-Language": "de-AT,de;q=0.9"})
    assert html_lang(german.text) == "de"
    assert "Sitzung anlegen" in german.text
    assert german.headers["content-language"] == "de"
    assert "set-cookie" not in german.headers  # only an explicit choice is remembered

    french = client.get("/", headers={"Accept-Language": "fr"})
    assert html_lang(french.text) == "en"
    assert "Create session" in french.text

    # Caches keep pages apart by language; static files are the same in every language.
    assert "Accept-Language" in german.headers["vary"]
    static = client.get("/static/css/app.css", headers={"Accept-Language": "de"})
    assert "content-language" not in static.headers and "vary" not in static.headers


def test_the_lang_cookie_beats_the_browsers_language(client: TestClient) -> None:
    client.cookies.set("lang", "de")
    page = client.get("/", headers={"Accept-Language": "en-GB"}).text
    assert html_lang(page) == "de"
    client.cookies.set("lang", "en")
    page = client.get("/", headers={"Accept-Language": "de"}).text
    assert html_lang(page) == "en"


def test_lang_in_the_query_wins_and_is_remembered_in_a_cookie(client: TestClient) -> None:
    response = client.get("/join?lang=de", headers={"Accept-Language": "en"})
    assert html_lang(response.text) == "de"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("lang=de;")
    assert "SameSite=Lax" in cookie and "Path=/" in cookie
    assert f"Max-Age={365 * 24 * 3600}" in cookie
    # The next page, without ?lang=, stays German.
    assert html_lang(client.get("/", headers={"Accept-Language": "en"}).text) == "de"
    # And English is chosen the same way.
    assert client.get("/?lang=en").headers["set-cookie"].startswith("lang=en;")
    assert html_lang(client.get("/", headers={"Accept-Language": "de"}).text) == "en"


@pytest.mark.parametrize(
    "junk", ["xx", "de-DE-x", "", "../../etc", "<b>", "de;q=1", "🙂", "d" * 9000]
)
def test_junk_in_the_query_is_ignored(client: TestClient, junk: str) -> None:
    response = client.get("/", params={"lang": junk}, headers={"Accept-Language": "de"})
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert html_lang(response.text) == "de"  # the header still counts


@pytest.mark.parametrize("junk", ["xx", "de-DE-x", "%64%65", "\\u00e4", "0" * 5000])
def test_a_junk_cookie_is_ignored(client: TestClient, junk: str) -> None:
    response = client.get("/", headers={"Accept-Language": "fr", "Cookie": f"lang={junk}"})
    assert response.status_code == 200
    assert html_lang(response.text) == "en"


def test_the_footer_switches_language_on_the_same_page(client: TestClient) -> None:
    page = client.get("/join?code=abc&lang=de").text
    switch = re.search(r'<nav class="language-switch"[^>]*>(.*?)</nav>', page, re.S)
    assert switch, "no language switch"
    links = re.findall(r"<a ([^>]*)>([^<]*)</a>", switch.group(1))
    found = {name: attrs for attrs, name in links}
    assert set(found) == {"English", "Deutsch"}
    assert 'lang="en"' in found["English"] and 'lang="de"' in found["Deutsch"]
    assert 'href="/join?code=abc&amp;lang=en"' in found["English"]
    assert "aria-current" in found["Deutsch"] and "aria-current" not in found["English"]
    assert 'aria-label="Sprache"' in page


def test_concurrent_requests_each_get_their_own_language(store: MemoryStore) -> None:
    session = put(store, team("Alice", session_id="busy", now=time.time()))
    app = create_app(Settings(), store=store)

    async def fetch_all() -> list[tuple[str, str]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:

            async def one(i: int) -> tuple[str, str]:
                lang = "de" if i % 2 else "en"
                response = await http.get(
                    f"/s/{session.id}/results", headers={"Accept-Language": lang}
                )
                return lang, response.text

            return await asyncio.gather(*(one(i) for i in range(40)))

    for lang, page in asyncio.run(fetch_all()):
        assert html_lang(page) == lang
        assert ("Frage für Frage" in page) == (lang == "de")
        assert ("Question by question" in page) == (lang == "en")


# --- German pages and messages


def test_german_pages_are_german(client: TestClient, store: MemoryStore) -> None:
    de = {"Accept-Language": "de"}
    landing = client.get("/", headers=de).text
    assert "Wählt euren Stack als Team" in landing
    assert "11 Fragen." in landing
    catalogue = page_catalogue(landing)
    assert catalogue["locale"] == "de"
    assert catalogue["messages"]["Create session"] == "Sitzung anlegen"

    missing = client.get("/s/nope", headers=de)
    assert missing.status_code == 404
    assert html_lang(missing.text) == "de"
    assert "Das haben wir nicht gefunden" in missing.text
    assert "Unter diesem Link gibt es keine Sitzung" in missing.text

    nowhere = client.get("/no/such/page", headers=de).text
    assert "Unter dieser Adresse gibt es nichts." in nowhere

    session = team("Alice", "Bob", session_id="german", now=time.time())
    session = scored(session, "realtime", {"alice": 4, "bob": 3, "fay": None})
    put(store, session)
    results = client.get("/s/german/results", headers=de).text
    assert html_lang(results) == "de"
    for german in ("Entscheidungsprotokoll", "Fazit", "Rangfolge", "Einigkeit", "Median"):
        assert german in results, german
    assert "(+1 übersprungen)" in results
    assert "3 haben abgestimmt" in results
    # How sure: the percentages and ranges come out in German too.
    for german in ("Wie sicher", "Punktzahl in 90 % der Ziehungen", "Derzeit empfohlen."):
        assert german in results, german


def test_english_pages_embed_an_empty_catalogue(client: TestClient) -> None:
    page = client.get("/", headers={"Accept-Language": "en"}).text
    assert html_lang(page) == "en"
    assert page_catalogue(page) == {"locale": "en", "messages": {}}


def test_http_errors_are_in_the_requests_language(client: TestClient) -> None:
    de = {"Accept-Language": "de"}
    unknown = client.get("/api/sessions/nope", headers=de)
    assert unknown.json() == {
        "error": "Unter diesem Link gibt es keine Sitzung; vielleicht ist sie abgelaufen."
    }
    bad = client.post("/api/sessions", json={"title": "x", "template": "nope"}, headers=de)
    # The value in the message survives the translation.
    assert bad.json()["error"] == "unbekannte Vorlage 'nope'; eingebaute Vorlagen: django"
    missing = client.post("/api/sessions", json={}, headers=de)
    assert missing.json()["error"] == "title fehlt"
    english = client.post("/api/sessions", json={}, headers={"Accept-Language": "en"})
    assert english.json()["error"] == "title is required"

    code = client.get("/join", params={"code": "zzzzzz"}, headers=de)
    assert code.status_code == 404
    assert "Zu diesem Code gibt es keine Sitzung." in code.text


def verdict_on_page(page: str) -> str:
    found = re.search(r'data-testid="verdict">([^<]*)</p>', page)
    assert found, "no verdict on the page"
    return html.unescape(found.group(1))


@pytest.mark.parametrize(
    "outcome",
    [
        {"realtime": 0, "content_admin": 4},  # the favourite wins
        {"mobile_backend": 4},  # another stack wins, for one reason
        {"realtime": 4, "event_driven": 4, "performance": 2},  # for two reasons
        {"realtime": 4},  # a tie: Node.js, Go and Phoenix score the same
    ],
)
def test_the_pages_verdict_is_told_from_its_parts(
    client: TestClient, store: MemoryStore, outcome: dict[str, int]
) -> None:
    session = team("Alice", session_id="verdict-" + "-".join(outcome), now=time.time())
    for case_id, score in outcome.items():
        session = scored(session, case_id, {"alice": score})
    put(store, session)
    api = client.get(f"/api/sessions/{session.id}").json()["recommendation"]["verdict"]
    english = verdict_on_page(client.get(f"/s/{session.id}/results?lang=en").text)
    # In English the page says exactly what the API says.
    assert english == api
    german = verdict_on_page(client.get(f"/s/{session.id}/results?lang=de").text)
    german_deck = localized(session.template, "de")
    assert german != english
    assert any(word in german for word in ("passt", "in Betracht", "dieselbe Punktzahl"))
    # The cases it names, in the German deck's words.
    deck = {
        c.title: g.title for c, g in zip(session.template.cases, german_deck.cases, strict=True)
    }
    for title in re.findall(r'"([^"]+)"', api):
        assert f"„{deck[title]}“" in german


def test_a_verdict_without_a_favourite(client: TestClient, store: MemoryStore) -> None:
    template = custom_template(favourite=None)
    session = joined(
        new_session(template=template, session_id="nofav", now=time.time()),
        person("Fay", "facilitator"),
        person("Alice"),
    )
    session = scored(session, "embedded", {"alice": 4})
    put(store, session)
    api = client.get("/api/sessions/nofav").json()["recommendation"]["verdict"]
    assert verdict_on_page(client.get("/s/nofav/results?lang=en").text) == api
    german = verdict_on_page(client.get("/s/nofav/results?lang=de").text)
    assert german == "SQLite passt am besten zu diesem Projekt: „Runs on a device“."


def test_server_messages_are_said_in_the_language_asked_for() -> None:
    text = N_("Names can be at most %(limit)d characters long.", limit=40)
    assert i18n.say(text, "de") == "Namen dürfen höchstens 40 Zeichen lang sein."
    assert i18n.say(text, "en") == "Names can be at most 40 characters long."
    assert i18n.say(text, "xx") == "Names can be at most 40 characters long."


def test_rule_messages_stay_english_and_translatable() -> None:
    session = team("Alice")
    with pytest.raises(rules.RuleError) as refused:
        rules.join(session, person("alice", pid="alice-2"), limit=10)
    message = refused.value.args[0]
    assert str(refused.value) == "Someone called 'alice' is already here; pick another name."
    assert isinstance(message, Text)
    assert (
        i18n.say(message, "de") == "Jemand namens 'alice' ist schon da; wähl einen anderen Namen."
    )
    # Control-flow unaffected: a vote on an unopened case is still refused the same way.
    with pytest.raises(rules.RuleError, match="has not started yet"):
        cast(control(session, "open", "realtime"), "prototype", {"alice": 1})


# --- Socket.IO in the handshake's language


async def refusal(base_url: str, auth: dict[str, Any], headers: dict[str, str]) -> str:
    client = socketio.AsyncClient(reconnection=False)
    refused: list[str] = []

    def on_error(data: Any) -> None:
        refused.append(str(data.get("message")) if isinstance(data, dict) else str(data))

    client.on("connect_error", on_error)

    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            base_url, auth=auth, headers=headers, transports=["websocket"], wait_timeout=10
        )
    await client.disconnect()
    assert refused, "no refusal message"
    return refused[0]


async def test_a_german_handshake_is_refused_in_german(server: LiveServer) -> None:
    unknown = {"session": "no-such-session", "name": "Ann"}
    german = await refusal(server.url, unknown, {"Accept-Language": "de-DE,de;q=0.9"})
    assert german == "Unter diesem Link gibt es keine Sitzung; vielleicht ist sie abgelaufen."
    english = await refusal(server.url, unknown, {"Accept-Language": "fr"})
    assert english == "There is no session at this link; it may have expired."
    # The cookie the pages set beats the header, as for pages.
    cookie = await refusal(server.url, unknown, {"Accept-Language": "en", "Cookie": "lang=de"})
    assert cookie == german


async def test_a_refusal_keeps_its_values_in_german(server: LiveServer) -> None:
    created = create_session(server.url)
    first = socketio.AsyncClient(reconnection=False)
    await first.connect(
        server.url,
        auth={"session": created["id"], "name": "Zoë"},
        transports=["websocket"],
        wait_timeout=10,
    )
    try:
        taken = await refusal(
            server.url, {"session": created["id"], "name": "zoë"}, {"Accept-Language": "de"}
        )
        assert taken == "Jemand namens 'zoë' ist schon da; wähl einen anderen Namen."
        long = await refusal(
            server.url, {"session": created["id"], "name": "x" * 41}, {"Accept-Language": "de"}
        )
        assert long == "Namen dürfen höchstens 40 Zeichen lang sein."
    finally:
        await first.disconnect()


async def test_acks_are_in_the_connections_language(server: LiveServer) -> None:
    created = create_session(server.url)
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        server.url,
        auth={"session": created["id"], "name": "Uwe"},
        headers={"Accept-Language": "de"},
        transports=["websocket"],
        wait_timeout=10,
    )
    try:
        not_open = await client.call("vote", {"case": "realtime", "score": 3}, timeout=10)
        assert not_open == {
            "ok": False,
            "error": "Die Abstimmung zu dieser Frage hat noch nicht begonnen.",
        }
        shape = await client.call("vote", {"case": "realtime", "score": 9}, timeout=10)
        assert shape["error"] == (
            "score muss eine ganze Zahl von 0 bis 4 sein, oder null für eine Enthaltung"
        )
        nested = await client.call("control", {"action": "countdown"}, timeout=10)
        assert nested["error"] == "countdown braucht seconds: eine ganze Zahl von 0 bis 86400"
        unknown = await client.call("shout", {}, timeout=10)
        assert unknown["error"].startswith("Dieses Ereignis kennt der Server nicht")
        steer = await client.call("control", {"action": "open_all"}, timeout=10)
        assert steer["error"] == "Das kann nur die Moderation."
    finally:
        await client.disconnect()


# --- the catalogue keeps up with the code


def extracted() -> dict[str | tuple[str, ...], list[str]]:
    """Every message wrapped in templates, scripts and the server, as `pybabel extract -F
    babel.cfg` finds it, with where it is."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)  # type: ignore[no-untyped-call]
    found: dict[str | tuple[str, ...], list[str]] = {}
    for filename, lineno, message, _, _ in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=DEFAULT_KEYWORDS
    ):
        key = tuple(message) if isinstance(message, tuple | list) else message
        found.setdefault(key, []).append(f"{filename}:{lineno}")
    return found


def catalogue(path: Path) -> dict[str | tuple[str, ...], Message]:
    with path.open("rb") as po:
        read = read_po(po)
    return {(tuple(m.id) if isinstance(m.id, tuple | list) else m.id): m for m in read if m.id}


def translations(entry: Message) -> list[str]:
    """An entry's translation, or each of its plural forms ("" where missing)."""
    string = entry.string
    if isinstance(string, tuple | list):
        return [form or "" for form in string]
    return [string or ""]


PYTHON_PLACE = re.compile(r"%\((\w+)\)[sdr]")
SCRIPT_PLACE = re.compile(r"\{(\w+)\}")


def places(text: str) -> set[str]:
    return set(PYTHON_PLACE.findall(text)) | set(SCRIPT_PLACE.findall(text))


def test_the_extraction_finds_every_kind_of_source() -> None:
    found = extracted()
    sources = {where.split(":")[0] for wheres in found.values() for where in wheres}
    for needed in (
        "templates/base.html",
        "templates/index.html",
        "templates/results.html",
        "templates/_macros.html",
        "static/js/index.js",
        "server/rules.py",
        "server/protocol.py",
        "server/realtime.py",
        "server/routes.py",
    ):
        assert needed in sources, needed
    assert ("%(num)d question.", "%(num)d questions.") in found


def test_every_wrapped_string_is_translated_into_german() -> None:
    german = catalogue(PO)
    problems = []
    for msgid, where in sorted(extracted().items(), key=str):
        entry = german.get(msgid)
        forms = [] if entry is None else translations(entry)
        if entry is None:
            problems.append(f"missing: {msgid!r} ({where[0]})")
        elif entry.fuzzy or not all(forms):
            problems.append(f"fuzzy or empty: {msgid!r} ({where[0]})")
        else:
            english = " ".join(msgid) if isinstance(msgid, tuple) else msgid
            # A plural's forms may each use some of the places (one names the question, the
            # other counts them), but together they use them all, and nothing else.
            used = set().union(*(places(form) for form in forms))
            for form in forms:
                wrong = not places(form) <= places(english) if len(forms) > 1 else False
                if wrong or (len(forms) == 1 and places(form) != places(english)):
                    problems.append(f"places differ: {msgid!r} -> {form!r}")
            if used != places(english):
                problems.append(f"places differ: {msgid!r} -> {forms!r}")
    assert not problems, "\n".join(problems)


def test_the_template_file_is_up_to_date() -> None:
    assert set(catalogue(POT)) == set(extracted()), (
        "server/locale/messages.pot is stale: run the extract command in README (Languages)"
    )


def test_german_uses_german_quotes_and_no_straight_double_quotes() -> None:
    for msgid, entry in catalogue(PO).items():
        for form in translations(entry):
            assert '"' not in form, f"{msgid!r}: use „…“ in German"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("lang=de", "de"),
        ("a=1; lang=de; b=2", "de"),
        ('lang="de"', "de"),
        ("broken; lang=de", "de"),
        ("xlang=de", None),
        ("", None),
        ("lang", None),
    ],
)
def test_the_language_cookie_is_read_as_browsers_write_it(header: str, value: str | None) -> None:
    assert i18n.cookie_value(header, "lang") == value
