"""Words the server says to people, kept as an English message id and its values, so that each
can be put into the reader's language where it leaves the server (server.i18n).

Pure (standard library only): the rules mark their messages here without knowing any language.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Text(str):
    """English text (it is the str itself) that remembers its message id and values, so it can
    be translated later: `N_("Names can be at most %(limit)d characters long.", limit=40)`."""

    msgid: str
    values: Mapping[str, Any]

    def __new__(cls, msgid: str, /, **values: Any) -> Text:
        english = msgid % values if values else msgid
        text = super().__new__(cls, english)
        text.msgid = msgid
        text.values = values
        return text

    def __reduce__(self) -> Any:
        return (_rebuild, (self.msgid, dict(self.values)))


def _rebuild(msgid: str, values: dict[str, Any]) -> Text:
    return Text(msgid, **values)


def N_(msgid: str, /, **values: Any) -> Text:
    """Mark a message for the catalogue without translating it (gettext_noop), with the values
    its `%(name)s` places take. Translated where it leaves the server."""
    return Text(msgid, **values)


def text_of(error: BaseException) -> str:
    """The message an exception carries for people: its Text when it was given one."""
    if len(error.args) == 1 and isinstance(error.args[0], str):
        message: str = error.args[0]
        return message
    return str(error)
