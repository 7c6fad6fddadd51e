"""Tests for server.confidence: the resampled median's exact distribution and the win shares."""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server import confidence
from server.engine import CaseInput, StackInfo, recommend

DJANGO = StackInfo("django", "Django")
GO = StackInfo("go", "Go")
NODE = StackInfo("node", "Node.js")


def brute_force(histogram: tuple[int, ...]) -> list[float]:
    """P(median = j/2) by listing every resample of the scores, with replacement."""
    scores = [v for v, count in enumerate(histogram) for _ in range(count)]
    found: Counter[int] = Counter()
    for drawn in itertools.product(scores, repeat=len(scores)):
        found[round(statistics.median(drawn) * 2)] += 1
    total = len(scores) ** len(scores)
    return [found[j] / total for j in range(confidence.HALF_STEPS)]


# One to five scores, as a histogram (built, not filtered: nothing is thrown away).
small_histograms = st.lists(st.integers(0, 4), min_size=1, max_size=5).map(
    lambda scores: [scores.count(v) for v in range(5)]
)


@given(small_histograms)
def test_the_median_distribution_matches_every_resample_listed(histogram: list[int]) -> None:
    exact = confidence.median_distribution(histogram)
    assert exact == pytest.approx(brute_force(tuple(histogram)), abs=1e-12)


@pytest.mark.parametrize(
    "histogram", [(1, 0, 0, 0, 1), (0, 2, 1, 0, 1), (1, 1, 1, 1, 1), (0, 0, 2, 2, 0)]
)
def test_the_median_distribution_of_known_splits(histogram: tuple[int, ...]) -> None:
    assert confidence.median_distribution(histogram) == pytest.approx(
        brute_force(histogram), abs=1e-12
    )


def test_a_unanimous_case_always_has_the_same_median() -> None:
    assert confidence.median_distribution((0, 0, 0, 7, 0)) == (0, 0, 0, 0, 0, 0, 1.0, 0, 0)


def test_a_team_of_thousands_neither_overflows_nor_loses_mass() -> None:
    # Split down the middle, 10,000 voters: the median is 0, 2 or 4, never in between.
    pmf = confidence.median_distribution((5000, 0, 0, 0, 5000))
    assert math.fsum(pmf) == pytest.approx(1.0)
    assert pmf[0] == pytest.approx(pmf[8])
    assert pmf[0] > 0.45 and 0 < pmf[4] < 0.02
    assert [pmf[j] for j in (1, 2, 3, 5, 6, 7)] == [0.0] * 6
    # A clear majority: the median hardly ever moves.
    assert confidence.median_distribution((100, 200, 300, 2000, 400))[6] > 0.999999


def test_a_median_needs_a_score() -> None:
    with pytest.raises(ValueError, match="at least one score"):
        confidence.median_distribution((0, 0, 0, 0, 0))


@pytest.mark.parametrize(
    ("share", "label"),
    [(1.0, "clear"), (0.8, "clear"), (0.7999, "leaning"), (0.6, "leaning"), (0.59, "toss_up")],
)
def test_confidence_labels(share: float, label: str) -> None:
    assert confidence.label(share) == label


# --- win shares, through the recommendation


def case(cid: str, histogram: tuple[int, ...], fit: dict[str, float]) -> CaseInput:
    scores = [v for v, count in enumerate(histogram) for _ in range(count)]
    return CaseInput(cid, cid, float(statistics.median(scores)), fit, histogram=histogram)


def test_a_unanimous_team_gives_the_winner_every_resample() -> None:
    cases = [case("a", (0, 0, 0, 0, 6), {"go": 2}), case("b", (0, 6, 0, 0, 0), {"django": 1})]
    rec = recommend(cases, (DJANGO, GO), "django", seed="s1")
    assert rec is not None
    assert [(r.stack, r.win_share) for r in rec.ranking] == [("go", 1.0), ("django", 0.0)]
    assert rec.ranking[0].interval == (2.0, 2.0)
    assert rec.confidence == "clear"


