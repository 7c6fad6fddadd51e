"""Failover timings: what voters see when Redis loses a primary, or moves slots, under load.

    python bench/failover.py                 # every case below, full size (~6 minutes)
    python bench/failover.py --quick         # 10 rooms of 5, shorter (CI smoke run)
    python bench/failover.py --only sentinel,migration --keep

Two stackvote instances (clients spread over them round-robin per connection) serve rooms
whose voters keep voting (a vote each every ~2 s, sent as the browser's outbox sends it: with a
client id and a sequence number, again until answered) while the driver breaks Redis:

- `sentinel`: a primary, a replica and three sentinels (tests/redis_fleet.py), the instances on
  the redis+sentinel URL with STACKVOTE_REDIS_WAIT_REPLICAS=1. The primary is SIGKILLed; once a
  replica is promoted, the dead node is started again (as a supervisor would) and rejoins as a
  replica. `sentinel-nowait`: the same with WAIT off.
- `cluster`, `cluster-nowait`: the same on a Redis Cluster of 3 primaries with a replica each;
  the primary killed is the one holding the first room, so about a third of the rooms lose
  their primary.
- `migration`: on the same cluster, the slots of a third of the rooms are moved to another
  primary one after another (CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE),
  under load.

Measured: seconds from the kill to the promotion (the replica answers ROLE as a primary, and
for Sentinel the sentinels name it), from the promotion to the first vote acknowledged in an
affected room, and to the dead node being a replica again; the votes acknowledged before the
kill that the promoted replica does not have (read from it right after the kill, as versions:
any acknowledged vote whose version is beyond the replica's is lost); votes acknowledged while
the new primary had no replica (which WAIT should make impossible); and, once voting ends and
every facilitator has revealed, whether every client's view equals the stored session and every
room's results hold exactly its acknowledged votes (each ballot the voter's last acknowledged
vote on that case, or a later one whose fate was left unknown; a ballot that is a later vote
answered `{"ok": false}` counts as "refused but counted"). Exit code 1 if an acknowledged vote
went missing with WAIT on, a refused vote was counted, or a client did not converge.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.compare import GENERATOR_CORE, SERVER_CORE, fmt, pinned  # noqa: E402
from bench.fleet import scrape, work_dir  # noqa: E402
from bench.procs import LOAD_DIR, ensure_node_modules, raise_on_sigterm  # noqa: E402
from tests.live import GENEROUS_LIMITS, LiveServer, free_port, stop_process, wait_ready  # noqa: E402
from tests.redis_fleet import (  # noqa: E402
    FleetNode,
    RedisClusterFleet,
    SentinelGroup,
    redis7_binary,
    redis_cluster,
    sentinel_group,
)

PREFIX = "stackvote"
POLL = 0.02  # seconds between looks at a node during a failover


@dataclass(frozen=True)
class Case:
    name: str
    redis: str  # "sentinel" or "cluster"
    fault: str  # "kill" or "migrate"
    wait: bool  # STACKVOTE_REDIS_WAIT_REPLICAS=1


CASES = [
    Case("sentinel", "sentinel", "kill", wait=True),
    Case("sentinel-nowait", "sentinel", "kill", wait=False),
    Case("cluster", "cluster", "kill", wait=True),
    Case("cluster-nowait", "cluster", "kill", wait=False),
    Case("migration", "cluster", "migrate", wait=True),
]


@dataclass(frozen=True)
class Size:
    rooms: int
    voters: int
    duration: float  # seconds of voting
    fault_after: float  # seconds into the voting
    vote_interval: float = 2.0
    ack_timeout: float = 3.0


def meta_key(session: str) -> str:
    return f"{PREFIX}:{{{session}}}"


# ---------------------------------------------------------------------------------------------
# The generator, read in a thread while the main thread breaks things


@dataclass
class Generator:
    process: subprocess.Popen[str]
    log: Path
    rooms: queue.Queue[list[str]] = field(default_factory=queue.Queue)
    phases: dict[str, float] = field(default_factory=dict)  # name -> epoch seconds
    voting: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] = field(default_factory=dict)

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("ROOMS "):
                self.rooms.put(json.loads(line.removeprefix("ROOMS ")))
            elif line.startswith("PHASE "):
                _, name, at = line.split()
                self.phases[name] = float(at) / 1000
                if name == "vote":
                    self.voting.set()
            elif line.startswith("RESULT "):
                self.result = json.loads(line.removeprefix("RESULT "))

    def failed(self) -> RuntimeError:
        text = self.log.read_text(errors="replace")
        return RuntimeError(f"the generator failed\n{text[-3000:]}")


@contextmanager
def generator(urls: list[str], size: Size, tmp: Path) -> Iterator[Generator]:
    votes = tmp / "votes.json"
    with pinned(GENERATOR_CORE):
        process = subprocess.Popen(
            [
                "node", "failover.mjs",
                "--url", ",".join(urls),
                "--rooms", str(size.rooms),
                "--voters", str(size.voters),
                "--duration", str(size.duration),
                "--vote-interval", str(size.vote_interval),
                "--ack-timeout", str(size.ack_timeout),
                "--log", str(votes),
            ],
            cwd=LOAD_DIR,
            stdout=subprocess.PIPE,
            stderr=(tmp / "generator.log").open("wb"),
            text=True,
        )  # fmt: skip
    running = Generator(process, tmp / "generator.log")
    reader = threading.Thread(target=running.read, daemon=True)
    reader.start()
    try:
        yield running
        process.wait(timeout=600)
        reader.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    if not running.result:
        raise running.failed()
    running.result["votes_log"] = json.loads(votes.read_text())


# ---------------------------------------------------------------------------------------------
# Deployments


@dataclass
class Deployment:
    case: Case
    url: str
    group: SentinelGroup | None = None
    cluster: RedisClusterFleet | None = None
    instances: list[LiveServer] = field(default_factory=list)


@contextmanager
def deployment(case: Case, tmp: Path) -> Iterator[Deployment]:
    with ExitStack() as stack:
        with pinned(SERVER_CORE):
            if case.redis == "sentinel":
                group = stack.enter_context(sentinel_group(tmp / "redis"))
                running = Deployment(case, group.url, group=group)
            else:
                cluster = stack.enter_context(redis_cluster(tmp / "redis"))
                running = Deployment(case, cluster.url, cluster=cluster)
            env = {
                **os.environ,
                **GENEROUS_LIMITS,
                "STACKVOTE_LOG_LEVEL": "info",
                "STACKVOTE_REDIS_URL": running.url,
                "STACKVOTE_REDIS_WAIT_REPLICAS": "1" if case.wait else "0",
            }
            for n in range(2):
                port = free_port()
                log = tmp / f"stackvote-{n + 1}.log"
                process = subprocess.Popen(
                    [sys.executable, "-m", "server", "serve", "--port", str(port)],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=log.open("wb"),
                )
                stack.callback(stop_process, process)
                running.instances.append(LiveServer(f"http://127.0.0.1:{port}", process, log))
        for instance in running.instances:
            wait_ready(instance, timeout=30)
        yield running


def _poll(what: str, check: Any, timeout: float = 60.0) -> float:
    """time.time() at which `check()` first held (errors count as not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError, OSError, KeyError, ValueError, RuntimeError):
            if check():
                return time.time()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(POLL)


