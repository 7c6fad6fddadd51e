"""The built-in "Is Django right?" template, and validation of templates people bring."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from server.decks import (
    DeckTexts,
    TemplateError,
    builtin_templates,
    deck_translations,
    localized,
    parse_template,
    public_template,
)
from server.models import Template
from tests.factories import default_template, template_data

NOT_DJANGO = {
    # SPEC section 2: each situation and the stacks the article points to instead.
    "realtime": {"node", "flask", "phoenix", "go"},
    "prototype": {"flask", "fastapi", "node"},
    "frontend_heavy": {"node", "fastapi", "baas", "jamstack"},
    "performance": {"rust", "go", "node", "fastapi"},
    "mobile_backend": {"baas", "node"},
    "constrained": {"fastapi", "go"},
    "event_driven": {"node", "go"},
    "team_skills": {"node", "go"},
}
COUNTER_CASES = ("content_admin", "data_model", "python_team")


# --- the default template


def test_the_default_template_is_listed_under_its_id() -> None:
    templates = builtin_templates()
    assert "django" in templates
    assert templates["django"].id == "django"


def test_the_default_template_has_the_cases_of_the_spec_in_order() -> None:
    assert [c.id for c in default_template().cases] == [*NOT_DJANGO, *COUNTER_CASES]


def test_the_default_template_has_the_stacks_of_the_spec() -> None:
    assert [s.id for s in default_template().stacks] == [
        "django",
        "flask",
        "fastapi",
        "node",
        "go",
        "rust",
        "phoenix",
        "baas",
        "jamstack",
    ]
    assert all(s.name.strip() for s in default_template().stacks)


def test_every_default_case_explains_itself_in_one_line() -> None:
    for case in default_template().cases:
        assert case.title.strip(), case.id
        assert case.help.strip(), f"{case.id} has no help text"
        assert "\n" not in case.help, f"{case.id} help spans several lines"
        assert len(case.help) <= 120, f"{case.id} help is not one short line"


def test_default_weights_stay_within_the_scale() -> None:
    for case in default_template().cases:
        assert case.fit, f"{case.id} weighs no stack"
        for stack, weight in case.fit.items():
            assert -2 <= weight <= 2, (case.id, stack, weight)


@pytest.mark.parametrize("case_id", list(NOT_DJANGO))
def test_a_not_django_case_points_to_the_stacks_the_article_names(case_id: str) -> None:
    case = default_template().case(case_id)
    assert case is not None
    assert case.fit["django"] in (-1, -2)
    favoured = {stack for stack, weight in case.fit.items() if weight > 0}
    assert favoured == NOT_DJANGO[case_id]
    assert all(case.fit[stack] in (1, 2) for stack in favoured)


@pytest.mark.parametrize("case_id", COUNTER_CASES)
def test_a_counter_case_favours_django_above_every_other_stack(case_id: str) -> None:
    case = default_template().case(case_id)
    assert case is not None
    assert case.fit["django"] == 2
    others = [w for stack, w in case.fit.items() if stack != "django"]
    assert all(w < case.fit["django"] for w in others)
    assert all(w >= 0 for w in others)


def test_django_wins_ties_in_the_default_template() -> None:
    assert default_template().favourite == "django"


def test_the_default_template_has_five_scale_labels() -> None:
    scale = default_template().scale
    assert len(scale) == 5
    assert all(label.strip() for label in scale)


def test_the_weights_are_visible_in_the_public_template() -> None:
    shown = public_template(default_template())
    realtime = next(c for c in shown["cases"] if c["id"] == "realtime")
    assert realtime["fit"]["go"] == 2
    assert realtime["fit"]["django"] == -2


def test_stack_names_and_case_lookup() -> None:
    template = default_template()
    assert template.stack_name("baas") == "Firebase / Supabase"
    assert template.stack_name("cobol") == "cobol"
    assert template.case("nope") is None


# --- custom templates


def test_a_minimal_custom_template_is_accepted() -> None:
    template = parse_template(
        {
            "title": "Tabs or spaces?",
            "stacks": [{"id": "tabs", "name": "Tabs"}],
            "cases": [{"id": "legacy", "title": "Legacy code uses tabs"}],
        }
    )
    assert isinstance(template, Template)
    assert template.id == "custom"
    assert template.cases[0].help == ""
    assert template.cases[0].fit == {}
    assert template.favourite is None
    assert len(template.scale) == 5


def test_a_custom_template_keeps_its_weights_and_favourite() -> None:
    template = parse_template(template_data())
    assert template.case("scale") is not None
    assert dict(template.cases[0].fit) == {"postgres": 2.0, "sqlite": -1.0}
    assert template.favourite == "postgres"


def test_thirty_cases_are_allowed() -> None:
    cases = [{"id": f"c{i}", "title": f"Case {i}"} for i in range(30)]
    assert len(parse_template(template_data(cases=cases)).cases) == 30


def test_weights_at_the_ends_of_the_range_are_allowed() -> None:
    cases = [{"id": "edge", "title": "Edge", "fit": {"postgres": 2, "sqlite": -2}}]
    assert parse_template(template_data(cases=cases)).cases[0].fit["sqlite"] == -2


def _broken(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(template_data())
    change(data)
    return data


BAD_TEMPLATES: list[tuple[str, Any, list[str]]] = [
    (
        "upper-case case id",
        lambda d: d["cases"][0].update(id="Scale"),
        ["cases[0].id"],
    ),
    (
        "case id with a dash",
        lambda d: d["cases"][1].update(id="on-device"),
        ["cases[1].id"],
    ),
    (
        "stack id starting with a digit",
        lambda d: d["stacks"][1].update(id="3db"),
        ["stacks[1].id"],
    ),
    (
        "weight key that is no id",
        lambda d: d["cases"][0]["fit"].update({"Post Gres": 1}),
        ["cases[0].fit"],
    ),
    (
        "duplicate case id",
        lambda d: d["cases"].append({"id": "scale", "title": "Again"}),
        ["case id 'scale'", "twice"],
    ),
    (
        "duplicate stack id",
        lambda d: d["stacks"].append({"id": "sqlite", "name": "SQLite 3"}),
        ["stack id 'sqlite'", "twice"],
    ),
    (
        "weight on an unknown stack",
        lambda d: d["cases"][1]["fit"].update(mysql=1),
        ["case 'embedded'", "unknown stack 'mysql'"],
    ),
    (
        "weight above 2",
        lambda d: d["cases"][0]["fit"].update(postgres=3),
        ["stack 'postgres' the weight 3", "from -2 to 2"],
    ),
    (
        "weight below -2",
        lambda d: d["cases"][1]["fit"].update(sqlite=-2.5),
        ["stack 'sqlite' the weight -2.5", "from -2 to 2"],
    ),
    (
        "weight that is text",
        lambda d: d["cases"][1]["fit"].update(sqlite="high"),
        ["stack 'sqlite' the weight 'high'", "from -2 to 2"],
    ),
    ("no cases", lambda d: d.update(cases=[]), ["length >= 1", "`cases`"]),
    (
        "31 cases",
        lambda d: d.update(cases=[{"id": f"c{i}", "title": "x"} for i in range(31)]),
        ["length <= 30", "`cases`"],
    ),
    ("no stacks", lambda d: d.update(stacks=[]), ["length >= 1", "`stacks`"]),
    ("missing title", lambda d: d.pop("title"), ["missing required field `title`"]),
    (
        "case without a title",
        lambda d: d["cases"][0].pop("title"),
        ["missing required field `title`", "cases[0]"],
    ),
    ("empty title", lambda d: d.update(title=""), ["`title`"]),
    ("blank title", lambda d: d.update(title="   "), ["title is blank"]),
    (
        "blank case title",
        lambda d: d["cases"][1].update(title=" \t "),
        ["title of case 'embedded' is blank"],
    ),
    ("title too long", lambda d: d.update(title="x" * 121), ["<= 120", "`title`"]),
    ("unknown top-level field", lambda d: d.update(colour="red"), ["unknown field `colour`"]),
    (
        "unknown case field",
        lambda d: d["cases"][0].update(weight=2),
        ["unknown field `weight`", "cases[0]"],
    ),
    (
        "unknown stack field",
        lambda d: d["stacks"][0].update(url="x"),
        ["unknown field `url`", "stacks[0]"],
    ),
    ("unknown favourite", lambda d: d.update(favourite="oracle"), ["favourite 'oracle'"]),
    ("four scale labels", lambda d: d.update(scale=["a", "b", "c", "d"]), ["`scale`"]),
    ("cases not a list", lambda d: d.update(cases={"id": "x"}), ["`cases`"]),
]


@pytest.mark.parametrize(
    ("change", "expected"),
    [pytest.param(change, expected, id=label) for label, change, expected in BAD_TEMPLATES],
)
def test_a_broken_template_is_refused_with_a_message_saying_where(
    change: Any, expected: list[str]
) -> None:
    data = _broken(change)
    before = copy.deepcopy(data)
    with pytest.raises(TemplateError) as caught:
        parse_template(data)
    message = str(caught.value)
    assert message.startswith("invalid template: ")
    for part in expected:
        assert part in message
    # msgspec's root marker is translated for people.
    assert "$." not in message
    # Validating never edits what it was given.
    assert data == before


@pytest.mark.parametrize("value", [None, "django", 42, ["title"], True])
def test_a_template_that_is_not_an_object_is_refused(value: Any) -> None:
    with pytest.raises(TemplateError, match=r"^a template must be a JSON object$"):
        parse_template(value)


def test_a_refused_template_leaves_the_builtin_ones_alone() -> None:
    before = builtin_templates()["django"]
    with pytest.raises(TemplateError):
        parse_template(template_data(id="django", cases=[]))
    assert builtin_templates()["django"] is before
    assert len(before.cases) == 11


# --- the built-in deck in German


def test_the_default_deck_ships_in_german_with_every_case() -> None:
    english = builtin_templates()["django"]
    german = localized(english, "de")
    assert german.title == "Passt Django zu diesem Projekt?"
    assert german.scale == ("Gar nicht", "Ein wenig", "Teilweise", "Deutlich", "Sehr stark")
    assert [c.id for c in german.cases] == [c.id for c in english.cases]
    # Only the words differ: the weights, stacks and favourite are the deck's own.
    assert [c.fit for c in german.cases] == [c.fit for c in english.cases]
    assert (german.stacks, german.favourite) == (english.stacks, english.favourite)
    for de, en in zip(german.cases, english.cases, strict=True):
        assert de.title != en.title and de.help and de.help != en.help
    # And it is a valid template in its own right.
    assert parse_template(public_template(german)) == german


def test_only_an_unchanged_built_in_deck_is_translated() -> None:
    english = builtin_templates()["django"]
    assert localized(english, "en") is english
    assert localized(english, "fr") is english
    edited = msgspec.structs.replace(english, title="Our own questions")
    assert localized(edited, "de") is edited
    custom = default_template()
    assert localized(custom, "de") is custom or custom == english


def test_a_deck_translation_is_checked_like_a_template() -> None:
    assert ("django", "de") in deck_translations()
    good = {"title": "T", "cases": {"realtime": {"title": "Live"}}}
    assert msgspec.convert(good, DeckTexts).cases["realtime"].help == ""
    for bad in (
        {"title": "", "cases": {}},
        {"title": "T", "cases": {"realtime": {"title": "x" * 121}}},
        {"title": "T", "cases": {}, "scale": ["a", "b"]},
        {"title": "T", "cases": {}, "colour": "red"},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, DeckTexts)
