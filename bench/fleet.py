"""The scaling curve: what one instance spends per delivered message as the fleet grows.

    python bench/fleet.py                          # 400 rooms x (10 voters + a facilitator)
    python bench/fleet.py --quick                  # a few rooms, seconds each (CI smoke run)
    python bench/fleet.py --placement connection,room --out raw.json
    python bench/fleet.py --only room,cluster --instances 1,4

For 1, 2 and 4 stackvote instances sharing one Redis server, and for each way changes travel
between them (STACKVOTE_REDIS_CHANNELS: `room`, a channel per session that only the instances
serving it hear; `shared`, one channel every instance hears and filters), the same load: every
room's facilitator opens the cases, then each voter votes every ~2 s (uniform jitter of
+-50 %) for 30 s and the facilitator reveals. The same again with the room channels over a
Redis Cluster of 3 primaries (sharded pub/sub, needs redis-server 7; tests/redis_fleet.py).

Placement (--placement): `connection` sends each new connection to the next instance in turn,
as a round-robin load balancer does (nginx's default), so every instance holds some people of
nearly every room; `room` puts a whole room on one instance, as a balancer hashing on the
session would: the best case for per-room channels.

Every instance, Redis node and the driver's own clean-up run on core 0, the Node load generator
(bench/load/scenarios.mjs, the official socket.io-client) on core 1. Per configuration and per
instance, over the voting window: CPU seconds (from /proc), messages delivered to its clients
(counted by the clients), feed records it applied (stackvote_feed_records_total on its
/metrics: changes stored by another instance and replayed on its copy), and CPU per delivered
message; then, per channel mode, the ratio of an instance's CPU per delivered message at 2 and
4 instances to 1 instance (target: the room channels within 1.2x). Correctness is checked in
the same run, as compare.py does: everyone seated, every vote acknowledged, every client's
final view equal to the server's version, the results API equal to the acknowledged votes.
Exit code 1 if any configuration got something wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.compare import GENERATOR_CORE, SERVER_CORE, fmt, pinned  # noqa: E402
from bench.procs import (  # noqa: E402
    CLOCK_TICKS,
    LOAD_DIR,
    ensure_node_modules,
    follow_generator,
    raise_on_sigterm,
    usage,
)
from tests.live import GENEROUS_LIMITS, LiveServer, free_port, stop_process, wait_ready  # noqa: E402
from tests.redis_fleet import redis7_binary, redis_cluster  # noqa: E402
from tests.redis_server import RedisServer, redis_binary  # noqa: E402

TARGET = 1.2  # room channels: CPU per delivered message at 4 instances <= 1.2x at 1
# Other processes on the machine using more than this share of a core during a run make it
# noisy: it is run again (--retries), and the quietest run is kept.
NOISY = 0.25
PLACEMENTS = {
    "connection": "round-robin per connection",
    "room": "a room's sockets on one instance",
}


@dataclass(frozen=True)
class Config:
    store: str  # "redis", "cluster" or "memory" (no Redis: the instances share nothing)
    channels: str  # "room" or "shared" ("-" for the memory store)
    instances: int
    placement: str  # "connection" or "room"

    @property
    def group(self) -> str:
        """The configurations one curve is drawn through (all but the fleet size)."""
        if self.store == "memory":
            return f"memory store, nothing shared, {PLACEMENTS[self.placement]}"
        return f"{self.store}, {self.channels} channels, {PLACEMENTS[self.placement]}"

    @property
    def label(self) -> str:
        many = "instance" if self.instances == 1 else "instances"
        return f"{self.group}, {self.instances} {many}"


@dataclass(frozen=True)
class Load:
    rooms: int
    voters: int
    duration: float
    vote_interval: float

    def generator_args(self) -> list[str]:
        return [
            "--scenario", "rooms",
            "--rooms", str(self.rooms),
            "--per-room", str(self.voters + 1),
            "--duration", str(self.duration),
            "--vote-interval", str(self.vote_interval),
            "--quiet-facilitator",
        ]  # fmt: skip


def configs(
    placements: list[str], instances: list[int], only: set[str], cluster: bool
) -> list[Config]:
    chosen = []
    for placement in placements:
        kinds = [("redis", "room"), ("redis", "shared"), ("cluster", "room")]
        if placement == "room":
            # The control: each room on one instance and nothing shared, so whatever grows
            # here is the cost of splitting the load over processes on one core, not of Redis.
            kinds.append(("memory", "-"))
        for store, channels in kinds:
            name = store if store in ("cluster", "memory") else channels
            if only and name not in only:
                continue
            if store == "cluster" and not cluster:
                continue
            chosen += [Config(store, channels, n, placement) for n in instances]
    return chosen


# ---------------------------------------------------------------------------------------------
# Starting a fleet


@dataclass
class Fleet:
    urls: list[str] = field(default_factory=list)
    instances: dict[str, int] = field(default_factory=dict)  # name -> pid
    redis: dict[int, int] = field(default_factory=dict)  # port -> pid of each data node
    redis_url: str = ""


@contextmanager
def redis_server(binary: str, tmp: Path) -> Iterator[RedisServer]:
    data_dir = tmp / "redis"
    data_dir.mkdir()
    server = RedisServer(binary, data_dir, free_port())
    server.start()  # append-only file, fsync every second, as in docker compose
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def fleet(config: Config, tmp: Path) -> Iterator[Fleet]:
    """Redis (one server, or a cluster of 3 primaries without replicas) and the instances, each
    pinned to the servers' core; stopped when the block ends."""
    running = Fleet()
    with ExitStack() as stack:
        with pinned(SERVER_CORE):
            if config.store == "cluster":
                cluster = stack.enter_context(
                    redis_cluster(tmp, primaries=3, replicas_per_primary=0)
                )
                running.redis_url = cluster.url
                for node in cluster.primaries:
                    assert node.process is not None
                    running.redis[node.port] = node.process.pid
            elif config.store == "redis":
                binary = redis7_binary() or redis_binary()
                if binary is None:
                    sys.exit("needs redis-server: pip install -e '.[dev]' or apt install redis")
                server = stack.enter_context(redis_server(binary, tmp))
                assert server.process is not None
                running.redis_url = server.url
                running.redis[server.port] = server.process.pid
            env = {
                **os.environ,
                **GENEROUS_LIMITS,
                "STACKVOTE_LOG_LEVEL": "warning",
                "STACKVOTE_METRICS": "on",
            }
            # One instance without Redis: sessions in memory, like the Node peers.
            env["STACKVOTE_REDIS_URL"] = running.redis_url or "memory://"
            if running.redis_url:
                env["STACKVOTE_REDIS_CHANNELS"] = config.channels
            servers: list[LiveServer] = []
            for n in range(config.instances):
                port = free_port()
                log = tmp / f"stackvote-{n}.log"
                process = subprocess.Popen(
                    [sys.executable, "-m", "server", "serve", "--port", str(port)],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=log.open("wb"),
                )
                stack.callback(stop_process, process)
                url = f"http://127.0.0.1:{port}"
                servers.append(LiveServer(url, process, log))
                running.urls.append(url)
                running.instances[f"instance {n + 1}"] = process.pid
        for instance in servers:
            wait_ready(instance, timeout=30)
        yield running


