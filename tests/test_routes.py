"""The HTTP side: creating sessions, snapshots, exports, pages, health and browser defences."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
import warnings
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from server import rules
from server.app import create_app
from server.models import Session
from server.settings import Settings
from server.store import MemoryStore, StoreUnavailable
from tests.factories import cast, control, lasting, person, scored, team, template_data, with_people

with warnings.catch_warnings():
    # Starlette's TestClient warns about its httpx backend on import; not our concern here.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


class RecordingStore(MemoryStore):
    """The memory store, remembering which sessions were created through it."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[str] = []

    async def create(self, session: Session) -> None:
        await super().create(session)
        self.created.append(session.id)


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
def client(store: RecordingStore) -> TestClient:
    # As a browser on this machine would: links are built from a Host that names this server.
    return TestClient(create_app(Settings(), store=store), base_url="http://localhost:8000")


def create(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/api/sessions", json={"title": "Our next app", **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def stored(store: MemoryStore, session_id: str) -> Session:
    session = asyncio.run(store.get(session_id))
    assert session is not None
    return session


def put(store: MemoryStore, session: Session) -> Session:
    """Place a session built with the rules straight into the app's store."""
    asyncio.run(store.create(session))
    return session


def decided(store: MemoryStore, **options: Any) -> Session:
    session = team(
        "Alice", "Bob", session_id=f"decided-{time.time_ns()}", now=time.time(), **options
    )
    # An anonymous session reveals a question once three people scored it (fay does then).
    fay = 2 if options.get("anonymous") else None
    session = scored(session, "realtime", {"alice": 4, "bob": 3, "fay": fay})
    session = cast(control(session, "open", "performance"), "performance", {"alice": 1})
    return put(store, session)


def error_of(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    # A refused template lists every problem beside the first (`errors`, as the editor's check).
    assert set(body) <= {"error", "errors"}
    for problem in body.get("errors", []):
        assert set(problem) == {"path", "message"} and problem["message"]
    message: str = body["error"]
    assert message
    assert "Traceback" not in message
    return message


# --- creating a session


def test_a_host_that_is_not_this_server_gets_no_links_to_itself(client: TestClient) -> None:
    # Without STACKVOTE_PUBLIC_URL, a Host header naming another site must not put links to
    # that site into the answer (nor into pages and QR codes built from it).
    response = client.post("/api/sessions", json={"title": "t"}, headers={"Host": "evil.example"})
    assert response.status_code == 201
    assert response.json()["join_url"].startswith("http://127.0.0.1:8000/s/")
    room = client.get(
        response.json()["join_url"].removeprefix("http://127.0.0.1:8000"),
        headers={"Host": "evil.example"},
    )
    assert "evil.example" not in room.text


def test_a_page_of_this_server_on_another_port_may_create_sessions(client: TestClient) -> None:
    # As behind compose's proxy on STACKVOTE_PORT=9090: the page is this server's own.
    response = client.post(
        "/api/sessions", json={"title": "t"}, headers={"Origin": "http://localhost:9090"}
    )
    assert response.status_code == 201
    other = client.post(
        "/api/sessions", json={"title": "t"}, headers={"Origin": "http://evil.example"}
    )
    assert other.status_code == 403


def test_creating_a_session_returns_its_links(client: TestClient, store: RecordingStore) -> None:
    created = create(client)
    assert set(created) == {"id", "join_url", "facilitator_url", "facilitator_token", "join_code"}
    session_id, token = created["id"], created["facilitator_token"]
    assert created["join_url"] == f"http://localhost:8000/s/{session_id}"
    assert created["facilitator_url"] == f"http://localhost:8000/s/{session_id}#f={token}"
    session = stored(store, session_id)
    assert session.title == "Our next app"
    assert (session.mode, session.anonymous, session.status) == ("hidden", False, "active")
    assert session.template.id == "django"
    assert [c.id for c in session.cases] == [c.id for c in session.template.cases]
    assert all(c.status == "pending" for c in session.cases)
    assert session.participants == ()


def test_the_facilitator_token_stays_out_of_the_join_link(
    client: TestClient, store: RecordingStore
) -> None:
    created = create(client)
    token = created["facilitator_token"]
    assert token not in created["join_url"]
    # Only the fragment carries it, which browsers never send to a server.
    before, _, fragment = created["facilitator_url"].partition("#")
    assert token not in before
    assert fragment == f"f={token}"
    # The server keeps a hash, not the token itself.
    session = stored(store, created["id"])
    assert session.facilitator_hash != token
    assert token not in json.dumps(client.get(f"/api/sessions/{created['id']}").json())
    assert token not in client.get(f"/s/{created['id']}").text


def test_the_configured_public_url_is_used_for_links(store: MemoryStore) -> None:
    settings = Settings(public_url="https://vote.example.com")
    client = TestClient(create_app(settings, store=store))
    created = create(client)
    assert created["join_url"] == f"https://vote.example.com/s/{created['id']}"


def test_each_session_gets_its_own_id_and_token(client: TestClient) -> None:
    first, second = create(client), create(client)
    assert first["id"] != second["id"]
    assert first["facilitator_token"] != second["facilitator_token"]


def test_a_session_can_be_open_and_anonymous(client: TestClient, store: RecordingStore) -> None:
    created = create(client, mode="open", anonymous=True)
    session = stored(store, created["id"])
    assert (session.mode, session.anonymous) == ("open", True)
    state = client.get(f"/api/sessions/{created['id']}").json()
    assert state["session"]["mode"] == "open"
    assert state["session"]["anonymous"] is True


def test_the_title_is_tidied(client: TestClient, store: RecordingStore) -> None:
    created = create(client, title="  Our \n next\tapp  ")
    assert stored(store, created["id"]).title == "Our next app"


def test_a_session_from_a_custom_template(client: TestClient, store: RecordingStore) -> None:
    created = create(client, template=template_data())
    session = stored(store, created["id"])
    assert session.template.title == "Which database?"
    assert [c.id for c in session.cases] == ["scale", "embedded"]
    state = client.get(f"/api/sessions/{created['id']}").json()
    assert [c["title"] for c in state["cases"]] == ["Many writers", "Runs on a device"]


def test_the_default_template_can_be_named(client: TestClient, store: RecordingStore) -> None:
    created = create(client, template="django")
    assert stored(store, created["id"]).template.id == "django"


def post_raw(client: TestClient, body: bytes) -> Any:
    return client.post("/api/sessions", content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "the request body must be valid JSON"),
        (b"", 400, "the request body must be valid JSON"),
        (b"[1, 2]", 400, "expected a JSON object"),
        (b'"title"', 400, "expected a JSON object"),
        (b"null", 400, "expected a JSON object"),
        (b"{}", 400, "title is required"),
        (b'{"title": 5}', 400, "title must be text of 1 to 120 characters"),
        (b'{"title": ""}', 400, "title must be text of 1 to 120 characters"),
        (b'{"title": "   "}', 400, "title must be text of 1 to 120 characters"),
        (b'{"title": "a\\u0000b"}', 400, "title must be text of 1 to 120 characters"),
        (b'{"title": "T", "mode": "secret"}', 400, 'mode must be "hidden" or "open"'),
        (b'{"title": "T", "anonymous": "no"}', 400, "anonymous must be true or false"),
        (b'{"title": "T", "template": 7}', 400, 'template must be "django" or a template object'),
        (b'{"title": "T", "owner": "me"}', 400, "unknown field `owner`"),
    ],
)
def test_a_bad_request_is_refused_clearly_and_creates_nothing(
    client: TestClient, store: RecordingStore, body: bytes, status: int, message: str
) -> None:
    response = post_raw(client, body)
    assert error_of(response, status).startswith(message)
    assert store.created == []


