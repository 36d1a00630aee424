"""Pages of flows: the list (`/`), a flow's canvas, editor and versions
(`/flows/{key}`), turning flows on and off, and the live counts of the canvas."""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from sluice import health
from sluice.api.auth import sluice_of
from sluice.definitions.limits import MAX_TEXT_BYTES
from sluice.records import FlowStatus
from sluice.service import Sluice
from sluice.stats import conversion_text
from sluice.store import flows as flow_store
from sluice.store.flows import UnknownFlow
from sluice.ui import auth, canvas, editing, queries, render
from sluice.ui.errors import PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)
Csrf = Annotated[str, Form(max_length=100)]
Definition = Annotated[str, Form()]  # its size is checked with the definition (editing.check)
DEFINITION_FORM = {"max_part_size": 3 * MAX_TEXT_BYTES + 1024}
"""A form field as large as a definition may be, percent-encoded (each byte at most
three); python-multipart's default (1 MiB) would refuse a definition under its limit."""
STATS_SECONDS = 5.0
"""How long the per-step statistics of a flow are reused: they read the timelines of
every session of the flow, so many open canvases share one reading."""


def _actor(session: auth.UiSession) -> str:
    return f"ui:{session.user}"


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
def new_flow_page(request: Request) -> HTMLResponse:
    auth.session_of(request)
    return render.page(request, "editor_new.html", text=editing.NEW_FLOW, problems=[])


@router.post("/flows/_new", form_limits=DEFINITION_FORM)
def create_flow(request: Request, csrf: Csrf = "", definition: Definition = ""):
    session = auth.check_csrf(request, csrf)
    sluice = sluice_of(request)
    checked = editing.check(sluice, definition, None)
    if not checked.problems:
        editing.save(sluice, checked, _actor(session))
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
        tree = sluice.catalog.flow(conn, key, flow["version"]).tree
    return {
        "flow": flow,
        "definition": tree.definition,
        "boxes": canvas.boxes(tree.definition.steps),
        "here": here,
        "yaml": flow_store.as_yaml(tree.definition.source),
    }


@router.get("/flows/{key}")
def flow_page(
    request: Request,
    key: str,
    tab: Annotated[str, Query(pattern="^(canvas|edit|versions)$")] = "canvas",
    a: Annotated[int | None, Query(ge=1)] = None,
    b: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    auth.session_of(request)
    sluice = sluice_of(request)
    try:
        context = _flow_context(sluice, key)
    except UnknownFlow:
        return render.not_found(request, f"There is no flow '{key}'.")
    if tab == "versions":
        context.update(_versions(sluice, key, context["flow"], a, b))
    if tab == "edit":
        context.update(text=context["yaml"], problems=[])
    return render.page(request, "flow.html", tab=tab, **context)


def _versions(sluice: Sluice, key: str, flow: dict, a: int | None, b: int | None) -> dict:
    latest = flow["version"]
    b = min(b or latest, latest)
    a = min(a or max(b - 1, 1), latest)
    with sluice.db.read() as conn:
        rows = editing.diff_rows(
            flow_store.stored_definition(conn, key, a), flow_store.stored_definition(conn, key, b)
        )
    return {"a": a, "b": b, "diff": rows, "changes": sluice.flow_changes(key)}


@router.post("/flows/{key}/edit", form_limits=DEFINITION_FORM)
def save_flow(request: Request, key: str, csrf: Csrf = "", definition: Definition = ""):
    session = auth.check_csrf(request, csrf)
    sluice = sluice_of(request)
    try:
        context = _flow_context(sluice, key)
    except UnknownFlow:
        return render.not_found(request, f"There is no flow '{key}'.")
    checked = editing.check(sluice, definition, key)
    if checked.problems:
        context.update(text=definition, problems=checked.problems)
        return render.page(request, "flow.html", status=422, tab="edit", **context)
    version = editing.save(sluice, checked, _actor(session))
    notice = f"Saved version {version}." if version else "No change: the definition is the same."
    return render.redirect(request, f"/flows/{key}", notice)


# -- JSON for the page's scripts -------------------------------------------------------


@router.post("/ui/flows/{key}/check")
@router.post("/ui/flows/_new/check")
async def check_definition(request: Request, key: str | None = None) -> JSONResponse:
    """The editor's validation as you type: the problems, each with its line, and the
    canvas of the typed definition."""
    auth.check_csrf(request, request.headers.get("x-csrf-token"))
    body = await request.body()  # at most 5 MiB (api/limits.py); the checks refuse > 1 MiB
    text = body.decode("utf-8", errors="replace")
    sluice = sluice_of(request)
    checked = editing.check(sluice, text, key)
    answer: dict[str, Any] = {"problems": checked.problems}
    if checked.flow is not None:
        preview = sluice.preview(checked.document) if key else {"blast_radius": []}
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
