"""A reveal wave: many rooms reveal every case at once while a voter elsewhere keeps voting.

    python bench/reveal.py [--rooms 30] [--people 10] [--how each|all] [--advice thread,loop]

One stackvote server (embedded store) on core 0; on core 1 the rooms' clients (python-socketio)
and, in a process of its own, a probe: a voter in another session who votes every 20 ms and
times each ack. Each room (a facilitator and people-1 voters, everyone scoring all 11 cases of
the Django deck) reveals its cases one after the other as fast as acks come (`--how each`,
330 reveals for 30 rooms) or all at once (`--how all`). Printed per advice mode (the server's
STACKVOTE_ADVICE, run one after the other in the same run): the probe's ack latency before and
during the wave, how late the event loop's 100 ms timer fired (the server's own histogram),
the server's and the generator's CPU, recommendations worked out, and a check that every
client of every room ends with every case revealed and the advice the server gives over HTTP.
Then the engine's own cost per recommendation for these rooms, cold (nothing cached).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procs import usage  # noqa: E402
from server import confidence, engine, flip  # noqa: E402
from server.decks import builtin_templates  # noqa: E402
from tests.live import (  # noqa: E402
    GENEROUS_LIMITS,
    LiveServer,
    Member,
    create_session,
    facilitate,
    free_port,
    join,
    stop_process,
    wait_ready,
)

SERVER_CORE, GENERATOR_CORE = 0, 1
PROBE_EVERY = 0.02


# --- the probe (its own process)


async def probe(url: str, created: dict[str, Any], seconds: float) -> None:
    """Vote every PROBE_EVERY seconds for `seconds`; print one JSON line per ack."""
    me = await facilitate(url, created, "Probe")
    case = me.state["cases"][0]["id"]
    await me.control("open", case)
    end = time.monotonic() + seconds
    score = 0
    while time.monotonic() < end:
        sent = time.monotonic()
        ack = await me.vote(case, score)
        took = time.monotonic() - sent
        print(json.dumps({"at": time.time(), "ms": took * 1000, "ok": ack.get("ok")}), flush=True)
        score = (score + 1) % 5
        await asyncio.sleep(max(0.0, PROBE_EVERY - took))
    await me.client.disconnect()


# --- the wave


def late_buckets(url: str) -> dict[float, float]:
    """The server's histogram of event-loop lateness: upper bound -> ticks at or below it
    (empty from a server without it: an older commit, with --root)."""
    text = httpx.get(url + "/metrics", timeout=10).text
    found: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("stackvote_event_loop_late_seconds_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            found[float("inf") if bound == "+Inf" else float(bound)] = float(line.rsplit(" ", 1)[1])
    return found


def advice_count(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    lines = [x for x in text.splitlines() if x.startswith("stackvote_advice_worked_out_total ")]
    return float(lines[0].split()[1]) if lines else float("nan")


def worst_late(before: dict[float, float], after: dict[float, float]) -> tuple[int, str, int]:
    """Ticks in between, the bucket of the latest one, and how many were over 250 ms."""

    def count(bound: float) -> int:
        return int(after[bound] - before.get(bound, 0))

    if not after:
        return 0, "n/a", 0
    ticks = count(float("inf"))
    finite = sorted(b for b in after if b != float("inf"))
    worst = next((f"<= {b * 1000:g} ms" for b in finite if count(b) == ticks), None)
    return ticks, worst or f"> {finite[-1] * 1000:g} ms", ticks - count(0.25)


async def room(url: str, people: int, rnd: random.Random) -> tuple[dict[str, Any], list[Member]]:
    created = await asyncio.to_thread(create_session, url, title="Wave")
    lead = await facilitate(url, created)
    voters = [
        await join(url, {"session": created["id"], "name": f"V{i}"}) for i in range(people - 1)
    ]
    everyone = [lead, *voters]
    await lead.control("open_all")
    cases = [c["id"] for c in lead.state["cases"]]
    # Each person scores every case around a lean of the room's own.
    leans = {c: rnd.uniform(0, 4) for c in cases}
    for member in everyone:
        for c in cases:
            score = min(4, max(0, round(rnd.gauss(leans[c], 1.2))))
            ack = await member.vote(c, score)
            assert ack["ok"], ack
    return created, everyone


async def reveal(lead: Member, how: str, refused: list[int]) -> None:
    """Reveal the room's cases; a refusal for now (busy) is sent again, as the page does."""

    async def control(*args: str) -> None:
        while not (ack := await lead.control(*args))["ok"]:
            assert ack.get("retry"), ack
            refused.append(1)
            await asyncio.sleep(0.2)

    if how == "all":
        await control("reveal_all")
        return
    for case in [c["id"] for c in lead.state["cases"]]:
        await control("reveal", case)


