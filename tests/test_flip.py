"""Tests for the smallest flip (server.flip, and its sentence through the recommendation)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from server import flip
from server.engine import CaseInput, StackInfo, recommend

DJANGO = StackInfo("django", "Django")
GO = StackInfo("go", "Go")
NODE = StackInfo("node", "Node.js")


def cheapest(
    medians: tuple[int, ...], fits: tuple[tuple[int, ...], ...], target: int
) -> int | None:
    """The fewest steps that make `target` win, by trying every median of every case."""
    best = None
    for moved in itertools.product(range(flip.TOP + 1), repeat=len(medians)):
        if flip.winner(moved, fits) == target:
            steps = sum(flip.cost(m, j) for m, j in zip(medians, moved, strict=True))
            best = steps if best is None else min(best, steps)
    return best


weights = st.sampled_from([-2, -1, -0.5, 0, 0, 0.5, 1, 1.5, 2]).map(flip.units)


@st.composite
def decks(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
    cases = draw(st.integers(1, 3))
    stacks = draw(st.integers(1, 3))
    medians = tuple(draw(st.integers(0, flip.TOP)) for _ in range(cases))
    fits = tuple(tuple(draw(weights) for _ in range(stacks)) for _ in range(cases))
    return medians, fits


@given(decks())
def test_the_flip_found_is_the_cheapest_there_is(
    deck: tuple[tuple[int, ...], tuple[tuple[int, ...], ...]],
) -> None:
    medians, fits = deck
    for target, outcome in enumerate(flip.smallest_flips(medians, fits)):
        best = cheapest(medians, fits, target)
        if best is None:
            assert outcome == "impossible"
            continue
        assert isinstance(outcome, flip.Flip)
        assert outcome.minimal
        assert outcome.steps == best
        assert flip.winner(outcome.medians, fits) == target
        spent = sum(flip.cost(m, j) for m, j in zip(medians, outcome.medians, strict=True))
        assert spent == outcome.steps


def test_the_winner_needs_no_change() -> None:
    medians, fits = (4,), ((2, 0),)
    assert flip.smallest_flips(medians, fits)[0] == flip.Flip((4,), 0, True)


def test_a_stack_that_beats_each_rival_but_never_both_cannot_win() -> None:
    # The middle stack's fits are the average of the others': it can never lead both.
    fits = ((2, 1, 0), (0, 1, 2))
    assert flip.smallest_flips((4, 4), fits)[1] == "impossible"


def test_moves_cost_whole_steps_from_a_half_step() -> None:
    assert [flip.cost(3, j) for j in range(9)] == [2, 1, 1, 0, 1, 1, 2, 2, 3]


def test_a_large_deck_is_searched_within_the_work_limit() -> None:
    # 30 cases and 8 stacks: every stack gets an answer or a proof that it cannot win.
    fits = tuple(
        tuple(flip.units(((c * 7 + s * 3) % 5 - 2) / 2) for s in range(8)) for c in range(30)
    )
    medians = tuple((c * 5) % 9 for c in range(30))
    outcomes = flip.smallest_flips(medians, fits)
    assert len(outcomes) == 8
    for target, outcome in enumerate(outcomes):
        if isinstance(outcome, flip.Flip):
            assert flip.winner(outcome.medians, fits) == target
        else:
            assert outcome in ("impossible", "unknown")


# --- through the recommendation: sentences and "cannot win"


def test_the_runner_up_flip_is_said_in_a_sentence() -> None:
    cases = [
        CaseInput("speed", "Raw speed is critical", 1.0, {"go": 2, "django": -2}),
        CaseInput("model", "A rich relational data model", 2.0, {"django": 2}),
        CaseInput("admin", "Needs an admin", 1.0, {"django": 1}),
    ]
    rec = recommend(cases, (DJANGO, GO), "django", seed="s1")
    assert rec is not None
    assert [r.stack for r in rec.ranking] == ["django", "go"]
    # Django 0.75, Go 0.5: one step up on speed gives Go 1.0 and Django 0.25.
    assert rec.flip is not None
    assert rec.flip.steps == 1
    assert (
        rec.flip.sentence
        == "Go would win if \u201cRaw speed is critical\u201d were 2 instead of 1."
    )
    assert rec.ranking[1].flip == rec.flip
    assert rec.as_dict()["flip"]["changes"] == [{"case": "speed", "from": 1.0, "to": 2.0}]


def test_a_flip_over_several_cases_names_each_with_its_old_and_new_median() -> None:
    # FastAPI must get past Go (carried by "live") and Django (carried by "model") at once.
    cases = [
        CaseInput("live", "Live updates are core", 4.0, {"go": 2}),
        CaseInput("model", "A rich relational data model", 4.0, {"django": 2}),
        CaseInput("speed", "Raw speed is critical", 4.0, {"fastapi": 0.5}),
    ]
    fastapi = StackInfo("fastapi", "FastAPI")
    rec = recommend(cases, (DJANGO, GO, fastapi), "django", seed="s1")
    assert rec is not None
    found = next(r for r in rec.ranking if r.stack == "fastapi").flip
    assert found is not None
    assert found.steps == 8
    assert [c.case for c in found.changes] == ["live", "model"]
    live, model = found.changes
    assert found.sentence == (
        f"FastAPI would win if \u201cLive updates are core\u201d were {live.new:g} instead of 4 "
        f"and \u201cA rich relational data model\u201d were {model.new:g} instead of 4."
    )
    moved = {c.case: c.new for c in found.changes}
    changed = [CaseInput(c.id, c.title, moved.get(c.id, c.median), c.fit) for c in cases]
    again = recommend(changed, (DJANGO, GO, fastapi), "django")
    assert again is not None and again.ranking[0].stack == "fastapi"


def test_a_stack_with_no_positive_weight_cannot_win() -> None:
    cases = [
        CaseInput("a", "a", 2.0, {"go": 1, "node": -1}),
        CaseInput("b", "b", 3.0, {"django": 1}),
    ]
    rec = recommend(cases, (DJANGO, GO, NODE), "django", seed="s1")
    assert rec is not None
    node = next(r for r in rec.ranking if r.stack == "node")
    assert (node.flip, node.can_win) == (None, False)
    go = next(r for r in rec.ranking if r.stack == "go")
    assert go.can_win and go.flip is not None
    assert rec.as_dict()["ranking"][-1]["can_win"] is False


def test_no_flip_when_the_runner_up_cannot_win() -> None:
    # Go scores exactly as Django does on every case: no scores can put it ahead, but it
    # shares first place already (never "cannot come first").
    cases = [CaseInput("a", "a", 2.0, {"go": 1, "django": 1})]
    rec = recommend(cases, (DJANGO, GO), "django", seed="s1")
    assert rec is not None
    assert rec.flip is None
    assert (rec.ranking[1].can_win, rec.ranking[1].tied_with) == (True, ("django",))
    # Behind for good: cannot come first.
    behind = recommend([CaseInput("a", "a", 2.0, {"django": 1})], (DJANGO, GO), "django", seed="s")
    assert behind is not None and behind.ranking[1].can_win is False
