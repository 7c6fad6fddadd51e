"""The self-hosting files: the compose file and image checked as data, the nginx config run."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_lib
import yaml

from tests.live import ROOT, LiveServer, create_session, free_port, join, live_server, missing
from tests.redis_server import RedisServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NGINX_CONF = ROOT / "deploy" / "nginx.conf"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_redis_is_persistent_and_health_checked(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    volume, _, target = redis["volumes"][0].partition(":")
    assert volume in compose["volumes"] and target == "/data"
    assert "redis-cli" in redis["healthcheck"]["test"] and "ping" in redis["healthcheck"]["test"]


def test_several_app_instances_wait_for_redis(compose: dict[str, Any]) -> None:
    app = compose["services"]["app"]
    assert app["deploy"]["replicas"] >= 2
    assert app["depends_on"]["redis"]["condition"] == "service_healthy"
    assert app["environment"]["STACKVOTE_REDIS_URL"].startswith("redis://redis:")
    assert app["build"] == "."


def test_the_proxy_is_the_one_published_port(compose: dict[str, Any]) -> None:
    published = {name: s.get("ports", []) for name, s in compose["services"].items()}
    assert published["redis"] == [] and published["app"] == []
    assert published["proxy"] == ["${STACKVOTE_PORT:-8080}:8080"]
    proxy = compose["services"]["proxy"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert proxy["depends_on"]["app"]["condition"] == "service_healthy"
    conf = NGINX_CONF.read_text()
    assert re.search(r"server app:8000\b", conf) and "listen 8080;" in conf


FAKE_NGINX = """#!/bin/sh
if [ "$1" = "-s" ]; then echo "$2" >> "$NGINX_LOG"; exit 0; fi
trap 'echo quit >> "$NGINX_LOG"; exit 0' QUIT
trap 'echo term >> "$NGINX_LOG"; exit 0' TERM
echo started >> "$NGINX_LOG"
while :; do sleep 0.05; done
"""
FAKE_GETENT = """#!/bin/sh
[ "$1 $2" = "hosts app" ] && cat "$REPLICAS"
"""


def test_the_proxy_follows_the_replicas(compose: dict[str, Any], tmp_path: Path) -> None:
    """deploy/proxy-follow.sh (the proxy's command) reloads nginx when Docker's DNS gives a
    new set of app addresses, keeps nginx's set when the name resolves to nothing, and hands a
    stop to nginx. Here nginx and getent are stand-ins that write down what they were asked."""
    proxy = compose["services"]["proxy"]
    assert proxy["command"] == ["sh", "/etc/nginx/proxy-follow.sh"]
    assert "./deploy/proxy-follow.sh:/etc/nginx/proxy-follow.sh:ro" in proxy["volumes"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("nginx", FAKE_NGINX), ("getent", FAKE_GETENT)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log, replicas = tmp_path / "nginx.log", tmp_path / "replicas"
    replicas.write_text("172.31.250.2 app\n172.31.250.3 app\n")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "NGINX_LOG": str(log),
        "REPLICAS": str(replicas),
        "STACKVOTE_FOLLOW_SECONDS": "0.1",
    }
    script = ROOT / "deploy" / "proxy-follow.sh"
    follower = subprocess.Popen(
        ["sh", str(script)], env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )

    def logged(expected: list[str], within: float = 5) -> None:
        deadline = time.monotonic() + within
        while (log.read_text().split() if log.exists() else []) != expected:
            assert time.monotonic() < deadline, (log.read_text(), expected)
            time.sleep(0.05)

    try:
        logged(["started"])
        time.sleep(0.5)  # the same set, polled a few times: nothing to do
        logged(["started"])
        replicas.write_text("172.31.250.3 app\n172.31.250.2 app\n172.31.250.4 app\n")
        logged(["started", "reload"])
        replicas.write_text("")  # every replica down, or DNS busy
        time.sleep(0.5)
        logged(["started", "reload"])
        replicas.write_text("172.31.250.4 app\n")
        logged(["started", "reload", "reload"])
        follower.send_signal(signal.SIGQUIT)  # docker stop: the image's stop signal
        assert follower.wait(timeout=5) == 0
        logged(["started", "reload", "reload", "quit"])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(follower.pid, signal.SIGKILL)  # the script and its nginx
        _, errors = follower.communicate()
    assert "replicas now 172.31.250.4 (were 172.31.250.2 172.31.250.3 172.31.250.4 )" in errors


def test_the_image_is_small_pinned_and_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, flags=re.M)
    assert bases and all(re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", b) for b in bases)
    assert re.search(r"^USER (?!root)\w+", dockerfile, flags=re.M)
    assert "HEALTHCHECK" in dockerfile and "/readyz" in dockerfile
    # Installed offline, from the wheels of exactly the pinned versions.
    assert "pip install --no-cache-dir --no-index --find-links /tmp/wheels stackvote" in dockerfile
    pins = (ROOT / "constraints" / "image.txt").read_text().splitlines()
    assert all(re.fullmatch(r"[\w.-]+==[\w.]+( ; .+)?", p) for p in pins if not p.startswith("#"))
    # Only the uvicorn extras the server runs on.
    assert not {"watchfiles", "python-dotenv", "pyyaml"} & {p.split("==")[0] for p in pins}


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if found is None:
        missing("PROXY", "nginx is not installed (Debian package nginx)")
    return found


@contextmanager
def nginx_in_front_of(
    backends: list[LiveServer], tmp: Path, port: int | None = None, *, one_name: bool = False
) -> Iterator[str]:
    """Run the repo's nginx.conf, pointed at local instances instead of the compose service:
    each by its address, or (`one_name`) all under one name that resolves to every one of
    their addresses, as Docker's DNS answers for a scaled service (nginx then runs with an
    /etc/hosts of its own, in a mount namespace of its own)."""
    port = port or free_port()
    conf = NGINX_CONF.read_text()
    command = [nginx_binary(), "-p", str(tmp), "-c", str(tmp / "nginx.conf"),
               "-g", f"daemon off; pid {tmp}/nginx.pid;"]  # fmt: skip
    if one_name:
        ports = {b.url.rsplit(":", 1)[1] for b in backends}
        assert len(ports) == 1, "one name, one port: the backends differ by address"
        hosts = tmp / "hosts"
        hosts.write_text(
            "127.0.0.1 localhost\n"
            + "".join(f"{b.url.removeprefix('http://').rsplit(':', 1)[0]} app\n" for b in backends)
        )
        conf = re.sub(r"\bapp:8000\b", f"app:{ports.pop()}", conf)
        command = ["unshare", "--mount", "sh", "-c",
                   f'mount --bind "{hosts}" /etc/hosts && exec "$0" "$@"', *command]  # fmt: skip
    else:
        servers = "\n".join(
            f"        server {b.url.removeprefix('http://')} max_fails=1 fail_timeout=5s;"
            for b in backends
        )
        conf = re.sub(r"^\s*server app:8000.*$", servers, conf, flags=re.M)
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    (tmp / "nginx.conf").write_text(conf)
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=(tmp / "nginx.log").open("wb")
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert process.poll() is None, (tmp / "nginx.log").read_text()
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_the_proxy_config_carries_websockets_and_the_host(
    redis: RedisServer, tmp_path: Path
) -> None:
    nginx_binary()
    with ExitStack() as stack:
        backends = [
            stack.enter_context(live_server(tmp_path, {"STACKVOTE_REDIS_URL": redis.url}))
            for _ in range(2)
        ]
        proxy = stack.enter_context(nginx_in_front_of(backends, tmp_path))
        created = create_session(proxy)
        # Links are built from the Host header the proxy passes on.
        assert created["join_url"] == f"{proxy}/s/{created['id']}"
        auth = {"session": created["id"], "facilitator_token": created["facilitator_token"]}
        fay = await join(proxy, {**auth, "name": "Fay"})
        members = [await join(proxy, {"session": created["id"], "name": f"M{n}"}) for n in range(4)]
        await fay.control("open", "realtime")
        for n, member in enumerate(members):
            assert (await member.vote("realtime", n))["ok"]
        ack = await fay.control("reveal", "realtime")
        state = await fay.until_version(ack["version"])
        results = next(c for c in state["cases"] if c["id"] == "realtime")["results"]
        assert results["histogram"] == [1, 1, 1, 1, 0]

        # One instance goes away: the proxy sends new connections to the other.
        backends[0].process.kill()
        backends[0].process.wait()
        again = await join(proxy, {"session": created["id"], "token": members[0].welcome["token"]})
        assert again.id == members[0].id
        for member in [fay, again, *members]:
            if member.client.connected:
                await member.client.disconnect()


# --- client addresses behind the proxy


def test_the_app_trusts_only_its_own_proxy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    trusted = services["app"]["environment"]["STACKVOTE_TRUSTED_PROXIES"]
    proxy_address = services["proxy"]["networks"]["backend"]["ipv4_address"]
    subnet = compose["networks"]["backend"]["ipam"]["config"][0]["subnet"]
    assert trusted == proxy_address
    assert ipaddress.ip_address(proxy_address) in ipaddress.ip_network(subnet)
    assert services["app"]["networks"] == ["backend"]
    assert "X-Forwarded-For $remote_addr;" in NGINX_CONF.read_text()


def create_from(url: str, forwarded_for: str) -> int:
    response = httpx.post(
        url + "/api/sessions", json={"title": "t"}, headers={"X-Forwarded-For": forwarded_for}
    )
    return response.status_code


def test_through_the_proxy_a_client_written_forwarded_for_changes_nothing(
    tmp_path: Path,
) -> None:
    nginx_binary()
    # The app trusts the proxy in front of it (on this machine), as compose's does its own.
    limited = {"STACKVOTE_LIMIT_CREATES": "10/minute", "STACKVOTE_TRUSTED_PROXIES": "127.0.0.1"}
    with live_server(tmp_path, limited) as app, nginx_in_front_of([app], tmp_path) as proxy:
        statuses = [create_from(proxy, f"198.51.100.{n}") for n in range(20)]
    assert statuses == [201] * 10 + [429] * 10


def test_the_client_is_the_right_most_address_no_trusted_proxy_added(tmp_path: Path) -> None:
    # A proxy that appends (as nginx's $proxy_add_x_forwarded_for does) leaves the client's own
    # text on the left: only the right-most untrusted hop counts.
    limited = {"STACKVOTE_LIMIT_CREATES": "10/minute", "STACKVOTE_TRUSTED_PROXIES": "127.0.0.1"}
    with live_server(tmp_path, limited) as app:
        statuses = [create_from(app.url, f"10.9.8.{n}, 203.0.113.5") for n in range(20)]
        other = create_from(app.url, "203.0.113.6")
    assert statuses == [201] * 10 + [429] * 10
    assert other == 201


# --- monitoring (docker compose --profile monitoring)


def test_monitoring_runs_only_with_its_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", services[name]["image"])
    for name in ("redis", "app", "proxy"):
        assert "profiles" not in services[name]


def test_monitoring_sits_on_the_backend_network_at_its_own_addresses(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    subnet = ipaddress.ip_network(compose["networks"]["backend"]["ipam"]["config"][0]["subnet"])
    addresses = {
        name: ipaddress.ip_address(services[name]["networks"]["backend"]["ipv4_address"])
        for name in ("proxy", "prometheus", "grafana")
    }
    assert len(set(addresses.values())) == 3 and all(a in subnet for a in addresses.values())
    # The app believes X-Forwarded-For from the proxy alone.
    trusted = services["app"]["environment"]["STACKVOTE_TRUSTED_PROXIES"]
    assert trusted == str(addresses["proxy"])


def test_grafana_is_published_on_this_machine_only_and_read_only(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    assert grafana["ports"] == ["127.0.0.1:${STACKVOTE_GRAFANA_PORT:-3000}:3000"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert env["GF_SECURITY_DISABLE_INITIAL_ADMIN_CREATION"] == "true"
    assert env["GF_AUTH_DISABLE_LOGIN_FORM"] == "true"
    assert "ports" not in compose["services"]["prometheus"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    for source in mounts:
        assert (ROOT / source).is_dir(), source
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["uid"] == "prometheus"
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards" / "stackvote.yml").read_text())
    dashboards_in = provider["providers"][0]["options"]["path"]
    assert mounts["./deploy/grafana/dashboards"] == dashboards_in


def test_prometheus_scrapes_every_app_replica(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == "5s"
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    # `app` resolves to every replica on the compose network, however many --scale made.
    assert job["dns_sd_configs"] == [
        {"names": ["app"], "type": "A", "port": 8000, "refresh_interval": "15s"}
    ]
    assert "app" in compose["services"]


def test_the_proxy_refuses_metrics_which_the_app_serves(tmp_path: Path) -> None:
    nginx_binary()
    with live_server(tmp_path) as app, nginx_in_front_of([app], tmp_path) as proxy:
        assert httpx.get(app.url + "/metrics").status_code == 200
        for path in ("/metrics", "/metrics?x=1", "//metrics", "/%6Detrics"):
            response = httpx.get(proxy + path)
            assert response.status_code == 404, path
            assert "stackvote_" not in response.text
        # The app's own redirect to the path without a slash leads back to the refusal.
        slashed = httpx.get(proxy + "/metrics/", follow_redirects=True)
        assert slashed.status_code == 404 and "stackvote_" not in slashed.text
        assert httpx.get(proxy + "/healthz").status_code == 200


def can_give_nginx_its_own_hosts() -> bool:
    """Whether this machine lets a process have an /etc/hosts of its own (root, unshare)."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", "mount --bind /etc/hosts /etc/hosts"],
        capture_output=True,
    )
    return probe.returncode == 0