async def wave(url: str, pid: int, rooms: int, people: int, how: str) -> dict[str, Any]:
    rnd = random.Random(7)
    built = await asyncio.gather(*(room(url, people, rnd) for _ in range(rooms)))
    probe_session = await asyncio.to_thread(create_session, url, title="Probe")
    quiet, during = 3.0, 12.0
    probing = await asyncio.create_subprocess_exec(
        "taskset", "-c", str(GENERATOR_CORE),
        sys.executable, __file__, "--probe", url, json.dumps(probe_session),
        str(quiet + during),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await asyncio.sleep(quiet)
    late_before = late_buckets(url)
    advised_before = advice_count(url)
    cpu_before = usage(pid)
    mine_before = time.process_time()
    started = time.time()
    refused: list[int] = []
    await asyncio.gather(*(reveal(everyone[0], how, refused) for _, everyone in built))
    revealed = time.time()

    def settled(state: dict[str, Any], expected: dict[str, Any]) -> bool:
        return all(c["status"] == "revealed" for c in state["cases"]) and (
            state["recommendation"] == expected
        )

    # Everyone ends with every case revealed and the advice the server gives over HTTP.
    expected = [
        (await asyncio.to_thread(httpx.get, f"{url}/api/sessions/{created['id']}")).json()[
            "recommendation"
        ]
        for created, _ in built
    ]
    waits = [
        member.until(lambda s, e=e: settled(s, e), timeout=60)
        for (_, everyone), e in zip(built, expected, strict=True)
        for member in everyone
    ]
    await asyncio.gather(*waits)
    done = time.time()
    cpu_after = usage(pid)
    mine = time.process_time() - mine_before
    late_after = late_buckets(url)
    advised = advice_count(url) - advised_before
    lines = (await probing.communicate())[0].decode().splitlines()
    acks = [json.loads(x) for x in lines if x.startswith("{")]
    before = [a["ms"] for a in acks if a["at"] < started]
    in_wave = [a["ms"] for a in acks if started <= a["at"] <= done + 0.5]
    assert cpu_before is not None and cpu_after is not None
    ticks, worst, over = worst_late(late_before, late_after)
    for _, everyone in built:
        for member in everyone:
            await member.client.disconnect()
    return {
        "reveals": rooms * (1 if how == "all" else 11),
        "acked_s": revealed - started,
        "settled_s": done - started,
        "probe_before_p50": statistics.median(before),
        "probe_before_max": max(before),
        "probe_wave_p50": statistics.median(in_wave),
        "probe_wave_p99": statistics.quantiles(in_wave, n=100, method="inclusive")[98],
        "probe_wave_max": max(in_wave),
        "probe_refused": sum(not a["ok"] for a in acks),
        "reveals_refused": len(refused),
        "probe_acks": len(in_wave),
        "late_ticks": ticks,
        "late_worst": worst,
        "late_over_250ms": over,
        "server_cpu_s": cpu_after.cpu - cpu_before.cpu,
        "generator_cpu_s": mine,
        "advice_worked_out": advised,
        "inputs": [created["id"] for created, _ in built],
        "_expected": expected,
    }


def run(advice: str, rooms: int, people: int, how: str, root: Path) -> dict[str, Any]:
    port = free_port()
    env = {
        **os.environ,
        **GENEROUS_LIMITS,
        "STACKVOTE_LOG_LEVEL": "warning",
        "STACKVOTE_ADVICE": advice,
        "STACKVOTE_REDIS_URL": "memory://",
    }
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        command = ["taskset", "-c", str(SERVER_CORE), sys.executable, "-m", "server", "serve"]
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=root,
            env={**env, "PYTHONPATH": str(root)},
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(LiveServer(url, process, log), timeout=30)
            os.sched_setaffinity(0, {GENERATOR_CORE})
            return asyncio.run(wave(url, process.pid, rooms, people, how))
        finally:
            stop_process(process)


def engine_cost(results: list[dict[str, Any]]) -> str:
    """The engine's CPU per recommendation for these rooms' revealed cases, cold."""
    template = builtin_templates()["django"]
    stacks = [engine.StackInfo(s.id, s.name) for s in template.stacks]
    rooms = []
    for document in results:
        inputs = []
        for case in document["cases"]:
            spec = template.case(case["id"])
            assert spec is not None and case["median"] is not None
            inputs.append(
                engine.CaseInput(
                    case["id"],
                    spec.title,
                    case["median"],
                    spec.fit,
                    band=case["band"],
                    histogram=tuple(case["histogram"]),
                    iqr=case["iqr"],
                    consensus=case["consensus"],
                )
            )
        rooms.append(inputs)

    def cold(every_flip: bool) -> list[float]:
        times = []
        for inputs in rooms:
            confidence.resample.cache_clear()
            confidence._distribution.cache_clear()
            flip.smallest_flip.cache_clear()
            start = time.process_time()
            engine.recommend(inputs, stacks, "django", "bench", every_flip=every_flip)
            times.append((time.process_time() - start) * 1000)
        return times

    room_view, record = cold(False), cold(True)
    return (
        f"engine, cold, per recommendation over all 11 cases ({len(rooms)} rooms): "
        f"as the room gets it (runner-up's flip) median {statistics.median(room_view):.1f} ms, "
        f"max {max(room_view):.1f} ms; with every stack's flip (the record) median "
        f"{statistics.median(record):.1f} ms, max {max(record):.1f} ms"
    )


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--probe":
        asyncio.run(probe(sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=30)
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--how", choices=("each", "all"), default="each")
    parser.add_argument("--advice", default="thread,loop")
    parser.add_argument(
        "--before",
        type=Path,
        help="also run the server of this checkout (e.g. a git worktree of an older commit)",
    )
    args = parser.parse_args()
    print(
        f"{args.rooms} rooms x {args.people} people, 11 cases each, revealed "
        f"{'one after the other' if args.how == 'each' else 'all at once'}; "
        f"server on core {SERVER_CORE}, clients and probe on core {GENERATOR_CORE}"
    )
    runs = [(f"STACKVOTE_ADVICE={a}", a, ROOT) for a in args.advice.split(",")]
    if args.before:
        runs.append((f"the server of {args.before}", "thread", args.before.resolve()))
    for label, advice, root in runs:
        result = run(advice, args.rooms, args.people, args.how, root)
        result.pop("_expected")
        result.pop("inputs")
        print(f"\n{label}")
        for key, value in result.items():
            shown = f"{value:.1f}" if isinstance(value, float) else str(value)
            print(f"  {key:<20} {shown}")
        print("  correct              every client: all cases revealed, the server's advice")
    # The engine alone, for rooms scored as above.
    results = _results_like(args.rooms, args.people)
    print("\n" + engine_cost(results))
    return 0


def _results_like(rooms: int, people: int) -> list[dict[str, Any]]:
    """Case results for rooms scored as the wave's are (the same generator), for engine_cost."""
    rnd = random.Random(7)
    template = builtin_templates()["django"]
    documents = []
    for _ in range(rooms):
        leans = {c.id: rnd.uniform(0, 4) for c in template.cases}
        scores: dict[str, list[int]] = {c.id: [] for c in template.cases}
        for _person in range(people):
            for c in template.cases:
                scores[c.id].append(min(4, max(0, round(rnd.gauss(leans[c.id], 1.2)))))
        cases = []
        for c in template.cases:
            r = engine.case_results(scores[c.id])
            cases.append(
                {
                    "id": c.id,
                    "median": r.median,
                    "band": r.band,
                    "histogram": r.histogram,
                    "iqr": r.iqr,
                    "consensus": r.consensus,
                }
            )
        documents.append({"cases": cases})
    return documents


if __name__ == "__main__":
    sys.exit(main())