def test_a_split_team_is_less_sure_and_the_intervals_show_the_spread() -> None:
    # Go's case: half the team says 4, half 0, so its median is 2 (a tie with Django, which
    # Django wins). Resampled, the median is 4 (Go wins) in 22 of 64 draws, and 2 or 0 else.
    cases = [case("a", (3, 0, 0, 0, 3), {"go": 2}), case("b", (0, 0, 6, 0, 0), {"django": 2})]
    rec = recommend(cases, (DJANGO, GO), "django", seed="s1")
    assert rec is not None
    assert [r.stack for r in rec.ranking] == ["django", "go"]
    shares = {r.stack: r.win_share for r in rec.ranking}
    # Go wins the draws where its median is 4 outright and ties Django where it is 2, and a
    # tie is shared: about half in all. As revealed the two are level: a tie, not a win.
    assert shares["go"] == pytest.approx(32 / 64, abs=0.04)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert rec.confidence == "tied"
    assert rec.ranking[0].tied_with == ("go",)
    go = next(r for r in rec.ranking if r.stack == "go")
    assert go.interval == (0.0, 2.0)


def test_a_three_way_split_is_a_toss_up() -> None:
    # Go and Node.js each hang on a case the team splits on; neither wins half the draws.
    cases = [
        case("a", (3, 0, 0, 0, 3), {"go": 2}),
        case("b", (3, 0, 0, 0, 3), {"node": 1.5}),
        case("c", (0, 0, 6, 0, 0), {"django": 1}),
    ]
    rec = recommend(cases, (DJANGO, GO, NODE), "django", seed="s1")
    assert rec is not None
    assert rec.confidence == "toss_up"
    assert all(r.win_share < 0.6 for r in rec.ranking)


histograms = st.lists(st.integers(0, 40), min_size=5, max_size=5).filter(lambda h: sum(h) > 0)
fits = st.dictionaries(
    st.sampled_from(["django", "go", "node"]), st.sampled_from([-2, -1, -0.5, 0.5, 1, 2])
)


@given(st.lists(st.tuples(histograms, fits), min_size=1, max_size=4), st.text(max_size=8))
def test_win_shares_sum_to_one_and_repeat_for_the_same_seed(
    decks: list[tuple[list[int], dict[str, float]]], seed: str
) -> None:
    cases = [case(f"c{i}", tuple(h), fit) for i, (h, fit) in enumerate(decks)]
    rec = recommend(cases, (DJANGO, GO, NODE), "django", seed=seed)
    assert rec is not None
    assert math.fsum(r.win_share for r in rec.ranking) == pytest.approx(1.0)
    for r in rec.ranking:
        assert r.interval[0] <= r.interval[1]
    # The same inputs and seed give the same figures, in a fresh computation too.
    confidence.resample.cache_clear()
    again = recommend(list(cases), (DJANGO, GO, NODE), "django", seed=seed)
    assert again == rec


def test_another_session_draws_other_resamples() -> None:
    cases = [case("a", (3, 0, 0, 0, 3), {"go": 2}), case("b", (0, 0, 6, 0, 0), {"django": 2})]
    shares = {
        seed: recommend(cases, (DJANGO, GO), "django", seed=seed).ranking[0].win_share  # type: ignore[union-attr]
        for seed in ("s1", "s2", "s3")
    }
    assert len(set(shares.values())) > 1


def test_two_voters_are_too_few_to_say_how_sure() -> None:
    stacks = [StackInfo("django", "Django"), StackInfo("node", "Node.js")]
    two = CaseInput("realtime", "Live", 2.0, {"node": 2, "django": -2}, histogram=(0, 1, 0, 1, 0))
    advice = recommend([two], stacks, favourite="django", seed="s")
    assert advice is not None and advice.confidence == "too_few"
    # Three people scoring (the median over the revealed cases) make the figures count.
    three = CaseInput("events", "Many", 3.0, {"node": 2, "django": -2}, histogram=(0, 1, 0, 1, 1))
    other = CaseInput("team", "Team", 3.0, {"node": 1}, histogram=(0, 0, 1, 1, 1))
    advice = recommend([three, other, two], stacks, favourite="django", seed="s")
    assert advice is not None and advice.confidence != "too_few"
    mostly_two = recommend([two, two, three], stacks, favourite="django", seed="s")
    assert mostly_two is not None and mostly_two.confidence == "too_few"
    # Without histograms (hand-made inputs) there is nothing to judge it on.
    assert confidence.label(1.0, ()) == "clear"
    assert confidence.label(1.0, [2, 2, 5]) == "too_few"


