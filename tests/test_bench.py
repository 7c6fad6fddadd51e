"""The benchmarks' quick modes run here, so the harness cannot rot. No timing is asserted: the
numbers are for people to read in bench/RESULTS.md; here only that they come out and that the
runs' own correctness checks pass."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.live import ROOT, missing


def run_bench(*args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_limits_bench_runs_and_every_vote_is_acknowledged() -> None:
    out = run_bench("bench/limits.py", "--quick")
    assert "| vote ack p50, ms |" in out
    assert "400 votes, all acknowledged ok" in out


def test_the_side_by_side_bench_runs_every_scenario_and_checks_itself() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        missing("NODE", "node and npm are needed for the Node.js reference and load generator")
    out = run_bench("bench/compare.py", "--quick", timeout=900)
    for scenario in ("storm", "rooms", "idle", "storm2", "small-rooms-redis"):
        assert f"### {scenario}" in out
    # compare.py exits 1 when any server, ours or the references, got something wrong; the
    # naive reference is only expected to be slow, and at this size it is not even that.
    assert "NO:" not in out
    assert "| AOF bytes per vote |" in out


def test_the_side_by_side_bench_runs_the_stock_connection_layer_when_asked() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        missing("NODE", "node and npm are needed for the load generator")
    out = run_bench(
        "bench/compare.py", "--quick", "--only", "rooms", "--servers", "stackvote,stackvote-stock"
    )
    assert "stackvote-stock" in out and "stock / fast" in out
    assert "NO:" not in out


def _run(votes: int, messages: int, cpu: dict[str, float], **extra: object) -> dict[str, object]:
    """A result as compare.py and fleet.py write it, with these voting-window figures."""
    marks = {
        name: {"cpu": c, "at": at, "rss": rss, "redis_cpu": r}
        for name, c, at, rss, r in (
            ("connect", 0.0, 0.0, 0.0, 0.0),
            ("seated", cpu["seated"], 5.0, cpu.get("rss", 0.0), 0.0),
            ("vote", cpu["seated"], 6.0, 0.0, 0.0),
            ("vote-end", cpu["seated"] + cpu["vote"], 36.0, 0.0, cpu.get("redis", 0.0)),
            ("idle", 1.0, 6.0, 0.0, 0.0),
            ("idle-end", 1.0 + cpu.get("idle", 0.0), 16.0, 0.0, 0.0),
        )
    }
    return {
        "votes": {"ok": votes},
        "connections": {"ok": 100},
        "per_server": [{"vote_messages": messages}],
        "marks": marks,
        **extra,
    }


def _fleet(
    store: str, instances: int, votes: int, messages: int, vote_cpu: float, redis_cpu: float = 0.0
) -> dict[str, object]:
    run = _run(votes, messages, {"seated": 0.2, "vote": vote_cpu, "redis": redis_cpu})
    marks = run["marks"]
    assert isinstance(marks, dict)
    for mark in marks.values():  # fleet.py: CPU per instance, split evenly here
        mark["cpu"] = {f"instance {i}": mark["cpu"] / instances for i in range(instances)}
    run["config"] = {"store": store, "instances": instances, "channels": "room"}
    return run


def test_the_capacity_model_recovers_the_costs_it_is_given() -> None:
    """bench/capacity.py's fit on figures made with known costs: 300 µs a vote, 30 µs a
    message, and Redis adding 100 µs to the instance and 80 µs to itself per vote."""
    from bench import capacity

    def cpu(votes: int, messages: int, extra: float = 0.0) -> float:
        return votes * (300e-6 + extra) + messages * 30e-6

    def fleet(votes: int, messages: int, rooms: int) -> list[dict[str, object]]:
        runs = [
            _fleet("memory", 1, votes, messages, cpu(votes, messages)),
            _fleet("redis", 1, votes, messages, cpu(votes, messages, 100e-6), votes * 80e-6),
        ]
        for run in runs:
            run["check"] = {"results_ok": rooms, "results_wrong": 0}
        return runs

    idle = _run(0, 0, {"seated": 0.08, "vote": 0.0, "idle": 0.01, "rss": 100 * 16 * 1024})
    costs = capacity.fit(
        {"idle": {"stackvote": idle}},
        [fleet(15_000, 160_000, 400), fleet(6_000, 600_000, 40)],
    )
    assert round(costs.vote_s * 1e6) == 300
    assert round(costs.message_s * 1e6) == 30
    assert round(costs.redis_app_vote_s * 1e6) == 100
    assert round(costs.redis_vote_s * 1e6) == 80
    assert round(costs.join_s * 1e3, 2) == 0.8  # 0.08 s for 100 people
    assert round(costs.connection_bytes) == 16 * 1024
    # The check: exact where a run follows the costs, 10 % off where it does not.
    checked = fleet(9_000, 360_000, 100)
    checked[1]["marks"]["vote-end"]["cpu"] = {  # type: ignore[index]
        "instance 0": 0.2 + cpu(9_000, 360_000, 100e-6) * 1.1
    }
    errors = [predicted / measured - 1 for _, predicted, measured in capacity.check(costs, checked)]
    assert abs(errors[0]) < 1e-9
    assert round(errors[1], 3) == round(1 / 1.1 - 1, 3)
    # The model: rooms of 100, a vote each every 20 s: 5 votes and 5 deltas to 100 people a
    # second per room, 5 * 400 µs + 500 * 30 µs = 17 ms of CPU a second (+ pings).
    workload = capacity.Workload(10_000, 100, 20.0, 0.1, 0.7, 80 * 1024)
    rows = dict(capacity.model(costs, workload))
    assert rows["connections"] == "1,000,000"
    assert rows["votes/s (fleet)"] == "50,000"
    assert rows["messages/s (fleet)"] == "5,000,000"
    # Redis: 50,000 votes/s at 80 µs is 4 cores, 6 primaries at most 70 % busy.
    assert rows["Redis CPU (cores)"] == "4.0"
    assert rows["Redis Cluster primaries"] == "6"
    # Per core: 0.7 / (17 ms + 100 people's pings) rooms.
    pings = 100 * 0.01 / 10 / 100
    assert rows["rooms per core (one instance)"] == f"{0.7 / (0.017 + pings):,.0f}"
