"""The words of the pages in the reader's language: how templates and scripts look text up."""

from __future__ import annotations

from jinja2 import Environment


def install(env: Environment) -> None:
    """Give templates `_()` and `ngettext()` (new-style: `_("Hi %(name)s", name=n)`)."""
    env.add_extension("jinja2.ext.i18n")
    env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
