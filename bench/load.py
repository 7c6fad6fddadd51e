"""Load benchmark: many rooms voting at once over several app instances sharing one Redis.

    python bench/load.py [--instances 2] [--rooms 100] [--per-room 10] [--duration 300]
                         [--vote-interval 5] [--quick] [--out results.json]

Starts a real redis-server (append-only file on) and N app instances on free ports of
127.0.0.1, runs the Node load generator (bench/load/load.mjs, `npm ci` on first use) against
them, and samples every instance's RSS and CPU time and Redis' memory every few seconds. Prints
the samples and the ratios that matter, each against a reference from the same run:

- memory flatness: an instance's RSS at the end of voting / its RSS right after the ramp-up;
- latency degradation: ack p95 in the last window / ack p95 in the first window after the
  ramp-up (windows of 60 s, or a third of the run for short runs);

and the absolute counts that must be zero (failed connections, error and timed-out acks,
unexpected disconnects, clients whose last snapshot differs from the server's). Exits 1 if any
of them is not. Every process it starts is stopped at the end, on Ctrl-C or on failure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
LOAD_DIR = ROOT / "bench" / "load"
sys.path.insert(0, str(ROOT))

from bench.procs import (  # noqa: E402
    Usage,
    ensure_node_modules,
    machine_busy,
    raise_on_sigterm,
    redis_process,
    usage,
)
from tests.live import LiveServer, live_server, stop_process  # noqa: E402

MB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    at: float  # time.time()
    processes: dict[str, Usage | None]
    machine_busy: float  # see machine_busy(): to tell how much CPU others took meanwhile
    redis_used: int | None  # INFO memory used_memory
    redis_rss: int | None  # INFO memory used_memory_rss
    # Bytes Redis holds for subscribers that have not read them yet (CLIENT LIST omem of the
    # pub/sub clients): an instance falling behind with the broadcasts. Part of used_memory.
    pubsub_backlog: int | None


def take_sample(pids: dict[str, int], client: redis.Redis) -> Sample:
    processes = {name: usage(pid) for name, pid in pids.items()}
    busy = machine_busy()
    try:
        memory = client.info("memory")
        used, rss = int(memory["used_memory"]), int(memory["used_memory_rss"])
        backlog = sum(int(c["omem"]) for c in client.client_list(_type="pubsub"))
    except redis.RedisError:
        used = rss = backlog = None
    return Sample(time.time(), processes, busy, used, rss, backlog)


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class Config:
    instances: int
    rooms: int
    per_room: int
    duration: float
    vote_interval: float
    connect_rate: float
    sample_every: float
    out: Path | None


def run(config: Config) -> dict[str, Any]:
    ensure_node_modules()
    with tempfile.TemporaryDirectory(prefix="stackvote-load-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        store = stack.enter_context(redis_process(tmp))
        env = {
            "STACKVOTE_REDIS_URL": store.url,
            # Every simulated person connects from 127.0.0.1: lift the per-address limits on
            # new connections and new sessions (the per-connection event limit stays as it is).
            "STACKVOTE_LIMIT_CONNECTS": "1000000/minute",
            "STACKVOTE_LIMIT_CREATES": "1000000/minute",
        }
        apps: list[LiveServer] = [
            stack.enter_context(live_server(tmp, env)) for _ in range(config.instances)
        ]
        assert store.process is not None
        client = redis.Redis(port=store.port, socket_timeout=5)
        stack.callback(client.close)
        result_path = tmp / "load.json"
        command = [
            "node",
            "load.mjs",
            "--url",
            ",".join(app.url for app in apps),
            "--rooms",
            str(config.rooms),
            "--per-room",
            str(config.per_room),
            "--duration",
            str(config.duration),
            "--vote-interval",
            str(config.vote_interval),
            "--connect-rate",
            str(config.connect_rate),
            "--out",
            str(result_path),
        ]
        print(f"redis {store.url}; apps {', '.join(app.url for app in apps)}", flush=True)
        node = subprocess.Popen(command, cwd=LOAD_DIR)  # its progress goes to our stderr
        stack.callback(stop_process, node)
        pids = {f"app{n + 1}": app.process.pid for n, app in enumerate(apps)}
        pids |= {"redis": store.process.pid, "node": node.pid}

        ramp = config.rooms * config.per_room / config.connect_rate
        deadline = time.monotonic() + ramp * 3 + config.duration + 240
        samples: list[Sample] = []
        while True:
            samples.append(take_sample(pids, client))
            for app in apps:
                if app.process.poll() is not None:
                    raise RuntimeError(f"an app instance exited during the run:\n{app.log()}")
            try:
                node.wait(timeout=config.sample_every)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    raise RuntimeError("the load generator did not finish in time") from None
        if node.returncode != 0 or not result_path.exists():
            raise RuntimeError(f"the load generator failed (exit {node.returncode})")
        load = json.loads(result_path.read_text())
        persistence = client.info("persistence")
        forks = int(client.info("stats").get("total_forks", 0))
        problems = {
            f"app{n + 1}": [
                line
                for line in app.log().splitlines()
                if " ERROR " in line or " WARNING " in line or line.startswith("Traceback")
            ]
            for n, app in enumerate(apps)
        }
        redis_log = (store.data_dir / "redis.log").read_text(errors="replace")
        # Warnings (" # ") once Redis is up, e.g. "Asynchronous AOF fsync is taking too long".
        problems["redis"] = [
            line
            for line in redis_log.split("Ready to accept connections", 1)[-1].splitlines()
            if " # " in line
        ]
    return {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(config).items()},
        "load": load,
        "samples": [
            {
                "at": s.at,
                "processes": {
                    name: None if u is None else {"rss": u.rss, "cpu": u.cpu}
                    for name, u in s.processes.items()
                },
                "machine_busy": s.machine_busy,
                "redis_used": s.redis_used,
                "redis_rss": s.redis_rss,
                "pubsub_backlog": s.pubsub_backlog,
            }
            for s in samples
        ],
        "aof_bytes": int(persistence.get("aof_current_size", 0)),
        # Background AOF rewrites (each one a fork) that the append-only file's growth set off.
        "redis_forks": forks,
        # Writes Redis held back because the previous second's fsync had not finished.
        "aof_delayed_fsync": int(persistence.get("aof_delayed_fsync", 0)),
        "log_problems": problems,
    }


# ---------------------------------------------------------------------------------------------
# Reporting


def mb(value: int | None) -> str:
    return "-" if value is None else f"{value / MB:.1f}"


def cpu_percent(before: dict[str, Any], after: dict[str, Any], name: str) -> float | None:
    a, b = before["processes"].get(name), after["processes"].get(name)
    if a is None or b is None or after["at"] <= before["at"]:
        return None
    return 100 * (b["cpu"] - a["cpu"]) / (after["at"] - before["at"])


def others_percent(before: dict[str, Any], after: dict[str, Any]) -> float | None:
    """CPU taken by processes this run did not start (100 = one core), between two samples."""
    elapsed = after["at"] - before["at"]
    ours = [(before["processes"][name], after["processes"][name]) for name in after["processes"]]
    if elapsed <= 0 or any(a is None or b is None for a, b in ours):
        return None
    mine = sum(b["cpu"] - a["cpu"] for a, b in ours)
    return max(0.0, 100 * (after["machine_busy"] - before["machine_busy"] - mine) / elapsed)


def reference_samples(report: dict[str, Any]) -> tuple[int, int]:
    """Indexes of the first sample after the ramp-up and the last one before voting ended."""
    times = report["load"]["times"]
    samples = report["samples"]
    after_ramp = next(
        (i for i, s in enumerate(samples) if s["at"] >= times["ramp_done_at"]), len(samples) - 1
    )
    end = max(
        (i for i, s in enumerate(samples) if s["at"] <= times["voting_ended_at"]),
        default=len(samples) - 1,
    )
    return after_ramp, max(end, after_ramp)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    load = report["load"]
    samples = report["samples"]
    apps = [name for name in samples[0]["processes"] if name.startswith("app")]
    after_ramp, end = reference_samples(report)
    first, last = samples[after_ramp], samples[end]
    rss = {
        name: {
            "after_ramp_mb": first["processes"][name]["rss"] / MB,
            "end_mb": last["processes"][name]["rss"] / MB,
            "flatness": last["processes"][name]["rss"] / first["processes"][name]["rss"],
        }
        for name in apps
    }
    cpu = {
        name: cpu_percent(first, last, name) for name in [*apps, "redis", "node"]
    }  # mean over the steady phase
    cpu["others"] = others_percent(first, last)
    latency = load["latency_ms"]
    counts = {
        "failed connections": load["connections"]["failed"],
        "error acks": load["acks"]["error"],
        "timed-out acks": load["acks"]["timeout"],
        "unexpected disconnects": load["disconnects"]["unexpected"],
        "failed controls": load["controls"]["error"],
        "snapshot mismatches": load["final_check"]["mismatch_count"],
    }
    return {
        "rss": rss,
        "cpu_percent_steady": cpu,
        "redis_used_mb": {
            "after_ramp": first["redis_used"] / MB,
            "end": last["redis_used"] / MB,
            "flatness": ratio(last["redis_used"], first["redis_used"]),
        },
        "pubsub_backlog_max_mb": max(
            (s["pubsub_backlog"] or 0 for s in samples[: end + 1]), default=0
        )
        / MB,
        "presumed_dead": sum(
            "presumed dead" in line for lines in report["log_problems"].values() for line in lines
        ),
        "p95_degradation": ratio(latency["last_window"]["p95"], latency["first_window"]["p95"]),
        "counts": counts,
        "passed": all(v == 0 for v in counts.values()),
    }


def print_report(report: dict[str, Any], summary: dict[str, Any]) -> None:
    load = report["load"]
    samples = report["samples"]
    names = list(samples[0]["processes"])
    apps = [n for n in names if n.startswith("app")]
    times = load["times"]
    after_ramp, end = reference_samples(report)

    print()
    header = f"{'t (s)':>6} {'phase':<6}"
    for name in apps:
        header += f" {name + ' RSS':>10} {name + ' CPU%':>10}"
    header += f" {'redis MB':>9} {'pubsub MB':>9} {'redis CPU%':>10}"
    header += f" {'node CPU%':>9} {'others CPU%':>11}"
    print(header)
    step = max(1, len(samples) // 24)
    shown = sorted({*range(0, len(samples), step), after_ramp, end, len(samples) - 1})
    for i in shown:
        s = samples[i]
        before = samples[i - 1] if i else s
        phase = (
            "ramp"
            if s["at"] < times["ramp_done_at"]
            else "vote"
            if s["at"] <= times["voting_ended_at"]
            else "check"
        )
        mark = "*" if i in (after_ramp, end) else " "
        row = f"{s['at'] - times['started_at']:>6.0f}{mark}{phase:<6}"
        for name in apps:
            u = s["processes"][name]
            row += f" {mb(u and u['rss']):>10} {fmt(cpu_percent(before, s, name), 0):>10}"
        row += f" {mb(s['redis_used']):>9} {mb(s['pubsub_backlog']):>9}"
        row += f" {fmt(cpu_percent(before, s, 'redis'), 0):>10}"
        row += f" {fmt(cpu_percent(before, s, 'node'), 0):>9}"
        row += f" {fmt(others_percent(before, s), 0):>11}"
        print(row)
    print(
        "(RSS, Redis used_memory and the pub/sub backlog Redis holds for slow subscribers in MB;"
        " CPU% of one core; others = processes this run did not start;"
        " * = the reference samples: after the ramp-up, end of voting)"
    )

    c, a, lat = load["connections"], load["acks"], load["latency_ms"]
    steady = lat["steady"]
    print()
    print(
        f"clients: {c['ok']} connected, {c['failed']} failed; ramp-up "
        f"{times['ramp_seconds']:.1f} s; voting {load['config']['duration_s']} s"
    )
    print(
        f"acks: {a['ok']} ok, {a['error']} error, {a['timeout']} timed out; "
        f"{a['steady_ok_per_second']} ok votes/s while voting"
    )
    for message, count in sorted(a["error_by"].items(), key=lambda kv: -kv[1]):
        print(f"  {count} x {message}")
    print(
        f"ack latency while voting (ms): p50 {steady['p50']}  p95 {steady['p95']}  "
        f"p99 {steady['p99']}  max {steady['max']}  (n={steady['count']})"
    )
    w = lat["window_seconds"]
    print(
        f"  first {w:.0f} s: p95 {lat['first_window']['p95']}; last {w:.0f} s: p95 "
        f"{lat['last_window']['p95']}; during the ramp-up: p95 {lat['ramp']['p95']}"
    )
    st, dt = load["states"], load["deltas"]
    print(
        f"state events: {st['received']} ({st['stale']} stale, ignored); delta events: "
        f"{dt['received']} ({dt['gaps']} did not follow, each answered by a sync); syncs "
        f"{load['syncs']['sent']} ({load['syncs']['newer']} brought a newer snapshot); "
        f"unexpected disconnects {load['disconnects']['unexpected']}"
    )
    fc = load["final_check"]
    print(
        f"final check: {fc['clients_checked']} clients in {fc['rooms']} rooms, "
        f"{fc['mismatch_count']} mismatches"
    )
    for mismatch in fc["mismatches"][:5]:
        print(f"  {mismatch}")
    print(
        f"redis: AOF {report['aof_bytes'] / MB:.1f} MB at the end "
        f"({report['redis_forks']} rewrites); "
        f"{report['aof_delayed_fsync']} writes delayed by a slow fsync"
    )
    print(
        f"pub/sub backlog in Redis: at most {summary['pubsub_backlog_max_mb']:.1f} MB while voting;"
        f" an instance presumed dead by the other {summary['presumed_dead']} times"
    )
    for name, lines in report["log_problems"].items():
        if lines:
            print(f"{name} log: {len(lines)} warning/error lines, e.g. {lines[0][:160]}")

    print()
    print("ratios (same run; 1.0 = flat):")
    for name, r in summary["rss"].items():
        print(
            f"  {name} RSS end / after ramp-up: {r['end_mb']:.1f} / {r['after_ramp_mb']:.1f} MB"
            f" = {r['flatness']:.2f}"
        )
    rd = summary["redis_used_mb"]
    print(
        f"  redis used_memory end / after ramp-up: {rd['end']:.1f} / {rd['after_ramp']:.1f} MB"
        f" = {fmt(rd['flatness'])}"
    )
    print(f"  ack p95 last {w:.0f} s / first {w:.0f} s: {fmt(summary['p95_degradation'])}")
    cpu = ", ".join(f"{k} {fmt(v, 0)}%" for k, v in summary["cpu_percent_steady"].items())
    print(f"  mean CPU while voting: {cpu}")
    others = summary["cpu_percent_steady"]["others"]
    if others is not None and others > 20:
        print(
            f"WARNING: other processes used {others:.0f}% of a core while voting: the machine"
            " was not quiet, so latencies are pessimistic; run again on an idle machine"
        )
    print()
    failed = {k: v for k, v in summary["counts"].items() if v}
    if failed:
        print("FAILED: " + ", ".join(f"{v} {k}" for k, v in failed.items()))
    else:
        print("OK: no failed connections, errors, timeouts, disconnects or mismatches")


def per_10s_table(report: dict[str, Any]) -> None:
    """Ack latency over time: one line per 10 s slice of voting (shown with --verbose)."""
    print()
    print(f"{'from s':>6} {'n':>6} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}")
    for row in report["load"]["latency_ms"]["per_10s"]:
        print(
            f"{row['from_s']:>6} {row['count']:>6} {fmt(row['p50'], 1):>8} "
            f"{fmt(row['p95'], 1):>8} {fmt(row['p99'], 1):>8} {fmt(row['max'], 1):>8}"
        )
    print("(ack latency in ms, by when the vote was sent, seconds after the ramp-up)")
    medians = [r["p50"] for r in report["load"]["latency_ms"]["per_10s"] if r["p50"] is not None]
    if medians:
        print(f"median of the slices' p50: {statistics.median(medians):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=2, help="app instances (default 2)")
    parser.add_argument("--rooms", type=int, default=100, help="sessions (default 100)")
    parser.add_argument(
        "--per-room", type=int, default=10, help="clients per room, facilitator included"
    )
    parser.add_argument("--duration", type=float, default=300, help="seconds of voting")
    parser.add_argument(
        "--vote-interval", type=float, default=5, help="mean seconds between a client's votes"
    )
    parser.add_argument("--connect-rate", type=float, default=50, help="connections per second")
    parser.add_argument("--sample-every", type=float, default=5, help="seconds between samples")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 instances, 10 rooms x 10, 30 s"
    )
    parser.add_argument("--verbose", action="store_true", help="also print latency per 10 s")
    parser.add_argument("--out", type=Path, help="write everything measured to this JSON file")
    args = parser.parse_args()
    if args.quick:
        args.instances, args.rooms, args.per_room, args.duration = 2, 10, 10, 30
    config = Config(
        instances=args.instances,
        rooms=args.rooms,
        per_room=args.per_room,
        duration=args.duration,
        vote_interval=args.vote_interval,
        connect_rate=args.connect_rate,
        sample_every=args.sample_every,
        out=args.out,
    )
    raise_on_sigterm()
    started = datetime.now(UTC)
    try:
        report = run(config)
    except KeyboardInterrupt:
        sys.exit("interrupted; every process started was stopped")
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        sys.exit(f"load run failed: {exc}")
    report["started"] = started.isoformat(timespec="seconds")
    summary = summarize(report)
    report["summary"] = summary
    print_report(report, summary)
    if args.verbose:
        per_10s_table(report)
    if config.out:
        config.out.write_text(json.dumps(report, indent=2))
        print(f"everything measured: {config.out}")
    sys.exit(0 if summary["passed"] else 1)


if __name__ == "__main__":
    main()
