"""Arbitrary JSON at every endpoint and event: no crash, no 500, no change from bad input."""

from __future__ import annotations

import asyncio
import os
from typing import Any
from urllib.parse import quote

import pytest
import socketio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from tests.live import LiveServer, create_session, join

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Only what JSON can carry (no NaN or infinity).
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
# Shapes close to the real ones find more than pure noise does.
near_vote = st.fixed_dictionaries(
    {"case": st.sampled_from(["realtime", "nope", ""]) | json_values, "score": json_values},
    optional={"client": json_values, "seq": json_values, "round": json_values},
)
near_control = st.fixed_dictionaries(
    {"action": st.sampled_from(["open", "reveal", "lock", "boom"]) | json_values},
    optional={"case": json_values},
)
near_create = st.fixed_dictionaries(
    {"title": json_values},
    optional={"template": json_values, "mode": json_values, "anonymous": json_values},
)

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def http() -> TestClient:
    generous = Settings(redis_url="memory://", limit_creates="100000/minute")
    return TestClient(create_app(generous), raise_server_exceptions=False)


@FUZZ
@given(body=json_values | near_create)
def test_creating_a_session_never_fails_on_the_server(http: TestClient, body: Any) -> None:
    response = http.post("/api/sessions", json=body)
    assert response.status_code in (201, 400), response.text
    if response.status_code == 400:
        assert set(response.json()) <= {"error", "errors"} and response.json()["error"]


@FUZZ
@given(raw=st.binary(max_size=200))
def test_any_bytes_as_a_body_get_a_clear_error(http: TestClient, raw: bytes) -> None:
    response = http.post("/api/sessions", content=raw)
    assert response.status_code in (201, 400)


@FUZZ
@given(segment=st.text(min_size=1, max_size=40))
def test_any_session_address_is_a_404_not_a_crash(http: TestClient, segment: str) -> None:
    for path in ("/api/sessions/{}", "/api/sessions/{}/results.md", "/s/{}", "/s/{}/qr.svg"):
        response = http.get(path.format(quote(segment, safe="")))
        assert response.status_code in (404, 405, 307, 308), (path, response.status_code)
        assert response.status_code < 500


# The fuzzing voter's token, so every example reconnects as the same person.
TOKENS: dict[str, str] = {}


@pytest.fixture(scope="module")
def room(server: LiveServer) -> dict[str, Any]:
    return create_session(server.url, title="fuzz")


@FUZZ
@given(
    event=st.sampled_from(["vote", "control", "sync"]),
    payload=json_values | near_vote | near_control,
)
async def test_any_event_payload_gets_an_answer_and_bad_ones_change_nothing(
    server: LiveServer, room: dict[str, Any], event: str, payload: Any
) -> None:
    member = await join(
        server.url, {"session": room["id"], "name": "Fuzzy", "token": TOKENS.get("v")}
    )
    TOKENS["v"] = member.welcome["token"]
    try:
        before = await member.call("sync")
        ack = await member.call(event, payload)
        assert isinstance(ack, dict)
        if event != "sync":
            assert isinstance(ack.get("ok"), bool), ack
            if not ack["ok"]:
                assert isinstance(ack["error"], str) and ack["error"]
                after = await member.call("sync")
                assert after["cases"] == before["cases"]
                assert after["session"] == before["session"]
    finally:
        await member.client.disconnect()


@FUZZ
@given(
    auth=json_values
    | st.fixed_dictionaries(
        {"session": json_values},
        optional={
            "name": json_values,
            "token": json_values,
            "facilitator_token": json_values,
            "role": json_values,
        },
    )
)
async def test_any_connect_auth_is_admitted_or_refused_with_a_message(
    server: LiveServer, room: dict[str, Any], auth: Any
) -> None:
    client = socketio.AsyncClient(reconnection=False)
    refused: list[Any] = []
    client.on("connect_error", refused.append)
    try:
        await client.connect(server.url, auth=auth, transports=["websocket"], wait_timeout=5)
    except socketio.exceptions.ConnectionError:
        assert refused, "refused without saying why"
        message = refused[0].get("message") if isinstance(refused[0], dict) else refused[0]
        assert isinstance(message, str) and message
    else:
        await client.disconnect()
    await asyncio.sleep(0)
    assert "Traceback" not in server.log()


def test_random_tests_repeat_themselves_in_ci() -> None:
    # tests/conftest.py loads this profile when CI is set: same examples on every run.
    assert settings.get_profile("ci").derandomize is True
    if os.environ.get("CI"):
        assert settings().derandomize is True
