"""Past one machine, on paper: the measured costs of a vote, a delivered message, a join and an
idle connection turned into a capacity model, and the model checked against a run it was not
fitted on.

    python bench/compare.py --only storm,rooms,idle --out compare.json
    python bench/fleet.py --placement room --rooms 400 --vote-interval 8 --out fleet.json
    python bench/capacity.py --compare compare.json --fleet fleet.json [--rooms 10000 ...]

The costs (stackvote's own server, from compare.py's side-by-side runs):

- CPU per vote `a` and per delivered message `b`, fitted on the voting windows of two
  scenarios whose messages per vote differ sixfold (rooms of 10, one room of 1,001):
  CPU = a * votes + b * messages;
- CPU per join and memory per connection (the idle scenario), and the idle CPU of a connection
  (its pings);
- what Redis adds (fleet.py): the instance's extra CPU per vote with the Redis store, against
  the memory store, and Redis' own CPU per vote.

The check: the fitted `a` and `b` predict the CPU of fleet.py's memory-store runs (400 rooms of
11 at 1, 2 and 4 instances: another room size, another vote rate, other processes), and the
one-instance Redis costs predict the 2- and 4-instance Redis runs. The model then sizes a
workload (default: 10,000 rooms of 100 people, 1 million connections, each person scoring a
case every 20 s) per core, per instance, per Redis shard, and names what runs out first.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KiB = 1024


@dataclass(frozen=True)
class Costs:
    vote_s: float  # a: CPU seconds per vote (memory store), apart from its messages
    message_s: float  # b: CPU seconds per delivered message
    join_s: float  # CPU seconds to seat a person (memory store)
    join_redis_s: float  # the same with the Redis store
    connection_bytes: float  # RSS per connection
    idle_cores_per_connection: float  # pings of an idle connection
    redis_app_vote_s: float  # an instance's extra CPU per vote with the Redis store
    redis_vote_s: float  # Redis' own CPU per vote (commit, feed record, pub/sub, AOF)


def _phase(result: dict[str, Any], start: str, end: str, key: str) -> float:
    marks = result["marks"]
    return float(marks[end][key]) - float(marks[start][key])


def _fleet_cpu(run: dict[str, Any], start: str, end: str) -> float:
    marks = run["marks"]
    return float(sum(marks[end]["cpu"][i] - marks[start]["cpu"][i] for i in marks[end]["cpu"]))


def _vote_messages(result: dict[str, Any]) -> int:
    return sum(int(s["vote_messages"]) for s in result["per_server"])


def fit(compare: dict[str, Any], fleet: list[dict[str, Any]]) -> Costs:
    rooms, storm, idle = (compare[s]["stackvote"] for s in ("rooms", "storm", "idle"))
    # Two equations, two unknowns: CPU = a * votes + b * messages, over each voting window.
    (v1, m1, c1), (v2, m2, c2) = (
        (r["votes"]["ok"], _vote_messages(r), _phase(r, "vote", "vote-end", "cpu"))
        for r in (rooms, storm)
    )
    det = v1 * m2 - v2 * m1
    a = (c1 * m2 - c2 * m1) / det
    b = (v1 * c2 - v2 * c1) / det
    seated = idle["connections"]["ok"]
    memory1 = _one(fleet, "memory", 1)
    redis1 = _one(fleet, "redis", 1)
    votes = redis1["votes"]["ok"]
    redis_app = (
        _fleet_cpu(redis1, "vote", "vote-end") - _fleet_cpu(memory1, "vote", "vote-end")
    ) / votes
    idle_seconds = _phase(idle, "idle", "idle-end", "at")
    return Costs(
        vote_s=a,
        message_s=b,
        join_s=_phase(idle, "connect", "seated", "cpu") / seated,
        join_redis_s=_fleet_cpu(redis1, "connect", "seated") / redis1["connections"]["ok"],
        connection_bytes=_phase(idle, "connect", "seated", "rss") / seated,
        idle_cores_per_connection=_phase(idle, "idle", "idle-end", "cpu") / idle_seconds / seated,
        redis_app_vote_s=redis_app,
        redis_vote_s=(
            redis1["marks"]["vote-end"]["redis_cpu"] - redis1["marks"]["vote"]["redis_cpu"]
        )
        / votes,
    )


def _one(fleet: list[dict[str, Any]], store: str, instances: int) -> dict[str, Any]:
    for run in fleet:
        config = run["config"]
        if (
            config["store"] == store
            and config["instances"] == instances
            and config.get("channels", "room") in ("room", None)
        ):
            return run
    raise SystemExit(f"fleet.py's results hold no {store} run with {instances} instance(s)")


def check(costs: Costs, fleet: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    """(run, predicted CPU s, measured CPU s) over each voting window it was not fitted on."""
    rows = []
    for run in fleet:
        config = run["config"]
        votes, messages = run["votes"]["ok"], _vote_messages(run)
        measured = _fleet_cpu(run, "vote", "vote-end")
        if config["store"] == "memory":
            predicted = votes * costs.vote_s + messages * costs.message_s
        elif config["store"] == "redis" and config["instances"] > 1:
            if config.get("channels") != "room":
                continue
            predicted = votes * (costs.vote_s + costs.redis_app_vote_s) + messages * costs.message_s
        else:
            continue
        label = f"{config['store']}, {config['instances']} instance(s)"
        rows.append((label, predicted, measured))
    return rows


@dataclass(frozen=True)
class Workload:
    rooms: int
    people: int  # per room
    vote_interval: float  # seconds between one person's votes
    window: float  # the fan-out's coalescing window (seconds)
    utilisation: float  # how busy a core may run
    session_bytes: float  # memory of one room's session (server copy)


def model(costs: Costs, w: Workload) -> list[tuple[str, str]]:
    connections = w.rooms * w.people
    votes_per_room = w.people / w.vote_interval
    # One delta per change, at most one per window (the first after a quiet spell at once).
    deltas_per_room = min(votes_per_room, 1 / w.window)
    messages_per_room = deltas_per_room * w.people
    cpu_per_room = (
        votes_per_room * (costs.vote_s + costs.redis_app_vote_s)
        + messages_per_room * costs.message_s
        + w.people * costs.idle_cores_per_connection
    )
    rooms_per_core = w.utilisation / cpu_per_room
    cores = math.ceil(w.rooms / rooms_per_core)
    per_instance_connections = connections / cores
    memory_per_instance = (
        per_instance_connections * costs.connection_bytes + (w.rooms / cores) * w.session_bytes
    )
    votes = w.rooms * votes_per_room
    redis_cores = votes * costs.redis_vote_s
    shards = max(1, math.ceil(redis_cores / w.utilisation))
    one_redis_rooms = w.utilisation / (votes_per_room * costs.redis_vote_s)
    rejoin = per_instance_connections * costs.join_redis_s
    rows = [
        ("connections", f"{connections:,}"),
        ("votes/s (fleet)", f"{votes:,.0f}"),
        ("messages/s (fleet)", f"{w.rooms * messages_per_room:,.0f}"),
        ("CPU per room (cores)", f"{cpu_per_room:.4f}"),
        ("rooms per core (one instance)", f"{rooms_per_core:,.0f}"),
        ("connections per core", f"{rooms_per_core * w.people:,.0f}"),
        ("instances (one core each)", f"{cores:,}"),
        ("memory per instance", f"{memory_per_instance / 1024**2:,.0f} MiB"),
        ("memory, all instances", f"{memory_per_instance * cores / 1024**3:,.1f} GiB"),
        ("Redis CPU (cores)", f"{redis_cores:.1f}"),
        ("rooms one Redis server carries", f"{one_redis_rooms:,.0f}"),
        ("Redis Cluster primaries", f"{shards}"),
        ("an instance's people re-seated elsewhere (CPU s)", f"{rejoin:.1f}"),
    ]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", type=Path, required=True, help="compare.py --out")
    parser.add_argument("--fleet", type=Path, required=True, help="fleet.py --out")
    parser.add_argument("--rooms", type=int, default=10_000)
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--vote-interval", type=float, default=20.0)
    parser.add_argument("--window", type=float, default=0.1)
    parser.add_argument("--utilisation", type=float, default=0.7)
    # bench/sessions.py: 12.9 KiB with 10 people, 758.6 KiB with 1,000 (~0.75 KiB a person).
    parser.add_argument("--session-kib", type=float, default=80.0)
    args = parser.parse_args(argv)
    compare = json.loads(args.compare.read_text())
    fleet = json.loads(args.fleet.read_text())
    costs = fit(compare, fleet)
    print("### Measured costs\n")
    print("| cost | value |\n|---|---|")
    print(f"| CPU per vote (a) | {costs.vote_s * 1e6:.0f} µs |")
    print(f"| CPU per delivered message (b) | {costs.message_s * 1e6:.1f} µs |")
    print(
        f"| CPU per join, memory store / Redis | {costs.join_s * 1e3:.2f} / "
        f"{costs.join_redis_s * 1e3:.2f} ms |"
    )
    print(f"| memory per connection | {costs.connection_bytes / KiB:.1f} KiB |")
    print(
        f"| idle CPU per 1,000 connections | "
        f"{costs.idle_cores_per_connection * 1000 * 100:.3f} % of a core |"
    )
    print(f"| instance CPU per vote added by Redis | {costs.redis_app_vote_s * 1e6:.0f} µs |")
    print(f"| Redis CPU per vote | {costs.redis_vote_s * 1e6:.0f} µs |")
    print("\n### The check: runs the costs were not fitted on (voting window)\n")
    print("| run | predicted CPU s | measured CPU s | error |\n|---|---|---|---|")
    worst = 0.0
    for label, predicted, measured in check(costs, fleet):
        error = predicted / measured - 1
        worst = max(worst, abs(error))
        print(f"| {label} | {predicted:.2f} | {measured:.2f} | {error:+.0%} |")
    workload = Workload(
        args.rooms,
        args.people,
        args.vote_interval,
        args.window,
        args.utilisation,
        args.session_kib * KiB,
    )
    print(
        f"\n### {args.rooms:,} rooms of {args.people}, a vote per person every "
        f"{args.vote_interval:g} s, cores at most {args.utilisation:.0%} busy\n"
    )
    print("| | |\n|---|---|")
    for name, value in model(costs, workload):
        print(f"| {name} | {value} |")
    print(f"\nworst check error: {worst:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
