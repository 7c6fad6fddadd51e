"""Where an idle connection's memory goes: tracemalloc inside a real `stackvote serve`.

    python bench/footprint.py [--rooms 50] [--per-room 20] [--depth 12] [--top 25]

Starts the server (memory store, tracemalloc on) as a child, seats one person per room, takes
a snapshot, seats everyone else (raw WebSockets speaking Engine.IO/Socket.IO, each reading what
it is sent), waits for the room to settle, takes another, and prints the difference per
connection: by file, by line, and the largest tracebacks. The server's RSS before and after is
printed too (tracemalloc sees Python's allocations only, and itself costs memory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
import websockets  # noqa: E402
from websockets.asyncio.client import connect as ws_connect  # noqa: E402

from tests.live import GENEROUS_LIMITS, create_session, free_port  # noqa: E402

CHILD = """
import signal, sys, tracemalloc, pickle
def dump(signum, frame):
    snapshot = tracemalloc.take_snapshot()
    with open(sys.argv[1] + ".tmp", "wb") as out:
        pickle.dump(snapshot, out)
    import os
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
signal.signal(signal.SIGUSR1, dump)
from server.cli import main
sys.exit(main(["serve", "--port", sys.argv[2]]))
"""


readers: list[asyncio.Task[None]] = []


async def seat(url: str, session: str, n: int) -> Any:
    ws = await ws_connect(
        url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket",
        origin=websockets.Origin(url),
        max_size=None,
    )
    await ws.recv()  # Engine.IO open
    await ws.send("40" + json.dumps({"session": session, "name": f"P{n}"}))

    async def read() -> None:
        try:
            async for frame in ws:
                if frame == "2":
                    await ws.send("3")
        except websockets.ConnectionClosed:
            pass

    readers.append(asyncio.create_task(read()))
    return ws


def snapshot(process: subprocess.Popen[bytes], path: Path) -> tracemalloc.Snapshot:
    path.unlink(missing_ok=True)
    process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while not path.exists():
        assert time.monotonic() < deadline, "no snapshot"
        time.sleep(0.2)
    with path.open("rb") as inp:
        taken: tracemalloc.Snapshot = pickle.load(inp)
    return taken.filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen*")]
    )


def short(filename: str) -> str:
    for marker in ("site-packages/", "/lib/python3", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


async def main(rooms: int, per_room: int, depth: int, top: int) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    folder = Path(tempfile.mkdtemp())
    dump = folder / "snapshot.pickle"
    env = {**os.environ, **GENEROUS_LIMITS, "STACKVOTE_REDIS_URL": "memory://"}
    process = subprocess.Popen(
        [sys.executable, "-X", f"tracemalloc={depth}", "-c", CHILD, str(dump), str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=(folder / "server.log").open("wb"),
    )
    sockets: list[Any] = []
    try:
        wait_ready_url(url)
        sessions = [create_session(url, title=f"Room {r}")["id"] for r in range(rooms)]
        for r, session in enumerate(sessions):
            sockets.append(await seat(url, session, r))
        await asyncio.sleep(2)
        rss_before = psutil.Process(process.pid).memory_info().rss
        before = snapshot(process, dump)
        for n in range(1, per_room):
            sockets += await asyncio.gather(*(seat(url, s, n) for s in sessions))
        await asyncio.sleep(5)  # joins announced, deltas flushed, everyone idle
        rss_after = psutil.Process(process.pid).memory_info().rss
        after = snapshot(process, dump)
        added = rooms * (per_room - 1)
        stats = after.compare_to(before, "traceback")
        total = sum(s.size_diff for s in stats)
        print(f"{added} connections added; Python allocations {total / added / 1024:.2f} KiB "
              f"each; RSS {(rss_after - rss_before) / added / 1024:.2f} KiB each "
              f"(with tracemalloc's own)")  # fmt: skip
        by_file: dict[str, int] = {}
        by_line: dict[str, int] = {}
        by_owner: dict[str, int] = {}
        for stat in stats:
            if not stat.traceback:
                continue
            site = stat.traceback[-1]  # the most recent frame: where it was allocated
            by_file[short(site.filename)] = by_file.get(short(site.filename), 0) + stat.size_diff
            line = f"{short(site.filename)}:{site.lineno}"
            by_line[line] = by_line.get(line, 0) + stat.size_diff
            # The nearest frame outside the standard library: whose code asked for it.
            owner = next(
                (f for f in reversed(stat.traceback) if "site-packages" in f.filename
                 or str(ROOT) in f.filename),
                site,
            )  # fmt: skip
            key = f"{short(owner.filename)}:{owner.lineno}"
            by_owner[key] = by_owner.get(key, 0) + stat.size_diff
        for title, table in (
            ("by file (where the allocation happened)", by_file),
            ("by line", by_line),
            ("by the nearest line outside the standard library", by_owner),
        ):
            print(f"\n{title}, bytes per connection:")
            for name, size in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
                print(f"  {size / added:8.0f}  {name}")
        print("\nlargest tracebacks:")
        for stat in stats[: max(5, top // 3)]:
            print(f"  {stat.size_diff / added:8.0f} B/conn, {stat.count_diff / added:.1f} blocks")
            for frame in stat.traceback.format(limit=depth, most_recent_first=True):
                print("      " + frame.strip())
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        process.terminate()
        process.wait(timeout=20)


def wait_ready_url(url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--per-room", type=int, default=20)
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--top", type=int, default=25)
    options = parser.parse_args()
    asyncio.run(main(options.rooms, options.per_room, options.depth, options.top))
