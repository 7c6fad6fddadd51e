"""Checking a template before use: POST /api/templates/validate, every problem with its path."""

from __future__ import annotations

import copy
import json
import warnings
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.exceptions import StarletteDeprecationWarning

from server.app import create_app
from server.decks import builtin_templates, parse_template, public_template, template_problems
from server.models import Template
from server.settings import Settings
from server.store import MemoryStore
from tests.factories import template_data

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

VALIDATE = "/api/templates/validate"


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.created = 0

    async def create(self, session: Any) -> None:
        await super().create(session)
        self.created += 1


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture
def client(store: CountingStore) -> TestClient:
    return TestClient(create_app(Settings(), store=store))


def broken(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(template_data())
    change(data)
    return data


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def refused(client: TestClient, template: Any) -> dict[str, Any]:
    response = client.post(VALIDATE, json=template)
    # The check worked; its answer is that the template has problems.
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"ok", "error", "errors"} and body["ok"] is False
    return body


# --- a good template


def test_a_good_template_comes_back_normalised(client: TestClient, store: CountingStore) -> None:
    response = client.post(VALIDATE, json=template_data())
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "ok": True,
        "template": as_json(public_template(parse_template(template_data()))),
    }
    shown = body["template"]
    # The defaults a session would use are filled in.
    assert shown["id"] == "custom"
    assert len(shown["scale"]) == 5
    assert shown["cases"][1]["help"] == ""
    assert shown["cases"][0]["fit"] == {"postgres": 2, "sqlite": -1}
    # Checking creates nothing.
    assert store.created == 0


def test_every_built_in_template_passes_as_it_is_shown(client: TestClient) -> None:
    for template in builtin_templates().values():
        response = client.post(VALIDATE, json=public_template(template))
        assert response.status_code == 200, response.text
        assert response.json()["template"] == as_json(public_template(template))


# --- each kind of problem, with where it is

PROBLEMS: list[tuple[str, Any, str, str]] = [
    ("empty title", lambda d: d.update(title=""), "title", "must be text of 1 to 120"),
    ("blank title", lambda d: d.update(title="  "), "title", "must not be blank"),
    ("missing title", lambda d: d.pop("title"), "title", "is required"),
    ("title not text", lambda d: d.update(title=7), "title", "must be text of 1 to 120"),
    ("long title", lambda d: d.update(title="x" * 121), "title", "must be text of 1 to 120"),
    ("long description", lambda d: d.update(description="x" * 501), "description", "at most 500"),
    ("unknown field", lambda d: d.update(colour="red"), "colour", "not something a template"),
    ("no stacks", lambda d: d.update(stacks=[]), "stacks", "must have 1 to 20 entries"),
    (
        "21 stacks",
        lambda d: d["stacks"].extend({"id": f"s{i}", "name": "S"} for i in range(19)),
        "stacks",
        "must have 1 to 20 entries",
    ),
    ("stacks not a list", lambda d: d.update(stacks={"id": "x"}), "stacks", "1 to 20 entries"),
    ("no cases", lambda d: d.update(cases=[]), "cases", "must have 1 to 30 entries"),
    (
        "31 cases",
        lambda d: d.update(cases=[{"id": f"c{i}", "title": "C"} for i in range(31)]),
        "cases",
        "must have 1 to 30 entries",
    ),
    ("case not an object", lambda d: d["cases"].append(7), "cases.2", "must be an object"),
    ("case without id", lambda d: d["cases"][1].pop("id"), "cases.1.id", "is required"),
    (
        "case id in capitals",
        lambda d: d["cases"][0].update(id="Scale"),
        "cases.0.id",
        "lower-case letters, digits and _",
    ),
    (
        "same case id twice",
        lambda d: d["cases"].append({"id": "scale", "title": "Again"}),
        "cases.2.id",
        "another question already has this id",
    ),
    ("blank case title", lambda d: d["cases"][1].update(title=" "), "cases.1.title", "blank"),
    (
        "long case title",
        lambda d: d["cases"][1].update(title="x" * 121),
        "cases.1.title",
        "must be text of 1 to 120",
    ),
    ("long help", lambda d: d["cases"][0].update(help="x" * 301), "cases.0.help", "at most 300"),
    (
        "unknown case field",
        lambda d: d["cases"][0].update(weight=2),
        "cases.0.weight",
        "not something a template",
    ),
    (
        "weight above 2",
        lambda d: d["cases"][0]["fit"].update(postgres=3),
        "cases.0.fit.postgres",
        "must be a number from \u22122 to 2",
    ),
    (
        "weight as text",
        lambda d: d["cases"][1]["fit"].update(sqlite="high"),
        "cases.1.fit.sqlite",
        "must be a number from \u22122 to 2",
    ),
    (
        "weight on an unknown stack",
        lambda d: d["cases"][1]["fit"].update(mysql=1),
        "cases.1.fit.mysql",
        "no stack has this id",
    ),
    (
        "weight key that is no id",
        lambda d: d["cases"][0]["fit"].update({"Post Gres": 1}),
        "cases.0.fit.Post Gres",
        "lower-case letters, digits and _",
    ),
    (
        "same stack id twice",
        lambda d: d["stacks"].append({"id": "sqlite", "name": "SQLite 3"}),
        "stacks.2.id",
        "another stack already has this id",
    ),
    ("empty stack name", lambda d: d["stacks"][1].update(name=""), "stacks.1.name", "1 to 120"),
    ("unknown favourite", lambda d: d.update(favourite="oracle"), "favourite", "one of the stacks"),
    ("four scale labels", lambda d: d.update(scale=list("abcd")), "scale", "exactly 5 entries"),
    ("empty scale label", lambda d: d.update(scale=["a", "b", "", "d", "e"]), "scale.2", "1 to 40"),
]


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [pytest.param(change, path, message, id=label) for label, change, path, message in PROBLEMS],
)
def test_a_problem_is_named_with_its_path(
    client: TestClient, store: CountingStore, change: Any, path: str, message: str
) -> None:
    template = broken(change)
    body = refused(client, template)
    assert [e["path"] for e in body["errors"]] == [path]
    assert message in body["errors"][0]["message"]
    # The one-line message is the one creating a session with this template gives.
    created = client.post("/api/sessions", json={"title": "T", "template": template})
    assert created.status_code == 400
    assert body["error"] == created.json()["error"]
    assert body["error"].startswith("invalid template: ")
    assert store.created == 0


