"""Pure scoring rules: per-case vote statistics and the explained stack recommendation."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

SCALE_MAX = 4

Band = Literal["strong", "moderate", "weak"]

# Scores that differ only by float noise count as a tie, so the tie-break rule decides.
_TIE_DIGITS = 9


def _r3(value: float) -> float:
    # Adding 0.0 turns -0.0 into 0.0, which would otherwise leak into JSON as "-0.0".
    return round(value, 3) + 0.0


def _r3_or_none(value: float | None) -> float | None:
    return None if value is None else _r3(value)


# --- per-case statistics


@dataclass(frozen=True)
class CaseResults:
    n: int
    abstain: int
    histogram: tuple[int, int, int, int, int]
    mean: float | None
    median: float | None
    iqr: float | None
    consensus: float | None
    band: Band | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "abstain": self.abstain,
            "histogram": list(self.histogram),
            "mean": _r3_or_none(self.mean),
            "median": _r3_or_none(self.median),
            "iqr": _r3_or_none(self.iqr),
            "consensus": self.consensus,
            "band": self.band,
        }


def consensus(scores: Sequence[int], width: int = SCALE_MAX) -> float | None:
    # Rule: Tastle-Wierman consensus, 1 + sum p_i * log2(1 - |X_i - mu| / d) over distinct values.
    # `width` must be at least the spread of the scores, or the logarithm is undefined.
    if not scores:
        return None
    n = len(scores)
    mu = statistics.fmean(scores)
    # Distinct values in sorted order and fsum keep the result independent of ballot order.
    terms = (
        count / n * math.log2(1 - abs(value - mu) / width)
        for value, count in sorted(Counter(scores).items())
    )
    raw = 1 + math.fsum(terms)
    # Rounding can leave -0.0 or a hair outside [0, 1]; the statistic is defined on [0, 1].
    return min(1.0, max(0.0, _r3(raw)))


def band(consensus: float | None) -> Band | None:
    # Rule: strong >= 0.80, moderate >= 0.60, weak below; applied to the rounded consensus.
    if consensus is None:
        return None
    if consensus >= 0.80:
        return "strong"
    if consensus >= 0.60:
        return "moderate"
    return "weak"


def _iqr(scores: Sequence[int]) -> float:
    # Rule: Q3 - Q1 with inclusive (linear) quantiles; one score has no spread.
    if len(scores) == 1:
        return 0.0
    q1, _, q3 = statistics.quantiles(scores, n=4, method="inclusive")
    return q3 - q1


def case_results(scores: Iterable[int | None]) -> CaseResults:
    # Rule: abstentions (None) are counted but take no part in any statistic.
    ballots = list(scores)
    votes = [s for s in ballots if s is not None]
    counts = Counter(votes)
    histogram = (counts[0], counts[1], counts[2], counts[3], counts[4])
    abstain = len(ballots) - len(votes)
    if not votes:
        return CaseResults(0, abstain, histogram, None, None, None, None, None)
    cns = consensus(votes)
    return CaseResults(
        n=len(votes),
        abstain=abstain,
        histogram=histogram,
        mean=statistics.fmean(votes),
        median=float(statistics.median(votes)),
        iqr=_iqr(votes),
        consensus=cns,
        band=band(cns),
    )


# --- recommendation


@dataclass(frozen=True)
class StackInfo:
    id: str
    name: str


@dataclass(frozen=True)
class CaseInput:
    id: str
    title: str
    median: float
    fit: Mapping[str, float]
    band: Band | None = None


@dataclass(frozen=True)
class Contribution:
    case: str
    value: float


@dataclass(frozen=True)
class RankedStack:
    stack: str
    name: str
    score: float
    contributions: tuple[Contribution, ...]


@dataclass(frozen=True)
class Recommendation:
    ranking: tuple[RankedStack, ...]
    verdict: str
    robust: bool
    close_call: str | None
    contested: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ranking": [
                {
                    "stack": r.stack,
                    "name": r.name,
                    "score": _r3(r.score),
                    "contributions": [
                        {"case": c.case, "value": _r3(c.value)} for c in r.contributions
                    ],
                }
                for r in self.ranking
            ],
            "verdict": self.verdict,
            "robust": self.robust,
            "close_call": self.close_call,
            "contested": list(self.contested),
        }


def _contribution(case: CaseInput, stack_id: str) -> float:
    # Rule: a case counts in proportion to how much it applies (median / 4) times the stack's fit;
    # a stack the case does not mention has fit 0.
    return case.median / SCALE_MAX * case.fit.get(stack_id, 0.0)


def _contributions(cases: Sequence[CaseInput], stack_id: str) -> tuple[Contribution, ...]:
    # Rule: explain a score by its non-zero parts, largest magnitude first, then input order.
    parts = [Contribution(c.id, _contribution(c, stack_id)) for c in cases]
    nonzero = [(i, p) for i, p in enumerate(parts) if p.value != 0]
    nonzero.sort(key=lambda ip: (-abs(ip[1].value), ip[0]))
    return tuple(p for _, p in nonzero)


def _rank(
    cases: Sequence[CaseInput], stacks: Sequence[StackInfo], favourite: str | None
) -> list[tuple[StackInfo, float]]:
    # Rule: highest score first; ties go to the favourite, then to the order of `stacks`.
    scored = [(s, math.fsum(_contribution(c, s.id) for c in cases)) for s in stacks]
    order = sorted(
        range(len(scored)),
        key=lambda i: (
            -round(scored[i][1], _TIE_DIGITS),
            scored[i][0].id != favourite,
            i,
        ),
    )
    return [scored[i] for i in order]


def _top(cases: Sequence[CaseInput], stacks: Sequence[StackInfo], favourite: str | None) -> str:
    return _rank(cases, stacks, favourite)[0][0].id


def _close_call(
    cases: Sequence[CaseInput], stacks: Sequence[StackInfo], favourite: str | None
) -> CaseInput | None:
    # Rule: the answer is fragile if moving one case's median one step (clamped to the scale)
    # changes the winner; report the first such case in input order.
    winner = _top(cases, stacks, favourite)
    for i, case in enumerate(cases):
        for step in (-1, 1):
            moved = min(float(SCALE_MAX), max(0.0, case.median + step))
            if moved == case.median:
                continue
            shifted = [*cases[:i], replace(case, median=moved), *cases[i + 1 :]]
            if _top(shifted, stacks, favourite) != winner:
                return case
    return None


def _join(phrases: Sequence[str]) -> str:
    return " and ".join(phrases)


def _verdict(top: StackInfo, cases: Sequence[CaseInput], favourite: StackInfo | None) -> str:
    # Rule: name the winner. When it is not the favourite, give up to two cases that put it
    # ahead of the favourite the most (its edge over the favourite, not its raw score: a case
    # that helps both, and the favourite more, is no reason to switch).
    if favourite is not None and top.id == favourite.id:
        return f"{top.name} fits this project."
    rival = favourite.id if favourite is not None else None
    edges = [
        (_contribution(c, top.id) - (_contribution(c, rival) if rival else 0.0), c) for c in cases
    ]
    ordered = sorted(enumerate(edges), key=lambda item: (-item[1][0], item[0]))
    reasons = _join([f'"{c.title}"' for _, (edge, c) in ordered if edge > 0][:2])
    because = f": {reasons}" if reasons else ""
    if favourite is not None:
        return f"Consider {top.name} instead of {favourite.name}{because}."
    return f"{top.name} fits this project best{because}."


def recommend(
    cases: Sequence[CaseInput],
    stacks: Sequence[StackInfo],
    favourite: str | None = None,
) -> Recommendation | None:
    # With nothing revealed (or nothing to choose from) there is no recommendation to make.
    if not cases or not stacks:
        return None
    ranking = tuple(
        RankedStack(s.id, s.name, score, _contributions(cases, s.id))
        for s, score in _rank(cases, stacks, favourite)
    )
    top = ranking[0]
    fav = next((s for s in stacks if s.id == favourite), None)
    close = _close_call(cases, stacks, favourite)
    return Recommendation(
        ranking=ranking,
        verdict=_verdict(StackInfo(top.stack, top.name), cases, fav),
        robust=close is None,
        close_call=None if close is None else close.id,
        # Rule: a case is contested when the team's consensus on it is weak.
        contested=tuple(c.id for c in cases if c.band == "weak"),
    )
