"""stackvote side by side with a Node.js Socket.IO server speaking the same protocol.

    python bench/compare.py                  # the four scenarios, full size (~6 minutes)
    python bench/compare.py --quick          # the same, a few rooms, seconds each (CI)
    python bench/compare.py --only storm,rooms

One invocation runs every server in turn on the same machine, each pinned to core 0 while the
load generator (bench/load/scenarios.mjs, the official socket.io-client) runs on core 1, and
prints what each server spent and what the clients saw, with ratios against the reference
peer measured in the same run (bench/load/peer.mjs: `naive` sends the whole snapshot to the
room on every change; `tuned` folds changes into one delta at most every 100 ms):

- server CPU seconds, per delivered message and per vote; memory per connection; CPU per join;
  CPU while idle;
- vote to visible: from sending a vote to the moment the last client of the room has seen a
  version at least as new as the one the ack named (p50, p99);
- the generator's own CPU (a saturated generator makes latencies meaningless);
- correctness, checked in the same run: every connection seated, no vote left unanswered,
  every client's view equal to the server's, and the results API equal to exactly the
  acknowledged votes.

Scenarios: storm (1 room, 1,000 voters and a facilitator, 3 votes each within 10 s, then
reveal), rooms (200 rooms x 10 people, a vote each every ~2 s for 30 s), idle (5,000 people in
500 rooms for 10 s), storm2 (the storm over 2 stackvote instances and Redis, clients split
between them; also Redis' append-only file bytes per vote, and the same in rooms of 10).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import (  # noqa: E402
    LOAD_DIR,
    ensure_node_modules,
    follow_generator,
    raise_on_sigterm,
    redis_process,
    usage,
)
from tests.live import GENEROUS_LIMITS, LiveServer, free_port, stop_process, wait_ready  # noqa: E402

SERVER_CORE, GENERATOR_CORE = 0, 1
# Servers that run only when --servers names them: stackvote on python-socketio's own
# connection handling (STACKVOTE_CONNECTIONS=stock, the fallback for other ASGI servers).
ON_REQUEST = ("stackvote-stock",)
# The cores this process may use, as it started (before any `pinned` block).
CORES = frozenset(os.sched_getaffinity(0))
# Where --profile puts each stackvote server's py-spy samples (None: no profiling).
PROFILE_DIR: Path | None = None
# The phases between which the profile is taken ("start" to the end of the run by default).
PROFILE_WINDOW = ("start", "")
MiB = 1024 * 1024


@dataclass(frozen=True)
class Scenario:
    name: str
    generator: list[str]
    servers: tuple[str, ...]
    instances: int = 1
    redis: bool = False
    # The built-in store's file (the default of `stackvote serve`) instead of memory.
    sqlite: bool = False


def scenarios(quick: bool) -> list[Scenario]:
    if quick:
        storm = ["--scenario", "storm", "--per-room", "31", "--votes", "2", "--vote-window", "2"]
        rooms = ["--scenario", "rooms", "--rooms", "4", "--per-room", "5", "--duration", "3"]
        idle = ["--scenario", "idle", "--rooms", "10", "--per-room", "5", "--duration", "2"]
        small = ["--scenario", "rooms", "--rooms", "2", "--per-room", "5", "--duration", "3"]
    else:
        storm = ["--scenario", "storm", "--per-room", "1001", "--votes", "3", "--vote-window", "10"]
        rooms = ["--scenario", "rooms", "--rooms", "200", "--per-room", "10", "--duration", "30"]
        idle = ["--scenario", "idle", "--rooms", "500", "--per-room", "10", "--duration", "10"]
        small = ["--scenario", "rooms", "--rooms", "20", "--per-room", "10", "--duration", "10"]
    everyone = ("stackvote", "node-tuned", "node-naive", *ON_REQUEST)
    return [
        Scenario("storm", storm, everyone),
        Scenario("rooms", rooms, everyone),
        Scenario("idle", idle, everyone),
        Scenario("storm2", storm, ("stackvote",), instances=2, redis=True),
        Scenario("small-rooms-redis", small, ("stackvote",), redis=True),
        Scenario("small-rooms-sqlite", small, ("stackvote",), sqlite=True),
    ]


@contextmanager
def pinned(core: int) -> Iterator[None]:
    """Children started in this block run on `core` (and their threads: affinity is
    inherited at fork), so the servers and the generator never share a core. Blocks may nest
    (the generator starts while the servers' block is open): what counts is the cores this
    process could run on when it started, not those of the block around."""
    before = os.sched_getaffinity(0)
    if len(CORES) > 1 and core in CORES:
        os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@dataclass
class Running:
    label: str
    urls: list[str]
    pids: dict[str, int]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    aof: Path | None = None


@contextmanager
def servers(kind: str, scenario: Scenario, tmp: Path) -> Iterator[Running]:
    with ExitStack() as stack, pinned(SERVER_CORE):
        running = Running(kind, [], {})

        def start(name: str, command: list[str], cwd: Path, env: dict[str, str] | None) -> None:
            port = free_port()
            process = subprocess.Popen(
                [*command, "--port", str(port)],
                cwd=cwd,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=(tmp / f"{name}.log").open("wb"),
            )
            stack.callback(stop_process, process)
            running.processes.append(process)
            running.urls.append(f"http://127.0.0.1:{port}")
            running.pids[name] = process.pid

        if kind.startswith("node-"):
            start(kind, ["node", "peer.mjs", "--mode", kind.removeprefix("node-")], LOAD_DIR, None)
        else:
            env = {
                **os.environ,
                **GENEROUS_LIMITS,
                "STACKVOTE_LOG_LEVEL": "warning",
                # Like the Node peers, sessions in memory (the built-in store's file is
                # measured on its own: scenario small-rooms-sqlite).
                "STACKVOTE_REDIS_URL": "memory://",
            }
            if kind == "stackvote-stock":
                env["STACKVOTE_CONNECTIONS"] = "stock"
            if scenario.sqlite:
                env["STACKVOTE_REDIS_URL"] = f"sqlite:///{tmp / 'stackvote.sqlite3'}"
            if scenario.redis:
                redis = stack.enter_context(redis_process(tmp))
                env["STACKVOTE_REDIS_URL"] = redis.url
                assert redis.process is not None
                running.pids["redis"] = redis.process.pid
                running.aof = redis.data_dir
            for n in range(scenario.instances):
                start(f"stackvote-{n}", [sys.executable, "-m", "server", "serve"], ROOT, env)
        for url, process in zip(running.urls, running.processes, strict=True):
            wait_ready(LiveServer(url, process, tmp / "unused.log"), timeout=30)
        yield running


def aof_bytes(directory: Path | None) -> int:
    if directory is None:
        return 0
    return sum(f.stat().st_size for f in directory.rglob("*.aof*") if f.is_file())


def run(scenario: Scenario, kind: str, tmp: Path) -> dict[str, Any]:
    """One server (or fleet) under one scenario: the generator's result, plus the servers' CPU
    and memory at each phase the generator announced."""
    with servers(kind, scenario, tmp) as running:
        app = [name for name in running.pids if name != "redis"]
        marks: dict[str, dict[str, Any]] = {}

        def mark(name: str) -> None:
            taken = {n: usage(pid) for n, pid in running.pids.items()}
            marks[name] = {
                "at": time.monotonic(),
                "cpu": sum(u.cpu for n, u in taken.items() if u and n in app),
                "rss": sum(u.rss for n, u in taken.items() if u and n in app),
                "redis_cpu": taken["redis"].cpu if taken.get("redis") else 0.0,
                "aof": aof_bytes(running.aof),
            }

        profilers: list[subprocess.Popen[bytes]] = []

        def profile() -> None:
            # py-spy on the generator's core: these runs are for the profile, not the ratios.
            with pinned(GENERATOR_CORE):
                profilers.extend(
                    subprocess.Popen(
                        [
                            "py-spy",
                            "record",
                            "-r",
                            "250",
                            "-f",
                            "raw",
                            "--pid",
                            str(pid),
                            "-o",
                            str(PROFILE_DIR / f"{scenario.name}-{name}.txt"),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    for name, pid in running.pids.items()
                    if name in app
                )

        def stop_profiling() -> None:
            for profiler in profilers:
                profiler.send_signal(signal.SIGINT)  # py-spy writes what it sampled
                profiler.wait(timeout=60)
            profilers.clear()

        profiling = PROFILE_DIR is not None and kind.startswith("stackvote")
        first, last = PROFILE_WINDOW

        def mark_and_profile(name: str) -> None:
            if profiling and name == last:
                stop_profiling()
            mark(name)
            if profiling and name == first:
                profile()

        mark_and_profile("start")
        log = tmp / f"generator-{scenario.name}-{kind}.log"
        with pinned(GENERATOR_CORE):
            generator = subprocess.Popen(
                ["node", "scenarios.mjs", "--url", ",".join(running.urls), *scenario.generator],
                cwd=LOAD_DIR,
                stdout=subprocess.PIPE,
                stderr=log.open("wb"),
                text=True,
            )
        result = follow_generator(generator, mark_and_profile, log, f"{scenario.name} on {kind}")
        result["marks"] = marks
        stop_profiling()
        return result


def between(result: dict[str, Any], start: str, end: str, key: str) -> float:
    marks = result["marks"]
    if start not in marks or end not in marks:
        return float("nan")
    return float(marks[end][key] - marks[start][key])


def summarise(result: dict[str, Any]) -> dict[str, float | int | str]:
    connections = result["connections"]["ok"] + result["connections"]["failed"]
    seated = result["connections"]["ok"]
    cpu = between(result, "connect", "check" if "check" in result["marks"] else "idle-end", "cpu")
    vote_cpu = between(result, "vote", "vote-end", "cpu")
    votes_ok = result["votes"]["ok"]
    summary: dict[str, float | int | str] = {
        "seated": f"{seated}/{connections}",
        "seat time s": result["connections"]["seconds"],
        "server CPU s": cpu,
        "CPU per join ms": between(result, "connect", "seated", "cpu") / max(1, seated) * 1000,
        "memory per connection KiB": between(result, "connect", "seated", "rss")
        / max(1, seated)
        / 1024,
        "messages delivered": result["messages"],
        "CPU per message µs": cpu / max(1, result["messages"]) * 1e6,
        "votes ok": votes_ok,
        "CPU per vote µs": vote_cpu / max(1, votes_ok) * 1e6 if votes_ok else float("nan"),
        "vote→visible p50 ms": result["visible_ms"]["p50"] or float("nan"),
        "vote→visible p99 ms": result["visible_ms"]["p99"] or float("nan"),
        "generator CPU s": result["generator_cpu_s"],
    }
    if "idle" in result["marks"]:
        idle_cpu = between(result, "idle", "idle-end", "cpu")
        idle_time = between(result, "idle", "idle-end", "at")
        summary["idle CPU % of a core"] = 100 * idle_cpu / idle_time
    redis_cpu = between(result, "connect", "check", "redis_cpu")
    if redis_cpu == redis_cpu and redis_cpu > 0:
        summary["Redis CPU s"] = redis_cpu
        aof = between(result, "vote", "vote-end", "aof")
        summary["AOF bytes per vote"] = aof / max(1, votes_ok)
    refused = sum(result["votes"]["refused"].values())
    check = result["check"] or {}
    problems = {
        "failed connections": result["connections"]["failed"],
        "votes refused": refused,
        "controls never taken": result.get("controls", {}).get("failed", 0),
        "votes unanswered": result["votes"]["timeouts"],
        "clients out of step": check.get("mismatched", 0),
        "rooms whose results ≠ acked votes": check.get("results_wrong", 0),
    }
    summary["correct"] = (
        "yes"
        if not any(problems.values())
        else "NO: " + ", ".join(f"{k} {v}" for k, v in problems.items() if v)
    )
    return summary


NONE = "n/a"


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return NONE
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


RATIO_ROWS = (
    "server CPU s",
    "CPU per join ms",
    "memory per connection KiB",
    "CPU per message µs",
    "CPU per vote µs",
    "vote→visible p99 ms",
    "idle CPU % of a core",
)


# The ratio columns: (numerator, denominator, heading), each shown when both ran.
RATIOS = (
    ("stackvote", "node-tuned", "stackvote / tuned"),
    ("stackvote", "node-naive", "stackvote / naive"),
    ("stackvote-stock", "stackvote", "stock / fast"),
)


def table(name: str, results: dict[str, dict[str, Any]]) -> str:
    kinds = list(results)
    rows = {kind: summarise(result) for kind, result in results.items()}
    keys = list(next(iter(rows.values())))
    ratios = [(a, b, heading) for a, b, heading in RATIOS if a in rows and b in rows]
    header = ["", *kinds, *(heading for _, _, heading in ratios)]
    lines = [f"### {name}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in keys:
        cells = [key, *(fmt(rows[k].get(key, NONE)) for k in kinds)]
        for a, b, _ in ratios:
            ours, theirs = rows[a].get(key), rows[b].get(key)
            ratio = NONE
            numbers = isinstance(ours, float) and isinstance(theirs, float)
            if key in RATIO_ROWS and numbers and theirs and ours == ours and theirs == theirs:
                ratio = f"{ours / theirs:.2f}"
            cells.append(ratio)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few rooms, seconds each (CI)")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--out", default="", help="write every raw result as JSON here")
    parser.add_argument(
        "--profile", default="", help="py-spy each stackvote server into this folder (raw)"
    )
    parser.add_argument(
        "--profile-window",
        default="start,",
        help="the generator's phases to profile between, e.g. vote,vote-end (default: all)",
    )
    parser.add_argument(
        "--servers",
        default="",
        help=(
            "comma-separated servers to run (stackvote, node-tuned, node-naive; default: those"
            " three; stackvote-stock, on python-socketio's own connection handling, if named)"
        ),
    )
    options = parser.parse_args()
    global PROFILE_DIR, PROFILE_WINDOW
    if options.profile:
        PROFILE_DIR = Path(options.profile).resolve()
        PROFILE_DIR.mkdir(parents=True, exist_ok=True)
        first, _, last = options.profile_window.partition(",")
        PROFILE_WINDOW = (first, last)
    if os.cpu_count() is None or len(os.sched_getaffinity(0)) < 2:
        print("note: fewer than 2 cores; servers and generator will share one", flush=True)
    raise_on_sigterm()
    ensure_node_modules()
    chosen = [
        s for s in scenarios(options.quick) if not options.only or s.name in options.only.split(",")
    ]
    everything: dict[str, dict[str, Any]] = {}
    named = options.servers.split(",") if options.servers else []
    failed = False
    with tempfile.TemporaryDirectory(prefix="stackvote-compare-") as tmp_dir:
        tmp = Path(tmp_dir)
        for scenario in chosen:
            results: dict[str, Any] = {}
            for kind in scenario.servers:
                if (named or kind in ON_REQUEST) and kind not in named:
                    continue
                print(f"# {scenario.name} on {kind}...", file=sys.stderr, flush=True)
                scratch = tmp / f"{scenario.name}-{kind}"
                scratch.mkdir()
                results["stackvote" if kind == "stackvote" else kind] = run(scenario, kind, scratch)
            everything[scenario.name] = results
            print(table(scenario.name, results), flush=True)
            print(flush=True)
            failed |= any(summarise(r)["correct"] != "yes" for r in results.values())
    if options.out:
        Path(options.out).write_text(json.dumps(everything, indent=1))
    with contextlib.suppress(Exception):
        node = subprocess.run(["node", "--version"], capture_output=True, text=True)
        print(
            f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; "
            f"node {node.stdout.strip()}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