@pytest.mark.parametrize("one_name", [False, True], ids=["by-address", "one-service-name"])
async def test_the_proxy_keeps_the_sockets_of_a_room_on_one_instance(
    redis: RedisServer, tmp_path: Path, one_name: bool
) -> None:
    nginx_binary()
    if one_name and not can_give_nginx_its_own_hosts():
        missing("PROXY", "needs root and unshare to give nginx a name with several addresses")
    port = free_port()
    with ExitStack() as stack:
        backends = [
            stack.enter_context(
                live_server(
                    tmp_path,
                    {"STACKVOTE_REDIS_URL": redis.url},
                    # As a scaled compose service: one port, one address per replica.
                    host=f"127.0.0.{n + 2}" if one_name else "127.0.0.1",
                    port=port if one_name else None,
                )
            )
            for n in range(3)
        ]
        proxy = stack.enter_context(nginx_in_front_of(backends, tmp_path, one_name=one_name))
        client = redis_lib.Redis(port=redis.port)
        members = []
        for n in range(6):
            created = create_session(proxy)
            # As the room page connects: the room named in the query.
            url = f"{proxy}?room={created['id']}"
            members += [
                await join(url, {"session": created["id"], "name": f"M{i}"}) for i in range(4)
            ]
            channel = f"stackvote:{{{created['id']}}}:feed"
            # Four people, one instance following the room.
            assert dict(client.pubsub_numsub(channel))[channel.encode()] == 1, n
        client.close()
        for member in members:
            await member.client.disconnect()