def test_an_unknown_template_is_refused(client: TestClient, store: RecordingStore) -> None:
    response = client.post("/api/sessions", json={"title": "T", "template": "rails"})
    message = error_of(response, 400)
    assert message == "unknown template 'rails'; built-in templates: django"
    assert store.created == []


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (template_data(cases=[]), "`cases`"),
        (template_data(title="  "), "title is blank"),
        (
            template_data(cases=[{"id": "x", "title": "X", "fit": {"mysql": 1}}]),
            "unknown stack 'mysql'",
        ),
        ({"title": "T"}, "missing required field `stacks`"),
    ],
)
def test_a_bad_custom_template_is_refused(
    client: TestClient, store: RecordingStore, template: dict[str, Any], expected: str
) -> None:
    response = client.post("/api/sessions", json={"title": "T", "template": template})
    message = error_of(response, 400)
    assert message.startswith("invalid template: ")
    assert expected in message
    assert store.created == []


def test_a_body_over_64_kib_is_refused(client: TestClient, store: RecordingStore) -> None:
    body = json.dumps({"title": "T", "padding": "x" * (64 * 1024)}).encode()
    message = error_of(post_raw(client, body), 413)
    assert message == "the request body is larger than 64 KiB"
    assert store.created == []


@pytest.mark.parametrize("depth", [33, 1_000, 10_000])
@pytest.mark.parametrize(("opening", "closing"), [("[", "]"), ('{"a":', "}")])
def test_a_deeply_nested_body_is_refused_before_decoding(
    client: TestClient, store: RecordingStore, depth: int, opening: str, closing: str
) -> None:
    body = (opening * depth + "1" + closing * depth).encode()
    message = error_of(post_raw(client, body), 400)
    assert message == "the request body nests deeper than 32 levels"
    assert store.created == []


