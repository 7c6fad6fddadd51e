"""How sure a recommendation is: the team's ballots resampled and the ranking recomputed.

Pure: the same inputs give the same figures on every instance. A case's resampled median is
drawn from its exact distribution, worked out from the histogram (the same number of voters
drawn with replacement), so a resample costs one random draw per case whatever the size of the
team; cases are drawn in groups from their joint distribution, so it costs one draw per group.
Scores are integers (fits in millionths), and the resamples are ranked as whole arrays (numpy),
not one by one in Python.
"""

from __future__ import annotations

import hashlib
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import Any, Literal

import numpy as np

SCALE_MAX = 4
# Medians move in half steps: index j stands for the median j / 2, from 0 to SCALE_MAX.
HALF_STEPS = 2 * SCALE_MAX + 1
RESAMPLES = 2000
# The interval of a stack's resampled score: its 5th and 95th percentile (90 % of resamples).
INTERVAL = (0.05, 0.95)
# Binomial tail terms below this share of the sum are past float precision.
_NEGLIGIBLE = 1e-18

Confidence = Literal["clear", "leaning", "toss_up", "too_few", "tied"]
# Fewer people than this scoring the revealed questions (the median over them) make the
# resampled figures meaningless: two voters who agree resample to "100 %" every time.
FEW = 3


def label(top_share: float, scorers: Sequence[int] = (), *, tied: bool = False) -> Confidence:
    """How sure the verdict is, from the winner's share of resamples, how many people scored
    each revealed case (`scorers`; none given: not judged on it) and whether other stacks
    score exactly what the winner does (`tied`)."""
    # Rule: too few while the revealed cases' median number of scores is under 3, whatever
    # the resampling says; else tied while the top is shared (the scores cannot separate the
    # stacks there, whatever the resampling); else clear when the winner wins at least 80 %
    # of resamples, leaning from 60 %.
    if scorers and statistics.median(scorers) < FEW:
        return "too_few"
    if tied:
        return "tied"
    if top_share >= 0.8:
        return "clear"
    if top_share >= 0.6:
        return "leaning"
    return "toss_up"


# --- the median of a resample


def _binomial_pmf(n: int, c: int, logp: float, logq: float) -> float:
    return math.exp(
        math.lgamma(n + 1) - math.lgamma(c + 1) - math.lgamma(n - c + 1) + c * logp + (n - c) * logq
    )


def _count_is(n: int, hits: int, c: int) -> float:
    """P(C = c) for C ~ Binomial(n, hits / n)."""
    if hits == 0:
        return 1.0 if c == 0 else 0.0
    if hits == n:
        return 1.0 if c == n else 0.0
    return _binomial_pmf(n, c, math.log(hits / n), math.log((n - hits) / n))


def _at_least(n: int, hits: int, m: int) -> float:
    """P(C >= m) for C ~ Binomial(n, hits / n), in log space so that n in the thousands
    neither overflows nor underflows. The terms rise to the mode and fall after it, so the
    tail is summed from its end nearest the mode outwards until the terms stop mattering."""
    if m <= 0:
        return 1.0
    if m > n or hits == 0:
        return 0.0
    if hits == n:
        return 1.0
    p, q = hits / n, (n - hits) / n
    logp, logq = math.log(p), math.log(q)
    mode = math.floor((n + 1) * p)
    if m > mode:
        # The upper tail lies wholly past the mode: its terms fall from c = m on.
        term = _binomial_pmf(n, m, logp, logq)
        total, c = term, m
        while c < n and term > total * _NEGLIGIBLE:
            term *= (n - c) / (c + 1) * p / q
            c += 1
            total += term
        return min(1.0, total)
    # Otherwise the lower tail (c < m) lies wholly before the mode: sum it downwards.
    term = _binomial_pmf(n, m - 1, logp, logq)
    total, c = term, m - 1
    while c > 0 and term > total * _NEGLIGIBLE:
        term *= c / (n - c + 1) * q / p
        c -= 1
        total += term
    return max(0.0, 1.0 - total)


