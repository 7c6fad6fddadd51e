"""The smallest change of case medians that puts a given stack first (pure, stdlib only).

Medians are half steps (index j is the median j / 2, 0..8) and a move costs whole scale steps:
ceil(|new - old|). Fits are counted in millionths, so scores are exact integers and a tie is a
tie: for fits with up to six decimals (any template a person writes) this is exactly the
ranking's rule, whose scores then differ by at least 1.25e-7 or not at all. The search is a
branch and bound over cases, seeded with a greedy answer, pruned by a lower bound on the steps
still needed (per rival, and for all rivals at once) that never overestimates.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import Literal

SCALE_MAX = 4
TOP = 2 * SCALE_MAX  # the highest half step
FIT_UNITS = 10**6
# Search nodes per stack before settling for the best answer found so far.
WORK_LIMIT = 50_000
# Pairs of rivals sharpen the bound a great deal; past this many rivals they cost more than
# they save.
PAIRED_RIVALS = 12


def units(fit: float) -> int:
    """A fit in millionths."""
    return round(fit * FIT_UNITS)


def cost(old: int, new: int) -> int:
    """Whole scale steps between two half-step medians."""
    return (abs(new - old) + 1) // 2


@dataclass(frozen=True)
class Flip:
    """How a stack gets to the top. `medians` are the new half steps of every case; `minimal`
    is False only when the search gave up at its work limit with this answer in hand."""

    medians: tuple[int, ...]
    steps: int
    minimal: bool


Outcome = Flip | Literal["impossible", "unknown"]


def smallest_flips(
    medians: tuple[int, ...], fits: tuple[tuple[int, ...], ...]
) -> tuple[Outcome, ...]:
    """For every stack (columns of `fits`, in tie order: a tie goes to the earlier stack), the
    cheapest medians that put it first; "impossible" when no medians can."""
    stacks = len(fits[0]) if fits else 0
    return tuple(smallest_flip(medians, fits, t) for t in range(stacks))


@lru_cache(maxsize=2048)
def smallest_flip(medians: tuple[int, ...], fits: tuple[tuple[int, ...], ...], t: int) -> Outcome:
    """The cheapest medians that put stack `t` (a column of `fits`) first."""
    return _search(medians, fits, t)


def winner(medians: Sequence[int], fits: Sequence[Sequence[int]]) -> int:
    stacks = len(fits[0]) if fits else 0
    scores = [sum(m * f[s] for m, f in zip(medians, fits, strict=True)) for s in range(stacks)]
    return scores.index(max(scores))


class _Abort(Exception):
    pass


def _search(medians: tuple[int, ...], fits: tuple[tuple[int, ...], ...], t: int) -> Outcome:
    stacks = len(fits[0])
    # A constraint: sum_c x_c * coef_c >= need. One per rival: t's lead over it, which must be
    # positive, or at least zero when t comes first in tie order. Sums of them (each pair, and
    # all) must hold too; they catch a stack that can beat each rival alone but not together.
    rivals = [s for s in range(stacks) if s != t]
    rows = [tuple(f[t] - f[s] for f in fits) for s in rivals]
    needs = [0 if t < s else 1 for s in rivals]
    singles = len(rows)
    if singles <= PAIRED_RIVALS:
        for a in range(singles):
            for b in range(a + 1, singles):
                rows.append(tuple(map(sum, zip(rows[a], rows[b], strict=True))))
                needs.append(needs[a] + needs[b])
    if singles > 1:
        rows.append(tuple(map(sum, zip(*rows[:singles], strict=True))))
        needs.append(sum(needs[:singles]))
    if not rows:
        return Flip(medians, 0, True)
    # Cases that no constraint depends on never move; the others, most influential first.
    order = sorted(
        (c for c in range(len(medians)) if any(row[c] for row in rows)),
        key=lambda c: (-max(abs(row[c]) for row in rows), c),
    )
    values = [sum(m * row[c] for c, m in enumerate(medians)) for row in rows]

    # best[k][i]: for constraint k, the most it can gain from the cases order[i:] with b steps,
    # as prefix sums over b. Each step moves a median a whole step towards the better end (the
    # last one maybe half), so its gains never rise: taking the largest ones is optimal.
    best: list[list[list[int]]] = []
    for row in rows:
        per_suffix: list[list[int]] = [[0]] * (len(order) + 1)
        gains: list[int] = []
        for i in range(len(order) - 1, -1, -1):
            c = order[i]
            a, m = row[c], medians[c]
            room = TOP - m if a > 0 else m
            gains += [2 * abs(a)] * (room // 2) + [abs(a)] * (room % 2)
            gains.sort(reverse=True)
            per_suffix[i] = [0, *accumulate(gains)]
        best.append(per_suffix)

    def steps_needed(i: int, current: list[int]) -> int | None:
        # The fewest more steps any one constraint needs, at the most: a lower bound.
        bound = 0
        for k, value in enumerate(current):
            short = needs[k] - value
            if short <= 0:
                continue
            sums = best[k][i]
            b = bisect_left(sums, short)
            if b == len(sums):
                return None
            bound = max(bound, b)
        return bound

    first = steps_needed(0, values)
    if first is None:
        return "impossible"
    found = _greedy(medians, rows[:singles], needs[:singles], values[:singles])
    limit = (
        found.steps if found is not None else sum(cost(m, 0) + cost(m, TOP) for m in medians) + 1
    )
    answer: list[tuple[int, ...] | None] = [found.medians if found is not None else None]
    budget = [limit]
    x = list(medians)
    work = [0]

    # Each case's medians by cost, and at equal cost the farther move first.
    options = {c: _by_cost(medians[c]) for c in order}

    def dive(i: int, spent: int, current: list[int]) -> None:
        work[0] += 1
        if work[0] > WORK_LIMIT:
            raise _Abort
        more = steps_needed(i, current)
        if more is None or spent + more >= budget[0]:
            return
        if more == 0:
            # Everything holds with the remaining cases left alone: nothing cheaper below.
            answer[0] = tuple(x)
            budget[0] = spent
            return
        c = order[i]
        m = medians[c]
        for j in options[c]:
            step = cost(m, j)
            if spent + step >= budget[0]:
                break
            x[c] = j
            dive(
                i + 1,
                spent + step,
                [v + (j - m) * row[c] for v, row in zip(current, rows, strict=True)],
            )
        x[c] = m

    try:
        dive(0, 0, values)
    except _Abort:
        if answer[0] is None:
            return "unknown"
        return Flip(answer[0], budget[0], False)
    if answer[0] is None:
        return "impossible"
    return Flip(answer[0], budget[0], True)


def _by_cost(m: int) -> list[int]:
    return sorted(range(TOP + 1), key=lambda j: (cost(m, j), -abs(j - m)))


def _greedy(
    medians: tuple[int, ...], rows: list[tuple[int, ...]], needs: list[int], values: list[int]
) -> Flip | None:
    """A first answer to beat: one step at a time, the move that most shrinks the total
    shortfall over the rivals (None if it gets stuck)."""
    x = list(medians)
    current = list(values)

    def shortfall(vals: Sequence[int]) -> int:
        return sum(max(0, n - v) for v, n in zip(vals, needs, strict=True))

    short = shortfall(current)
    for _ in range(len(medians) * TOP):
        if short == 0:
            steps = sum(cost(m, j) for m, j in zip(medians, x, strict=True))
            return Flip(tuple(x), steps, True)
        choice = None
        for c, m in enumerate(medians):
            # Whole steps first: at equal gain, "2 instead of 1" reads better than 1.5.
            for j in (x[c] - 2, x[c] + 2, x[c] - 1, x[c] + 1):
                if not 0 <= j <= TOP or cost(m, j) > cost(m, x[c]) + 1:
                    continue
                moved = [v + (j - x[c]) * row[c] for v, row in zip(current, rows, strict=True)]
                gain = short - shortfall(moved)
                extra = cost(m, j) - cost(m, x[c])
                key = (gain, -extra)
                if gain > 0 and (choice is None or key > choice[0]):
                    choice = (key, c, j, moved)
        if choice is None:
            return None
        _, c, j, current = choice
        x[c] = j
        short = shortfall(current)
    return None