def test_brackets_inside_strings_do_not_count_as_nesting(client: TestClient) -> None:
    created = create(client, title="[[[[" * 10 + '"{{' * 10 + "\\")
    assert created["id"]


def test_a_body_just_under_the_limit_is_read(client: TestClient) -> None:
    # Big but well-formed: it gets past the size check to the payload check.
    body = json.dumps({"title": "T", "x": "y" * (60 * 1024)}).encode()
    assert error_of(post_raw(client, body), 400) == "unknown field `x`"


def test_a_full_server_says_so(store: MemoryStore) -> None:
    client = TestClient(create_app(Settings(), store=MemoryStore(max_sessions=1)))
    create(client)
    response = client.post("/api/sessions", json={"title": "One more"})
    assert error_of(response, 503) == "this server cannot host more sessions right now"


def test_only_post_creates_sessions(client: TestClient) -> None:
    assert client.get("/api/sessions").status_code == 405


# --- reading a session


def test_the_snapshot_is_the_state_event(client: TestClient) -> None:
    created = create(client)
    state = client.get(f"/api/sessions/{created['id']}").json()
    assert set(state) == {"version", "session", "participants", "cases", "recommendation"}
    assert state["version"] == 1
    assert state["session"]["id"] == created["id"]
    assert state["participants"] == []
    assert len(state["cases"]) == 11
    assert state["recommendation"] is None


def test_the_snapshot_hides_unrevealed_scores(client: TestClient, store: RecordingStore) -> None:
    session = decided(store)
    state = client.get(f"/api/sessions/{session.id}").json()
    cases = {c["id"]: c for c in state["cases"]}
    assert cases["realtime"]["results"]["histogram"] == [0, 0, 0, 1, 1]
    assert cases["performance"]["votes_in"] == 1
    assert cases["performance"]["results"] is None
    assert state["recommendation"] is not None


def test_results_as_json(client: TestClient, store: RecordingStore) -> None:
    session = decided(store)
    for path in ("results", "results.json"):
        response = client.get(f"/api/sessions/{session.id}/{path}")
        assert response.status_code == 200
        document = response.json()
        assert {"session", "cases", "recommendation"} <= set(document)
        cases = {c["id"]: c for c in document["cases"]}
        assert cases["realtime"]["median"] == 3.5
        assert cases["performance"]["median"] is None
        assert cases["performance"]["histogram"] is None
        assert "ballots" not in cases["performance"]


def test_results_as_csv(client: TestClient, store: RecordingStore) -> None:
    session = decided(store)
    response = client.get(f"/api/sessions/{session.id}/results.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = response.headers["content-disposition"]
    assert disposition == f'attachment; filename="stackvote-{session.id}.csv"'
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:3] == ["case", "title", "status"]
    assert len(rows) == 12


def test_results_as_markdown(client: TestClient, store: RecordingStore) -> None:
    session = decided(store)
    response = client.get(f"/api/sessions/{session.id}/results.md")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    assert response.headers["content-disposition"].endswith(f'stackvote-{session.id}.md"')
    assert response.text.startswith("# Decision record: Our next project")
    assert "## Decision" in response.text


def test_anonymous_results_carry_no_ballots(client: TestClient, store: RecordingStore) -> None:
    session = decided(store, anonymous=True)
    for path in ("", "/results", "/results.md"):
        text = client.get(f"/api/sessions/{session.id}{path}").text
        assert "ballots" not in text.lower()
        assert "Alice: 4" not in text