def _versions(node: FleetNode, sessions: list[str], *, cluster: bool) -> dict[str, int]:
    """Each session's version as `node` holds it (a replica: READONLY on a cluster)."""
    client = node.client(timeout=5)
    try:
        if cluster:
            client.readonly()
        raw = [client.hget(meta_key(s), "v") for s in sessions]
    finally:
        client.close()
    return {s: int(v) for s, v in zip(sessions, raw, strict=True) if v is not None}


def _replica_of(cluster: RedisClusterFleet, primary: int) -> FleetNode:
    primary_id = cluster.node_id(primary)
    for view in cluster.views(primary):
        if view.master_id == primary_id and not view.failed:
            return cluster.node(view.port)
    raise RuntimeError(f"no replica of {primary}")


@dataclass
class Kill:
    affected: list[str]
    killed_at: float
    replica_versions: dict[str, int]
    promoted_at: float
    restarted_at: float
    replica_back_at: float


def kill_primary(running: Deployment, sessions: list[str]) -> Kill:
    """SIGKILL the primary (of the first room, on a cluster); read what the replica holds;
    wait for the promotion; start the dead node again and wait until it replicates."""
    cluster = running.cluster
    if running.group is not None:
        group = running.group
        _, old = group.current_primary()
        dead = group.node(old)
        replica = next(n for n in group.nodes if n.port != old)
        affected = sessions
    else:
        assert cluster is not None
        old = cluster.owner(cluster.keyslot(meta_key(sessions[0])))
        dead = cluster.node(old)
        replica = _replica_of(cluster, old)
        affected = [s for s in sessions if cluster.owner(cluster.keyslot(meta_key(s))) == old]
    killed_at = time.time()
    dead.kill()
    # Once its link is down the replica gets nothing more: what it holds now is what it will
    # serve once promoted.
    _poll(
        "the replica's link down",
        lambda: replica.info("replication").get("master_link_status") != "up",
        10,
    )
    versions = _versions(replica, affected, cluster=cluster is not None)

    def promoted() -> bool:
        if replica.role() != "master":
            return False
        if running.group is not None:
            return running.group.current_primary()[1] == replica.port
        return True

    promoted_at = _poll("the replica promoted", promoted)
    with pinned(SERVER_CORE):
        dead.restart()
    restarted_at = time.time()

    def replicating() -> bool:
        info = dead.info("replication")
        return info.get("role") == "slave" and info.get("master_link_status") == "up"

    back_at = _poll("the old primary a replica again", replicating, 90)
    return Kill(affected, killed_at, versions, promoted_at, restarted_at, back_at)


