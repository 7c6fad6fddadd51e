"""What `STACKVOTE_REDIS_WAIT_REPLICAS=1` costs: the same voting load on one stackvote instance
over Redis Sentinel (a primary and a replica), acknowledging a vote once the primary has it,
then only once the replica has it too (Redis' WAIT).

    python bench/wait.py             # 50 rooms x 10 people, a vote each every ~1 s for 20 s
    python bench/wait.py --quick     # a few rooms, a few seconds

The server is pinned to core 0 and the load generator (bench/load/scenarios.mjs, the official
socket.io-client) to core 1; the Redis processes share core 0 with the server. Printed per
setting: the vote's acknowledgement time (p50, p99, from the generator), vote to visible,
server CPU per vote, the generator's own CPU, and the run's correctness (every vote answered,
every client's view equal to the server's, results equal to the acknowledged votes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.compare import GENERATOR_CORE, SERVER_CORE, fmt, pinned  # noqa: E402
from bench.procs import (  # noqa: E402
    LOAD_DIR,
    ensure_node_modules,
    follow_generator,
    raise_on_sigterm,
    usage,
)
from tests.live import GENEROUS_LIMITS, live_server  # noqa: E402
from tests.redis_fleet import sentinel_group  # noqa: E402


def load(quick: bool) -> list[str]:
    if quick:
        return ["--scenario", "rooms", "--rooms", "4", "--per-room", "5", "--duration", "4"]
    return [
        "--scenario", "rooms", "--rooms", "50", "--per-room", "10",
        "--vote-interval", "1", "--duration", "20",
    ]  # fmt: skip


def run(wait: int, quick: bool, tmp: Path) -> dict[str, Any]:
    with pinned(SERVER_CORE), sentinel_group(tmp / f"redis-{wait}") as group:
        env = {
            **GENEROUS_LIMITS,
            "STACKVOTE_REDIS_URL": group.url,
            "STACKVOTE_REDIS_WAIT_REPLICAS": str(wait),
            "STACKVOTE_LOG_LEVEL": "warning",
        }
        with live_server(tmp, env) as server:
            cpu: dict[str, float] = {}

            def mark(name: str) -> None:
                taken = usage(server.process.pid)
                assert taken is not None
                cpu[name] = taken.cpu

            log = tmp / f"generator-{wait}.log"
            with pinned(GENERATOR_CORE):
                generator = subprocess.Popen(
                    ["node", "scenarios.mjs", "--url", server.url, *load(quick)],
                    cwd=LOAD_DIR,
                    stdout=subprocess.PIPE,
                    stderr=log.open("wb"),
                    text=True,
                )
            result = follow_generator(generator, mark, log, f"WAIT {wait}")
    # Only while people vote: joining costs the same either way.
    result["server_cpu"] = cpu["vote-end"] - cpu["vote"]
    return result


def summary(result: dict[str, Any]) -> dict[str, Any]:
    check = result.get("check") or {}
    problems = {
        "unanswered": result["votes"]["timeouts"],
        "refused": sum(result["votes"]["refused"].values()),
        "out of step": check.get("mismatched", 0),
        "results wrong": check.get("results_wrong", 0),
    }
    ok = result["votes"]["ok"]
    return {
        "votes acknowledged": ok,
        "ack p50 ms": result["ack_ms"]["p50"],
        "ack p99 ms": result["ack_ms"]["p99"],
        "vote→visible p50 ms": result["visible_ms"]["p50"],
        "vote→visible p99 ms": result["visible_ms"]["p99"],
        "server CPU per vote µs": result["server_cpu"] / max(1, ok) * 1e6,
        "generator CPU s": result["generator_cpu_s"],
        "correct": "yes"
        if not any(problems.values())
        else "NO: " + ", ".join(f"{k} {v}" for k, v in problems.items() if v),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few rooms, a few seconds")
    args = parser.parse_args()
    raise_on_sigterm()
    ensure_node_modules()
    if len(os.sched_getaffinity(0)) < 2:
        print("note: fewer than two cores; server and generator share one", file=sys.stderr)
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="stackvote-wait-") as tmp:
        for wait in (0, 1):
            started = time.monotonic()
            rows[f"WAIT {wait}"] = summary(run(wait, args.quick, Path(tmp)))
            print(f"WAIT {wait}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    names = list(rows)
    print("| | " + " | ".join(names) + " | WAIT 1 / WAIT 0 |")
    print("|---|" + "---|" * (len(names) + 1))
    for key in rows[names[0]]:
        values = [rows[n][key] for n in names]
        ratio = ""
        if all(isinstance(v, float | int) and not isinstance(v, bool) for v in values):
            ratio = f"{values[1] / values[0]:.2f}" if values[0] else ""
        print(f"| {key} | " + " | ".join(fmt(v) for v in values) + f" | {ratio} |")
    return 0 if all(r["correct"] == "yes" for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