def test_every_problem_is_reported_at_once_in_the_order_of_the_fields(client: TestClient) -> None:
    template = template_data(
        title="",
        stacks=[{"id": "postgres", "name": "PostgreSQL"}, {"id": "postgres", "name": ""}],
        cases=[
            {"id": "scale", "title": "Many writers", "fit": {"postgres": 9, "mysql": 1}},
            {"id": "Embedded", "title": "   ", "help": 4},
        ],
        scale=["a", "b", "c", "d", ""],
        favourite="oracle",
    )
    body = refused(client, template)
    assert [e["path"] for e in body["errors"]] == [
        "title",
        "stacks.1.name",
        "cases.0.fit.postgres",
        "cases.1.id",
        "cases.1.help",
        "scale.4",
        "stacks.1.id",
        "cases.1.title",
        "cases.0.fit.mysql",
        "favourite",
    ]
    assert all(e["message"] for e in body["errors"])
    assert body["error"] == "invalid template: Expected `str` of length >= 1 - at `title`"


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"django"', b"7", b"null"])
def test_a_body_that_is_no_object_is_refused_with_the_root_as_path(
    client: TestClient, raw: bytes
) -> None:
    response = post_raw(client, raw)
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False
    assert body["error"] == "a template must be a JSON object"
    assert body["errors"] == [{"path": "", "message": "must be a JSON object"}]


# --- the limits of POST /api/sessions


def post_raw(client: TestClient, body: bytes, **headers: str) -> Any:
    return client.post(
        VALIDATE, content=body, headers={"content-type": "application/json", **headers}
    )


@pytest.mark.parametrize("body", [b"{not json", b"", b'{"title": "T",'])
def test_text_that_is_not_json_is_refused(client: TestClient, body: bytes) -> None:
    response = post_raw(client, body)
    assert response.status_code == 400
    assert response.json() == {"error": "the request body must be valid JSON"}


def test_a_body_over_64_kib_is_refused(client: TestClient) -> None:
    body = json.dumps(template_data(description="x" * (64 * 1024))).encode()
    response = post_raw(client, body)
    assert response.status_code == 413
    assert response.json() == {"error": "the request body is larger than 64 KiB"}


