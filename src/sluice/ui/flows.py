"""Pages of flows: the list (`/`), a flow's canvas, builder, editor and versions
(`/flows/{key}`), turning flows on and off, and the live counts of the canvas."""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import AfterValidator

from sluice import health
from sluice.api.auth import sluice_of
from sluice.definitions.limits import MAX_TEXT_BYTES
from sluice.definitions.problems import DefinitionError
from sluice.definitions.values import to_jsonable
from sluice.edge import NoteTooLong, note_text
from sluice.records import FlowStatus
from sluice.service import Sluice
from sluice.stats import conversion_text
from sluice.store import drafts as draft_store
from sluice.store import flows as flow_store
from sluice.store.flows import UnknownFlow, VersionConflict
from sluice.ui import auth, canvas, editing, queries, render
from sluice.ui.errors import PageRoute, refused

router = APIRouter(include_in_schema=False, route_class=PageRoute)
Csrf = Annotated[str, Form(max_length=100)]
Definition = Annotated[str, Form()]  # its size is checked with the definition (editing.check)
Note = Annotated[str, Form(), AfterValidator(note_text)]  # note_text bounds its length
Version = Annotated[int | None, Query(ge=1, le=flow_store.MAX_VERSION)]
"""A version number in a query (`a`, `b`, `show`): beyond the largest a version can
have it is refused (422), as the API refuses it."""
DEFINITION_FORM = {"max_part_size": 3 * MAX_TEXT_BYTES + 1024}
"""A form field as large as a definition may be, percent-encoded (each byte at most
three); python-multipart's default (1 MiB) would refuse a definition under its limit."""
STATS_SECONDS = 5.0
"""How long the per-step statistics of a flow are reused: they read the timelines of
every session of the flow, so many open canvases share one reading."""


def _actor(session: auth.UiSession) -> str:
    return session.actor


# -- the list --------------------------------------------------------------------------


@router.get("/")
def flows_page(request: Request) -> HTMLResponse:
    auth.session_of(request)
    with sluice_of(request).db.read() as conn:
        flows = flow_store.list_flows(conn)
    examples = [] if flows else editing.examples()
    return render.page(request, "flows.html", flows=flows, examples=examples)


@router.get("/ui/flows/figures")
def flow_figures(request: Request) -> JSONResponse:
    """The flows list's figures, loaded after the page: they count every session."""
    auth.session_of(request)
    sluice = sluice_of(request)
    with sluice.db.read() as conn:
        return JSONResponse(queries.flow_figures(conn, sluice.catalog, sluice.clock.now()))


@router.post("/flows/examples")
def use_example(request: Request, csrf: Csrf = "", file: Annotated[str, Form(max_length=200)] = ""):
    session = auth.check_csrf(request, csrf)
    if file not in {e["file"] for e in editing.examples()}:
        return render.redirect(request, "/", "No such example.")
    key = editing.apply_example(sluice_of(request), file, _actor(session))
    return render.redirect(
        request, f"/flows/{key}", f"Created the flow {key}. It is off: turn it on when ready."
    )


@router.post("/flows/{key}/on")
@router.post("/flows/{key}/off")
def turn(
    request: Request, key: str, csrf: Csrf = "", next: Annotated[str, Form(max_length=2000)] = ""
):
    session = auth.check_csrf(request, csrf)
    status = FlowStatus.ON if request.url.path.endswith("/on") else FlowStatus.OFF
    try:
        sluice_of(request).set_flow_status(key, status, actor=_actor(session))
    except UnknownFlow:
        return render.not_found(request, f"There is no flow '{key}'.")
    notice = (
        f"{key} is on: its sessions run."
        if status == FlowStatus.ON
        else f"{key} is off: its sessions are paused where they are."
    )
    return render.redirect(request, auth.safe_next(next or f"/flows/{key}"), notice)


# -- one flow --------------------------------------------------------------------------


@router.get("/flows/_new")
def new_flow_page(
    request: Request, tab: Annotated[str, Query(pattern="^(build|edit)$")] = "build"
) -> HTMLResponse:
    """A new flow in the builder, or (`?tab=edit`) in the YAML editor."""
    session = auth.session_of(request)
    if tab == "edit":
        return render.page(request, "editor_new.html", text=editing.NEW_FLOW, problems=[])
    sluice = sluice_of(request)
    checked = editing.check(sluice, editing.NEW_FLOW, None)
    builder = _builder_config(sluice, session, None, editing.NEW_FLOW, checked.document)
    return render.page(request, "builder_new.html", builder=builder)


