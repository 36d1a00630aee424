"""Pages of visitors and sessions: search, the profile with its tabs, a session's
live timeline, and the Stop Flow and Resume buttons."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Header, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sluice import views
from sluice.addresses import email_key
from sluice.api import streams
from sluice.api.auth import sluice_of
from sluice.service import Sluice, VisitorNotFound
from sluice.store import sessions as session_store
from sluice.store.sessions import MAX_ID, InvalidSessionState, SessionNotFound
from sluice.ui import auth, queries, render
from sluice.ui.errors import PageRoute
from sluice.ui.explain import flow_choices

router = APIRouter(include_in_schema=False, route_class=PageRoute)
SessionId = Annotated[int, Path(ge=1, le=MAX_ID)]
TABS = ("overview", "flows", "events", "emails")


# -- visitors --------------------------------------------------------------------------


@router.get("/visitors")
def search(request: Request, q: Annotated[str, Query(max_length=320)] = "") -> Response:
    auth.session_of(request)
    with sluice_of(request).db.read() as conn:
        found = queries.search_visitors(conn, q)
    if len(found) == 1 and email_key(found[0]["email"]) == email_key(q):
        return RedirectResponse(
            f"/visitors/{render.quote_path(found[0]['email'])}", status_code=303
        )
    return render.page(request, "visitors.html", q=q, visitors=found)


@router.get("/visitors/{email:path}")
def visitor_page(
    request: Request,
    email: Annotated[str, Path(max_length=320)],
    tab: Annotated[str, Query(pattern="^(overview|flows|events|emails)$")] = "overview",
) -> HTMLResponse:
    auth.session_of(request)
    sluice = sluice_of(request)
    try:
        visitor = sluice.visitor(email)
    except VisitorNotFound:
        return render.not_found(request, f"No visitor has the email {email}.")
    messages = sluice.messages(email=email, limit=50) if tab == "emails" else []
    flows = flow_choices(sluice) if tab == "flows" else []
    return render.page(
        request,
        "visitor.html",
        visitor=visitor,
        tab=tab,
        tabs=TABS,
        messages=messages,
        flows=flows,
    )


# -- sessions --------------------------------------------------------------------------


def _session_context(sluice: Sluice, session_id: int) -> dict:
    with sluice.db.read() as conn:
        session = views.session_views(conn, [session_store.get(conn, session_id)])[0]
        entries = views.timeline_since(conn, session_id, 0, limit=2000)
    return {"session": session, "entries": entries}


def _session_page(request: Request, session_id: int, *, error: str | None = None, status=200):
    try:
        context = _session_context(sluice_of(request), session_id)
    except SessionNotFound:
        return render.not_found(request, f"There is no session {session_id}.")
    return render.page(request, "session.html", status=status, error=error, **context)


@router.get("/sessions/{session_id}")
def session_page(request: Request, session_id: SessionId) -> HTMLResponse:
    auth.session_of(request)
    return _session_page(request, session_id)


@router.get("/ui/sessions/{session_id}/header")
def session_header(request: Request, session_id: SessionId) -> HTMLResponse:
    """The session's status and buttons, re-read when its timeline changes."""
    session = auth.session_of(request)
    with sluice_of(request).db.read() as conn:
        view = views.session_views(conn, [session_store.get(conn, session_id)])[0]
    return HTMLResponse(render.fragment("_session_header.html", session=view, csrf=session.csrf))


@router.post("/sessions/{session_id}/stop")
@router.post("/sessions/{session_id}/resume")
def act(
    request: Request, session_id: SessionId, csrf: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    session = auth.check_csrf(request, csrf)
    sluice = sluice_of(request)
    stopping = request.url.path.endswith("/stop")
    operation = sluice.stop_session if stopping else sluice.resume_session
    try:
        operation(session_id, actor=f"ui:{session.user}")
    except SessionNotFound:
        return _session_page(request, session_id)
    except InvalidSessionState:
        current = sluice.session(session_id)["status"]
        verb = "stopped" if stopping else "resumed"
        message = (
            f"This session is already {current}, so it cannot be {verb}. "
            "The page was out of date; below is the session as it is now."
        )
        return _session_page(request, session_id, error=message, status=409)
    notice = (
        "Session stopped: it stays at its step until resumed."
        if stopping
        else "Session resumed where it stopped."
    )
    return render.redirect(request, f"/sessions/{session_id}", notice)


@router.get("/ui/sessions/{session_id}/stream")
async def session_stream(
    request: Request,
    session_id: SessionId,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> Response:
    """The API's timeline stream, for a logged-in person."""
    auth.session_of(request)
    return await streams.session_stream(request, session_id, after, last_event_id)
