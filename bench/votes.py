"""Vote throughput and ack latency: memory store vs Redis with one and two instances.

    python bench/votes.py [--clients 20] [--votes 50]

Every scenario runs in the same invocation; ratios are against the memory store (the
reference), since absolute numbers move with the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.live import (
    Member,
    create_session,
    free_port,
    join,
    live_server,
)
from tests.redis_server import RedisServer, redis_binary


async def scenario(urls: list[str], clients: int, votes: int) -> tuple[float, float, float]:
    created = create_session(urls[0], title="bench")
    fay = await join(
        urls[0],
        {"session": created["id"], "name": "F", "facilitator_token": created["facilitator_token"]},
    )
    await fay.control("open_all")
    cases = [c["id"] for c in fay.state["cases"]]
    members: list[Member] = [
        await join(urls[n % len(urls)], {"session": created["id"], "name": f"m{n}"})
        for n in range(clients)
    ]
    latencies: list[float] = []

    async def run(member: Member, n: int) -> None:
        for i in range(votes):
            start = time.perf_counter()
            ack = await member.vote(cases[(n + i) % len(cases)], (n + i) % 5)
            latencies.append(time.perf_counter() - start)
            assert ack["ok"], ack

    start = time.perf_counter()
    await asyncio.gather(*(run(m, n) for n, m in enumerate(members)))
    elapsed = time.perf_counter() - start
    for member in [fay, *members]:
        await member.client.disconnect()
    latencies.sort()
    return (
        clients * votes / elapsed,
        statistics.median(latencies) * 1000,
        latencies[int(len(latencies) * 0.95)] * 1000,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--votes", type=int, default=50)
    args = parser.parse_args()
    binary = redis_binary()
    if binary is None:
        sys.exit("needs redis-server (pip install -e '.[test]')")
    results: dict[str, tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        tmp_path = Path(tmp)
        memory = stack.enter_context(live_server(tmp_path))
        results["memory, 1 instance"] = asyncio.run(
            scenario([memory.url], args.clients, args.votes)
        )
        redis = RedisServer(binary, tmp_path, free_port())
        redis.start()
        stack.callback(redis.stop)
        env = {"STACKVOTE_REDIS_URL": redis.url}
        one = stack.enter_context(live_server(tmp_path, env))
        results["redis, 1 instance"] = asyncio.run(scenario([one.url], args.clients, args.votes))
        two = stack.enter_context(live_server(tmp_path, env))
        results["redis, 2 instances"] = asyncio.run(
            scenario([one.url, two.url], args.clients, args.votes)
        )
    reference = results["memory, 1 instance"][0]
    print(f"{args.clients} clients x {args.votes} votes, one session (all on the same room)")
    print(f"{'scenario':<22}{'votes/s':>10}{'ratio':>8}{'p50 ms':>9}{'p95 ms':>9}")
    for name, (rate, p50, p95) in results.items():
        print(f"{name:<22}{rate:>10.0f}{rate / reference:>8.2f}{p50:>9.1f}{p95:>9.1f}")


if __name__ == "__main__":
    main()
