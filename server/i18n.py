"""The words of the pages in the reader's language: the message catalogues, which language each
request and connection gets, and how templates, scripts and server messages look text up.

English is the source language (the message ids); `server/locale/<lang>/LC_MESSAGES/messages.po`
holds each translation and is read at startup, so nothing needs compiling. A request's language
is `?lang=` (which also sets the `lang` cookie), else that cookie, else the browser's
Accept-Language; it lives in a context variable for the request, so concurrent requests never
see each other's.
"""

from __future__ import annotations

import io
import re
from collections.abc import Awaitable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from gettext import NullTranslations
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from babel.core import negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import get_decimal_symbol
from babel.support import Translations
from jinja2 import Environment
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.text import Text

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DEFAULT = "en"
COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600
# Each language's name in that language, for the switch.
NAMES = {"en": "English", "de": "Deutsch"}
# Messages whose source is a script go into the page's catalogue for static/js/i18n.js.
SCRIPT_SOURCES = "static/js/"

LOCALE: ContextVar[str] = ContextVar("locale", default=DEFAULT)


@dataclass(frozen=True)
class Catalogue:
    """One language: its translations, and the part the page's scripts need."""

    locale: str
    translations: NullTranslations
    # English id -> text, and "one\0other" -> [forms] for plurals (the shape i18n.js reads).
    script: Mapping[str, Any] = field(default_factory=dict)


def _read(locale: str, path: Path) -> Catalogue:
    with path.open("rb") as po:
        catalog = read_po(po, locale=locale)
    # Compiled in memory, so no build step is needed; fuzzy and empty entries are left out,
    # and the English shows instead.
    mo = io.BytesIO()
    write_mo(mo, catalog, use_fuzzy=False)
    mo.seek(0)
    script: dict[str, Any] = {}
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        if not any(where.startswith(SCRIPT_SOURCES) for where, _ in message.locations):
            continue
        if isinstance(message.id, tuple | list):
            forms = list(message.string or ())
            if all(forms):
                script["\u0000".join(message.id[:2])] = forms
        elif message.string:
            script[message.id] = message.string
    return Catalogue(locale, Translations(fp=mo), script)


@cache
def catalogues(directory: Path = LOCALE_DIR) -> dict[str, Catalogue]:
    """Every language stackvote speaks, English first."""
    found = {DEFAULT: Catalogue(DEFAULT, NullTranslations())}
    for po in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        locale = po.parent.parent.name
        if locale in NAMES:
            found[locale] = _read(locale, po)
    return found


def available() -> list[str]:
    return list(catalogues())


# --- choosing the language

_TAG = re.compile(r"[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*\Z")
_MAX_RANGES = 20


def known(value: str | None) -> str | None:
    """`value` if it names a language stackvote speaks (as `?lang=` or the cookie give it)."""
    if not value:
        return None
    value = value.strip().lower()
    return value if value in catalogues() else None


def preferred(header: str | None) -> list[str]:
    """The language tags of an Accept-Language header, most wanted first (q=0 and junk out)."""
    if not header:
        return []
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header[:1000].split(",")[:_MAX_RANGES]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not _TAG.match(tag):
            continue  # "*" and anything malformed
        quality = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                continue
            if not 0 < quality <= 1:
                continue
        ranked.append((-quality, position, tag.replace("_", "-")))
    return [tag for _, _, tag in sorted(ranked)]


def negotiate(header: str | None) -> str:
    """The best language for an Accept-Language header; English when none fits."""
    found = negotiate_locale(preferred(header), available(), sep="-", aliases={})
    return known(found) or DEFAULT


def choose(*, asked: str | None, cookie: str | None, accept_language: str | None) -> str:
    """`?lang=` wins, then the cookie, then the browser's languages, then English."""
    return known(asked) or known(cookie) or negotiate(accept_language)


# Where a connection's environ keeps its language once its headers are dropped
# (server.connection).
ENVIRON_KEY = "stackvote.locale"


def cookie_value(header: str, name: str) -> str | None:
    """The value of cookie `name` in a Cookie header, read as browsers write it (lenient: a
    malformed neighbour does not hide it)."""
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == name:
            return value.strip().strip('"')
    return None