def test_a_body_nesting_too_deep_is_refused_before_decoding(client: TestClient) -> None:
    response = post_raw(client, b"[" * 5000 + b"]" * 5000)
    assert response.status_code == 400
    assert response.json() == {"error": "the request body nests deeper than 32 levels"}


def test_the_largest_template_fits_in_a_request() -> None:
    """Thirty cases with the longest texts and a weight for each of twenty stacks: within 64 KiB."""
    stacks = [{"id": f"stack_{i:02}" + "x" * 31, "name": "N" * 120} for i in range(20)]
    cases = [
        {
            "id": f"case_{i:02}" + "x" * 32,
            "title": "T" * 120,
            "help": "H" * 300,
            "fit": {s["id"]: -1.5 for s in stacks},
        }
        for i in range(30)
    ]
    template = template_data(stacks=stacks, cases=cases, favourite=None, description="D" * 500)
    client = TestClient(create_app(Settings(), store=MemoryStore()))
    assert post_raw(client, json.dumps(template).encode()).status_code == 200


def test_checks_are_limited_per_address_apart_from_creating(store: CountingStore) -> None:
    client = TestClient(
        create_app(Settings(limit_validations="2/minute", limit_creates="5/minute"), store=store)
    )
    statuses = [client.post(VALIDATE, json=template_data()).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert "too many templates checked" in client.post(VALIDATE, json={}).json()["error"]
    # Checking a draft does not use up the sessions one may create.
    created = client.post("/api/sessions", json={"title": "T", "template": template_data()})
    assert created.status_code == 201


def test_a_check_from_another_site_is_refused(client: TestClient) -> None:
    response = client.post(
        VALIDATE, json=template_data(), headers={"origin": "https://evil.example"}
    )
    assert response.status_code == 403


# --- the pages


def test_the_editor_page_carries_the_built_in_sets(client: TestClient) -> None:
    page = client.get("/templates/new")
    assert page.status_code == 200
    assert 'id="editor-data"' in page.text
    assert "Is Django right for this project?" in page.text
    assert "/static/js/editor.js" in page.text
    assert "/static/css/editor.css" in page.text


def test_the_landing_page_links_to_the_editor_and_keeps_the_json_option(
    client: TestClient,
) -> None:
    page = client.get("/").text
    assert 'href="/templates/new"' in page
    assert 'value="__custom__"' in page


# --- the walk agrees with the schema

templates_near_valid = st.builds(
    lambda title, stacks, cases, extra: {"title": title, "stacks": stacks, "cases": cases, **extra},
    title=st.sampled_from(["Pick", "", " ", 3, None]),
    stacks=st.lists(
        st.fixed_dictionaries(
            {"id": st.sampled_from(["a", "b", "B", ""]), "name": st.sampled_from(["A", "", 1])}
        ),
        max_size=3,
    )
    | st.sampled_from([None, "a", {}]),
    cases=st.lists(
        st.fixed_dictionaries(
            {"id": st.sampled_from(["c", "d", "9"]), "title": st.sampled_from(["C", " ", ""])},
            optional={
                "fit": st.dictionaries(
                    st.sampled_from(["a", "b", "zz", "Q"]),
                    st.sampled_from([0, 2, -2.5, 1.5, "x", True, None]),
                    max_size=3,
                )
                | st.sampled_from([[], "x"]),
                "help": st.sampled_from(["", "h", 2]),
            },
        )
        | st.sampled_from([1, "c", None]),
        max_size=3,
    ),
    extra=st.fixed_dictionaries(
        {},
        optional={
            "favourite": st.sampled_from(["a", "zz", None, 5]),
            "scale": st.sampled_from([["1", "2", "3", "4", "5"], ["x"], "x"]),
            "other": st.just(1),
        },
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=templates_near_valid)
def test_a_template_with_no_problems_is_one_the_schema_accepts(data: dict[str, Any]) -> None:
    problems = list(template_problems(data))
    try:
        msgspec.convert(data, Template)
    except msgspec.ValidationError:
        assert problems, "the schema refuses what the walk let through"
    paths = [p.path for p in problems]
    assert len(paths) == len(set(paths))
    if not problems:
        assert isinstance(parse_template(data), Template)
