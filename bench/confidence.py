"""How long the recommendation's resampling and flip search take, on one core.

    taskset -c 1 python bench/confidence.py

Resampling: 11 cases x 1,000 voters x 2,000 resamples, cold (no cache) each run. Flip search:
the Django deck (11 cases, 9 stacks), every stack's smallest flip, cold each run.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import confidence, engine, flip
from server.decks import builtin_templates

RUNS = 20


def team_cases(rnd: random.Random, voters: int) -> list[engine.CaseInput]:
    template = builtin_templates()["django"]
    cases = []
    for spec in template.cases:
        # A lean per case, and every voter scoring around it.
        lean = rnd.uniform(0, 4)
        scores = [min(4, max(0, round(rnd.gauss(lean, 1.3)))) for _ in range(voters)]
        results = engine.case_results(scores)
        assert results.median is not None
        cases.append(
            engine.CaseInput(
                spec.id,
                spec.title,
                results.median,
                spec.fit,
                band=results.band,
                histogram=results.histogram,
                iqr=results.iqr,
                consensus=results.consensus,
            )
        )
    return cases


def split_cases(voters: int) -> list[engine.CaseInput]:
    """The worst case for resampling: every case split so its median can land on several
    values, so the 2,000 resamples are nearly all different."""
    template = builtin_templates()["django"]
    histogram = (voters // 2, 0, 0, 0, voters - voters // 2)
    return [
        engine.CaseInput(spec.id, spec.title, 2.0, spec.fit, histogram=histogram)
        for spec in template.cases
    ]


def timed(label: str, work: object) -> None:
    times = []
    for _ in range(RUNS):
        confidence.resample.cache_clear()
        confidence._distribution.cache_clear()
        flip.smallest_flip.cache_clear()
        start = time.perf_counter()
        work()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    print(f"{label:<58} median {statistics.median(times):7.2f} ms   max {max(times):7.2f} ms")


def main() -> None:
    template = builtin_templates()["django"]
    stacks = [engine.StackInfo(s.id, s.name) for s in template.stacks]
    order = engine._tie_order(stacks, template.favourite)
    typical = team_cases(random.Random(7), 1000)
    split = split_cases(1000)
    print(f"{RUNS} cold runs each; Python {sys.version.split()[0]}")
    timed(
        "resample, 11 cases x 1,000 voters (typical)",
        lambda: engine._resampled(typical, order, "bench"),
    )
    timed(
        "resample, 11 cases x 1,000 voters (every case split)",
        lambda: engine._resampled(split, order, "bench"),
    )
    timed(
        "smallest flips, Django deck (typical medians)",
        lambda: engine._flips(typical, stacks, "django"),
    )
    timed(
        "whole recommendation (typical)",
        lambda: engine.recommend(typical, stacks, "django", "bench"),
    )
    timed(
        "whole recommendation (every case split)",
        lambda: engine.recommend(split, stacks, "django", "bench"),
    )
    timed(
        "as the room gets it: the runner-up's flip only (typical)",
        lambda: engine.recommend(typical, stacks, "django", "bench", every_flip=False),
    )
    ten = team_cases(random.Random(7), 10)
    timed(
        "as the room gets it, 10 voters (typical)",
        lambda: engine.recommend(ten, stacks, "django", "bench", every_flip=False),
    )


if __name__ == "__main__":
    main()
