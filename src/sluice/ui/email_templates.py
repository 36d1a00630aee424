"""Pages of email templates (SPEC §2.8): the list with where each is used
(`/templates`), a template's editor with its rendered preview, its versions and their
diff (`/templates/{key}`), a new template (`/templates/_new`), and deleting one that no
flow uses.

The editor checks as you type (`/ui/templates/{key}/check`): the problems of the
template, each in its part (`subject`, `html`, `text`) with its line, and the email
rendered for a sample visitor through `sluice.previews`, as a visitor would get it.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from sluice import previews
from sluice.api.auth import sluice_of
from sluice.definitions.limits import MAX_TEXT_BYTES
from sluice.definitions.parse import validate_template
from sluice.definitions.problems import DefinitionError
from sluice.definitions.source import merge
from sluice.service import Sluice, UnknownTemplate
from sluice.store.flows import MAX_VERSION, TemplateInUse
from sluice.ui import auth, editing, render
from sluice.ui.errors import PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)
Csrf = Annotated[str, Form(max_length=100)]
Part = Annotated[str, Form(max_length=MAX_TEXT_BYTES)]
PART_FORM = {"max_part_size": 3 * MAX_TEXT_BYTES + 1024}
"""A form field as large as a template's part may be, percent-encoded."""
SAMPLE = {"email": "jane@example.com", "fields": {"first_name": "Jane"}, "tags": []}
"""The made-up visitor a preview is rendered for until the person picks another."""
PREVIEW_KEY = "preview"
"""The key a template's parts are checked under while typed: the key is checked when
a new template is saved."""
NEW_TEMPLATE = {
    "key": "",
    "subject": 'Hello {{ visitor.first_name | default: "there" }}',
    "html": "<p>Hi {{ visitor.first_name }},</p>\n<p>…</p>",
    "text": "",
}


def _actor(session: auth.UiSession) -> str:
    return f"ui:{session.user}"


def _document(key: str, subject: str, html: str, text: str) -> dict[str, Any]:
    """The template document of the editor's fields; an empty part is left out (an
    empty text part is made from the HTML when sent)."""
    document: dict[str, Any] = {"kind": "template", "key": key, "subject": subject}
    # A form sends a textarea's line breaks as CR LF (HTML, "constructing the entry
    # list"): read as the LF the stored text has, so an unchanged part stays unchanged.
    if html.strip():
        document["html"] = html.replace("\r\n", "\n")
    if text.strip():
        document["text"] = text.replace("\r\n", "\n")
    return document


def _sample(sluice: Sluice, email: str | None, fields: dict | None) -> tuple[Any, str]:
    """The visitor of `email` when one is stored, else one made up with `fields`; and
    a sentence saying which."""
    if email:
        try:
            who = previews.sample(sluice, visitor=None, visitor_email=email)
            return who, f"Rendered for the visitor {who.email}."
        except previews.UnknownVisitor:
            made_up = {"email": email, "fields": fields or {}}
            return (
                previews.Sample.made_up(made_up, sluice.clock.now()),
                f"No visitor has the email {email}: rendered for a made-up one.",
            )
    who = previews.Sample.made_up(SAMPLE, sluice.clock.now())
    return who, f"Rendered for a made-up visitor ({who.email}, first name Jane)."


def _preview(sluice: Sluice, document: dict, email: str | None, fields: dict | None) -> dict:
    """`{problems: [{loc, msg, line}], email: {subject, html, text} | None, who}`: `line`
    is the line of the part where a Liquid error is (1 when unknown)."""
    who, sentence = _sample(sluice, email, fields)
    rendered = previews.render_template(sluice, document, who)
    problems = [p | {"line": _line_of(p["msg"])} for p in rendered.problems]
    message = rendered.message
    email_view = {k: message[k] for k in ("subject", "html", "text", "from")} if message else None
    return {"problems": problems, "email": email_view, "who": sentence}


def _line_of(msg: str) -> int:
    """The line of `Liquid syntax error at LINE:COL: …` (definitions/liquid.py)."""
    _, at, rest = msg.partition(" at ")
    line = rest.split(":", 1)[0] if at else ""
    return int(line) if line.isdigit() else 1


def _uses(sluice: Sluice, key: str) -> list[dict[str, str]]:
    return sluice.template_uses().get(key, [])


# -- the list ----------------------------------------------------------------------------


@router.get("/templates")
def templates_page(request: Request) -> HTMLResponse:
    auth.session_of(request)
    sluice = sluice_of(request)
    uses = sluice.template_uses()
    rows = [t | {"uses": uses.get(t["key"], [])} for t in sluice.templates()]
    return render.page(request, "templates.html", templates=rows)


# -- one template ------------------------------------------------------------------------


@router.get("/templates/_new")
def new_template_page(request: Request) -> HTMLResponse:
    auth.session_of(request)
    return _editor_page(request, None, NEW_TEMPLATE, problems=[])


@router.post("/templates/_new", form_limits=PART_FORM)
def create_template(
    request: Request,
    csrf: Csrf = "",
    key: Annotated[str, Form(max_length=64)] = "",
    subject: Part = "",
    html: Part = "",
    text: Part = "",
):
    session = auth.check_csrf(request, csrf)
    sluice = sluice_of(request)
    fields = {"key": key.strip(), "subject": subject, "html": html, "text": text}
    problems = _problems(_document(key.strip(), subject, html, text))
    if not problems and key.strip() in {t["key"] for t in sluice.templates()}:
        problems = [{"loc": "key", "msg": f"a template '{key.strip()}' exists already"}]
    if problems:
        return _editor_page(request, None, fields, problems=problems, status=422)
    sluice.apply([("template", _document(key.strip(), subject, html, text))], actor=_actor(session))
    return render.redirect(request, f"/templates/{key.strip()}", f"Created the template {key}.")