def median_distribution(histogram: Sequence[int]) -> tuple[float, ...]:
    """The distribution of the median of n scores drawn with replacement from a case's n
    scores (abstentions left out), by half step: entry j is P(median = j / 2)."""
    n = sum(histogram)
    if n <= 0:
        raise ValueError("a median needs at least one score")
    below = list(accumulate(histogram))  # below[v]: how many scores are <= v
    pmf = [0.0] * HALF_STEPS
    if n % 2:
        # Rule: the median is the ((n+1)/2)-th smallest: P(median <= v) = P(C(v) >= (n+1)/2).
        cdf = [_at_least(n, below[v], (n + 1) // 2) for v in range(SCALE_MAX + 1)]
        for v in range(SCALE_MAX + 1):
            pmf[2 * v] = cdf[v] - (cdf[v - 1] if v else 0.0)
    else:
        # Rule: the median is the mean of the k-th and (k+1)-th smallest (k = n/2); their
        # joint CDF G(a, b) = P(k-th <= a, (k+1)-th <= b) is differenced into a joint pmf.
        k = n // 2
        more = [_at_least(n, below[v], k + 1) for v in range(SCALE_MAX + 1)]

        def joint(a: int, b: int) -> float:
            if a < 0 or b < 0:
                return 0.0
            if a >= b:
                return more[b]
            # Exactly k scores <= a: the (k+1)-th is <= b unless all n-k others exceed b.
            exactly = _count_is(n, below[a], k)
            if exactly == 0.0:
                return more[a]
            beyond = ((n - below[b]) / (n - below[a])) ** (n - k)
            return more[a] + exactly * (1.0 - beyond)

        for i in range(SCALE_MAX + 1):
            for j in range(i, SCALE_MAX + 1):
                p = joint(i, j) - joint(i - 1, j) - joint(i, j - 1) + joint(i - 1, j - 1)
                pmf[i + j] += p
    # Differences of rounded probabilities can dip a hair below zero; the pmf sums to one.
    clean = [max(0.0, p) for p in pmf]
    total = math.fsum(clean)
    return tuple(p / total for p in clean)


@lru_cache(maxsize=1024)
def _distribution(histogram: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The half steps a case's resampled median can take, and their probabilities."""
    pmf = median_distribution(histogram)
    support = tuple(j for j, p in enumerate(pmf) if p > 0)
    return support, tuple(pmf[j] for j in support)


# --- resampling the ranking

# Draws are 32-bit integers, taken 4 bytes at a time (little-endian) from the seeded stream.
_DRAWS = 2**32
# Cases are drawn together in groups of up to this many combinations of their medians.
GROUP = 512
# Score units per point of score: a contribution is (j / 2) / 4 x fit, and fits count in
# millionths (FIT_UNITS), so j x fit-in-millionths is the score in these units.
UNITS_PER_POINT = 8 * 10**6
FIT_UNITS = 10**6


@dataclass(frozen=True)
class Resampled:
    """Per stack (in the order given): resamples won (a resample that k stacks top together
    counts 1/k for each) and the 90 % interval of its score."""

    wins: tuple[float, ...]
    intervals: tuple[tuple[float, float], ...]
    resamples: int


# A case for resampling: its histogram and, per half step j (0..8), each stack's fit in
# millionths times j (its contribution in score units); or None and a single row, for a case
# with no ballots to resample (it stays where it is).
CaseTable = tuple[tuple[int, ...] | None, tuple[tuple[int, ...], ...]]


def seed_for(session: str, cases: Sequence[CaseTable]) -> str:
    """The random seed: the session plus a digest of what is resampled, so every instance,
    every reload and every unrelated vote gives the same figures for the same inputs."""
    digest = hashlib.sha256(repr(tuple(cases)).encode()).hexdigest()
    return f"{session}:{digest}"


def _groups(cases: Sequence[CaseTable]) -> list[tuple[Any, list[int]]]:
    """The cases in groups drawn together: per group, every combination of its cases'
    medians as the stacks' scores (one row each, a numpy array), and the cut points of their
    joint probability. The cases are independent, so one draw from the joint distribution is
    one draw per case; grouping them (up to GROUP combinations) makes the work per resample a
    few groups, not every case."""
    groups: list[tuple[Any, list[float]]] = []
    for histogram, table in cases:
        if histogram is None:
            rows, pmf = np.array(table[:1], dtype=np.int64), [1.0]
        else:
            support, probabilities = _distribution(histogram)
            rows = np.array([table[j] for j in support], dtype=np.int64)
            pmf = list(probabilities)
        if groups and len(groups[-1][0]) * len(rows) <= GROUP:
            before, weights = groups[-1]
            # Every row of the group so far with every row of this case, in that order.
            combined = (before[:, None, :] + rows[None, :, :]).reshape(-1, rows.shape[1])
            groups[-1] = (combined, [p * q for p in weights for q in pmf])
        else:
            groups.append((rows, pmf))
    return [(rows, _cuts(pmf)) for rows, pmf in groups]


def _cuts(pmf: Sequence[float]) -> list[int]:
    """Cut points between outcomes of these probabilities, on the scale of a 32-bit draw."""
    total = math.fsum(pmf)
    return [round(c / total * _DRAWS) for c in accumulate(pmf)][:-1]


def resampled_scores(session: str, cases: tuple[CaseTable, ...], resamples: int = RESAMPLES) -> Any:
    """Every resample's score per stack, in score units: a (resamples x stacks) numpy array
    of integers."""
    stacks = len(cases[0][1][0]) if cases else 0
    scores = np.zeros((resamples, stacks), dtype=np.int64)
    if not stacks:
        return scores
    # Not for secrets: a reproducible stream is the point.
    rnd = random.Random(seed_for(session, cases))  # noqa: S311
    for rows, cuts in _groups(cases):
        if not cuts:
            scores += rows[0]  # (one outcome: nothing to draw)
            continue
        # One uniform draw per group of cases and resample, placed in the group's joint
        # distribution (as bisect_right places it): which medians its cases take together.
        draws = np.frombuffer(rnd.randbytes(4 * resamples), dtype="<u4").astype(np.int64)
        scores += rows[np.searchsorted(np.array(cuts, dtype=np.int64), draws, side="right")]
    return scores


@lru_cache(maxsize=256)
def resample(session: str, cases: tuple[CaseTable, ...], resamples: int = RESAMPLES) -> Resampled:
    """Resample every case's median and rank the stacks again, `resamples` times.

    Each case table lists the stacks in tie order (the favourite first, then template order).
    A resample's winners are the stacks with the highest score: a tie is shared (each of k
    tied stacks gets 1/k of it), since the team's scores did not put one ahead; the tie rule
    only orders the ranking. Scores are exact integers (fits in millionths, as the flip search
    counts them), so a tie is a tie.

    Every step runs over whole arrays (numpy), not a loop of Python per resample, case and
    stack: 2,000 resamples of 11 cases and 9 stacks take well under a millisecond.
    """
    scores = resampled_scores(session, cases, resamples)
    stacks = scores.shape[1]
    if not stacks:
        return Resampled((), (), resamples)
    at_top = scores == scores.max(axis=1, keepdims=True)
    shared = at_top.sum(axis=1)
    wins = tuple(
        # Per k, how many resamples the stack topped with k-1 others: each counts 1/k.
        math.fsum(
            count / k for k, count in enumerate(np.bincount(shared[at_top[:, s]]).tolist()) if count
        )
        for s in range(stacks)
    )
    intervals = tuple(_interval(np.sort(scores[:, s]), resamples) for s in range(stacks))
    return Resampled(wins, intervals, resamples)


def _interval(ordered: Any, total: int) -> tuple[float, float]:
    """The INTERVAL quantiles (inclusive, linear, as statistics.quantiles) of `total` scores
    in score units, `ordered` from lowest to highest, in points."""

    def quantile(q: float) -> float:
        position = (total - 1) * q
        low = math.floor(position)
        a = int(ordered[low])
        frac = position - low
        if frac == 0:
            return a / UNITS_PER_POINT
        return (a + (int(ordered[low + 1]) - a) * frac) / UNITS_PER_POINT

    return quantile(INTERVAL[0]), quantile(INTERVAL[1])
