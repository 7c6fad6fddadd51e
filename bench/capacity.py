"""Past one machine, on paper: the measured costs of a vote, a delivered message, a join and an
idle connection turned into a capacity model, and the model checked against a run it was not
fitted on.

    python bench/compare.py --only storm,rooms,idle --out compare.json
    python bench/fleet.py --placement room --rooms 400 --voters 10 --vote-interval 8 \
        --only memory,room --instances 1 --out rooms-of-11.json
    python bench/fleet.py --placement room --rooms 40 --voters 99 --vote-interval 20 \
        --only memory,room --instances 1 --out rooms-of-100.json
    python bench/fleet.py --placement room --rooms 100 --voters 39 --vote-interval 10 \
        --only memory,room --instances 1 --out rooms-of-40.json
    python bench/capacity.py --compare compare.json --fit rooms-of-11.json \
        --fit rooms-of-100.json --check rooms-of-40.json

The costs (stackvote's own server):

- CPU per vote `a` (its rules, store, acknowledgement, and the delta it causes, built and
  encoded once for the room) and per delivered message `b` (each recipient's write), fitted on
  the voting windows of the memory-store runs given with --fit, whose messages per vote differ
  tenfold (rooms of 11 and of 100): CPU = a * votes + b * messages. In those runs, as in the
  modelled workload, a room gets fewer votes than deltas it may send (one per 100 ms), so nearly
  every vote is a delta of its own; where votes come faster they fold into fewer deltas, and
  the model may overestimate (the check below says by how much);
- what Redis adds, from the Redis runs of the same files: the instance's extra CPU per vote
  against the memory store, and Redis' own CPU per vote;
- CPU per join, memory per connection and the idle CPU of a connection (compare.py's idle).

The check: the costs predict the runs given with --check (another room size and vote rate)
and compare.py's rooms and storm (rooms of 10 voting faster than their deltas, one room of
1,001), and print the error. The model then sizes a workload (default: 10,000 rooms of 100 people, 1
million connections, each person scoring a case every 20 s) per core, per instance, per Redis
shard. Costs move with the machine's moment (up to ~30 % between runs here), so the fitting
and checking runs are best made back to back.
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
    vote_s: float  # a: CPU seconds per vote (memory store), with the delta it causes
    message_s: float  # b: CPU seconds per delivered message (each recipient)
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


def _room_size(run: dict[str, Any]) -> float:
    """People per room: seated people over rooms checked."""
    check = run["check"]
    return float(run["connections"]["ok"]) / float(check["results_ok"] + check["results_wrong"])


def _label(run: dict[str, Any]) -> str:
    config = run["config"]
    rooms = run["check"]["results_ok"] + run["check"]["results_wrong"]
    where = f"compare.py's {config['scenario']}" if "scenario" in config else "fleet.py"
    return (
        f"{where}: {config['store']}, {config['instances']} instance(s), "
        f"{rooms} rooms of {_room_size(run):.0f}"
    )


def _runs(fleet: list[dict[str, Any]], store: str) -> list[dict[str, Any]]:
    return [
        run
        for run in fleet
        if run["config"]["store"] == store
        and run["config"]["instances"] == 1
        and run["config"].get("channels", "room") in ("room", "-", None)
    ]


def fit(compare: dict[str, Any], fitted: list[list[dict[str, Any]]]) -> Costs:
    """The costs, from compare.py's idle run and fleet.py's results (one list per file)."""
    memory = [run for fleet in fitted for run in _runs(fleet, "memory")]
    if len(memory) < 2:
        raise SystemExit("--fit needs two fleet.py results with a one-instance memory-store run")
    # Least squares over the memory-store runs: CPU = a * votes + b * messages.
    svv = sum(float(r["votes"]["ok"]) ** 2 for r in memory)
    smm = sum(float(_vote_messages(r)) ** 2 for r in memory)
    svm = sum(float(r["votes"]["ok"]) * _vote_messages(r) for r in memory)
    svc = sum(r["votes"]["ok"] * _fleet_cpu(r, "vote", "vote-end") for r in memory)
    smc = sum(_vote_messages(r) * _fleet_cpu(r, "vote", "vote-end") for r in memory)
    det = svv * smm - svm * svm
    a = (svc * smm - smc * svm) / det
    b = (smc * svv - svc * svm) / det
    # Redis: each file's Redis run against its own memory-store run (the same load).
    extra, own, joins, seated_redis = 0.0, 0.0, 0.0, 0
    votes = 0
    for fleet in fitted:
        pairs = zip(_runs(fleet, "redis"), _runs(fleet, "memory"), strict=False)
        for redis_run, memory_run in pairs:
            v = redis_run["votes"]["ok"]
            votes += v
            extra += _fleet_cpu(redis_run, "vote", "vote-end") - _fleet_cpu(
                memory_run, "vote", "vote-end"
            )
            marks = redis_run["marks"]
            own += marks["vote-end"]["redis_cpu"] - marks["vote"]["redis_cpu"]
            joins += _fleet_cpu(redis_run, "connect", "seated")
            seated_redis += redis_run["connections"]["ok"]
    if not votes:
        raise SystemExit("--fit needs a one-instance Redis run (room channels) too")
    idle = compare["idle"]["stackvote"]
    seated = idle["connections"]["ok"]
    idle_seconds = _phase(idle, "idle", "idle-end", "at")
    return Costs(
        vote_s=a,
        message_s=b,
        join_s=_phase(idle, "connect", "seated", "cpu") / seated,
        join_redis_s=joins / seated_redis,
        connection_bytes=_phase(idle, "connect", "seated", "rss") / seated,
        idle_cores_per_connection=_phase(idle, "idle", "idle-end", "cpu") / idle_seconds / seated,
        redis_app_vote_s=extra / votes,
        redis_vote_s=own / votes,
    )


def check(costs: Costs, runs: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    """(run, predicted CPU s, measured CPU s) of each run's voting window."""
    rows = []
    for run in runs:
        config = run["config"]
        if config["store"] == "memory":
            extra = 0.0
        elif config["store"] == "redis" and config.get("channels") == "room":
            extra = costs.redis_app_vote_s
        else:
            continue
        predicted = (
            run["votes"]["ok"] * (costs.vote_s + extra) + _vote_messages(run) * costs.message_s
        )
        rows.append((_label(run), predicted, _fleet_cpu(run, "vote", "vote-end")))
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
    parser.add_argument("--compare", type=Path, required=True, help="compare.py --out (idle)")
    parser.add_argument(
        "--fit", type=Path, action="append", required=True, help="fleet.py --out (twice)"
    )
    parser.add_argument(
        "--check", type=Path, action="append", default=[], help="fleet.py --out to predict"
    )
    parser.add_argument("--rooms", type=int, default=10_000)
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--vote-interval", type=float, default=20.0)
    parser.add_argument("--window", type=float, default=0.1)
    parser.add_argument("--utilisation", type=float, default=0.7)
    # bench/sessions.py: 12.9 KiB with 10 people, 758.6 KiB with 1,000 (~0.75 KiB a person).
    parser.add_argument("--session-kib", type=float, default=80.0)
    args = parser.parse_args(argv)
    compare = json.loads(args.compare.read_text())
    costs = fit(compare, [json.loads(path.read_text()) for path in args.fit])
    checked = [run for path in args.check for run in json.loads(path.read_text())]
    # compare.py's own voting runs are checks too (one server, the memory store).
    for scenario in ("rooms", "storm"):
        if scenario in compare:
            run = dict(compare[scenario]["stackvote"])
            run["config"] = {"store": "memory", "instances": 1, "scenario": scenario}
            run["marks"] = {
                name: {**mark, "cpu": {"server": mark["cpu"]}}
                for name, mark in run["marks"].items()
            }
            checked.append(run)
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
    if checked:
        print("\n### The check: runs the costs were not fitted on (voting window)\n")
        print("| run | predicted CPU s | measured CPU s | error |\n|---|---|---|---|")
    worst = 0.0
    for label, predicted, measured in check(costs, checked):
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
    if checked:
        print(f"\nworst check error: {worst:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