def _builder_config(
    sluice: Sluice,
    session: auth.UiSession,
    key: str | None,
    text: str,
    document: dict | None,
    draft: draft_store.Draft | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """What the builder starts from (`ui/frontend/src/builder/main.jsx`): the flow's
    text and the document it loads to (the draft's, when `draft`), the version it
    was read from (its save is refused if another has been saved since: If-Match),
    the CSRF token its requests carry, the flows a `start_flow` step can start and
    the templates an email can use."""
    with sluice.db.read() as conn:
        flows = [row.key for row in flow_store.list_flows(conn)]
        templates = flow_store.current_templates(conn)
    return {
        "key": key,
        "version": version,
        "text": text,
        "document": to_jsonable(document),
        "csrf": session.csrf,
        "draft": draft and {"actor": draft.actor, "updated_at": draft.updated_at.isoformat()},
        "flows": flows,
        "templates": [
            {"key": name, "subject": definition.get("subject")}
            for name, definition in sorted(templates.items())
        ],
    }


@router.post("/flows/_new", form_limits=DEFINITION_FORM)
def create_flow(request: Request, csrf: Csrf = "", definition: Definition = "", note: Note = ""):
    session = auth.check_csrf(request, csrf)
    sluice = sluice_of(request)
    checked = editing.check(sluice, definition, None)
    if not checked.problems:
        editing.save(sluice, checked, definition, _actor(session), note or None)
        key = checked.flow.key
        return render.redirect(request, f"/flows/{key}", f"Created the flow {key} (off).")
    return render.page(
        request, "editor_new.html", status=422, text=definition, problems=checked.problems
    )


def _flow(conn, key: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The flow as the pages show it (the shape of `views.flow_view`), and its
    unfinished sessions at each step."""
    row = flow_store.get_flow(conn, key)
    counts, here = queries.session_counts(conn, key)
    flow = {
        "key": row.key,
        "name": row.name,
        "status": row.status.value,
        "version": row.version,
        "updated_at": row.updated_at,
        "counts": counts,
    }
    return flow, here


def _flow_context(sluice: Sluice, key: str) -> dict[str, Any]:
    with sluice.db.read() as conn:
        flow, here = _flow(conn, key)
        flow["versions"] = flow_store.list_versions(conn, key)
        flow["has_draft"] = draft_store.has_draft(conn, key)
        tree = sluice.catalog.flow(conn, key, flow["version"]).tree
    hook = None
    if tree.definition.trigger.kind == "webhook":  # its URL and secret, for the sender
        url = f"{sluice.settings.public_url.rstrip('/')}/api/hooks/{key}"
        hook = {"url": url, "secret": sluice.hook(key)[1]}
    return {
        "flow": flow,
        "definition": tree.definition,
        "boxes": canvas.boxes(tree.definition.steps),
        "here": here,
        "hook": hook,
    }


@router.get("/flows/{key}")
def flow_page(
    request: Request,
    key: str,
    tab: Annotated[str, Query(pattern="^(canvas|build|edit|versions)$")] = "canvas",
    a: Version = None,
    b: Version = None,
    show: Version = None,
) -> HTMLResponse:
    session = auth.session_of(request)
    sluice = sluice_of(request)
    try:
        context = _flow_context(sluice, key)
    except UnknownFlow:
        return render.not_found(request, f"There is no flow '{key}'.")
    if tab in ("build", "edit"):  # the author's text, where it is edited
        with sluice.db.read() as conn:
            text = flow_store.stored_source(conn, key, context["flow"]["version"])
    if tab == "build":
        context["builder"] = _builder_for(
            sluice, session, key, text, context["definition"], context["flow"]["version"]
        )
    if tab == "versions":
        context.update(_versions(sluice, key, context["flow"], a, b, show))
    if tab == "edit":
        context.update(text=text, problems=[], based_on=context["flow"]["version"])
    return render.page(request, "flow.html", tab=tab, **context)


def _builder_for(
    sluice: Sluice, session: auth.UiSession, key: str, text: str, definition, version: int
) -> dict[str, Any]:
    """The builder of a saved flow at `version`: on its draft when it has one (work on a
    draft carries on where it was left), else on that version's text."""
    with sluice.db.read() as conn:
        try:
            draft = draft_store.get_draft(conn, key)
        except draft_store.NoDraft:
            return _builder_config(sluice, session, key, text, definition.source, version=version)
    checked = editing.check(sluice, draft.source, key)
    config = _builder_config(
        sluice, session, key, draft.source, checked.document, draft, version=version
    )
    return config | {"problems": checked.problems}


def _versions(
    sluice: Sluice, key: str, flow: dict, a: int | None, b: int | None, show: int | None
) -> dict:
    """The versions tab: the diff of the texts of versions a and b, the audit log, and
    with `show` the canvas of that version (shown beside the current one)."""
    latest = flow["version"]
    b = min(b or latest, latest)
    a = min(a or max(b - 1, 1), latest)
    shown = None
    with sluice.db.read() as conn:
        rows = editing.diff_rows(
            flow_store.stored_source(conn, key, a), flow_store.stored_source(conn, key, b)
        )
        if show is not None and show <= latest:
            definition = sluice.catalog.flow(conn, key, show).tree.definition
            shown = {
                "version": show,
                "definition": definition,
                "boxes": canvas.boxes(definition.steps),
            }
    return {"a": a, "b": b, "diff": rows, "changes": sluice.flow_changes(key), "shown": shown}


@router.post("/flows/{key}/edit", form_limits=DEFINITION_FORM)
def save_flow(
    request: Request,
    key: str,
    csrf: Csrf = "",
    definition: Definition = "",
    note: Note = "",
    confirm: Annotated[str, Form(max_length=10)] = "",
    based_on: Annotated[int | None, Form(ge=1, le=flow_store.MAX_VERSION)] = None,
):
    """Save the edited definition. An edit that makes sessions send emails or webhooks
    at once (a shortened wait, a removed one) is not saved until confirmed: without
    `confirm=1` the editor comes back (409) with the numbers and a "Save and send now"
    button, which posts the same text (and note) with `confirm=1`. `based_on`: the
    version the editor opened; if another has been saved since, nothing is saved and
    the editor comes back (409) saying so, with the text as typed."""
    session = auth.check_csrf(request, csrf)
    sluice = sluice_of(request)
    try:
        context = _flow_context(sluice, key)
    except UnknownFlow:
        return render.not_found(request, f"There is no flow '{key}'.")
    context["based_on"] = based_on
    checked = editing.check(sluice, definition, key)
    if checked.problems:
        context.update(text=definition, problems=checked.problems)
        return render.page(request, "flow.html", status=422, tab="edit", **context)
    if confirm != "1":
        impact = sluice.preview(checked.document)["impact"]
        if impact["sends_at_once"]["sessions"]:
            context.update(
                text=definition,
                note=note,
                problems=[],
                impact=impact,
                confirm_sends=True,
                # The preview beside shows what would be saved, as while typing.
                definition=checked.flow,
                boxes=canvas.boxes(checked.flow.steps),
                here={},
                moves=impact["moves"],
            )
            return render.page(request, "flow.html", status=409, tab="edit", **context)
    try:
        version = editing.save(
            sluice, checked, definition, _actor(session), note or None, based_on=based_on
        )
    except VersionConflict as conflict:
        context.update(text=definition, note=note, problems=[], conflict=str(conflict))
        return render.page(request, "flow.html", status=409, tab="edit", **context)
    notice = f"Saved version {version}." if version else "No change: the text is the same."
    return render.redirect(request, f"/flows/{key}", notice)


@router.post("/flows/{key}/versions/{version}/restore")
def restore_version(
    request: Request,
    key: str,
    version: Annotated[int, Path(ge=1, le=flow_store.MAX_VERSION)],
    csrf: Csrf = "",
    note: Note = "",
    confirm: Annotated[str, Form(max_length=10)] = "",
):
    """Restore a version: first a page saying what that would do to the live sessions
    (the impact of a dry run: moves, waits that end at once and what they send), then,
    confirmed there, the restore itself."""
    session = auth.check_csrf(request, csrf)
    sluice = sluice_of(request)
    confirmed = confirm == "1"  # the page's button; anything else only asks
    try:
        context = _flow_context(sluice, key)
        restored = sluice.flow_version(key, version)
        report = sluice.restore(
            key, version, note=note or None, dry_run=not confirmed, actor=_actor(session)
        )
    except (UnknownFlow, flow_store.UnknownVersion):
        return render.not_found(request, f"Flow '{key}' has no version {version}.")
    except NoteTooLong as error:
        return refused(request, f"note: {error}")
    except DefinitionError as error:
        why = "; ".join(str(p) for p in error.problems)
        notice = f"Version {version} cannot be restored: {why}"
        return render.redirect(request, f"/flows/{key}?tab=versions", notice)
    if confirmed:
        saved = report.flows.get(key)
        notice = (
            f"Restored version {version} as version {saved}."
            if saved
            else f"Version {version} is the current text: nothing to restore."
        )
        return render.redirect(request, f"/flows/{key}?tab=versions", notice)
    places = report.blast_radius.get(key, [])
    return render.page(
        request,
        "restore.html",
        restored=restored,
        unchanged=report.flows.get(key) is None,
        moves=[p for p in places if p["step"] != p["continues_at"]],
        impact=report.impact.get(key),
        note=note,
        **context,
    )


# -- JSON for the page's scripts -------------------------------------------------------


@router.post("/ui/flows/{key}/check")
@router.post("/ui/flows/_new/check")
async def check_definition(request: Request, key: str | None = None) -> JSONResponse:
    """The editor's validation as you type: the problems, each with its line, the
    canvas of the typed definition and, for a flow being edited, what saving it does to
    its live sessions (`impact`, impact.py; ui/frontend/src/impact.js lays it out)."""
    auth.check_csrf(request, request.headers.get("x-csrf-token"))
    body = await request.body()  # at most 5 MiB (api/limits.py); the checks refuse > 1 MiB
    text = body.decode("utf-8", errors="replace")
    sluice = sluice_of(request)
    checked = editing.check(sluice, text, key)
    answer: dict[str, Any] = {"problems": checked.problems}
    if checked.flow is not None:
        preview = sluice.preview(checked.document) if key else {"blast_radius": []}
        if key:
            answer["impact"] = preview["impact"]
        answer["canvas"] = render.fragment(
            "_canvas.html",
            definition=checked.flow,
            boxes=canvas.boxes(checked.flow.steps),
            here={},
            moves=[p for p in preview["blast_radius"] if p["step"] != p["continues_at"]],
        )
    return JSONResponse(answer)


_stats: dict[str, tuple[float, dict]] = {}
_stats_lock = threading.Lock()


def _cached_stats(sluice: Sluice, key: str) -> dict:
    with _stats_lock:
        cached = _stats.get(key)
    if cached and time.monotonic() - cached[0] < STATS_SECONDS:
        return cached[1]
    stats = sluice.flow_stats(key)
    with _stats_lock:
        _stats[key] = (time.monotonic(), stats)
    return stats


@router.get("/ui/flows/{key}/live")
def live_counts(request: Request, key: str) -> Response:
    """What the canvas shows and updates: sessions at each step, their statuses, the
    per-step statistics, what is failing at each step (read each time: it is a few
    index entries), and the conversion."""
    auth.session_of(request)
    sluice = sluice_of(request)
    try:
        with sluice.db.read() as conn:
            flow, here = _flow(conn, key)
            troubles = health.by_step(conn, [key], sluice.clock.now()).get(key, {})
        stats = _cached_stats(sluice, key)
    except UnknownFlow:
        return JSONResponse({"detail": f"unknown flow '{key}'"}, status_code=404)
    return JSONResponse(
        {
            "status": flow["status"],
            "counts": flow["counts"],
            "here": here,
            "stats": {row["step"]: row for row in stats["steps"]},
            "health": {step: h.view() for step, h in troubles.items() if step is not None},
            "conversion": stats["conversion"],
            "conversion_text": conversion_text(
                stats["converted"], stats["sessions"], stats["has_goals"]
            ),
        }
    )
