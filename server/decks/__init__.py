"""Templates: the built-in decks shipped as JSON files, and validation of custom ones."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import msgspec

from server.models import Template
from server.text import N_

DEFAULT_TEMPLATE = "django"
WEIGHT_LIMIT = 2


class TemplateError(ValueError):
    """A template that cannot be used; the message says what is wrong and where."""


def parse_template(data: Any) -> Template:
    """Validate a template given as decoded JSON, raising TemplateError with a clear message."""
    if not isinstance(data, dict):
        raise TemplateError(N_("a template must be a JSON object"))
    _check_weights(data)
    try:
        template = msgspec.convert(data, Template)
    except msgspec.ValidationError as exc:
        raise TemplateError(N_("invalid template: %(detail)s", detail=_plain(str(exc)))) from None
    _check_consistency(template)
    return template


def _check_weights(data: dict[str, Any]) -> None:
    """Name the case and stack of a weight out of range (the schema error cannot)."""
    cases = data.get("cases")
    for case in cases if isinstance(cases, list) else []:
        fit = case.get("fit") if isinstance(case, dict) else None
        for stack, weight in fit.items() if isinstance(fit, dict) else []:
            number = isinstance(weight, int | float) and not isinstance(weight, bool)
            if not number or not -WEIGHT_LIMIT <= weight <= WEIGHT_LIMIT:
                raise TemplateError(
                    N_(
                        "invalid template: case %(case)s gives stack %(stack)s the weight "
                        "%(weight)s; weights are numbers from -%(limit)d to %(limit)d",
                        case=repr(case.get("id")),
                        stack=repr(stack),
                        weight=repr(weight),
                        limit=WEIGHT_LIMIT,
                    )
                )


def _plain(message: str) -> str:
    # msgspec says "Expected `str` of length <= 120 - at `$.cases[0].title`"; keep it, minus `$.`.
    return message.replace("`$.", "`").replace("`$`", "the template")


def _used_twice(ids: list[str]) -> str | None:
    seen: set[str] = set()
    for ident in ids:
        if ident in seen:
            return ident
        seen.add(ident)
    return None


def _check_consistency(template: Template) -> None:
    stack_ids = [s.id for s in template.stacks]
    case_ids = [c.id for c in template.cases]
    twice = _used_twice(stack_ids)
    if twice is not None:
        raise TemplateError(N_("invalid template: stack id %(id)s is used twice", id=repr(twice)))
    twice = _used_twice(case_ids)
    if twice is not None:
        raise TemplateError(N_("invalid template: case id %(id)s is used twice", id=repr(twice)))
    if not template.title.strip():
        raise TemplateError(N_("invalid template: the title is blank"))
    for c in template.cases:
        if not c.title.strip():
            raise TemplateError(
                N_("invalid template: the title of case %(case)s is blank", case=repr(c.id))
            )
    known = set(stack_ids)
    for case in template.cases:
        unknown = sorted(set(case.fit) - known)
        if unknown:
            raise TemplateError(
                N_(
                    "invalid template: case %(case)s weighs unknown stack %(stack)s",
                    case=repr(case.id),
                    stack=repr(unknown[0]),
                )
            )
    if template.favourite is not None and template.favourite not in known:
        raise TemplateError(
            N_(
                "invalid template: favourite %(stack)s is not one of the stacks",
                stack=repr(template.favourite),
            )
        )


@cache
def builtin_templates() -> dict[str, Template]:
    """The templates shipped with stackvote, by id (validated once, on first use)."""
    found: dict[str, Template] = {}
    for entry in sorted(resources.files(__package__).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            template = parse_template(msgspec.json.decode(entry.read_bytes()))
            found[template.id] = template
    if DEFAULT_TEMPLATE not in found:
        raise RuntimeError(f"the built-in template {DEFAULT_TEMPLATE!r} is missing")
    return found


def public_template(template: Template) -> dict[str, Any]:
    """The template as shown to users (every weight visible)."""
    result: dict[str, Any] = msgspec.to_builtins(template)
    return result