def from_environ(environ: Mapping[str, Any]) -> str:
    """The language of a Socket.IO connection, from its handshake: the page's own language
    (`lang` in the query: the pages send the language they were served in, since a browser
    need not send its Accept-Language with a WebSocket), else the cookie the pages set, else
    the browser's Accept-Language."""
    decided = environ.get(ENVIRON_KEY)
    if isinstance(decided, str):
        return decided
    asked = dict(parse_qsl(str(environ.get("QUERY_STRING", "")))).get("lang")
    return choose(
        asked=asked,
        cookie=cookie_value(str(environ.get("HTTP_COOKIE", "")), COOKIE),
        accept_language=environ.get("HTTP_ACCEPT_LANGUAGE"),
    )


class Locales:
    """ASGI middleware: picks each HTTP request's language, keeps it in LOCALE while the request
    is answered, and remembers an explicit `?lang=` in the `lang` cookie for a year."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A WebSocket passes straight through, leaving no frame of this for its lifetime.
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        asked = known(query.get(COOKIE))
        locale = choose(
            asked=asked,
            cookie=cookie_value(headers.get("cookie", ""), COOKIE),
            accept_language=headers.get("accept-language"),
        )
        extra: list[tuple[bytes, bytes]] = []
        if not scope.get("path", "").startswith("/static/"):
            # Pages and messages differ by language; static files never do.
            extra += [(b"content-language", locale.encode()), (b"vary", b"Accept-Language, Cookie")]
        if asked:
            cookie = f"{COOKIE}={asked}; Max-Age={COOKIE_MAX_AGE}; Path=/; SameSite=Lax"
            extra.append((b"set-cookie", cookie.encode()))

        async def send_with_language(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((k, v) for k, v in extra if k == b"set-cookie" or k not in present),
                ]
            await send(message)

        token = LOCALE.set(locale)
        try:
            await self.app(scope, receive, send_with_language)
        finally:
            LOCALE.reset(token)


# --- looking text up


def current() -> str:
    """The language of the request being answered."""
    return LOCALE.get()


def _translations(locale: str | None = None) -> NullTranslations:
    found = catalogues().get(locale or LOCALE.get()) or catalogues()[DEFAULT]
    return found.translations


def gettext(message: str) -> str:
    """`message` in the current request's language."""
    return _translations().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _translations().ngettext(singular, plural, n)


def say(text: str, locale: str | None = None) -> str:
    """A server message (server.text.Text, or plain text) in `locale` (default: the current
    request's), its values put in place; plain text is passed on as it is."""
    if not isinstance(text, Text):
        return str(text)
    english = str.__str__(text)
    translated = _translations(locale).gettext(text.msgid)
    if not text.values:
        return translated
    # A value may be a message of its own ("countdown needs <what seconds must be>").
    values = {k: say(v, locale) if isinstance(v, Text) else v for k, v in text.values.items()}
    try:
        return translated % values
    except (KeyError, ValueError, TypeError):
        # A translation whose places do not match its message: the English is still right.
        return english


def decimal_mark(number: object) -> str:
    """A number already formatted the English way, with the current language's decimal mark
    (so the digits and their rounding are the same in every language)."""
    return str(number).replace(".", _decimal_symbol(LOCALE.get()))


@cache
def _decimal_symbol(locale: str) -> str:
    return get_decimal_symbol(locale)


def script_catalogue() -> dict[str, Any]:
    """What the page embeds for static/js/i18n.js."""
    locale = LOCALE.get()
    found = catalogues().get(locale) or catalogues()[DEFAULT]
    return {"locale": found.locale, "messages": dict(found.script)}


def switch_links(path: str, query: str) -> list[dict[str, Any]]:
    """The footer's language switch: each language, a link to this page in it, and whether it
    is the one shown."""
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != COOKIE]
    locale = LOCALE.get()
    return [
        {
            "code": code,
            "name": NAMES[code],
            "href": f"{path}?{urlencode([*kept, (COOKIE, code)])}",
            "current": code == locale,
        }
        for code in catalogues()
    ]


def install(env: Environment) -> None:
    """Give templates `_()` and `ngettext()` (new-style: `_("Hi %(name)s", name=n)`) in the
    language of the request being rendered, and what base.html needs for it."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext, ngettext, newstyle=True
    )
    env.globals["current_locale"] = current
    env.globals["script_catalogue"] = script_catalogue
    env.globals["language_switch"] = switch_links
    env.filters["decimal_mark"] = decimal_mark
    catalogues()
