"""Tests for the scoring rules in server.engine."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.engine import (
    SCALE_MAX,
    CaseInput,
    CaseResults,
    Contribution,
    Recommendation,
    StackInfo,
    band,
    case_results,
    consensus,
    consensus_change,
    recommend,
    revote_suggested,
)

DJANGO = StackInfo("django", "Django")
GO = StackInfo("go", "Go")
NODE = StackInfo("node", "Node.js")
STACKS = (DJANGO, GO, NODE)

ballot = st.integers(min_value=0, max_value=SCALE_MAX)
ballots = st.lists(ballot, min_size=1, max_size=30)


def _rec(
    cases: list[CaseInput], stacks: tuple[StackInfo, ...] = STACKS, favourite: str | None = None
) -> Recommendation:
    rec = recommend(cases, stacks, favourite)
    assert rec is not None
    return rec


def _order(rec: Recommendation) -> list[str]:
    return [r.stack for r in rec.ranking]


# --- consensus


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([0, 0, 4, 4], 0.0),
        ([0, 1, 2, 3, 4], 0.434),
        ([3, 3, 4, 3, 2], 0.834),
        ([2, 2, 2], 1.0),
    ],
)
def test_consensus_reference_values(scores: list[int], expected: float) -> None:
    assert consensus(scores) == expected


def test_consensus_of_polarised_vote_is_positive_zero() -> None:
    result = consensus([0, 0, 4, 4])
    assert result == 0.0
    assert json.dumps(result) == "0.0"


def test_consensus_single_vote_is_full() -> None:
    assert consensus([3]) == 1.0


def test_consensus_no_votes_is_none() -> None:
    assert consensus([]) is None


def test_consensus_width_changes_scale() -> None:
    # On a 0..8 scale, votes 0 and 4 are only half as far apart as on 0..4.
    assert consensus([0, 4], width=8) == 0.585
    assert consensus([0, 4]) == 0.0


# --- bands


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "strong"),
        (0.8, "strong"),
        (0.799, "moderate"),
        (0.6, "moderate"),
        (0.599, "weak"),
        (0.0, "weak"),
        (None, None),
    ],
)
def test_band_edges(value: float | None, expected: str | None) -> None:
    assert band(value) == expected


# --- case statistics


def test_case_results_full_statistics() -> None:
    r = case_results([3, 3, 4, 3, 2])
    assert r == CaseResults(
        n=5,
        abstain=0,
        histogram=(0, 0, 1, 3, 1),
        mean=3.0,
        median=3.0,
        iqr=0.0,
        consensus=0.834,
        band="strong",
    )


def test_case_results_spread_vote() -> None:
    r = case_results([0, 1, 2, 3, 4])
    assert r.histogram == (1, 1, 1, 1, 1)
    assert r.mean == 2.0
    assert r.median == 2.0
    assert r.iqr == 2.0
    assert r.consensus == 0.434
    assert r.band == "weak"


def test_iqr_uses_inclusive_quantiles() -> None:
    # Exclusive quantiles would give 1.5 for [1, 2]; inclusive interpolates inside the data.
    assert case_results([1, 2]).iqr == 0.5
    assert case_results([0, 0, 4, 4]).iqr == 4.0


def test_median_of_even_count_can_be_half_step() -> None:
    r = case_results([1, 2, 3, 4])
    assert r.median == 2.5
    assert isinstance(r.median, float)


def test_median_of_odd_count_is_float() -> None:
    r = case_results([1, 2, 4])
    assert r.median == 2.0
    assert isinstance(r.median, float)


def test_mean_is_not_rounded_until_as_dict() -> None:
    r = case_results([0, 0, 1])
    assert r.mean == pytest.approx(1 / 3)
    assert r.as_dict()["mean"] == 0.333


def test_single_vote() -> None:
    r = case_results([1])
    assert (r.n, r.mean, r.median, r.iqr, r.consensus, r.band) == (1, 1.0, 1.0, 0.0, 1.0, "strong")
    assert r.histogram == (0, 1, 0, 0, 0)


def test_abstentions_are_counted_but_ignored() -> None:
    r = case_results([None, 4, None, 3])
    assert r.n == 2
    assert r.abstain == 2
    assert r.histogram == (0, 0, 0, 1, 1)
    assert r.mean == 3.5
    assert r.median == 3.5


def test_no_votes() -> None:
    r = case_results([])
    assert r == CaseResults(0, 0, (0, 0, 0, 0, 0), None, None, None, None, None)


def test_only_abstentions() -> None:
    r = case_results([None, None])
    assert r.n == 0
    assert r.abstain == 2
    assert (r.mean, r.median, r.iqr, r.consensus, r.band) == (None, None, None, None, None)


def test_case_results_accepts_generator() -> None:
    assert case_results(s for s in [2, None, 2]).n == 2


def test_case_results_as_dict_shape() -> None:
    d = case_results([0, 0, 1, None]).as_dict()
    assert d == {
        "n": 3,
        "abstain": 1,
        "histogram": [2, 1, 0, 0, 0],
        "mean": 0.333,
        "median": 0.0,
        "iqr": 0.5,
        "consensus": 0.829,
        "band": "strong",
    }
    assert json.loads(json.dumps(d)) == d


def test_empty_case_results_as_dict_is_json() -> None:
    d = case_results([None]).as_dict()
    assert json.dumps(d) == (
        '{"n": 0, "abstain": 1, "histogram": [0, 0, 0, 0, 0], "mean": null, '
        '"median": null, "iqr": null, "consensus": null, "band": null}'
    )


# --- case statistics: properties


@given(ballots)
def test_consensus_always_in_unit_interval(scores: list[int]) -> None:
    c = consensus(scores)
    assert c is not None
    assert 0.0 <= c <= 1.0


@given(ballot, st.integers(min_value=1, max_value=50))
def test_unanimous_vote_is_full_consensus(score: int, count: int) -> None:
    assert consensus([score] * count) == 1.0
    assert case_results([score] * count).band == "strong"


@given(st.lists(st.one_of(ballot, st.none()), max_size=30), st.randoms())
def test_ballot_order_does_not_matter(scores: list[int | None], rnd: random.Random) -> None:
    shuffled = list(scores)
    rnd.shuffle(shuffled)
    assert case_results(shuffled) == case_results(scores)


@given(st.lists(ballot, max_size=30), st.integers(min_value=1, max_value=10))
def test_abstentions_only_change_abstain(scores: list[int], extra: int) -> None:
    plain = case_results(scores)
    padded = case_results([*scores, *([None] * extra)])
    assert padded.abstain == plain.abstain + extra
    assert padded == CaseResults(
        plain.n,
        padded.abstain,
        plain.histogram,
        plain.mean,
        plain.median,
        plain.iqr,
        plain.consensus,
        plain.band,
    )


@given(ballots)
def test_histogram_counts_every_vote(scores: list[int]) -> None:
    r = case_results(scores)
    assert sum(r.histogram) == r.n == len(scores)


# --- recommendation: scores and ranking


REALTIME = CaseInput(
    "realtime", "live updates are central", 4.0, {"go": 2, "node": 1, "django": -1}
)
TEAM_GO = CaseInput("team", "the team knows Go better", 3.0, {"go": 1})
ADMIN = CaseInput("admin", "an admin UI is needed", 2.0, {"django": 2, "go": -0.5})


def test_no_cases_gives_no_recommendation() -> None:
    assert recommend([], STACKS, "django") is None


def test_no_stacks_gives_no_recommendation() -> None:
    assert recommend([REALTIME], [], None) is None


def test_score_is_applicability_times_fit() -> None:
    rec = _rec([REALTIME, TEAM_GO, ADMIN])
    scores = {r.stack: r.score for r in rec.ranking}
    # go: 1.0*2 + 0.75*1 + 0.5*-0.5 ; django: 1.0*-1 + 0.5*2 ; node: 1.0*1
    assert scores == {"go": 2.5, "node": 1.0, "django": 0.0}
    assert _order(rec) == ["go", "node", "django"]


def test_ranking_includes_stacks_no_case_mentions() -> None:
    extra = StackInfo("rails", "Rails")
    rec = _rec([TEAM_GO], (*STACKS, extra))
    assert _order(rec) == ["go", "django", "node", "rails"]
    assert rec.ranking[-1].score == 0.0


def test_fit_for_unknown_stack_is_ignored() -> None:
    case = CaseInput("x", "x", 4.0, {"elixir": 2, "node": 1})
    assert _order(_rec([case])) == ["node", "django", "go"]


def test_zero_median_case_does_not_count() -> None:
    case = CaseInput("moot", "nobody needs it", 0.0, {"node": 2})
    rec = _rec([case])
    assert [r.score for r in rec.ranking] == [0.0, 0.0, 0.0]
    assert all(r.contributions == () for r in rec.ranking)


def test_tie_goes_to_favourite() -> None:
    case = CaseInput("c", "both fit", 4.0, {"go": 1, "django": 1})
    assert _order(_rec([case], favourite="django")) == ["django", "go", "node"]
    assert _order(_rec([case], stacks=(GO, DJANGO, NODE), favourite="django"))[0] == "django"


def test_tie_without_favourite_keeps_template_order() -> None:
    case = CaseInput("c", "both fit", 4.0, {"go": 1, "node": 1})
    assert _order(_rec([case], favourite="django")) == ["go", "node", "django"]
    assert _order(_rec([case], stacks=(NODE, GO, DJANGO)))[:2] == ["node", "go"]


def test_float_noise_counts_as_tie() -> None:
    # 0.1 + 0.2 != 0.3 in floats; the favourite must still win this "tie".
    cases = [
        CaseInput("a", "a", 4.0, {"go": 0.1, "django": 0.3}),
        CaseInput("b", "b", 4.0, {"go": 0.2}),
    ]
    assert 0.1 + 0.2 > 0.3
    assert _order(_rec(cases, favourite="django"))[0] == "django"


def test_favourite_does_not_beat_a_higher_score() -> None:
    case = CaseInput("c", "c", 4.0, {"go": 1.001, "django": 1})
    assert _order(_rec([case], favourite="django"))[0] == "go"


# --- recommendation: contributions


def test_contributions_signed_sorted_and_zero_omitted() -> None:
    rec = _rec([ADMIN, TEAM_GO, REALTIME])
    go = next(r for r in rec.ranking if r.stack == "go")
    assert go.contributions == (
        Contribution("realtime", 2.0),
        Contribution("team", 0.75),
        Contribution("admin", -0.25),
    )
    django = next(r for r in rec.ranking if r.stack == "django")
    # TEAM_GO says nothing about Django, so it is not part of Django's explanation.
    assert django.contributions == (Contribution("admin", 1.0), Contribution("realtime", -1.0))


def test_contributions_equal_magnitude_keep_input_order() -> None:
    cases = [
        CaseInput("neg", "neg", 4.0, {"go": -1}),
        CaseInput("pos", "pos", 2.0, {"go": 2}),
    ]
    go = next(r for r in _rec(cases).ranking if r.stack == "go")
    assert [c.case for c in go.contributions] == ["neg", "pos"]


# --- recommendation: robustness


def test_robust_when_no_single_step_flips_the_winner() -> None:
    rec = _rec([REALTIME, TEAM_GO, ADMIN], favourite="django")
    assert rec.ranking[0].stack == "go"
    assert rec.robust is True
    assert rec.close_call is None


def test_close_call_when_one_step_flips_the_winner() -> None:
    # go 0.75, django 0.5: admin at 3 instead of 2 gives django 0.75 and the favourite wins the tie.
    cases = [
        CaseInput("team", "the team knows Go better", 3.0, {"go": 1}),
        CaseInput("admin", "an admin UI is needed", 2.0, {"django": 1}),
    ]
    rec = _rec(cases, favourite="django")
    assert rec.ranking[0].stack == "go"
    assert rec.robust is False
    # Lowering "team" to 2 also flips it, and it comes first in input order.
    assert rec.close_call == "team"


def test_close_call_reports_first_flipping_case_in_input_order() -> None:
    cases = [
        # Moves both stacks alike, so it can never flip the winner.
        CaseInput("shared", "shared", 2.0, {"node": 1, "go": 1}),
        CaseInput("swing", "swing", 2.0, {"go": 1}),
        CaseInput("boost", "boost", 4.0, {"node": 1}),
        CaseInput("other", "other", 1.0, {"go": 1}),
    ]
    # node 1.5, go 1.25; raising "swing" or "other", or lowering "boost", ties at 1.5 or 1.25,
    # and go wins ties by template order here.
    rec = _rec(cases, stacks=(GO, NODE))
    assert _order(rec) == ["node", "go"]
    assert rec.robust is False
    assert rec.close_call == "swing"


GO_LEAD = [CaseInput(f"go{i}", f"go{i}", 4.0, {"go": 0.5}) for i in range(4)]


def test_one_step_from_half_median_clamps_at_scale_top() -> None:
    # go 2.0 vs node 0.875*1.9; raising "half" to 4 gives node 1.9 (no flip), whereas an
    # unclamped 4.5 would give node 2.1375 and flip. Each go case alone is worth only 0.125.
    half = CaseInput("half", "half", 3.5, {"node": 1.9})
    rec = _rec([*GO_LEAD, half], stacks=(GO, NODE))
    assert _order(rec) == ["go", "node"]
    assert rec.robust is True
    unclamped = _rec([*GO_LEAD, CaseInput("half", "half", 4.5, {"node": 1.9})], (GO, NODE))
    assert _order(unclamped) == ["node", "go"]


def test_half_step_clamped_move_can_still_flip() -> None:
    # go 1.96 vs node 1.75: raising "half" from 3.5 to 4 gives node 2.0 and the lead.
    lead = [CaseInput(c.id, c.title, 4.0, {"go": 0.49}) for c in GO_LEAD]
    rec = _rec([*lead, CaseInput("half", "half", 3.5, {"node": 2})], stacks=(GO, NODE))
    assert _order(rec) == ["go", "node"]
    assert rec.close_call == "half"


def test_medians_at_scale_ends_only_move_inward() -> None:
    cases = [
        CaseInput("top", "top", 4.0, {"go": 1}),
        CaseInput("zero", "zero", 0.0, {"django": 10}),
    ]
    rec = _rec(cases, favourite="django")
    assert rec.ranking[0].stack == "go"
    # Only raising "zero" to 1 can matter for it (django 2.5 > go 1.0); "top" can only go down.
    assert rec.close_call == "zero"
    lone = _rec([CaseInput("top", "top", 4.0, {"go": 1})], stacks=(GO, DJANGO))
    assert lone.robust is True


# --- recommendation: contested


def test_contested_lists_cases_worth_a_re_vote_in_input_order() -> None:
    cases = [
        CaseInput("a", "a", 2.0, {"go": 1}, band="weak", iqr=2.0),
        CaseInput("b", "b", 2.0, {"go": 1}, band="strong", iqr=2.0),
        CaseInput("c", "c", 2.0, {"go": 1}, band=None),
        CaseInput("d", "d", 2.0, {"go": 1}, band="weak", iqr=1.5),
        CaseInput("e", "e", 2.0, {"go": 1}, band="moderate", iqr=3.0),
        # Weak, but the middle half of the team is within one step: no re-vote (Delphi).
        CaseInput("f", "f", 2.0, {"go": 1}, band="weak", iqr=1.0),
    ]
    assert _rec(cases).contested == ("a", "d")


# --- recommendation: verdict


def test_verdict_when_favourite_wins() -> None:
    rec = _rec([ADMIN], favourite="django")
    assert rec.verdict == "Django fits this project."


def test_verdict_suggests_alternative_to_favourite() -> None:
    rec = _rec([ADMIN, TEAM_GO, REALTIME], favourite="django")
    assert rec.verdict == (
        'Consider Go instead of Django: "live updates are central" and "the team knows Go better".'
    )


def test_verdict_without_favourite() -> None:
    rec = _rec([ADMIN, TEAM_GO, REALTIME])
    assert rec.verdict == (
        'Go fits this project best: "live updates are central" and "the team knows Go better".'
    )


def test_verdict_with_single_reason() -> None:
    rec = _rec([REALTIME], stacks=(GO, DJANGO))
    assert rec.verdict == 'Go fits this project best: "live updates are central".'


def test_verdict_when_nothing_revealed_moves_any_stack() -> None:
    # Every score is zero: the tie rule lists Django first, but there is nothing to say yet.
    rec = _rec([CaseInput("moot", "moot", 0.0, {"django": 1})])
    assert rec.verdict == "No revealed question favours any stack yet."
    assert rec.verdict_parts is not None and rec.verdict_parts.kind == "none"


def test_a_shared_top_is_a_tie_not_a_win() -> None:
    rec = _rec([CaseInput("live", "live", 4.0, {"go": 1, "node": 1})], favourite="django")
    assert rec.verdict_parts is not None
    assert (rec.verdict_parts.kind, rec.verdict_parts.tied_with) == ("tied", ("node",))
    assert (
        rec.verdict == "Go and Node.js score the same: the team's scores cannot separate them yet."
    )
    assert rec.ranking[0].win_share == pytest.approx(0.5)


def test_verdict_counts_a_case_against_the_favourite_as_a_reason() -> None:
    # Go wins only because the favourite is pushed down: that case is the reason to switch.
    case = CaseInput("slow", "Django is too slow here", 4.0, {"django": -1})
    rec = _rec([case], stacks=(DJANGO, GO), favourite="django")
    assert rec.verdict == 'Consider Go instead of Django: "Django is too slow here".'


def test_verdict_reasons_are_the_edge_over_the_favourite() -> None:
    # Python skills help Flask a little and Django a lot: no reason to pick Flask over Django.
    cases = [
        CaseInput("python", "Python team", 4.0, {"django": 1, "go": 0.5}),
        CaseInput("speed", "Raw speed", 4.0, {"go": 2}),
    ]
    rec = _rec(cases, stacks=(DJANGO, GO), favourite="django")
    assert rec.ranking[0].stack == "go"
    assert rec.verdict == 'Consider Go instead of Django: "Raw speed".'


def test_verdict_ignores_unknown_favourite() -> None:
    rec = _rec([TEAM_GO], favourite="rails")
    assert rec.verdict == 'Go fits this project best: "the team knows Go better".'


def test_verdict_stays_one_sentence_on_a_close_call() -> None:
    cases = [
        CaseInput("team", "the team knows Go better", 3.0, {"go": 1}),
        CaseInput("admin", "an admin UI is needed", 2.0, {"django": 1}),
    ]
    rec = _rec(cases, favourite="django")
    # The close call is reported on its own (close_call), so screens can show it once.
    assert (rec.robust, rec.close_call) == (False, "team")
    assert rec.verdict == 'Consider Go instead of Django: "the team knows Go better".'


# --- recommendation: as_dict


def test_recommendation_as_dict_shape() -> None:
    cases = [
        CaseInput("a", "a", 3.0, {"go": 1 / 3}, band="weak", iqr=2.0),
        CaseInput("b", "b", 1.0, {"django": -0.0001}),
    ]
    d = _rec(cases, stacks=(DJANGO, GO), favourite="django").as_dict()
    # Django trails by a hair on "b" as well, so both must fall to 0 (then it wins the tie).
    flip = {
        "stack": "django",
        "changes": [{"case": "a", "from": 3.0, "to": 0.0}, {"case": "b", "from": 1.0, "to": 0.0}],
        "sentence": (
            "Django would win if \u201ca\u201d were 0 instead of 3 "
            "and \u201cb\u201d were 0 instead of 1."
        ),
        "steps": 4,
        "minimal": True,
    }
    assert d == {
        "ranking": [
            {
                "stack": "go",
                "name": "Go",
                "score": 0.25,
                "contributions": [
                    {"case": "a", "value": 0.25},
                ],
                "win_share": 1.0,
                "interval": [0.25, 0.25],
                "flip": None,
                "can_win": True,
                "tied_with": [],
            },
            {
                "stack": "django",
                "name": "Django",
                "score": 0.0,
                "contributions": [
                    {"case": "b", "value": 0.0},
                ],
                "win_share": 0.0,
                "interval": [0.0, 0.0],
                "flip": flip,
                "can_win": True,
                "tied_with": [],
            },
        ],
        "verdict": d["verdict"],
        # The verdict as data: every page says it in its reader's language from these.
        "verdict_parts": {
            "kind": "alternative",
            "stack": "go",
            "favourite": "django",
            "reasons": ["a", "b"],
            "tied_with": [],
            "close_call": None,
        },
        "robust": True,
        "close_call": None,
        "contested": ["a"],
        "confidence": "clear",
        "flip": flip,
    }
    assert d["verdict"] == 'Consider Go instead of Django: "a" and "b".'
    # -0.000025 rounds to -0.0, which must not leak into JSON.
    assert "-0.0" not in json.dumps(d)
    assert json.loads(json.dumps(d)) == d


# --- recommendation: properties


stack_ids = ["django", "go", "node", "rails"]
fits = st.dictionaries(
    st.sampled_from(stack_ids),
    st.floats(min_value=-2, max_value=2, allow_nan=False),
    max_size=4,
)
medians = st.integers(min_value=0, max_value=8).map(lambda h: h / 2)
case_inputs = st.lists(
    st.builds(
        CaseInput,
        id=st.text(min_size=1, max_size=5),
        title=st.text(min_size=1, max_size=20),
        median=medians,
        fit=fits,
        band=st.sampled_from(["strong", "moderate", "weak", None]),
    ),
    min_size=1,
    max_size=6,
)
stack_lists = st.lists(st.sampled_from(stack_ids), min_size=1, unique=True).map(
    lambda ids: [StackInfo(i, i.title()) for i in ids]
)
favourites = st.one_of(st.none(), st.sampled_from(stack_ids))


@given(case_inputs, stack_lists, favourites)
def test_ranking_is_permutation_of_stacks(
    cases: list[CaseInput], stacks: list[StackInfo], favourite: str | None
) -> None:
    rec = _rec(cases, tuple(stacks), favourite)
    assert sorted(_order(rec)) == sorted(s.id for s in stacks)
    scores = [round(r.score, 9) for r in rec.ranking]
    assert scores == sorted(scores, reverse=True)


@given(case_inputs, stack_lists, favourites)
def test_recommendation_is_deterministic(
    cases: list[CaseInput], stacks: list[StackInfo], favourite: str | None
) -> None:
    first = _rec(cases, tuple(stacks), favourite)
    assert _rec(list(cases), tuple(stacks), favourite) == first
    assert json.dumps(first.as_dict()) == json.dumps(first.as_dict())
    assert (first.close_call is None) == first.robust


# --- rounds (Delphi)


@pytest.mark.parametrize(
    ("band", "iqr", "rounds", "expected"),
    [
        # First round: weak and spread out, nothing to compare with: suggest a re-vote.
        ("weak", 2.0, [0.3], True),
        # Agreement grew by 0.05 or more since the last round: another round may help.
        ("weak", 2.0, [0.2, 0.3], True),
        ("weak", 1.5, [0.25, 0.3], True),
        # It grew by less (or fell): stop asking.
        ("weak", 2.0, [0.3, 0.34], False),
        ("weak", 2.0, [0.5, 0.3], False),
        # Two rounds of growth, then a stall: the last round decides.
        ("weak", 2.0, [0.1, 0.3, 0.32], False),
        # The middle half of the team within one step: stop (the classic criterion).
        ("weak", 1.0, [0.2], False),
        ("weak", 0.5, [0.1, 0.4], False),
        # Strong or moderate agreement: nothing to re-vote.
        ("strong", 2.0, [0.85], False),
        ("moderate", 2.0, [0.4, 0.65], False),
        # An earlier round where everyone abstained cannot be compared with: suggest.
        ("weak", 2.0, [None, 0.3], True),
        # No scores at all: nothing to suggest.
        (None, None, [None], False),
    ],
)
def test_the_revote_rule_on_hand_made_rounds(
    band: str | None, iqr: float | None, rounds: list[float | None], expected: bool
) -> None:
    *earlier, current = rounds
    assert revote_suggested(band, iqr, current, earlier) is expected  # type: ignore[arg-type]


def test_consensus_change_between_rounds() -> None:
    assert consensus_change(0.4, 0.45) == 0.05
    assert consensus_change(0.6, 0.5) == -0.1
    assert consensus_change(None, 0.5) is None
    assert consensus_change(0.5, None) is None


def test_contested_follows_the_rounds() -> None:
    stalled = CaseInput("a", "a", 2.0, {"go": 1}, band="weak", iqr=2.0, consensus=0.31)
    rec = _rec([replace(stalled, earlier=(0.3,)), replace(stalled, id="b", earlier=(0.2,))])
    assert rec.contested == ("b",)
