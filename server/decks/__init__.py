"""Templates: the built-in decks shipped as JSON files, and validation of custom ones."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Annotated, Any, get_args, get_origin

import msgspec
import msgspec.inspect as schema

from server.models import HelpText, Ident, ScaleLabel, Template, Title
from server.text import N_, Text

DEFAULT_TEMPLATE = "django"
WEIGHT_LIMIT = 2

# Where a problem sits: field names and list positions from the template's root.
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a template: where (`cases.2.title`), what, in a sentence for the
    field (`message`) and in one for the whole template (`summary`, the older single message)."""

    path: str
    message: str
    summary: str


class TemplateError(ValueError):
    """A template that cannot be used; the message says what is wrong first and where, and
    `problems` lists everything wrong, each with its path."""

    def __init__(self, message: str, problems: tuple[Problem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


def parse_template(data: Any) -> Template:
    """Validate a template given as decoded JSON, raising TemplateError with a clear message."""
    if not isinstance(data, dict):
        message = N_("a template must be a JSON object")
        raise TemplateError(message, (Problem("", N_("must be a JSON object"), message),))
    problems = tuple(template_problems(data))
    if problems:
        raise TemplateError(problems[0].summary, problems)
    try:
        return msgspec.convert(data, Template)
    except msgspec.ValidationError as exc:  # pragma: no cover - the walk checks every field
        message = _invalid(_plain(str(exc)))
        raise TemplateError(message, (Problem("", message, message),)) from None


def template_problems(data: dict[str, Any]) -> Iterator[Problem]:
    """Every problem in a template object, in the order of its fields: first what the schema
    (server.models) refuses, field by field, then what the fields say about each other."""
    seen: set[str] = set()
    walked = (_name_weight(problem, data) for problem in _walk(data, Template, ()))
    for problem in (*walked, *_consistency(data)):
        # One problem per field is enough to fix it; the first is the one the schema saw.
        if problem.path not in seen:
            seen.add(problem.path)
            yield problem


# --- the schema, field by field


def _walk(value: Any, annotation: Any, path: Path) -> Iterator[Problem]:
    inner, meta = _unwrap(annotation)
    if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
        yield from _walk_struct(value, inner, path)
    elif get_origin(inner) is tuple:
        item = get_args(inner)[0]
        # The list itself first (is it one, is its length right), then each item.
        if (problem := _convert(value, _annotated(tuple[Any, ...], meta), path)) is not None:
            yield problem
            return
        for index, element in enumerate(value):
            yield from _walk(element, item, (*path, index))
    elif get_origin(inner) is dict:
        key_type, value_type = get_args(inner)
        if (problem := _convert(value, _annotated(dict[Any, Any], meta), path)) is not None:
            yield problem
            return
        for key, element in value.items():
            if (problem := _convert(key, key_type, (*path, key), key_of=path)) is not None:
                yield problem
            else:
                yield from _walk(element, value_type, (*path, key))
    elif (problem := _convert(value, annotation, path)) is not None:
        yield problem


def _walk_struct(value: Any, struct: type[msgspec.Struct], path: Path) -> Iterator[Problem]:
    expected = N_("must be an object")
    if (problem := _convert(value, dict[str, Any], path, expected=expected)) is not None:
        yield problem
        return
    fields = msgspec.structs.fields(struct)
    known = {f.encode_name for f in fields}
    for field in fields:
        if field.encode_name in value:
            yield from _walk(value[field.encode_name], field.type, (*path, field.encode_name))
        elif field.required:
            yield _problem(
                (*path, field.encode_name),
                N_("is required"),
                f"Object missing required field `{field.encode_name}`{_at(path)}",
            )
    for key in value:
        if key not in known:
            yield _problem(
                (*path, key),
                N_("is not something a template can have"),
                f"Object contains unknown field `{key}`{_at(path)}",
            )


def _convert(
    value: Any, annotation: Any, path: Path, *, key_of: Path | None = None, expected: str = ""
) -> Problem | None:
    """msgspec's verdict on one value; None when it fits."""
    try:
        msgspec.convert(value, annotation)
    except msgspec.ValidationError as exc:
        where = f" - at `key` in `{_legacy(key_of)}`" if key_of is not None else _at(path)
        return _problem(path, expected or _expected(annotation), f"{_plain(str(exc))}{where}")
    return None


# --- what the fields say about each other


def _consistency(data: dict[str, Any]) -> Iterator[Problem]:
    stacks, cases = _items(data.get("stacks")), _items(data.get("cases"))
    for kind, group, items in (("stack", "stacks", stacks), ("case", "cases", cases)):
        seen: set[str] = set()
        for index, item in items:
            ident = item.get("id")
            if isinstance(ident, str) and ident in seen:
                twice = (
                    N_("stack id %(id)s is used twice", id=repr(ident))
                    if kind == "stack"
                    else N_("case id %(id)s is used twice", id=repr(ident))
                )
                yield _problem(
                    (group, index, "id"),
                    N_("another stack already has this id")
                    if kind == "stack"
                    else N_("another question already has this id"),
                    twice,
                )
            elif isinstance(ident, str):
                seen.add(ident)
    if _blank(data.get("title")):
        yield _problem(("title",), N_("must not be blank"), N_("the title is blank"))
    for index, case in cases:
        if _blank(case.get("title")):
            yield _problem(
                ("cases", index, "title"),
                N_("must not be blank"),
                N_("the title of case %(case)s is blank", case=_case_name(case, index)),
            )
    # Which stacks exist is only known when there are some and every one of them is readable.
    if not stacks or len(stacks) != len(data["stacks"]):
        return
    known = {s.get("id") for _, s in stacks}
    for index, case in cases:
        fit = case.get("fit")
        for stack in fit if isinstance(fit, dict) else []:
            if _fits(stack, Ident) and stack not in known:
                yield _problem(
                    ("cases", index, "fit", stack),
                    N_("no stack has this id"),
                    N_(
                        "case %(case)s weighs unknown stack %(stack)s",
                        case=repr(case.get("id")),
                        stack=repr(stack),
                    ),
                )
    favourite = data.get("favourite")
    if isinstance(favourite, str) and favourite not in known:
        yield _problem(
            ("favourite",),
            N_("must be the id of one of the stacks"),
            N_("favourite %(stack)s is not one of the stacks", stack=repr(favourite)),
        )


def _items(value: Any) -> list[tuple[int, dict[str, Any]]]:
    return (
        [(i, v) for i, v in enumerate(value) if isinstance(v, dict)]
        if isinstance(value, list)
        else []
    )


def _case_name(case: dict[str, Any], index: int) -> str:
    ident = case.get("id")
    return repr(ident) if isinstance(ident, str) else f"cases[{index}]"


def _fits(value: Any, annotation: Any) -> bool:
    try:
        msgspec.convert(value, annotation)
    except msgspec.ValidationError:
        return False
    return True


def _blank(value: Any) -> bool:
    return isinstance(value, str) and value != "" and not value.strip()


# --- wording


def _invalid(detail: str) -> Text:
    """The whole template's message: "invalid template: <what and where>"."""
    return N_("invalid template: %(detail)s", detail=detail)


def _problem(path: Path, message: str, summary: str) -> Problem:
    return Problem(".".join(str(p) for p in path), message, _invalid(summary))


def _expected(annotation: Any) -> str:
    """What a value must be, in words, from its schema."""
    info = schema.type_info(annotation)
    if isinstance(info, schema.UnionType):
        info = next(t for t in info.types if not isinstance(t, schema.NoneType))
    description = ""
    if isinstance(info, schema.Metadata):
        description = (info.extra_json_schema or {}).get("description", "")
        info = info.type
    if isinstance(info, schema.StrType):
        if description:
            return N_(
                "must be lower-case letters, digits and _, starting with a letter, at most 40"
            )
            return N_(
                "must be lower-case letters, digits and _, starting with a letter, at most 40"
            )
        if info.min_length and info.max_length:
            return N_(
                "must be text of %(low)d to %(high)d characters",
                low=info.min_length,
                high=info.max_length,
            )
        if info.max_length:
            return N_("must be text of at most %(high)d characters", high=info.max_length)
        return N_("must be text")
    if isinstance(info, schema.FloatType | schema.IntType):
        return N_(
            "must be a number from %(low)s to %(high)s", low=_number(info.ge), high=_number(info.le)
        )
    if isinstance(info, schema.VarTupleType | schema.ListType):
        low, high = info.min_length, info.max_length
        if low is not None and low == high:
            return N_("must have exactly %(count)d entries", count=low)
        if low is not None and high is not None:
            return N_("must have %(low)d to %(high)d entries", low=low, high=high)
        return N_("must be a list")
    return N_("must be an object")


def _number(value: float | None) -> str:
    return "any" if value is None else f"{value:g}".replace("-", "\u2212")


def _at(path: Path) -> str:
    return f" - at `{_legacy(path)}`" if path else ""


def _legacy(path: Path) -> str:
    """msgspec's way of writing a path: `cases[0].title`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def _name_weight(problem: Problem, data: dict[str, Any]) -> Problem:
    """A weight out of range is told by case id and stack, as it always was."""
    parts = problem.path.split(".", 3)
    if len(parts) != 4 or parts[0] != "cases" or parts[2] != "fit" or " in `" in problem.summary:
        return problem
    case = data["cases"][int(parts[1])]
    summary = _invalid(
        N_(
            "case %(case)s gives stack %(stack)s the weight %(weight)s; weights are numbers "
            "from -%(limit)d to %(limit)d",
            case=repr(case.get("id")),
            stack=repr(parts[3]),
            weight=repr(case["fit"][parts[3]]),
            limit=WEIGHT_LIMIT,
        )
    )
    return Problem(problem.path, problem.message, summary)


def _annotated(base: Any, meta: msgspec.Meta | None) -> Any:
    return base if meta is None else Annotated[base, meta]


def _unwrap(annotation: Any) -> tuple[Any, msgspec.Meta | None]:
    if get_origin(annotation) is Annotated:
        inner, *extras = get_args(annotation)
        meta = next((m for m in extras if isinstance(m, msgspec.Meta)), None)
        return inner, meta
    return annotation, None


def _plain(message: str) -> str:
    # msgspec says "Expected `str` of length <= 120 - at `$.cases[0].title`"; keep it, minus `$.`.
    return message.replace("`$.", "`").replace("`$`", "the template")


@cache
def builtin_templates() -> dict[str, Template]:
    """The templates shipped with stackvote, by id (validated once, on first use)."""
    found: dict[str, Template] = {}
    for entry in sorted(resources.files(__package__).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json") and entry.name.count(".") == 1:
            template = parse_template(msgspec.json.decode(entry.read_bytes()))
            found[template.id] = template
    if DEFAULT_TEMPLATE not in found:
        raise RuntimeError(f"the built-in template {DEFAULT_TEMPLATE!r} is missing")
    return found


# --- a built-in deck in another language
#
# A deck's words are data, like its weights: `<id>.<language>.json` beside `<id>.json` holds
# the title, description, scale labels and each case's title and help in that language (and
# stack names where they differ), checked like a template and against the deck it translates.


class CaseTexts(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    title: Title
    help: HelpText = ""


class DeckTexts(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    title: Title
    cases: dict[Ident, CaseTexts]
    description: Annotated[str, msgspec.Meta(max_length=500)] = ""
    scale: Annotated[tuple[ScaleLabel, ...], msgspec.Meta(min_length=5, max_length=5)] | None = None
    stacks: dict[Ident, Title] = {}


@cache
def deck_translations() -> dict[tuple[str, str], DeckTexts]:
    """Every translation of a built-in deck, by (deck id, language); validated on first use
    (a file that does not match its deck stops the server at start, not a room later)."""
    found: dict[tuple[str, str], DeckTexts] = {}
    decks = builtin_templates()
    for entry in resources.files(__package__).iterdir():
        deck, _, rest = entry.name.partition(".")
        language = rest.removesuffix(".json")
        if not (rest.endswith(".json") and language and "." not in language):
            continue
        texts = msgspec.json.decode(entry.read_bytes(), type=DeckTexts)
        template = decks.get(deck)
        if template is None:
            raise RuntimeError(f"{entry.name} translates a deck that does not exist")
        if set(texts.cases) != {c.id for c in template.cases} or not set(texts.stacks) <= {
            s.id for s in template.stacks
        }:
            raise RuntimeError(f"{entry.name} does not name the cases and stacks of {deck!r}")
        found[(deck, language)] = texts
    return found


def localized(template: Template, language: str) -> Template:
    """`template` in `language`, if it is a built-in deck, unchanged, with a translation in that
    language; else `template` itself (a custom deck speaks its author's language)."""
    texts = deck_translations().get((template.id, language))
    if texts is None or builtin_templates().get(template.id) != template:
        return template
    return msgspec.structs.replace(
        template,
        title=texts.title,
        description=texts.description or template.description,
        scale=texts.scale or template.scale,
        stacks=tuple(
            msgspec.structs.replace(s, name=texts.stacks.get(s.id, s.name)) for s in template.stacks
        ),
        cases=tuple(
            msgspec.structs.replace(c, title=texts.cases[c.id].title, help=texts.cases[c.id].help)
            for c in template.cases
        ),
    )


def public_template(template: Template) -> dict[str, Any]:
    """The template as shown to users (every weight visible)."""
    result: dict[str, Any] = msgspec.to_builtins(template)
    return result
