"""Rate limits cost the same however many addresses they know.

    python bench/limits.py [--addresses 1000000] [--votes 2000] [--quick]

Two measurements, each with an empty limit table and with one that knows `--addresses`
addresses (and as many socket ids), side by side in one invocation:

1. a check on its own, in this process (microseconds per check, and the table's memory);
2. a vote's ack time over a real Socket.IO connection, against a server whose tables were
   filled before it started listening. The server runs on core 0 and this client on core 1
   (`taskset`), so the two do not compete; the client's own CPU time is printed.

Correctness is checked in the same run: every vote must be acknowledged `ok`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.settings import Settings  # noqa: E402
from server.throttle import Throttle  # noqa: E402

# Day-long rates, so that buckets drained by the fill stay in the table for the whole run
# (a full bucket would be dropped, and the table would not be as big as it says).
SETTINGS = Settings(
    limit_events="100000/second;1000000/day",
    limit_connects="100000/second;1000000/day",
    limit_frames="100000/second",
)


def fill(throttle: Throttle, addresses: int) -> None:
    """Known addresses (IPv4 and IPv6 /64s) and socket ids, every bucket drained: an attacker
    who came from a million addresses."""
    now = time.monotonic()
    connect, events = throttle.addresses["connect"], throttle.events
    drained = ((0.0, 0.0), now)
    for n in range(addresses):
        if n % 2:
            address = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        else:
            address = f"2001:db8:{n >> 16 & 0xFFFF:x}:{n & 0xFFFF:x}::/64"
        connect._buckets[address] = drained
        events._buckets[f"sid-{n}"] = drained


def big_throttle(addresses: int) -> Throttle:
    throttle = Throttle(SETTINGS, max_keys=max(100_000, addresses * 2))
    fill(throttle, addresses)
    assert len(throttle.events) == len(throttle.addresses["connect"]) == addresses
    return throttle


async def check_cost(addresses: int, checks: int) -> tuple[float, float]:
    """Microseconds per check (connect + event), and MiB the tables hold."""
    tracemalloc.start()
    throttle = big_throttle(addresses)
    held = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    start = time.perf_counter()
    for n in range(checks):
        await throttle.allow_address("connect", f"192.0.2.{n & 255}")
        throttle.allow_event(f"live-{n & 1023}")
    elapsed = time.perf_counter() - start
    assert len(throttle.events) >= addresses, "the table shrank: it measured a smaller one"
    return elapsed / checks * 1e6, held


def serve(port: int, addresses: int) -> None:
    """The server process: an app whose limit tables are full before it listens."""
    import uvicorn

    from server import app as app_module

    settings = dataclasses.replace(SETTINGS, port=port)
    app_module.Throttle = lambda settings, **kwargs: big_throttle(addresses)  # type: ignore[assignment,misc]
    app = app_module.create_app(settings)
    print("ready", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio")


async def vote_acks(url: str, votes: int) -> list[float]:
    from tests.live import create_session, facilitate

    created = create_session(url, title="limits")
    fay = await facilitate(url, created)
    await fay.control("open_all")
    cases = [c["id"] for c in fay.state["cases"]]
    times = []
    for n in range(votes):
        start = time.perf_counter()
        ack = await fay.vote(cases[n % len(cases)], n % 5)
        times.append((time.perf_counter() - start) * 1000)
        assert ack["ok"], ack
    await fay.client.disconnect()
    return times


def pinned(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and os.cpu_count() else []


def live(addresses: int, votes: int) -> list[float]:
    from tests.live import LiveServer, free_port, stop_process, wait_ready

    port = free_port()
    process = subprocess.Popen(
        [*pinned(0), sys.executable, __file__, "serve", str(port), str(addresses)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()  # "ready" once the tables are full
    assert line.strip() == "ready", line
    server = LiveServer(f"http://127.0.0.1:{port}", process, Path(os.devnull))  # type: ignore[arg-type]
    try:
        wait_ready(server, timeout=60)
        return asyncio.run(vote_acks(server.url, votes))
    finally:
        stop_process(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", default="bench")
    parser.add_argument("args", nargs="*")
    parser.add_argument("--addresses", type=int, default=1_000_000)
    parser.add_argument("--votes", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="10,000 addresses, 200 votes")
    options = parser.parse_args()
    if options.mode == "serve":
        serve(int(options.args[0]), int(options.args[1]))
        return
    if options.quick:
        options.addresses, options.votes = 10_000, 200
    if pinned(1):
        os.sched_setaffinity(0, {1})

    print(f"# limit tables: empty vs {options.addresses:,} addresses and socket ids\n")
    checks = 100_000 if not options.quick else 10_000
    small_cost, small_mem = asyncio.run(check_cost(10, checks))
    big_cost, big_mem = asyncio.run(check_cost(options.addresses, checks))
    print(f"| | 10 known | {options.addresses:,} known | ratio |")
    print("|---|---|---|---|")
    print(
        f"| one check (connect + event), µs | {small_cost:.2f} | {big_cost:.2f} | "
        f"{big_cost / small_cost:.2f} |"
    )
    print(f"| memory of the tables, MiB | {small_mem:.2f} | {big_mem:.1f} | |")

    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    empty = live(0, options.votes)
    full = live(options.addresses, options.votes)
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    for label, pick in (("p50", 0.5), ("p99", 0.99)):
        a = sorted(empty)[int(len(empty) * pick)]
        b = sorted(full)[int(len(full) * pick)]
        print(f"| vote ack {label}, ms | {a:.2f} | {b:.2f} | {b / a:.2f} |")
    print(
        f"| vote ack mean, ms | {statistics.mean(empty):.2f} | {statistics.mean(full):.2f} | "
        f"{statistics.mean(full) / statistics.mean(empty):.2f} |"
    )
    client_cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (
        cpu_before.ru_utime + cpu_before.ru_stime
    )
    print(f"\n{2 * options.votes} votes, all acknowledged ok; client CPU {client_cpu:.1f} s")


if __name__ == "__main__":
    main()