# --- the resampling, against counting each resample by hand

fit_units = st.sampled_from([-2_000_000, -1_000_000, -500_000, 0, 250_000, 1_000_000, 2_000_000])
tables = st.lists(
    st.tuples(histograms, st.lists(fit_units, min_size=3, max_size=3)), min_size=1, max_size=6
)


def case_tables(decks: list[tuple[list[int], list[int]]]) -> tuple[confidence.CaseTable, ...]:
    return tuple(
        (tuple(h), tuple(tuple(j * u for u in units) for j in range(confidence.HALF_STEPS)))
        for h, units in decks
    )


# No deadline: a draw resamples 2,000 times, and how long that takes is the machine's business
# (a loaded machine took 240 ms, past Hypothesis' default of 200), not this test's.
@settings(deadline=None)
@given(tables, st.text(max_size=4))
def test_the_resamples_rank_as_counting_each_one_does(
    decks: list[tuple[list[int], list[int]]], seed: str
) -> None:
    cases = case_tables(decks)
    scores = confidence.resampled_scores(seed, cases, 400).T.tolist()
    # Every resample's score is a sum of one half step's row per case.
    possible = [
        {
            sum(combo)
            for combo in itertools.product(*(set(t[1][j][s] for j in range(9)) for t in cases))
        }
        for s in range(3)
    ]
    assert all(set(scores[s]) <= possible[s] for s in range(3))
    wins = [0.0] * 3
    for r in range(400):
        best = max(column[r] for column in scores)
        tied = [s for s in range(3) if scores[s][r] == best]
        for s in tied:
            wins[s] += 1 / len(tied)
    confidence.resample.cache_clear()
    done = confidence.resample(seed, cases, 400)
    assert done.wins == pytest.approx(wins)
    for s in range(3):
        points = [v / confidence.UNITS_PER_POINT for v in scores[s]]
        cuts = statistics.quantiles(points, n=20, method="inclusive")
        assert done.intervals[s] == pytest.approx((cuts[0], cuts[-1]))


def test_a_case_drawn_in_a_group_keeps_its_own_distribution() -> None:
    # Three cases drawn together (one draw from their joint distribution): each case's
    # medians still come up as often as its own distribution says.
    histograms_ = [(1, 2, 0, 3, 1), (0, 4, 4, 0, 2), (2, 0, 0, 0, 3)]
    places = (1, 10, 100)
    cases = case_tables([(list(h), [0, 0, p]) for h, p in zip(histograms_, places, strict=True)])
    assert len(confidence._groups(cases)) == 1
    column = confidence.resampled_scores("s", cases, 40_000)[:, 2].tolist()
    # Stack 2's score is j_a + 10 j_b + 100 j_c, one decimal digit per case's half step.
    for place, histogram in zip(places, histograms_, strict=True):
        drawn = Counter(v // place % 10 for v in column)
        expected = confidence.median_distribution(histogram)
        for j in range(confidence.HALF_STEPS):
            assert drawn[j] / 40_000 == pytest.approx(expected[j], abs=0.012)


def test_the_largest_scores_a_deck_can_reach_add_up_exactly() -> None:
    # 30 cases (the most a deck has), every one at the top of the scale with fit +2 for one
    # stack and -2 for another.
    top = (0, 0, 0, 0, 5)
    cases = case_tables([(list(top), [2_000_000, -2_000_000, 0])] * 30)
    columns = confidence.resampled_scores("s", cases, 10).T.tolist()
    units = 30 * 8 * 2_000_000
    assert [set(c) for c in columns] == [{units}, {-units}, {0}]
    done = confidence.resample("s", cases, 10)
    assert done.intervals[0] == (60.0, 60.0) and done.intervals[1] == (-60.0, -60.0)
