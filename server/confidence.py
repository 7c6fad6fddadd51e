"""How sure a recommendation is: the team's ballots resampled and the ranking recomputed.

Pure and stdlib only. A case's resampled median is drawn from its exact distribution, worked
out from the histogram (the same number of voters drawn with replacement), so a resample costs
one random draw per case whatever the size of the team.
"""

from __future__ import annotations

import hashlib
import math
import random
import statistics
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import Literal

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
def _sampler(histogram: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The half steps a case's resampled median can take and the cut points between them."""
    pmf = median_distribution(histogram)
    support = tuple(j for j, p in enumerate(pmf) if p > 0)
    cuts = tuple(accumulate(pmf[j] for j in support))[:-1]
    return support, cuts


# --- resampling the ranking


@dataclass(frozen=True)
class Resampled:
    """Per stack (in the order given): resamples won (a resample that k stacks top together
    counts 1/k for each) and the 90 % interval of its score."""

    wins: tuple[float, ...]
    intervals: tuple[tuple[float, float], ...]
    resamples: int


# A case for resampling: its histogram and, per half step, each stack's contribution; or
# None and a single row, for a case with no ballots to resample (it stays where it is).
CaseTable = tuple[tuple[int, ...] | None, tuple[tuple[float, ...], ...]]


def seed_for(session: str, cases: Sequence[CaseTable]) -> str:
    """The random seed: the session plus a digest of what is resampled, so every instance,
    every reload and every unrelated vote gives the same figures for the same inputs."""
    digest = hashlib.sha256(repr(tuple(cases)).encode()).hexdigest()
    return f"{session}:{digest}"


@lru_cache(maxsize=256)
def resample(
    session: str, cases: tuple[CaseTable, ...], digits: int, resamples: int = RESAMPLES
) -> Resampled:
    """Resample every case's median and rank the stacks again, `resamples` times.

    Each case table lists the stacks in tie order (the favourite first, then template order).
    A resample's winners are the stacks with the highest score rounded to `digits`: a tie is
    shared (each of k tied stacks gets 1/k of it), since the team's scores did not put one
    ahead; the tie rule only orders the ranking. Scores are exact sums (fsum) of the same
    contributions the ranking adds up, so a resample with the revealed medians ranks exactly
    as the ranking does.
    """
    # Not for secrets: a reproducible stream is the point.
    rnd = random.Random(seed_for(session, cases))  # noqa: S311
    draw = rnd.random
    columns: list[list[int]] = []
    for histogram, _ in cases:
        support, cuts = _sampler(histogram) if histogram is not None else ((0,), ())
        if not cuts:
            columns.append([support[0]] * resamples)
            continue
        # One uniform draw per case and resample, placed in the median's distribution.
        columns.append([support[bisect_right(cuts, draw())] for _ in range(resamples)])
    tables = [table for _, table in cases]
    # Resamples that land on the same medians rank the same: rank each combination once.
    combos = Counter(zip(*columns, strict=True))
    stacks = len(tables[0][0]) if tables else 0
    wins = [0.0] * stacks
    seen: list[list[tuple[float, int]]] = [[] for _ in range(stacks)]
    for combo, count in combos.items():
        scores = list(map(math.fsum, zip(*map(tuple.__getitem__, tables, combo), strict=True)))
        rounded = [round(s, digits) for s in scores]
        best = max(rounded)
        tied = [i for i, r in enumerate(rounded) if r == best]
        for i in tied:
            wins[i] += count / len(tied)
        for s, score in enumerate(scores):
            seen[s].append((score, count))
    intervals = tuple(
        (_quantile(values, resamples, INTERVAL[0]), _quantile(values, resamples, INTERVAL[1]))
        for values in seen
    )
    return Resampled(tuple(wins), intervals, resamples)


def _quantile(values: list[tuple[float, int]], total: int, q: float) -> float:
    """The q-quantile (inclusive, linear, as statistics.quantiles) of `total` scores given as
    (score, how many times)."""
    values.sort()
    position = (total - 1) * q
    low = math.floor(position)
    frac = position - low

    def at(rank: int) -> float:
        seen = 0
        for score, count in values:
            seen += count
            if rank < seen:
                return score
        return values[-1][0]

    a = at(low)
    return a if frac == 0 else a + (at(low + 1) - a) * frac
