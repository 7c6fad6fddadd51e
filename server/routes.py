"""HTTP endpoints: pages, the JSON API, exports and health checks."""

from __future__ import annotations

import io
import logging
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
import segno
from msgspec.structs import replace
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from server import edge, exports, i18n, protocol, rules, snapshot
from server.advice import Advisor
from server.decks import (
    DEFAULT_TEMPLATE,
    TemplateError,
    builtin_templates,
    localized,
    parse_template,
    public_template,
)
from server.models import DEFAULT_SCALE, MIN_CROWD, CaseState, Session, Template
from server.security import hash_token, new_join_code, new_session_id, new_token, read_join_code
from server.settings import Settings
from server.store import JoinCodeTaken, Store, StoreFull, StoreUnavailable
from server.text import N_, text_of
from server.throttle import Throttle

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
NO_SESSION = N_("There is no session at this link; it may have expired.")
SERVER_FULL = N_("this server cannot host more sessions right now")
# Fresh join codes tried before giving up (a clash is about one in 60,000 at 10,000 sessions).
JOIN_CODE_ATTEMPTS = 10


class ApiError(Exception):
    """An error a client caused, reported as {"error": message} with a 4xx status (the message
    in the request's language when it is a server.text.Text)."""

    def __init__(
        self, status: int, message: str, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        # Every problem, each where it is ({"path", "message"}), when there are several.
        self.errors = errors


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _pages(request: Request) -> Jinja2Templates:
    pages: Jinja2Templates = request.app.state.pages
    return pages


def base_url(request: Request) -> str:
    """Where people reach this server: the configured public URL; without one, the address the
    request came to, if it names this server (a Host header is the client's to write, so
    `Host: evil.example` must not put links to elsewhere in pages and QR codes); else the
    address the server listens on."""
    settings = _settings(request)
    if settings.public_urls:
        return settings.public_urls[0]
    here: edge.Here = request.app.state.here
    if here.names_this_server(request.headers.get("host", "")):
        return str(request.base_url).rstrip("/")
    log.info("links use %s: the request's Host is not this server's", settings.listening_url)
    return settings.listening_url


async def _session_or_404(request: Request) -> Session:
    session = await _store(request).get(request.path_params["session_id"])
    if session is None:
        raise HTTPException(404, NO_SESSION)
    return session


async def _json_body(request: Request) -> Any:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ApiError(
                413, N_("the request body is larger than %(size)d KiB", size=MAX_BODY // 1024)
            )
    if protocol.nesting_depth(body) > protocol.MAX_DEPTH:
        raise ApiError(
            400, N_("the request body nests deeper than %(depth)d levels", depth=protocol.MAX_DEPTH)
        )
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise ApiError(400, N_("the request body must be valid JSON")) from None


def _choose_template(requested: str | dict[str, Any]) -> Template:
    if isinstance(requested, str):
        template = builtin_templates().get(requested)
        if template is None:
            known = ", ".join(sorted(builtin_templates()))
            raise ApiError(
                400,
                N_(
                    "unknown template %(template)s; built-in templates: %(known)s",
                    template=repr(requested),
                    known=known,
                ),
            )
        return template
    try:
        return parse_template(requested)
    except TemplateError as exc:
        # The editor's per-field messages too, so a pasted template is told all it lacks.
        problems = [{"path": p.path, "message": i18n.say(p.message)} for p in exc.problems]
        raise ApiError(400, text_of(exc), problems) from None


def _check_origin(request: Request) -> None:
    """A browser on another site may not act here (cross-site request forgery)."""
    origin = request.headers.get("origin")
    here: edge.Here = request.app.state.here
    if not edge.allowed_origin(origin, _settings(request).public_origins, here):
        raise ApiError(
            403, N_("requests from %(origin)s are not accepted by this server", origin=origin)
        )


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def create_session(request: Request) -> Response:
    _check_origin(request)
    throttle: Throttle = request.app.state.throttle
    if not await throttle.allow_address("create", client_address(request)):
        raise ApiError(429, N_("too many sessions created from your address; try again later"))
    try:
        payload = protocol.parse(protocol.CreateSession, await _json_body(request))
    except protocol.ProtocolError as exc:
        raise ApiError(400, text_of(exc)) from None
    title = " ".join(payload.title.split())
    if not title or not title.isprintable():
        raise ApiError(400, protocol.TITLE_HINT)
    template = _choose_template(payload.template)
    facilitator_token = new_token()
    now = time.time()
    session = Session(
        id=new_session_id(),
        title=title,
        mode=payload.mode,
        anonymous=payload.anonymous,
        template=template,
        facilitator_hash=hash_token(facilitator_token),
        created_at=now,
        updated_at=now,
        cases=tuple(CaseState(id=c.id) for c in template.cases),
    )
    session = await _create_with_join_code(_store(request), session)
    room = f"{base_url(request)}/s/{session.id}"
    log.info("session %s created from template %s", session.id, template.id)
    return JSONResponse(
        {
            "id": session.id,
            "join_url": room,
            # The token rides in the fragment, which browsers never send to a server.
            "facilitator_url": f"{room}#f={facilitator_token}",
            "facilitator_token": facilitator_token,
            "join_code": session.join_code,
        },
        status_code=201,
    )


async def validate_template(request: Request) -> Response:
    """Check a template as POST /api/sessions would, naming every problem with its path:
    200 {"ok": true, "template"} or 200 {"ok": false, "error", "errors"}; a body that is no
    JSON at all (or too large, too deep) is refused with a 4xx as everywhere."""
    _check_origin(request)
    throttle: Throttle = request.app.state.throttle
    if not await throttle.allow_address("validate", client_address(request)):
        raise ApiError(429, N_("too many templates checked from your address; try again shortly"))
    try:
        template = parse_template(await _json_body(request))
    except TemplateError as exc:
        # The check itself worked: a template with problems is its answer, not a failed
        # request (so an editor checking as someone types fills no console with errors).
        problems = [{"path": p.path, "message": i18n.say(p.message)} for p in exc.problems]
        return JSONResponse({"ok": False, "error": i18n.say(text_of(exc)), "errors": problems})
    return JSONResponse({"ok": True, "template": public_template(template)})


async def _create_with_join_code(store: Store, session: Session) -> Session:
    """Store a new session under a join code no other live session holds."""
    for _ in range(JOIN_CODE_ATTEMPTS):
        coded = replace(session, join_code=new_join_code())
        try:
            await store.create(coded)
        except StoreFull:
            raise ApiError(503, SERVER_FULL) from None
        except JoinCodeTaken:
            continue
        return coded
    log.error("no free join code after %d attempts", JOIN_CODE_ATTEMPTS)
    raise ApiError(503, SERVER_FULL)


async def facilitator_link(request: Request) -> Response:
    """Whom a facilitator link names, so that the page can offer to carry on as them, or say
    at once that the link no longer gives control (rather than after the offer)."""
    _check_origin(request)
    throttle: Throttle = request.app.state.throttle
    if not await throttle.allow_address("join", client_address(request)):
        raise ApiError(429, N_("too many attempts from your address; try again shortly"))
    session = await _session_or_404(request)
    try:
        check = protocol.parse(protocol.LinkCheck, await _json_body(request))
    except protocol.ProtocolError as exc:
        raise ApiError(400, text_of(exc)) from None
    link = hash_token(check.facilitator_token)
    # An answer either way (not a 4xx for a link that stopped working: the page asks this
    # of every link it holds, and a dead one is news for the person, not a fault).
    try:
        rules.check_link(session, link)
    except rules.RuleError:
        return JSONResponse({"valid": False, "message": i18n.say(rules.LINK_DEAD)})
    owner = rules.link_owner(session, link)
    facilitator = None if owner is None else {"id": owner.id, "name": owner.name}
    return JSONResponse({"valid": True, "facilitator": facilitator})


def _advisor(request: Request) -> Advisor:
    advisor: Advisor = request.app.state.advisor
    return advisor


async def session_state(request: Request) -> Response:
    session = await _session_or_404(request)
    return JSONResponse(snapshot.state(session, await _advisor(request).advice(session)))


async def _record(request: Request, session: Session) -> dict[str, Any]:
    """The results document, its advice worked out off the event loop."""
    advice = await _advisor(request).advice(session, every_flip=True)
    return exports.results(session, advice)


async def session_results(request: Request) -> Response:
    session = await _session_or_404(request)
    document = await _record(request, session)
    fmt = request.path_params.get("fmt", "json")
    if fmt not in ("json", "csv", "md", "adr.md"):
        raise HTTPException(404, N_("results come as .json, .csv, .md or .adr.md"))
    filename = f"stackvote-{session.id}"
    if fmt == "json":
        return JSONResponse(document)
    if fmt == "csv":
        return Response(
            exports.to_csv(document),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
        )
    if fmt == "adr.md":
        return Response(
            exports.to_adr(document, datetime.now(UTC)),
            media_type="text/markdown; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}-adr.md"'},
        )
    return Response(
        exports.to_markdown(document, datetime.now(UTC)),
        media_type="text/markdown; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}.md"'},
    )


def _export_urls(session: Session) -> dict[str, str]:
    base = f"/api/sessions/{session.id}/results"
    return {"json": base, "csv": f"{base}.csv", "md": f"{base}.md", "adr": f"{base}.adr.md"}


async def landing(request: Request) -> Response:
    templates = [
        {"id": t.id, "title": t.title, "description": t.description, "cases": len(t.cases)}
        for t in builtin_templates().values()
    ]
    templates.sort(key=lambda t: t["id"] != DEFAULT_TEMPLATE)
    return _pages(request).TemplateResponse(request, "index.html", {"templates": templates})


def _room_page(request: Request, session: Session) -> dict[str, Any]:
    """What every page of a live session shows: the session, its template and how to join."""
    deck = localized(session.template, i18n.current())
    return {
        "session": {
            "id": session.id,
            "title": session.title,
            "mode": session.mode,
            "anonymous": session.anonymous,
        },
        # How many people must score a question of an anonymous session before it shows.
        "min_crowd": MIN_CROWD,
        # The longest note a decision may carry.
        "note_max": rules.NOTE_MAX,
        # The deck in the reader's language where it has one (a built-in deck, unchanged).
        "template": msgspec.to_builtins(deck),
        # A session named after its deck shows the name once.
        "titled_as_deck": _same_words(session.title, session.template.title, deck.title),
        "join_url": f"{base_url(request)}/s/{session.id}",
        "qr_url": f"/s/{session.id}/qr.svg",
        "join_code": session.join_code,
        "join_page_url": f"{base_url(request)}/join",
    }


def _same_words(title: str, *others: str) -> bool:
    def words(text: str) -> str:
        return " ".join(text.casefold().split()).rstrip("?.!")

    return any(words(title) == words(other) for other in others)


async def template_editor(request: Request) -> Response:
    builtins = [public_template(t) for t in builtin_templates().values()]
    builtins.sort(key=lambda t: t["id"] != DEFAULT_TEMPLATE)
    return _pages(request).TemplateResponse(
        request, "editor.html", {"builtins": builtins, "default_scale": list(DEFAULT_SCALE)}
    )


async def room(request: Request) -> Response:
    session = await _session_or_404(request)
    return _pages(request).TemplateResponse(
        request,
        "room.html",
        {
            **_room_page(request, session),
            "results_url": f"/s/{session.id}/results",
            "export_urls": _export_urls(session),
            "present_url": f"/s/{session.id}/present",
        },
    )


async def present(request: Request) -> Response:
    """The presenter view: the room on a big screen, following it without joining."""
    session = await _session_or_404(request)
    return _pages(request).TemplateResponse(request, "present.html", _room_page(request, session))


UNKNOWN_CODE = N_(
    "No session has this code. Check it with the facilitator; codes end with their session."
)
TOO_MANY_CODES = N_("Too many codes tried from your address; wait a few minutes and try again.")


async def _find_join_code(request: Request, typed: str) -> str | None:
    """The session a typed join code names; raises 429 when this address tried too many."""
    throttle: Throttle = request.app.state.throttle
    if not await throttle.allow_address("join", client_address(request)):
        raise HTTPException(429, TOO_MANY_CODES)
    code = read_join_code(typed)
    return None if code is None else await _store(request).find_join_code(code)


async def join_page(request: Request) -> Response:
    """A form to type a join code; with `?code=`, where it leads."""
    typed = request.query_params.get("code")
    if typed is None:
        return _pages(request).TemplateResponse(request, "join.html", {"code": "", "error": ""})
    typed = typed[:40]
    try:
        session_id = await _find_join_code(request, typed)
    except HTTPException as exc:
        return _pages(request).TemplateResponse(
            request,
            "join.html",
            {"code": typed, "error": i18n.say(exc.detail)},
            status_code=exc.status_code,
        )
    if session_id is None:
        return _pages(request).TemplateResponse(
            request, "join.html", {"code": typed, "error": i18n.say(UNKNOWN_CODE)}, status_code=404
        )
    return RedirectResponse(f"/s/{session_id}", status_code=303)


async def join_by_code(request: Request) -> Response:
    session_id = await _find_join_code(request, request.path_params["code"])
    if session_id is None:
        raise HTTPException(404, UNKNOWN_CODE)
    return RedirectResponse(f"/s/{session_id}", status_code=303)


async def results_page(request: Request) -> Response:
    session = await _session_or_404(request)
    document = await _record(request, session)
    template = localized(session.template, i18n.current())
    return _pages(request).TemplateResponse(
        request,
        "results.html",
        {
            "session": document["session"],
            "results": document,
            "template": msgspec.to_builtins(template),
            "participants": document["participants"],
            "verdict": verdict_words(document["recommendation"], template),
            "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "export_urls": _export_urls(session),
            "room_url": f"/s/{session.id}",
        },
    )


def verdict_words(recommendation: dict[str, Any] | None, template: Template) -> dict[str, Any]:
    """The engine's verdict parts (recommendation.verdict_parts) in the words of `template`
    (the reader's language where the deck has it), for the page to phrase: the names of the
    stacks and the titles of the cases it names. The rule that chose them is the engine's."""
    parts = (recommendation or {}).get("verdict_parts")
    if not parts:
        return {}
    titles = {c.id: c.title for c in template.cases}
    favourite = parts["favourite"]
    return {
        "kind": parts["kind"],
        "stack": template.stack_name(parts["stack"]),
        "favourite": None if favourite is None else template.stack_name(favourite),
        "is_favourite": parts["kind"] == "django",
        "reasons": [titles.get(c, c) for c in parts["reasons"]],
        # The stacks level at the top, the one the tie rule put first among them first.
        "level": [template.stack_name(s) for s in (parts["stack"], *parts["tied_with"])],
    }


async def qr_code(request: Request) -> Response:
    session = await _session_or_404(request)
    code = segno.make(f"{base_url(request)}/s/{session.id}", error="m")
    # A standalone SVG document (with its xmlns), so browsers draw it in an <img>.
    out = io.BytesIO()
    code.save(out, kind="svg", xmldecl=False, scale=6, dark="#111", light="#fff", border=2)
    return Response(
        out.getvalue(),
        media_type="image/svg+xml",
        headers={"Cache-Control": "private, max-age=3600"},
    )


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        await _store(request).ping()
    except StoreUnavailable as exc:
        return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
    return JSONResponse({"status": "ready"})


SESSION = "/api/sessions/{session_id:str}"

routes = [
    Route("/", landing, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/api/sessions", create_session, methods=["POST"]),
    Route("/api/templates/validate", validate_template, methods=["POST"]),
    Route("/templates/new", template_editor, methods=["GET"]),
    Route("/join", join_page, methods=["GET"]),
    Route("/join/{code:str}", join_by_code, methods=["GET"]),
    Route(SESSION, session_state, methods=["GET"]),
    Route(SESSION + "/link", facilitator_link, methods=["POST"]),
    Route(SESSION + "/results", session_results, methods=["GET"]),
    Route(SESSION + "/results.{fmt:str}", session_results, methods=["GET"]),
    Route("/s/{session_id:str}", room, methods=["GET"]),
    Route("/s/{session_id:str}/present", present, methods=["GET"]),
    Route("/s/{session_id:str}/results", results_page, methods=["GET"]),
    Route("/s/{session_id:str}/qr.svg", qr_code, methods=["GET"]),
]