# ---------------------------------------------------------------------------------------------
# Reading the servers


def processes_busy() -> float:
    """CPU seconds every process on the machine has spent (user, nice and system time from
    /proc/stat; not interrupts, which the traffic itself causes and no process is charged)."""
    user, nice, system = (int(x) for x in Path("/proc/stat").read_text().split()[1:4])
    return (user + nice + system) / CLOCK_TICKS


def scrape(url: str) -> dict[str, float]:
    """An instance's /metrics, as sample name (labels included) -> value; empty if absent."""
    try:
        response = httpx.get(url + "/metrics", timeout=5)
    except httpx.HTTPError:
        return {}
    if response.status_code != 200:
        return {}
    values = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                values[name] = float(value)
    return values


def published(ports: list[int]) -> int:
    """PUBLISH and SPUBLISH calls on these Redis nodes so far (scripts' calls included)."""
    total = 0
    for port in ports:
        client = redis.Redis(port=port, socket_timeout=5)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        for command in ("cmdstat_publish", "cmdstat_spublish"):
            total += int(stats.get(command, {}).get("calls", 0))
    return total


def run(config: Config, load: Load, tmp: Path) -> dict[str, Any]:
    """One configuration: the generator's result, and at each phase it announced, every
    process's CPU time, every instance's metrics and Redis' publish count."""
    with fleet(config, tmp) as running:
        marks: dict[str, dict[str, Any]] = {}
        generator_pid = 0

        def mark(name: str) -> None:
            cpu = {n: usage(pid) for n, pid in running.instances.items()}
            redis_cpu = [usage(pid) for pid in running.redis.values()]
            generator = usage(generator_pid) if generator_pid else None
            marks[name] = {
                "at": time.monotonic(),
                "machine": processes_busy(),
                "driver": sum(os.times()[:2]),
                "cpu": {n: u.cpu if u else float("nan") for n, u in cpu.items()},
                "redis_cpu": sum(u.cpu for u in redis_cpu if u),
                "generator_cpu": generator.cpu if generator else float("nan"),
                "metrics": dict(zip(running.instances, map(scrape, running.urls), strict=True)),
                "published": published(list(running.redis)),
            }

        with pinned(GENERATOR_CORE):
            generator = subprocess.Popen(
                [
                    "node", "scenarios.mjs",
                    "--url", ",".join(running.urls),
                    "--placement", config.placement,
                    *load.generator_args(),
                ],
                cwd=LOAD_DIR,
                stdout=subprocess.PIPE,
                stderr=(tmp / "generator.log").open("wb"),
                text=True,
            )  # fmt: skip
        generator_pid = generator.pid
        result = follow_generator(generator, mark, tmp / "generator.log", config.label)
        result["marks"] = marks
        result["instances"] = list(running.instances)
        result["urls"] = running.urls
        result["config"] = {
            "store": config.store,
            "channels": config.channels,
            "instances": config.instances,
            "placement": config.placement,
        }
        return result


