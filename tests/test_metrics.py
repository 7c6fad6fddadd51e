"""GET /metrics and the JSON logs, on live servers with real Socket.IO clients."""

from __future__ import annotations

import asyncio
import json
import re
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.exceptions import StarletteDeprecationWarning

from server.app import create_app
from server.settings import Settings, SettingsError
from server.store import MemoryStore
from tests.live import ROOT, LiveServer, Member, create_session, facilitate, join, live_server
from tests.redis_server import RedisServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "stackvote.json"
SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created")


class Scrape:
    """One /metrics page, parsed by Prometheus' own client library."""

    def __init__(self, text: str) -> None:
        self.families = list(text_string_to_metric_families(text))
        self.samples = [s for f in self.families for s in f.samples]

    def value(self, name: str, **labels: str) -> float:
        found = [s.value for s in self.samples if s.name == name and s.labels == labels]
        assert len(found) == 1, f"{name}{labels}: {found}"
        return float(found[0])

    def names(self) -> set[str]:
        """Every series name the page can answer for (a histogram's _bucket, _sum and _count
        even before its first observation)."""
        return {s.name for s in self.samples} | {
            f.name + suffix for f in self.families for suffix in SUFFIXES
        }


def scrape(url: str) -> Scrape:
    response = httpx.get(url + "/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


async def until_scraped(url: str, name: str, value: float, timeout: float = 5.0) -> Scrape:
    """The first scrape where `name` reads `value` (a gauge catching up with a disconnect)."""
    deadline = time.monotonic() + timeout
    while True:
        page = scrape(url)
        if page.value(name) == value or time.monotonic() > deadline:
            return page
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server of its own: its gauges count only this module's clients."""
    with live_server(Path(tmp_path_factory.mktemp("metrics"))) as running:
        yield running


async def test_metrics_follow_real_votes(app: LiveServer) -> None:
    before = scrape(app.url)
    created = create_session(app.url)
    fay = await facilitate(app.url, created)
    members = [await join(app.url, {"session": created["id"], "name": f"M{n}"}) for n in range(3)]
    assert (await fay.control("open", "realtime"))["ok"]
    for n, member in enumerate(members):
        assert (await member.vote("realtime", n))["ok"]
    assert not (await members[0].vote("no_such_case", 1))["ok"]
    assert not (await members[0].control("reveal", "realtime"))["ok"]  # not the facilitator
    ack = await fay.control("reveal", "realtime")
    for member in [fay, *members]:
        await member.until_version(ack["version"])

    page = scrape(app.url)

    def moved(name: str, **labels: str) -> float:
        return page.value(name, **labels) - before.value(name, **labels)

    assert moved("stackvote_votes_total", outcome="counted") == 3
    assert moved("stackvote_votes_total", outcome="refused") == 1
    assert moved("stackvote_controls_total", outcome="applied") == 2
    assert moved("stackvote_controls_total", outcome="refused") == 1
    assert moved("stackvote_deltas_total") > 0
    # Each delta went to the four people; each newcomer got a snapshot too.
    assert moved("stackvote_messages_sent_total") >= moved("stackvote_deltas_total")
    assert moved("stackvote_snapshots_sent_total") >= 4
    assert moved("stackvote_change_to_delta_seconds_count") > 0
    assert moved("stackvote_change_to_delta_seconds_sum") > 0
    assert page.value("stackvote_connections") == 4
    assert page.value("stackvote_rooms") == 1
    assert page.value("stackvote_sessions_held") == 1
    assert page.value("stackvote_event_loop_lag_seconds") >= 0
    assert page.value("stackvote_feed_channels") == 0  # the memory store follows nothing

    for member in [fay, *members]:
        await member.client.disconnect()
    after = await until_scraped(app.url, "stackvote_connections", 0)
    assert after.value("stackvote_connections") == 0
    assert after.value("stackvote_rooms") == 0


def test_every_metric_the_dashboard_draws_is_served(app: LiveServer) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    exprs.append(dashboard["templating"]["list"][0]["definition"])
    used = {name for expr in exprs for name in re.findall(r"stackvote_\w+", expr)}
    served = scrape(app.url).names()
    assert used and used <= served, sorted(used - served)
    # Every panel draws per instance.
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            assert "instance" in target["expr"] and "{{instance}}" in target["legendFormat"]
    assert all(p["datasource"]["uid"] == "prometheus" for p in dashboard["panels"])


def test_redis_metrics_are_declared_for_the_store_to_use(app: LiveServer) -> None:
    families = {f.name: f for f in scrape(app.url).families}
    assert families["stackvote_redis_seconds"].type == "histogram"
    assert families["stackvote_redis_errors"].type == "counter"


async def test_rate_limit_refusals_are_counted(tmp_path: Path) -> None:
    limits = {
        "STACKVOTE_LIMIT_CREATES": "1/minute",
        "STACKVOTE_LIMIT_CONNECTS": "1/minute",
        "STACKVOTE_LIMIT_EVENTS": "1/minute",
    }
    with live_server(tmp_path, limits) as server:
        created = create_session(server.url)
        refused = httpx.post(server.url + "/api/sessions", json={"title": "again"})
        assert refused.status_code == 429
        fay = await facilitate(server.url, created)
        second = await join(server.url, {"session": created["id"], "name": "Al"}, refuse_ok=True)
        assert not second.client.connected
        assert (await fay.control("open", "realtime"))["ok"]
        assert (await fay.control("reveal", "realtime"))["retry"]
        page = scrape(server.url)
        await fay.client.disconnect()
    assert page.value("stackvote_rate_limited_total", kind="create") == 1
    assert page.value("stackvote_rate_limited_total", kind="connect") == 1
    assert page.value("stackvote_rate_limited_total", kind="event") == 1
    assert page.value("stackvote_controls_total", outcome="refused") == 1


async def test_instances_count_what_they_hear_from_each_other(
    redis: RedisServer, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        a, b = (
            stack.enter_context(live_server(tmp_path, {"STACKVOTE_REDIS_URL": redis.url}))
            for _ in range(2)
        )
        created = create_session(a.url)
        fay = await facilitate(a.url, created)
        ann = await join(b.url, {"session": created["id"], "name": "Ann"})
        assert (await fay.control("open_all"))["ok"]
        cases = [c["id"] for c in fay.state["cases"]]
        for case in cases:
            ack = await fay.vote(case, 2)
        await ann.until_version(ack["version"])
        heard = scrape(b.url)
        wrote = scrape(a.url)
        for member in (fay, ann):
            await member.client.disconnect()
    # b applied what a stored, and timed how long it took to hear of it.
    assert heard.value("stackvote_feed_records_total") >= len(cases)
    assert heard.value("stackvote_feed_lag_seconds_count") >= len(cases)
    assert heard.value("stackvote_feed_channels") >= 1
    assert heard.value("stackvote_votes_total", outcome="counted") == 0
    assert wrote.value("stackvote_votes_total", outcome="counted") == len(cases)
    # a's own writes are not heard as someone else's.
    assert wrote.value("stackvote_feed_lag_seconds_count") < len(cases)
    # The store times its round trips in the app's registry.
    timed = [s for s in wrote.samples if s.name == "stackvote_redis_seconds_count"]
    assert timed and sum(s.value for s in timed) > 0


# --- each app its own registry; switched off


def test_apps_in_one_process_count_apart() -> None:
    limited = Settings(limit_creates="1/minute")
    first = TestClient(create_app(limited, store=MemoryStore()))
    second = TestClient(create_app(limited, store=MemoryStore()))
    statuses = [first.post("/api/sessions", json={"title": "t"}).status_code for _ in range(2)]
    assert statuses == [201, 429]
    counted = Scrape(first.get("/metrics").text)
    untouched = Scrape(second.get("/metrics").text)
    assert counted.value("stackvote_rate_limited_total", kind="create") == 1
    assert untouched.value("stackvote_rate_limited_total", kind="create") == 0
    assert untouched.names() == counted.names()


def test_metrics_can_be_switched_off() -> None:
    client = TestClient(create_app(Settings(metrics="off"), store=MemoryStore()))
    response = client.get("/metrics")
    assert response.status_code == 404
    assert "error" in response.json()
    assert client.get("/healthz").status_code == 200


def test_the_metrics_setting_is_on_or_off() -> None:
    assert Settings.from_env({}).metrics_enabled
    assert not Settings.from_env({"STACKVOTE_METRICS": "OFF"}).metrics_enabled
    with pytest.raises(SettingsError, match="metrics"):
        Settings.from_env({"STACKVOTE_METRICS": "maybe"})


# --- logs


def log_lines(server: LiveServer) -> list[dict[str, Any]]:
    lines = [line for line in server.log().splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines]


async def test_json_logs_carry_request_and_connection_ids_and_no_token(tmp_path: Path) -> None:
    env = {"STACKVOTE_LOG_FORMAT": "json", "STACKVOTE_LOG_LEVEL": "debug"}
    with live_server(tmp_path, env) as server:
        response = httpx.get(server.url + "/healthz")
        request_id = response.headers["x-request-id"]
        created = create_session(server.url)
        fay = await facilitate(server.url, created)
        ann: Member = await join(server.url, {"session": created["id"], "name": "Ann"})
        connection = ann.client.get_sid("/")
        assert (await fay.control("open", "realtime"))["ok"]
        assert (await ann.vote("realtime", 3))["ok"]
        # Back with the token, as a reload does.
        again = await join(server.url, {"session": created["id"], "token": ann.welcome["token"]})
        for member in (fay, ann, again):
            await member.client.disconnect()
        await asyncio.sleep(0.2)  # the leaving is logged after the client has gone
    text = server.log()
    other = [line for line in text.splitlines() if line and not line.startswith("{")]
    assert other == [f"stackvote is listening on {server.url}"]
    lines = log_lines(server)
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys()
        assert line["time"].endswith("Z")
    assert any(
        line.get("request") == request_id and "/healthz" in line["message"] for line in lines
    )
    about_ann = [line for line in lines if line.get("connection") == connection]
    assert any("joined" in line["message"] for line in about_ann)
    assert any("left" in line["message"] for line in about_ann)
    # Not a token, nor any long piece of one (the protocol's debug lines show frame ends).
    for secret in (created["facilitator_token"], ann.welcome["token"]):
        pieces = {secret[i : i + 10] for i in range(len(secret) - 9)}
        assert not any(piece in text for piece in pieces)