@router.get("/templates/{key}")
def template_page(
    request: Request,
    key: str,
    tab: Annotated[str, Query(pattern="^(edit|versions)$")] = "edit",
    a: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
    b: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
) -> HTMLResponse:
    auth.session_of(request)
    sluice = sluice_of(request)
    try:
        template = sluice.template(key)
    except UnknownTemplate:
        return render.not_found(request, f"There is no template '{key}'.")
    if tab == "versions":
        return render.page(
            request,
            "template.html",
            tab=tab,
            stored=template,
            uses=_uses(sluice, key),
            **_versions(sluice, template, a, b),
        )
    definition = template["definition"]
    fields = {k: definition.get(k) or "" for k in ("subject", "html", "text")} | {"key": key}
    return _editor_page(request, template, fields, problems=[])


@router.post("/templates/{key}", form_limits=PART_FORM)
def save_template(
    request: Request,
    key: str,
    csrf: Csrf = "",
    subject: Part = "",
    html: Part = "",
    text: Part = "",
):
    session = auth.check_csrf(request, csrf)
    sluice = sluice_of(request)
    try:
        template = sluice.template(key)
    except UnknownTemplate:
        return render.not_found(request, f"There is no template '{key}'.")
    document = _document(key, subject, html, text)
    problems = _problems(document)
    if problems:
        fields = {"key": key, "subject": subject, "html": html, "text": text}
        return _editor_page(request, template, fields, problems=problems, status=422)
    # The author's text, changed where the fields changed (comments and layout kept).
    text_of_version = merge(template["source"], document)
    report = sluice.apply([("template", document)], texts=[text_of_version], actor=_actor(session))
    version = report.templates[key]
    notice = f"Saved version {version}." if version else "No change: the template is the same."
    return render.redirect(request, f"/templates/{key}", notice)


@router.post("/templates/{key}/delete")
def delete_template(request: Request, key: str, csrf: Csrf = ""):
    auth.check_csrf(request, csrf)
    sluice = sluice_of(request)
    try:
        template = sluice.template(key)
        sluice.delete_template(key)
    except UnknownTemplate:
        return render.not_found(request, f"There is no template '{key}'.")
    except TemplateInUse as error:
        definition = template["definition"]
        fields = {k: definition.get(k) or "" for k in ("subject", "html", "text")} | {"key": key}
        return _editor_page(request, template, fields, problems=[], status=409, refused=error.uses)
    return render.redirect(request, "/templates", f"Deleted the template {key}.")


def _problems(document: dict) -> list[dict[str, Any]]:
    try:
        validate_template(document)
    except DefinitionError as error:
        return [{"loc": p.loc, "msg": p.msg, "line": _line_of(p.msg)} for p in error.problems]
    return []


def _editor_page(
    request: Request,
    template: dict | None,
    fields: dict[str, str],
    *,
    problems: list[dict],
    status: int = 200,
    refused: list[dict] | None = None,
) -> HTMLResponse:
    sluice = sluice_of(request)
    key = template["key"] if template else None
    preview = _preview(sluice, _document(PREVIEW_KEY, **_parts(fields)), None, None)
    return render.page(
        request,
        "template.html",
        status=status,
        tab="edit",
        stored=template,
        fields=fields,
        problems=problems,
        preview=preview,
        sample=SAMPLE,
        uses=_uses(sluice, key) if key else [],
        refused=refused,
    )


def _parts(fields: dict[str, str]) -> dict[str, str]:
    return {k: fields.get(k) or "" for k in ("subject", "html", "text")}


def _versions(sluice: Sluice, template: dict, a: int | None, b: int | None) -> dict:
    latest = template["version"]
    b = min(b or latest, latest)
    a = min(a or max(b - 1, 1), latest)
    old = sluice.template_version(template["key"], a)
    new = sluice.template_version(template["key"], b)
    return {"a": a, "b": b, "diff": editing.diff_rows(old, new)}


# -- JSON for the editor's script ----------------------------------------------------------


@router.post("/ui/templates/check")
async def check_template(request: Request) -> JSONResponse:
    """The editor's check as you type. Body: `{subject, html, text, visitor_email?,
    fields?}` (`fields`: of the made-up visitor when no visitor has that email) →
    `{problems: [{loc, msg, line}], email: {subject, html, text, from} | null, who}`."""
    auth.check_csrf(request, request.headers.get("x-csrf-token"))
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return JSONResponse({"detail": "expected a JSON object"}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"detail": "expected a JSON object"}, status_code=400)
    parts = {k: body.get(k) if isinstance(body.get(k), str) else "" for k in _PARTS}
    email = body.get("visitor_email")
    email = email.strip() if isinstance(email, str) and email.strip() else None
    fields = body.get("fields") if isinstance(body.get("fields"), dict) else None
    document = _document(PREVIEW_KEY, **parts)
    return JSONResponse(_preview(sluice_of(request), document, email, fields))


_PARTS = ("subject", "html", "text")