@dataclass
class Migration:
    moves: list[dict[str, Any]]


def migrate(running: Deployment, sessions: list[str], count: int, pause: float) -> Migration:
    """Move the slots of `count` rooms, each to the next primary, one after another."""
    cluster = running.cluster
    assert cluster is not None
    moves = []
    primaries = cluster.primary_ports()
    for session in sessions[:count]:
        slot = cluster.keyslot(meta_key(session))
        source = cluster.owner(slot)
        target = primaries[(primaries.index(source) + 1) % len(primaries)]
        started = time.time()
        keys = cluster.migrate_slot(slot, target)
        moves.append(
            {
                "session": session,
                "slot": slot,
                "from": source,
                "to": target,
                "keys": keys,
                "started": started,
                "seconds": time.time() - started,
            }
        )
        time.sleep(pause)
    return Migration(moves)


# ---------------------------------------------------------------------------------------------
# One case


def run(case: Case, size: Size, tmp: Path) -> dict[str, Any]:
    with deployment(case, tmp) as running:
        urls = [i.url for i in running.instances]
        fault: Kill | Migration
        with generator(urls, size, tmp) as gen:
            sessions = gen.rooms.get(timeout=120)
            if not gen.voting.wait(timeout=300):
                raise gen.failed()
            time.sleep(max(0.0, gen.phases["vote"] + size.fault_after - time.time()))
            if case.fault == "kill":
                fault = kill_primary(running, sessions)
            else:
                fault = migrate(running, sessions, max(1, len(sessions) // 3), pause=1.0)
        metrics = {i.url: scrape(i.url) for i in running.instances}
        logs = {i.url: i.log() for i in running.instances}
    result = gen.result
    result["case"] = case.name
    result["phases"] = gen.phases
    result["sessions"] = sessions
    result["metrics"] = metrics
    result["log_warnings"] = {
        url: [line for line in text.splitlines() if "WARNING" in line or "ERROR" in line][-20:]
        for url, text in logs.items()
    }
    if isinstance(fault, Kill):
        result["kill"] = fault.__dict__
    else:
        result["migration"] = fault.moves
    return result


# ---------------------------------------------------------------------------------------------
# Summing up


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    votes: list[dict[str, Any]] = result["votes_log"]
    sessions: list[str] = result["sessions"]
    check = result["check"]
    out: dict[str, Any] = {
        "votes": len(votes),
        "acked": sum(v["outcome"] == "acked" for v in votes),
        "refused": sum(v["outcome"] == "refused" for v in votes),
        "unknown": sum(v["outcome"] == "unknown" for v in votes),
        "unanswered attempts": sum(v["unanswered"] for v in votes),
        "converged": f"{check['converged']}/{check['clients']}",
        "converged ok": check["converged"] == check["clients"],
        "not converged": {k: check[k] for k in ("behind", "ahead", "different") if check[k]},
        "results wrong rooms": check["rooms_wrong"],
        "acked missing at the end": check["acked_missing"],
        "refused but counted": check["refused_counted"],
        "unexpected ballots": check["unexpected"],
        "drops": result["drops"],
        "feed gaps": sum(
            m.get("stackvote_feed_gaps_total", 0.0) for m in result["metrics"].values()
        ),
    }
    if "kill" in result:
        kill = result["kill"]
        affected = {sessions.index(s) for s in kill["affected"]}
        mine = [v for v in votes if v["room"] in affected]
        before = [
            v for v in mine if v["outcome"] == "acked" and v["acked"] / 1000 < kill["killed_at"]
        ]
        replica = kill["replica_versions"]
        lost = [v for v in before if v["version"] > replica.get(sessions[v["room"]], -1)]
        after = [
            v["acked"] / 1000
            for v in mine
            if v["outcome"] == "acked" and v["sent"] / 1000 >= kill["killed_at"]
        ]
        confirmed = [a for a in after if a >= kill["replica_back_at"]]
        # With no replica attached, WAIT 1 cannot succeed: an ack then is not confirmed.
        window = (kill["promoted_at"], kill["replica_back_at"] - 0.1)
        unconfirmed = [
            v
            for v in mine
            if v["outcome"] == "acked"
            and v["sent"] / 1000 >= window[0]
            and v["acked"] / 1000 < window[1]
        ]
        out.update(
            {
                "rooms affected": f"{len(affected)}/{len(sessions)}",
                "kill → promotion s": kill["promoted_at"] - kill["killed_at"],
                "promotion → first ack s": min(after) - kill["promoted_at"]
                if after
                else float("nan"),
                "kill → old primary a replica s": kill["replica_back_at"] - kill["killed_at"],
                "replica back → first ack s": min(confirmed) - kill["replica_back_at"]
                if confirmed
                else float("nan"),
                "acked before the kill": len(before),
                "of which missing after": len(lost),
                "acked while the primary had no replica": len(unconfirmed),
                "of which retries": sum(v["unanswered"] > 0 for v in unconfirmed),
            }
        )
    if "migration" in result:
        moves = result["migration"]
        seconds = [m["seconds"] for m in moves]
        out.update(
            {
                "slots moved": len(moves),
                "keys moved": sum(m["keys"] for m in moves),
                "seconds per slot (mean/max)": f"{fmt(sum(seconds) / len(seconds))}/"
                f"{fmt(max(seconds))}",
            }
        )
    return out


KILL_ROWS = (
    "rooms affected",
    "kill → promotion s",
    "promotion → first ack s",
    "kill → old primary a replica s",
    "replica back → first ack s",
    "acked before the kill",
    "of which missing after",
    "acked while the primary had no replica",
    "of which retries",
)
MIGRATION_ROWS = ("slots moved", "keys moved", "seconds per slot (mean/max)")
COMMON_ROWS = (
    "votes",
    "acked",
    "refused",
    "unknown",
    "unanswered attempts",
    "acked missing at the end",
    "refused but counted",
    "unexpected ballots",
    "results wrong rooms",
    "converged",
    "not converged",
    "drops",
    "feed gaps",
)


def table(summaries: dict[str, dict[str, Any]]) -> str:
    names = list(summaries)
    rows: list[str] = []
    if any("kill → promotion s" in s for s in summaries.values()):
        rows += KILL_ROWS
    if any("slots moved" in s for s in summaries.values()):
        rows += MIGRATION_ROWS
    rows += COMMON_ROWS
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for row in rows:
        cells = []
        for name in names:
            value = summaries[name].get(row, "")
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
            cells.append(fmt(value) if value != "" else "")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(case: Case, summary: dict[str, Any]) -> list[str]:
    """What must hold: with WAIT on, no acknowledged vote lost; everywhere, every client
    converged and no vote refused as not counted was counted. Each failure as a sentence."""
    problems = []
    if not summary["converged ok"]:
        problems.append(f"{case.name}: clients not converged ({summary['not converged']})")
    if summary["refused but counted"] or summary["unexpected ballots"]:
        problems.append(
            f"{case.name}: {summary['refused but counted']} votes answered `ok: false` were "
            f"counted, {summary['unexpected ballots']} ballots from no vote sent"
        )
    if case.wait:
        if summary.get("of which missing after"):
            problems.append(f"{case.name}: acked votes lost in the failover")
        if summary["acked missing at the end"]:
            problems.append(f"{case.name}: acked votes missing from the results")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 rooms of 5, shorter (CI)")
    parser.add_argument(
        "--only", default="", help="comma-separated: " + ",".join(c.name for c in CASES)
    )
    parser.add_argument("--out", default="", help="write every raw result as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the logs' directory")
    options = parser.parse_args()
    chosen = [c for c in CASES if not options.only or c.name in options.only.split(",")]
    if not chosen:
        parser.error("--only names none of the cases")
    if redis7_binary() is None:
        sys.exit("needs redis-server 7 or newer (Debian: apt install redis-server)")
    if options.quick:
        size = Size(rooms=10, voters=5, duration=20, fault_after=4)
    else:
        size = Size(rooms=50, voters=10, duration=45, fault_after=10)
    raise_on_sigterm()
    ensure_node_modules()
    print(
        f"## {size.rooms} rooms x ({size.voters} voters + a facilitator) on 2 instances, a "
        f"vote each every ~{size.vote_interval:g} s for {size.duration:g} s, the fault "
        f"{size.fault_after:g} s in\n",
        flush=True,
    )
    summaries: dict[str, dict[str, Any]] = {}
    raw = []
    problems: list[str] = []
    with work_dir("stackvote-failover-", keep=options.keep) as tmp_dir:
        for case in chosen:
            print(f"# {case.name}...", file=sys.stderr, flush=True)
            scratch = Path(tmp_dir) / case.name
            scratch.mkdir()
            result = run(case, size, scratch)
            summary = summarise(result)
            summaries[case.name] = summary
            problems += verdict(case, summary)
            result.pop("votes_log")
            raw.append({**result, "summary": summary})
    print(table(summaries))
    print()
    for problem in problems:
        print(f"- {problem}")
    if not problems:
        print("Every client converged; no acknowledged vote was lost where WAIT was on.")
    if options.out:
        Path(options.out).write_text(json.dumps(raw, indent=1, default=str))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
