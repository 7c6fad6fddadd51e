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
