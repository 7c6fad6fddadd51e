"""Pure scoring rules: per-case vote statistics and the explained stack recommendation."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from server import confidence, flip

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
    # The current round's scores as counted (None: nothing to resample, the case stays at its
    # median), its IQR and consensus, and the consensus of each earlier round, oldest first.
    histogram: tuple[int, ...] | None = None
    iqr: float | None = None
    consensus: float | None = None
    earlier: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class Contribution:
    case: str
    value: float


@dataclass(frozen=True)
class Change:
    case: str
    old: float
    new: float


@dataclass(frozen=True)
class Flip:
    """The least movement of case medians that puts `stack` first. `minimal` is False only
    when the search stopped at its work limit (a pathological deck) with this answer in hand."""

    stack: str
    changes: tuple[Change, ...]
    sentence: str
    steps: int
    minimal: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "changes": [
                {"case": c.case, "from": _r3(c.old), "to": _r3(c.new)} for c in self.changes
            ],
            "sentence": self.sentence,
            "steps": self.steps,
            "minimal": self.minimal,
        }


@dataclass(frozen=True)
class RankedStack:
    stack: str
    name: str
    score: float
    contributions: tuple[Contribution, ...]
    win_share: float = 0.0
    interval: tuple[float, float] = (0.0, 0.0)
    flip: Flip | None = None
    # None: not worked out (recommend without every_flip; flip_of answers it).
    can_win: bool | None = True
    # The stacks that score exactly what this one does (the team's scores cannot separate
    # them; the tie rule orders them).
    tied_with: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recommendation:
    ranking: tuple[RankedStack, ...]
    verdict: str
    robust: bool
    close_call: str | None
    contested: tuple[str, ...]
    confidence: confidence.Confidence = "clear"
    flip: Flip | None = None
    verdict_parts: VerdictParts | None = None

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
                    # A share is a whole number of resamples out of 2,000: four digits keep it.
                    "win_share": round(r.win_share, 4) + 0.0,
                    "interval": [_r3(r.interval[0]), _r3(r.interval[1])],
                    "flip": None if r.flip is None else r.flip.as_dict(),
                    "can_win": r.can_win,
                    "tied_with": list(r.tied_with),
                }
                for r in self.ranking
            ],
            "verdict": self.verdict,
            "verdict_parts": None if self.verdict_parts is None else self.verdict_parts.as_dict(),
            "robust": self.robust,
            "close_call": self.close_call,
            "contested": list(self.contested),
            "confidence": self.confidence,
            "flip": None if self.flip is None else self.flip.as_dict(),
        }


def _contribution(case: CaseInput, stack_id: str) -> float:
    return _value(case.median, case.fit, stack_id)


def _value(median: float, fit: Mapping[str, float], stack_id: str) -> float:
    # Rule: a case counts in proportion to how much it applies (median / 4) times the stack's fit;
    # a stack the case does not mention has fit 0.
    return median / SCALE_MAX * fit.get(stack_id, 0.0)


def _contributions(cases: Sequence[CaseInput], stack_id: str) -> tuple[Contribution, ...]:
    # Rule: explain a score by its non-zero parts, largest magnitude first, then input order.
    parts = [Contribution(c.id, _contribution(c, stack_id)) for c in cases]
    nonzero = [(i, p) for i, p in enumerate(parts) if p.value != 0]
    nonzero.sort(key=lambda ip: (-abs(ip[1].value), ip[0]))
    return tuple(p for _, p in nonzero)


def _rank(
    cases: Sequence[CaseInput], stacks: Sequence[StackInfo], favourite: str | None
) -> list[tuple[StackInfo, float]]:
    return _ranked(_scores(_table(cases, stacks)), stacks, favourite)


def _table(cases: Sequence[CaseInput], stacks: Sequence[StackInfo]) -> list[list[float]]:
    # Per stack, each case's contribution.
    return [[_value(c.median, c.fit, s.id) for c in cases] for s in stacks]


def _scores(table: Sequence[Sequence[float]]) -> list[float]:
    return [math.fsum(column) for column in table]


def _ranked(
    scores: Sequence[float], stacks: Sequence[StackInfo], favourite: str | None
) -> list[tuple[StackInfo, float]]:
    # Rule: highest score first; ties go to the favourite, then to the order of `stacks`.
    order = sorted(
        range(len(stacks)),
        key=lambda i: (-round(scores[i], _TIE_DIGITS), stacks[i].id != favourite, i),
    )
    return [(stacks[i], scores[i]) for i in order]


def _top(cases: Sequence[CaseInput], stacks: Sequence[StackInfo], favourite: str | None) -> str:
    return _rank(cases, stacks, favourite)[0][0].id


def _close_call(
    cases: Sequence[CaseInput], stacks: Sequence[StackInfo], favourite: str | None
) -> CaseInput | None:
    # Rule: the answer is fragile if moving one case's median one step (clamped to the scale)
    # changes the winner; report the first such case in input order.
    table = _table(cases, stacks)
    winner = _ranked(_scores(table), stacks, favourite)[0][0]
    for i, case in enumerate(cases):
        for step in (-1, 1):
            moved = min(float(SCALE_MAX), max(0.0, case.median + step))
            if moved == case.median:
                continue
            # The table with this one case moved (the same sums _rank would make).
            scores = []
            for s, column in zip(stacks, table, strict=True):
                shifted = column.copy()
                shifted[i] = _value(moved, case.fit, s.id)
                scores.append(math.fsum(shifted))
            if _ranked(scores, stacks, favourite)[0][0] is not winner:
                return case
    return None


def _join(phrases: Sequence[str]) -> str:
    return " and ".join(phrases)


def _same_score(a: float, b: float) -> bool:
    # The ranking's tie rule: scores equal to _TIE_DIGITS places are the same score.
    return round(a, _TIE_DIGITS) == round(b, _TIE_DIGITS)


def _tie_order(stacks: Sequence[StackInfo], favourite: str | None) -> list[StackInfo]:
    # The order in which ties are won: the favourite first, then the order of `stacks`.
    return sorted(stacks, key=lambda s: s.id != favourite)


def _half_step(median: float) -> int:
    return round(median * 2)


# --- how sure the verdict is (resampling) and what would change it (the smallest flip)


def _resampled(
    cases: Sequence[CaseInput], order: Sequence[StackInfo], seed: str
) -> confidence.Resampled:
    def table(case: CaseInput) -> confidence.CaseTable:
        units = [flip.units(case.fit.get(s.id, 0.0)) for s in order]
        if case.histogram is None:
            return None, (tuple(round(2 * case.median * u) for u in units),)
        return case.histogram, tuple(
            tuple(j * u for u in units) for j in range(confidence.HALF_STEPS)
        )

    return confidence.resample(seed, tuple(table(c) for c in cases))


def _median_text(median: float) -> str:
    return f"{median:g}"


def phrases(phrases: Sequence[str]) -> str:
    # "a", "a and b", "a, b and c".
    if len(phrases) <= 2:
        return " and ".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _flips(
    cases: Sequence[CaseInput],
    stacks: Sequence[StackInfo],
    favourite: str | None,
    only: Collection[str] | None = None,
) -> dict[str, Flip | None]:
    """Per stack (of `only`, or all), the smallest flip (None for a stack that cannot win);
    the winner's is a flip of no changes. The search counts fits in millionths; each answer
    is checked against the ranking itself before it is reported."""
    order = _tie_order(stacks, favourite)
    wanted = [(t, s) for t, s in enumerate(order) if only is None or s.id in only]
    if not all(c.median * 2 in range(2 * SCALE_MAX + 1) for c in cases):
        # Medians off the scale's half steps come from no ballot; there is nothing to search.
        return dict.fromkeys((s.id for _, s in wanted), _NO_ANSWER)
    medians = tuple(_half_step(c.median) for c in cases)
    fits = tuple(tuple(flip.units(c.fit.get(s.id, 0.0)) for s in order) for c in cases)
    found: dict[str, Flip | None] = {}
    for t, stack in wanted:
        outcome = flip.smallest_flip(medians, fits, t)
        if not isinstance(outcome, flip.Flip):
            # "unknown" (the search gave up without an answer) is not a proof it cannot win.
            found[stack.id] = None if outcome == "impossible" else _NO_ANSWER
            continue
        moved = [
            replace(c, median=j / 2) if j != m else c
            for c, m, j in zip(cases, medians, outcome.medians, strict=True)
        ]
        if _top(moved, stacks, favourite) != stack.id:
            # Only fits with more than six decimals can get here: no answer, not a wrong one.
            found[stack.id] = _NO_ANSWER
            continue
        changes = tuple(
            Change(c.id, c.median, j / 2)
            for c, m, j in zip(cases, medians, outcome.medians, strict=True)
            if j != m
        )
        titles = {c.id: c.title for c in cases}
        sentence = (
            f"{stack.name} would win if "
            + phrases(
                [
                    f"\u201c{titles[ch.case]}\u201d were {_median_text(ch.new)} "
                    f"instead of {_median_text(ch.old)}"
                    for ch in changes
                ]
            )
            + "."
        )
        found[stack.id] = Flip(stack.id, changes, sentence, outcome.steps, outcome.minimal)
    return found


# A stack that may well win, though the search found no medians that show it.
_NO_ANSWER = Flip("", (), "", 0, minimal=False)


# --- rounds (Delphi)

# Rule: a re-vote is worth it while agreement still grows by at least this much a round.
REVOTE_MIN_GAIN = 0.05


def consensus_change(previous: float | None, current: float | None) -> float | None:
    """How much consensus grew from one round to the next (None when either has no votes)."""
    if previous is None or current is None:
        return None
    return _r3(current - previous)


def revote_suggested(
    band: Band | None, iqr: float | None, consensus: float | None, earlier: Sequence[float | None]
) -> bool:
    # Rule (Delphi): suggest another round while agreement is weak, the middle half of the
    # scores spans more than one step (IQR > 1) and the last round still brought agreement up
    # by REVOTE_MIN_GAIN or more (or there is no earlier round to compare with); stop once
    # agreement is strong, the IQR is 1 or less, or a round gained less than that.
    if band != "weak" or iqr is None or iqr <= 1:
        return False
    change = consensus_change(earlier[-1], consensus) if earlier else None
    return change is None or change >= REVOTE_MIN_GAIN


@dataclass(frozen=True)
class VerdictParts:
    """What the verdict says, as data, so every page phrases it in its reader's language
    (`verdict` is the English sentence made from these parts). `kind`: "none" when every
    stack scores zero, "tied" when other stacks score what the winner does, else "django"
    when the favourite comes first, else "alternative"; `reasons`: the (up to two) cases
    that put the winner ahead of the favourite the most; `tied_with`: the stacks level with
    the winner."""

    kind: str
    stack: str
    favourite: str | None
    reasons: tuple[str, ...]
    tied_with: tuple[str, ...]
    close_call: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "stack": self.stack,
            "favourite": self.favourite,
            "reasons": list(self.reasons),
            "tied_with": list(self.tied_with),
            "close_call": self.close_call,
        }


def _verdict_parts(
    ranking: Sequence[RankedStack],
    cases: Sequence[CaseInput],
    favourite: StackInfo | None,
    close_call: str | None,
) -> VerdictParts:
    # Rule: name the winner. When it is not the favourite, give up to two cases that put it
    # ahead of the favourite the most (its edge over the favourite, not its raw score: a case
    # that helps both, and the favourite more, is no reason to switch).
    top = ranking[0]
    tied = top.tied_with
    rival = favourite.id if favourite is not None else None
    if all(_same_score(r.score, 0.0) for r in ranking):
        # Rule: nothing revealed moves any stack (every case there applies not at all, or
        # weighs on nothing): there is no verdict to give yet.
        return VerdictParts("none", top.stack, rival, (), tied, close_call)
    if tied:
        # Rule: a shared top is not a win: the verdict names the stacks the scores cannot
        # separate (the tie rule put the first of them on top).
        return VerdictParts("tied", top.stack, rival, (), tied, close_call)
    if favourite is not None and top.stack == favourite.id:
        return VerdictParts("django", top.stack, favourite.id, (), tied, close_call)
    edges = [
        (_contribution(c, top.stack) - (_contribution(c, rival) if rival else 0.0), c)
        for c in cases
    ]
    ordered = sorted(enumerate(edges), key=lambda item: (-item[1][0], item[0]))
    reasons = tuple(c.id for _, (edge, c) in ordered if edge > 0)[:2]
    return VerdictParts("alternative", top.stack, rival, reasons, tied, close_call)


def _verdict(parts: VerdictParts, names: Mapping[str, str], titles: Mapping[str, str]) -> str:
    """The verdict in English, from its parts."""
    name = names[parts.stack]
    if parts.kind == "none":
        return "No revealed question favours any stack yet."
    if parts.kind == "tied":
        level = phrases([name, *(names[s] for s in parts.tied_with)])
        return f"{level} score the same: the team's scores cannot separate them yet."
    if parts.kind == "django":
        return f"{name} fits this project."
    reasons = _join([f'"{titles[c]}"' for c in parts.reasons])
    because = f": {reasons}" if reasons else ""
    if parts.favourite is not None:
        return f"Consider {name} instead of {names[parts.favourite]}{because}."
    return f"{name} fits this project best{because}."


def recommend(
    cases: Sequence[CaseInput],
    stacks: Sequence[StackInfo],
    favourite: str | None = None,
    seed: str = "",
    *,
    every_flip: bool = True,
) -> Recommendation | None:
    """The explained recommendation. `seed` (the session id) seeds the resampling together
    with a digest of the inputs, so the same inputs always give the same figures.

    `every_flip`: work out every stack's smallest flip. Without it only the runner-up's (the
    recommendation's `flip`) and those of stacks level with the top are searched, the search
    being most of the cost; the other rows carry `flip` and `can_win` None (not worked out:
    ask `flip_of`)."""
    # With nothing revealed (or nothing to choose from) there is no recommendation to make.
    if not cases or not stacks:
        return None
    order = _tie_order(stacks, favourite)
    resampled = _resampled(cases, order, seed)
    shares = {
        s.id: wins / resampled.resamples for s, wins in zip(order, resampled.wins, strict=True)
    }
    intervals = dict(zip((s.id for s in order), resampled.intervals, strict=True))
    ranked = _rank(cases, stacks, favourite)
    winner = ranked[0][0].id
    level = {
        s.id: tuple(o.id for o, other in ranked if o.id != s.id and _same_score(score, other))
        for s, score in ranked
    }
    top_score = ranked[0][1]
    # Rule: the room is told the runner-up's flip and those of the stacks level with the top
    # (what would separate them); the others' when it asks (flip_of).
    eager = {s.id for s, _ in ranked[1:2]} | set(level[winner])
    flips = _flips(cases, stacks, favourite, None if every_flip else eager)
    ranking = tuple(
        RankedStack(
            s.id,
            s.name,
            score,
            _contributions(cases, s.id),
            win_share=shares[s.id],
            interval=intervals[s.id],
            flip=_shown(flips.get(s.id)) if s.id != winner else None,
            # A stack level with the winner shares first place already.
            can_win=True
            if _same_score(score, top_score)
            else (flips[s.id] is not None if s.id in flips else None),
            tied_with=level[s.id],
        )
        for s, score in ranked
    )
    top = ranking[0]
    fav = next((s for s in stacks if s.id == favourite), None)
    close = _close_call(cases, stacks, favourite)
    parts = _verdict_parts(ranking, cases, fav, None if close is None else close.id)
    names = {s.id: s.name for s in stacks}
    return Recommendation(
        ranking=ranking,
        verdict=_verdict(parts, names, {c.id: c.title for c in cases}),
        verdict_parts=parts,
        robust=close is None,
        close_call=None if close is None else close.id,
        # Rule: a case is contested while another round of voting on it is worth it.
        contested=tuple(
            c.id for c in cases if revote_suggested(c.band, c.iqr, c.consensus, c.earlier)
        ),
        confidence=confidence.label(
            top.win_share,
            [sum(c.histogram) for c in cases if c.histogram is not None],
            tied=bool(top.tied_with),
        ),
        # Rule: the flip named on its own is the runner-up's.
        flip=ranking[1].flip if len(ranking) > 1 else None,
    )


def flip_of(
    cases: Sequence[CaseInput], stacks: Sequence[StackInfo], favourite: str | None, stack: str
) -> tuple[Flip | None, bool]:
    """One stack's smallest flip and whether it can come first at all (a stack level with
    the top can: it shares first place)."""
    ranked = _rank(cases, stacks, favourite)
    if ranked[0][0].id == stack:
        return None, True
    found = _flips(cases, stacks, favourite, {stack})[stack]
    score = next(score for s, score in ranked if s.id == stack)
    return _shown(found), found is not None or _same_score(score, ranked[0][1])


def _shown(found: Flip | None) -> Flip | None:
    return None if found is None or found is _NO_ANSWER else found