# ---------------------------------------------------------------------------------------------
# Summing up


def _metric(marks: dict[str, Any], start: str, end: str, instance: str, name: str) -> float:
    if start not in marks or end not in marks:
        return float("nan")
    before = marks[start]["metrics"].get(instance, {})
    after = marks[end]["metrics"].get(instance, {})
    if name not in before or name not in after:
        return float("nan")
    return float(after[name] - before[name])


def per_instance(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each instance over the voting window."""
    marks = result["marks"]
    rows = []
    delivered = {s["url"]: s["vote_messages"] for s in result["per_server"]}
    for name, url in zip(result["instances"], result["urls"], strict=True):
        cpu = marks["vote-end"]["cpu"][name] - marks["vote"]["cpu"][name]
        messages = delivered.get(url, 0)
        rows.append(
            {
                "instance": name,
                "cpu": cpu,
                "messages": messages,
                "records": _metric(marks, "vote", "vote-end", name, "stackvote_feed_records_total"),
                "sent": _metric(marks, "vote", "vote-end", name, "stackvote_messages_sent_total"),
                "gaps": _metric(marks, "vote", "vote-end", name, "stackvote_feed_gaps_total"),
                "us_per_message": cpu / messages * 1e6 if messages else float("nan"),
            }
        )
    return rows


def problems(result: dict[str, Any]) -> dict[str, int]:
    check = result.get("check") or {}
    return {
        "failed connections": result["connections"]["failed"],
        "votes refused": sum(result["votes"]["refused"].values()),
        "controls never taken": result.get("controls", {}).get("failed", 0),
        "votes unanswered": result["votes"]["timeouts"],
        "clients not at the server's version": check.get("mismatched", 0),
        "of which behind it": check.get("behind", 0),
        "rooms whose results ≠ acked votes": check.get("results_wrong", 0),
    }


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    rows = per_instance(result)
    marks = result["marks"]
    cpu = sum(r["cpu"] for r in rows)
    messages = sum(r["messages"] for r in rows)
    window = marks["vote-end"]["at"] - marks["vote"]["at"]
    found = problems(result)
    connections = result["connections"]["ok"] + result["connections"]["failed"]
    measured = [r["us_per_message"] for r in rows if r["us_per_message"] == r["us_per_message"]]
    ours = (
        cpu
        + marks["vote-end"]["redis_cpu"]
        - marks["vote"]["redis_cpu"]
        + marks["vote-end"]["generator_cpu"]
        - marks["vote"]["generator_cpu"]
        + marks["vote-end"]["driver"]
        - marks["vote"]["driver"]
    )
    others = (marks["vote-end"]["machine"] - marks["vote"]["machine"] - ours) / window
    return {
        "rows": rows,
        "others": max(0.0, others),
        "cpu": cpu,
        "messages": messages,
        "us_per_message": sum(measured) / len(measured) if measured else float("nan"),
        "fleet_us_per_message": cpu / messages * 1e6 if messages else float("nan"),
        "window": window,
        "core0": (cpu + marks["vote-end"]["redis_cpu"] - marks["vote"]["redis_cpu"]) / window,
        "redis_cpu": marks["vote-end"]["redis_cpu"] - marks["vote"]["redis_cpu"],
        "published": marks["vote-end"]["published"] - marks["vote"]["published"],
        "generator_cpu": marks["end"]["generator_cpu"],
        "generator_vote_cpu": marks["vote-end"]["generator_cpu"] - marks["vote"]["generator_cpu"],
        "seated": f"{result['connections']['ok']}/{connections}",
        "votes": f"{result['votes']['ok']}/{result['votes']['sent']}",
        "visible_p50": result["visible_ms"]["p50"],
        "visible_p99": result["visible_ms"]["p99"],
        "correct": "yes"
        if not any(found.values())
        else "NO: " + ", ".join(f"{k} {v}" for k, v in found.items() if v),
        "refusals": result["votes"]["refused"],
        "control_refusals": result.get("controls", {}).get("refused", {}),
        "gaps": sum(r["gaps"] for r in rows),
    }


def detail(config: Config, summary: dict[str, Any]) -> str:
    lines = [
        f"#### {config.label}",
        "",
        "| instance | CPU s | messages delivered | feed records applied | CPU per message µs |",
        "|---|---|---|---|---|",
    ]
    for row in summary["rows"]:
        lines.append(
            f"| {row['instance']} | {fmt(row['cpu'])} | {row['messages']:,} | "
            f"{_count(row['records'])} | {fmt(row['us_per_message'])} |"
        )
    if len(summary["rows"]) > 1:
        records = sum(r["records"] for r in summary["rows"])
        lines.append(
            f"| all | {fmt(summary['cpu'])} | {summary['messages']:,} | {_count(records)} | "
            f"{fmt(summary['fleet_us_per_message'])} |"
        )
    lines += [
        "",
        f"Voting window {summary['window']:.1f} s; core 0 (instances + Redis) "
        f"{100 * summary['core0']:.0f} % busy; Redis CPU {fmt(summary['redis_cpu'])} s; "
        f"records published {summary['published']:,}; generator CPU "
        f"{fmt(summary['generator_cpu'])} s in all, {fmt(summary['generator_vote_cpu'])} s "
        f"while voting ({100 * summary['generator_vote_cpu'] / summary['window']:.0f} % of its "
        f"core); seated {summary['seated']}, votes acked {summary['votes']}, vote→visible "
        f"p50/p99 {fmt(summary['visible_p50'])}/{fmt(summary['visible_p99'])} ms; other "
        f"processes {100 * summary['others']:.0f} % of a core; "
        f"feed gaps {_count(summary['gaps'])}; correct: {summary['correct']}.",
    ]
    if summary["refusals"]:
        reasons = "; ".join(f'{n:,} "{why}"' for why, n in summary["refusals"].items())
        lines[-1] += f" Refused: {reasons}"
    if summary["control_refusals"]:
        reasons = "; ".join(f'{n:,} "{why}"' for why, n in summary["control_refusals"].items())
        lines[-1] += f" Controls turned away (sent again): {reasons}"
    return "\n".join(lines)


def _count(value: float) -> str:
    return "n/a" if value != value else f"{int(value):,}"


def overview(results: list[tuple[Config, dict[str, Any]]]) -> str:
    """One line per run: what the whole fleet did while voting."""
    lines = [
        "| configuration | n | CPU s (all) | per instance | messages | records applied "
        "(per instance) | µs/msg | core 0 busy | others | votes acked | correct |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for config, s in results:
        n = config.instances
        records = sum(r["records"] for r in s["rows"])
        lines.append(
            f"| {config.group} | {n} | {fmt(s['cpu'])} | {fmt(s['cpu'] / n)} | "
            f"{s['messages']:,} | {_count(records / n)} | {fmt(s['us_per_message'])} | "
            f"{100 * s['core0']:.0f} % | {100 * s['others']:.0f} % | {s['votes']} | "
            f"{'yes' if s['correct'] == 'yes' else 'NO'} |"
        )
    return "\n".join(lines)


def _median(values: list[float]) -> float:
    ranked = sorted(values)
    middle = len(ranked) // 2
    return ranked[middle] if len(ranked) % 2 else (ranked[middle - 1] + ranked[middle]) / 2


def _spread(values: list[float], digits: str = ".2f") -> str:
    """The median, and the range when there are several values."""
    if not values:
        return ""
    text = f"{_median(values):{digits}}"
    if len(values) > 1:
        text += f" ({min(values):{digits}} to {max(values):{digits}})"
    return text


Passes = dict[Config, list[dict[str, Any]]]  # each configuration's summaries, in pass order


def _ratios(runs: list[dict[str, Any]], ones: list[dict[str, Any]]) -> list[float]:
    """Per pass: CPU per message here over the same pass's at 1 instance (runs of one pass
    are minutes apart, passes are not: this keeps a slow spell of the machine out of a
    ratio)."""
    return [
        run["us_per_message"] / one["us_per_message"]
        for run, one in zip(runs, ones, strict=False)
        if one["us_per_message"]
    ]


def curve(passes: Passes) -> tuple[str, dict[str, bool]]:
    """Per group: an instance's CPU per delivered message at each size, and its ratio to 1
    instance (medians over the passes, with their range). Also, per group of room channels,
    whether the target holds at every size."""
    groups: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for config, runs in passes.items():
        groups.setdefault(config.group, {})[config.instances] = runs
    sizes = sorted({config.instances for config in passes})
    header = [
        "configuration",
        *(f"µs/msg at {n}" for n in sizes),
        *(f"{n} vs 1" for n in sizes if n != 1),
        "correct",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    met: dict[str, bool] = {}
    for group, by_size in groups.items():
        cells = [group]
        for n in sizes:
            cells.append(_spread([r["us_per_message"] for r in by_size.get(n, [])], ".0f"))
        ones = by_size.get(1, [])
        for n in sizes:
            if n == 1:
                continue
            ratios = _ratios(by_size.get(n, []), ones)
            cells.append(_spread(ratios))
            if ratios and "room channels" in group:
                met[group] = met.get(group, True) and _median(ratios) <= TARGET
        correct = all(r["correct"] == "yes" for runs in by_size.values() for r in runs)
        cells.append("yes" if correct else "NO")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), met


def against_control(passes: Passes) -> list[str]:
    """With a room on one instance, each group's growth over the memory store's (instances
    that share nothing), pass by pass: what sharing the sessions through Redis adds to
    splitting the same load over more processes."""
    control = {c.instances: runs for c, runs in passes.items() if c.store == "memory"}
    ones = {c.group: runs for c, runs in passes.items() if c.instances == 1}
    lines = []
    for config, runs in passes.items():
        if config.store == "memory" or config.placement != "room" or config.instances == 1:
            continue
        if config.instances not in control or 1 not in control or config.group not in ones:
            continue
        growth = _ratios(runs, ones[config.group])
        base = _ratios(control[config.instances], control[1])
        extra = [g / b for g, b in zip(growth, base, strict=False)]
        if not extra:
            continue
        lines.append(
            f"{config.label}: {_median(growth):.2f}x of 1 instance, against "
            f"{_median(base):.2f}x for the memory store: {_spread(extra)}x from sharing through "
            "Redis."
        )
    return lines


def report(passes: Passes) -> bool:
    """Print the overview, the curve and the verdicts; whether every run was correct."""
    repeat = max(len(runs) for runs in passes.values())
    median_runs = []
    for config, runs in passes.items():
        ranked = sorted(runs, key=lambda run: float(run["us_per_message"]))
        median_runs.append((config, ranked[(len(ranked) - 1) // 2]))
    if repeat > 1:
        print(f"Each configuration ran {repeat} times; below, its median run (CPU per message).\n")
    print("### Every configuration, over its voting window\n")
    print(overview(median_runs))
    print()
    table, met = curve(passes)
    print("### The curve: an instance's CPU per delivered message (mean over instances)\n")
    if repeat > 1:
        print(
            "Medians over the passes (range in brackets); a ratio is taken within each pass, "
            "then the median of those.\n"
        )
    print(table)
    print()
    for group, ok in met.items():
        verdict = "met" if ok else "NOT met"
        print(f"Target (within {TARGET}x of 1 instance) for {group}: {verdict}.")
    for line in against_control(passes):
        print(line)
    return all(run["correct"] == "yes" for runs in passes.values() for run in runs)


def from_file(path: str) -> Passes:
    """The passes of a run saved with --out (every run, in the order they ran)."""
    passes: Passes = {}
    for result in json.loads(Path(path).read_text()):
        passes.setdefault(Config(**result["config"]), []).append(summarise(result))
    return passes


@contextmanager
def work_dir(prefix: str, *, keep: bool) -> Iterator[str]:
    """A temporary directory for logs and data, removed afterwards unless `keep`."""
    if keep:
        path = tempfile.mkdtemp(prefix=prefix)
        print(f"logs in {path}", file=sys.stderr, flush=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as path:
        yield path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 rooms of 5, 5 s (CI smoke run)")
    parser.add_argument(
        "--placement",
        default="connection",
        help="connection, room, or both comma-separated (default: connection)",
    )
    parser.add_argument("--instances", default="", help="fleet sizes (default 1,2,4)")
    parser.add_argument(
        "--only", default="", help="any of room,shared,cluster,memory (default all)"
    )
    parser.add_argument("--rooms", type=int, help="rooms (default 400; --quick 20)")
    parser.add_argument("--voters", type=int, help="voters per room (default 10; --quick 5)")
    parser.add_argument("--duration", type=float, help="seconds of voting (default 30; --quick 5)")
    parser.add_argument(
        "--vote-interval", type=float, default=2, help="mean seconds between a voter's votes"
    )
    parser.add_argument("--out", default="", help="write every raw result as JSON here")
    parser.add_argument(
        "--report", default="", help="print the tables again from a file written by --out"
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs' directory")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run every configuration this many times"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=1,
        help=f"runs again a run during which others took over {NOISY * 100:.0f}%% of a core",
    )
    options = parser.parse_args()
    if options.report:
        return 0 if report(from_file(options.report)) else 1
    placements = [p for p in options.placement.split(",") if p]
    if not placements or any(p not in PLACEMENTS for p in placements):
        parser.error("--placement takes connection, room or connection,room")
    sizes = [int(n) for n in (options.instances or "1,2,4").split(",")]
    only = {o for o in options.only.split(",") if o}
    if only - {"room", "shared", "cluster", "memory"}:
        parser.error("--only takes room, shared, cluster and memory")
    load = Load(
        rooms=options.rooms or (20 if options.quick else 400),
        voters=options.voters or (5 if options.quick else 10),
        duration=options.duration or (5 if options.quick else 30),
        vote_interval=options.vote_interval,
    )
    if len(os.sched_getaffinity(0)) < 2:
        print("note: fewer than 2 cores; servers and generator will share one", flush=True)
    cluster = redis7_binary() is not None
    if not cluster and (not only or "cluster" in only):
        print("note: no redis-server 7 found; the cluster runs are left out", flush=True)
    raise_on_sigterm()
    ensure_node_modules()
    chosen = configs(placements, sizes, only, cluster)
    if not chosen:
        parser.error("no configuration matches these --only, --placement and --instances")
    print(
        f"## {load.rooms} rooms x ({load.voters} voters + a facilitator), a vote each every "
        f"~{load.vote_interval:g} s for {load.duration:g} s\n",
        flush=True,
    )
    # Every configuration `--repeat` times, in passes (so that a noisy spell on the machine
    # does not fall on one fleet size only); per configuration, the run with the median CPU
    # per delivered message is the one shown.
    passes: dict[Config, list[tuple[dict[str, Any], dict[str, Any]]]] = {c: [] for c in chosen}
    raw = []
    with work_dir("stackvote-fleet-", keep=options.keep) as tmp_dir:
        for round_ in range(max(1, options.repeat)):
            for index, config in enumerate(chosen):
                print(f"# {config.label} (pass {round_ + 1})...", file=sys.stderr, flush=True)
                tries: list[tuple[dict[str, Any], dict[str, Any]]] = []
                attempts = 1 + max(0, options.retries)
                for attempt in range(attempts):
                    scratch = Path(tmp_dir) / f"run-{round_}-{index}-{attempt}"
                    scratch.mkdir()
                    result = run(config, load, scratch)
                    tries.append((result, summarise(result)))
                    if tries[-1][1]["others"] <= NOISY or attempt == attempts - 1:
                        break
                    print(
                        f"#   other processes took {tries[-1][1]['others']:.0%} of a core; again",
                        file=sys.stderr,
                        flush=True,
                    )
                quietest = min(tries, key=lambda pair: float(pair[1]["others"]))
                passes[config].append(quietest)
                raw.append(quietest[0])
                if options.out:  # after every run: a long session stopped midway keeps its runs
                    Path(options.out).write_text(json.dumps(raw, indent=1))
                print(detail(config, quietest[1]), flush=True)
                print(flush=True)
    correct = report({config: [summary for _, summary in runs] for config, runs in passes.items()})
    with contextlib.suppress(Exception):
        node = subprocess.run(["node", "--version"], capture_output=True, text=True)
        binary = redis7_binary() or redis_binary() or "?"
        version = subprocess.run([binary, "--version"], capture_output=True, text=True)
        print(
            f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; "
            f"node {node.stdout.strip()}; {version.stdout.split(' sha')[0]}"
        )
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
