"""The benchmarks' quick modes run here, so the harness cannot rot. No timing is asserted: the
numbers are for people to read in bench/RESULTS.md; here only that they come out and that the
runs' own correctness checks pass."""

from __future__ import annotations

import subprocess
import sys

from tests.live import ROOT


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