def test_an_unknown_results_format_is_not_found(client: TestClient) -> None:
    created = create(client)
    response = client.get(f"/api/sessions/{created['id']}/results.xml")
    assert error_of(response, 404) == "results come as .json, .csv, .md or .adr.md"


@pytest.mark.parametrize(
    "path",
    [
        "/api/sessions/nope",
        "/api/sessions/nope/results",
        "/api/sessions/nope/results.csv",
        "/api/sessions/nope/results.md",
    ],
)
def test_an_unknown_session_is_a_json_404_on_the_api(client: TestClient, path: str) -> None:
    assert "no session" in error_of(client.get(path), 404)


@pytest.mark.parametrize(
    "path", ["/s/nope", "/s/nope/present", "/s/nope/results", "/s/nope/qr.svg"]
)
def test_an_unknown_session_is_a_404_page_in_the_browser(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text
    assert "There is no session at this link; it may have expired." in response.text


def test_an_unknown_api_address_is_a_json_404(client: TestClient) -> None:
    error_of(client.get("/api/nothing-here"), 404)


def test_an_expired_session_is_gone() -> None:
    clock = [1_000.0]
    store = MemoryStore(lifetimes=lasting(60), clock=lambda: clock[0])
    client = TestClient(create_app(Settings(), store=store))
    session = put(store, team(session_id="short-lived", now=clock[0]))
    assert client.get(f"/api/sessions/{session.id}").status_code == 200
    clock[0] += 61
    assert error_of(client.get(f"/api/sessions/{session.id}"), 404)


# --- pages


def test_the_landing_page_offers_the_default_template(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "Is Django right for this project?" in response.text


def test_the_room_page_shows_the_session(client: TestClient) -> None:
    created = create(client, title="Pick a stack")
    response = client.get(f"/s/{created['id']}")
    assert response.status_code == 200
    assert "Pick a stack" in response.text
    assert f"/s/{created['id']}/qr.svg" in response.text
    assert "Live updates are core" in response.text


def test_the_presenter_view_shows_the_session_and_how_to_join(client: TestClient) -> None:
    created = create(client, title="Pick a stack")
    response = client.get(f"/s/{created['id']}/present")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "Pick a stack" in page
    assert f"/s/{created['id']}/qr.svg" in page
    code = created["join_code"]
    assert f"{code[:3]}-{code[3:]}" in page
    assert "http://localhost:8000/join" in page
    assert "/static/js/present.js?v=" in page and "/static/css/present.css?v=" in page
    # A screen, not a seat: no join form, no facilitator link, no controls.
    assert 'id="join-form"' not in page and "facilitator" not in page.lower()
    assert "<button" not in page
    # The room's own template, for the questions' help and the scale's labels.
    assert "Live updates are core" in page and "Not at all" in page


def test_the_presenter_view_escapes_the_title(client: TestClient) -> None:
    created = create(client, title="<b>x</b>")
    page = client.get(f"/s/{created['id']}/present").text
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<b>x</b>" not in page


def test_the_room_page_escapes_the_title(client: TestClient) -> None:
    created = create(client, title="<b>x</b>")
    page = client.get(f"/s/{created['id']}").text
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<b>x</b>" not in page


def test_the_room_page_escapes_custom_template_text(client: TestClient) -> None:
    cases = [{"id": "evil", "title": "</script><script>alert(1)</script>"}]
    created = create(client, template=template_data(cases=cases, title="<i>T</i>"))
    page = client.get(f"/s/{created['id']}").text
    assert "<script>alert(1)" not in page
    assert "<i>T</i>" not in page


def test_the_results_page_shows_the_record(client: TestClient, store: RecordingStore) -> None:
    session = decided(store)
    response = client.get(f"/s/{session.id}/results")
    assert response.status_code == 200
    assert "Our next project" in response.text


def test_the_results_page_shows_ballots_only_when_allowed(
    client: TestClient, store: RecordingStore
) -> None:
    page = client.get(f"/s/{decided(store).id}/results").text
    assert "Alice: <strong>4</strong>" in page
    assert "Bob: <strong>3</strong>" in page
    # Alice's score on the case still being voted on stays hidden.
    assert "Alice: <strong>1</strong>" not in page

    anonymous = client.get(f"/s/{decided(store, anonymous=True).id}/results").text
    assert "who gave which score is not recorded" in anonymous
    assert "Alice: <strong>" not in anonymous
    assert 'class="ballot"' not in anonymous


def test_the_results_page_escapes_names(client: TestClient, store: MemoryStore) -> None:
    session = team(session_id="escaped-names", now=time.time())
    session = with_people(session, person("<b>Eve</b>", pid="eve"))
    put(store, scored(session, "realtime", {"eve": 2}))
    page = client.get("/s/escaped-names/results").text
    assert "&lt;b&gt;Eve&lt;/b&gt;" in page
    assert "<b>Eve</b>" not in page


def test_the_qr_code_is_an_svg_of_the_join_link(client: TestClient) -> None:
    created = create(client)
    response = client.get(f"/s/{created['id']}/qr.svg")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.text.lstrip().startswith("<svg")
    assert response.text.rstrip().endswith("</svg>")
    assert created["facilitator_token"] not in response.text


# --- health


def test_liveness(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readiness_with_a_reachable_store(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


class UnreachableStore(MemoryStore):
    async def ping(self) -> None:
        raise StoreUnavailable("connection refused")

    async def get(self, session_id: str) -> Session | None:
        raise StoreUnavailable("connection refused")


def test_readiness_with_an_unreachable_store() -> None:
    client = TestClient(create_app(Settings(), store=UnreachableStore()))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "error": "connection refused"}
    # Liveness does not depend on the store.
    assert client.get("/healthz").status_code == 200


def test_an_unreachable_store_is_a_503_not_a_crash() -> None:
    client = TestClient(
        create_app(Settings(), store=UnreachableStore()), raise_server_exceptions=False
    )
    assert "storage" in error_of(client.get("/api/sessions/any"), 503)


# --- browser defences


def security_headers_of(response: Any) -> None:
    headers = response.headers
    csp = headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in csp
    assert "'unsafe-eval'" not in csp
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    "path", ["/", "/healthz", "/api/sessions/nope", "/s/nope", "/nowhere", "/static/css/app.css"]
)
def test_every_response_carries_the_security_headers(client: TestClient, path: str) -> None:
    security_headers_of(client.get(path))


def test_pages_and_exports_carry_the_security_headers(
    client: TestClient, store: RecordingStore
) -> None:
    session = decided(store)
    created = create(client)
    security_headers_of(client.post("/api/sessions", json={"title": "x"}))
    security_headers_of(client.post("/api/sessions", content=b"{"))
    for path in (
        f"/s/{session.id}",
        f"/s/{session.id}/results",
        f"/s/{created['id']}/qr.svg",
        f"/api/sessions/{session.id}/results.csv",
        f"/api/sessions/{session.id}/results.md",
    ):
        security_headers_of(client.get(path))


class BrokenStore(MemoryStore):
    async def get(self, session_id: str) -> Session | None:
        raise RuntimeError("a bug")


def test_a_server_error_is_a_clear_500_without_a_trace() -> None:
    client = TestClient(create_app(Settings(), store=BrokenStore()), raise_server_exceptions=False)
    assert error_of(client.get("/api/sessions/any"), 500) == "Something went wrong on the server."
    page = client.get("/s/any")
    assert page.status_code == 500
    assert "RuntimeError" not in page.text
    assert "a bug" not in page.text


def test_error_responses_carry_the_security_headers() -> None:
    # The 500 handler runs outside Starlette's middleware stack; the headers must still be there.
    client = TestClient(create_app(Settings(), store=BrokenStore()), raise_server_exceptions=False)
    security_headers_of(client.get("/s/any"))
    security_headers_of(client.get("/api/sessions/any"))
    down = TestClient(create_app(Settings(), store=UnreachableStore()))
    security_headers_of(down.get("/api/sessions/any"))
    security_headers_of(down.get("/readyz"))


# --- join codes

CODE_ALPHABET = set("23456789ABCDEFGHJKMNPQRSTWXYZ")


def test_creating_a_session_answers_a_join_code(client: TestClient, store: RecordingStore) -> None:
    created = create(client)
    code = created["join_code"]
    assert len(code) == 6 and set(code) <= CODE_ALPHABET
    assert stored(store, created["id"]).join_code == code
    assert create(client)["join_code"] != code


@pytest.mark.parametrize("typed", ["{code}", "{lower}", "{code3}-{rest}", " {code3} {rest} "])
def test_a_join_code_leads_to_its_room(client: TestClient, typed: str) -> None:
    created = create(client)
    code = created["join_code"]
    path = typed.format(code=code, lower=code.lower(), code3=code[:3].lower(), rest=code[3:])
    response = client.get(f"/join/{path}", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/s/{created['id']}"


@pytest.mark.parametrize("typed", ["AAAAAA", "OOOOOO", "ABC", "ABCDEFG", "%20"])
def test_an_unknown_join_code_is_the_404_page(client: TestClient, typed: str) -> None:
    create(client)
    response = client.get(f"/join/{typed}", follow_redirects=False)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "No session has this code" in response.text


def test_the_join_page_has_a_labelled_form_and_no_inline_script(client: TestClient) -> None:
    response = client.get("/join")
    assert response.status_code == 200
    page = response.text
    assert '<form class="form" method="get" action="/join">' in page
    assert '<label class="field__label" for="code">Session code</label>' in page
    assert 'id="code" name="code"' in page
    # The one script element is the page's message catalogue: data, never run.
    code = re.sub(r'<script type="application/json" id="i18n">[^<]*</script>', "", page)
    assert "<script>" not in code and "<script " not in code
    security_headers_of(response)


def test_the_join_form_leads_to_the_room_or_says_what_went_wrong(client: TestClient) -> None:
    created = create(client)
    found = client.get("/join", params={"code": created["join_code"]}, follow_redirects=False)
    assert (found.status_code, found.headers["location"]) == (303, f"/s/{created['id']}")
    missing = client.get("/join", params={"code": "zz-zz<b>"})
    assert missing.status_code == 404
    assert "No session has this code" in missing.text
    assert 'aria-invalid="true"' in missing.text
    assert 'value="zz-zz&lt;b&gt;"' in missing.text


def test_join_codes_are_rate_limited_per_address(store: MemoryStore) -> None:
    client = TestClient(create_app(Settings(limit_join_codes="3/minute"), store=store))
    created = create(client)
    statuses = [
        client.get(f"/join/{code}", follow_redirects=False).status_code
        for code in ("AAAAAA", "BBBBBB", "CCCCCC", created["join_code"])
    ]
    # The right code after three guesses is refused too: guessing costs the same either way.
    assert statuses == [404, 404, 404, 429]
    form = client.get("/join", params={"code": created["join_code"]})
    assert form.status_code == 429
    assert "Too many codes" in form.text


def test_the_room_page_shows_the_join_code(client: TestClient) -> None:
    created = create(client)
    code = created["join_code"]
    page = client.get(f"/s/{created['id']}").text
    assert f"{code[:3]}-{code[3:]}" in page
    assert 'href="http://localhost:8000/join"' in page


def test_the_results_page_shows_revealed_reasons_as_text(
    client: TestClient, store: MemoryStore
) -> None:
    session = team("Alice", session_id=f"reasons-{time.time_ns()}", now=time.time())
    session = control(session, "open", "realtime")
    session = rules.vote(session, "alice", "realtime", 4, reason="<script>x</script> live!")
    session = control(session, "reveal", "realtime")
    session = control(session, "open", "prototype")
    session = rules.vote(session, "alice", "prototype", 1, reason="not yet shown")
    put(store, session)
    page = client.get(f"/s/{session.id}/results").text
    assert 'Alice <span class="muted">(4)</span>: &lt;script&gt;x&lt;/script&gt; live!' in page
    assert "not yet shown" not in page


def test_a_refused_template_is_told_every_problem_field_by_field(client: TestClient) -> None:
    bad = {"title": "x", "stacks": [{"id": "Bad Id", "name": "n"}], "cases": [{"id": "a"}]}
    response = client.post("/api/sessions", json={"title": "T", "template": bad})
    assert response.status_code == 400
    body = response.json()
    ident = "must be lower-case letters, digits and _, starting with a letter, at most 40"
    assert body["errors"] == [
        {"path": "stacks.0.id", "message": ident},
        {"path": "cases.0.title", "message": "is required"},
    ]
    # The first problem, in one sentence, as before.
    assert "stacks" in body["error"]


def test_a_session_named_after_its_deck_shows_the_name_once(client: TestClient) -> None:
    named = client.post("/api/sessions", json={"title": "Is Django right for this project?"})
    page = client.get(f"/s/{named.json()['id']}").text
    assert 'class="eyebrow"' not in page
    other = client.post("/api/sessions", json={"title": "Billing service"})
    page = client.get(f"/s/{other.json()['id']}").text
    assert '<p class="eyebrow">Is Django right for this project?</p>' in page
