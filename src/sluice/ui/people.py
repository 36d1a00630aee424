"""Pages of visitors and sessions: search, the profile with its tabs and its actions
(tags, fields, subscription, export, erasure), a session's live timeline, and the
Stop Flow and Resume buttons."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Form, Header, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from sluice import narration, views
from sluice.addresses import email_key
from sluice.api import items, streams
from sluice.api.auth import sluice_of
from sluice.api.batch import ItemError
from sluice.api.items import PLAIN_COMMANDS
from sluice.api.schemas import VisitorExport
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

MAX_VALUE = 2000
"""Characters of a field value typed on the profile."""
LABELS = {"query": "{}", "query.key": "Field name", "query.value": "Value", "": "{}"}
"""How the checks of Bento's commands name a part of the form (`{}`: the tag or the
field name, by command)."""


@router.get("/visitors")
def search(
    request: Request,
    q: Annotated[str, Query(max_length=320)] = "",
    tag: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    auth.session_of(request)
    query = queries.VisitorQuery.parse(q, tag)
    with sluice_of(request).db.read() as conn:
        found, total = queries.search_visitors(conn, query, page=page)
    if total == 1 and query.emails == (q.strip(),) and email_key(found[0]["email"]) == email_key(q):
        return RedirectResponse(
            f"/visitors/{render.quote_path(found[0]['email'])}", status_code=303
        )
    pages = -(-total // queries.PAGE_SIZE)
    return render.page(
        request,
        "visitors.html",
        q=q,
        tag=query.tag,
        query=query,
        visitors=found,
        total=total,
        page=page,
        pages=pages,
        first=(page - 1) * queries.PAGE_SIZE + 1,
    )


@router.get("/visitors/{email:path}/erase")
def erase_page(request: Request, email: Annotated[str, Path(max_length=320)]) -> HTMLResponse:
    """What erasing the visitor deletes, and the button that does it."""
    auth.session_of(request)
    sluice = sluice_of(request)
    try:
        visitor, counts = sluice.visitor(email), sluice.erasure_counts(email)
    except VisitorNotFound:
        return render.not_found(request, f"No visitor has the email {email}.")
    return render.page(request, "erase.html", visitor=visitor, counts=counts)


@router.post("/visitors/{email:path}/erase")
def erase(
    request: Request,
    email: Annotated[str, Path(max_length=320)],
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    session = auth.check_csrf(request, csrf)
    try:
        result = sluice_of(request).erase_visitor(email, actor=f"ui:{session.user}")
    except VisitorNotFound:
        return render.not_found(request, f"No visitor has the email {email}.")
    exited = result["sessions_exited"]
    notice = (
        f"{email} was erased; {exited} unfinished session{'s' if exited != 1 else ''} exited. "
        "Only a hash of the address is kept, so that it is never emailed again."
    )
    return render.redirect(request, "/visitors", notice)


@router.post("/visitors/{email:path}/export")
def export(
    request: Request,
    email: Annotated[str, Path(max_length=320)],
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """The document of `GET /api/visitors/{email}/export`, as a file to save."""
    auth.check_csrf(request, csrf)
    try:
        document = sluice_of(request).export_visitor(email)
    except VisitorNotFound:
        return render.not_found(request, f"No visitor has the email {email}.")
    body = VisitorExport.model_validate(document).model_dump(mode="json", by_alias=True)
    return JSONResponse(body, headers={"Content-Disposition": _attachment(document["email"])})


def _attachment(email: str) -> str:
    """`Content-Disposition` of a visitor's export (RFC 6266): `filename` in ASCII for
    every browser, `filename*` with the address as it is (a Unicode domain, say)."""
    name = f"sluice-visitor-{email}.json"
    plain = "".join(c if c.isascii() and (c.isalnum() or c in "@.-_") else "_" for c in name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='@')}"


@router.post("/visitors/{email:path}/change")
def change(
    request: Request,
    email: Annotated[str, Path(max_length=320)],
    csrf: Annotated[str, Form(max_length=100)] = "",
    command: Annotated[str, Form(pattern="^(" + "|".join(PLAIN_COMMANDS) + ")$")] = "",
    name: Annotated[str, Form(max_length=10_000)] = "",
    value: Annotated[str, Form(max_length=100_000)] = "",
) -> Response:
    """Add or remove a tag, set or remove a field, unsubscribe or resubscribe, as
    Bento's plain command of that name (`Sluice.change_visitor`). Bad input is said on
    the profile and changes nothing."""
    session = auth.check_csrf(request, csrf)
    sluice = sluice_of(request)
    try:
        visitor = sluice.visitor(email)
    except VisitorNotFound:
        return render.not_found(request, f"No visitor has the email {email}.")
    what = "Tag" if command.endswith("_tag") else "Field name"
    try:
        if len(value) > MAX_VALUE:
            raise ItemError(("query.value", f"longer than {MAX_VALUE:,} characters"))
        query: Any = name
        if command == "add_field":
            query = {"key": name, "value": _field_value(value)}
        found = items.command({"command": command, "email": visitor["email"], "query": query})
    except ItemError as error:
        problems = [
            f"{LABELS.get(p['loc'], p['loc']).format(what)}: {p['msg']}" for p in error.problems
        ]
        return _visitor_page(
            request,
            visitor,
            error="; ".join(problems) + ". Nothing was changed.",
            status=422,
            form={"command": command, "name": name, "value": value},
        )
    try:
        started = sluice.change_visitor(found, actor=f"ui:{session.user}")
    except VisitorNotFound:  # erased meanwhile
        return render.not_found(request, f"No visitor has the email {email}.")
    notice = _DONE[command].format(name=found.name) if started is not None else "Nothing to change."
    if started:  # flows whose trigger names the change (tag_added, field_changed)
        count = len(started)
        notice += f" It started {count} flow session{'s' if count > 1 else ''}: see Flows."
    target = f"/visitors/{render.quote_path(visitor['email'])}"
    return render.redirect(request, target, notice)


_DONE = {
    "add_tag": "Tag {name} added.",
    "remove_tag": "Tag {name} removed.",
    "add_field": "Field {name} set.",
    "remove_field": "Field {name} removed.",
    "subscribe": "Resubscribed: marketing emails are sent again.",
    "unsubscribe": "Unsubscribed: only transactional emails are sent.",
}


def _field_value(text: str) -> Any:
    """A typed value: a number, `true` or `false` as such, `"quoted"` text without its
    quotes (`"007"`), anything else as the text typed."""
    try:
        value = json.loads(text) if text[:1] not in "[{" else text
    except ValueError:
        return text
    if isinstance(value, float) and not math.isfinite(value):
        return text
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return text
    return value if isinstance(value, str | int | float | bool) else text


@router.get("/visitors/{email:path}")
def visitor_page(
    request: Request,
    email: Annotated[str, Path(max_length=320)],
    tab: Annotated[str, Query(pattern="^(overview|flows|events|emails)$")] = "overview",
) -> HTMLResponse:
    auth.session_of(request)
    try:
        visitor = sluice_of(request).visitor(email)
    except VisitorNotFound:
        return render.not_found(request, f"No visitor has the email {email}.")
    return _visitor_page(request, visitor, tab=tab)


def _visitor_page(
    request: Request,
    visitor: dict[str, Any],
    *,
    tab: str = "overview",
    error: str | None = None,
    status: int = 200,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    sluice = sluice_of(request)
    messages, opened = [], {}
    if tab == "emails":
        with sluice.db.read() as conn:
            messages = views.list_messages(conn, email=visitor["email"], limit=50)
            opened = queries.engagement(conn, messages)
    events = [{**e, "summary": summary(e)} for e in visitor["events"]]
    flows = flow_choices(sluice) if tab == "flows" else []
    return render.page(
        request,
        "visitor.html",
        status=status,
        visitor=visitor,
        events=events,
        tab=tab,
        tabs=TABS,
        messages=messages,
        engagement=opened,
        flows=flows,
        error=error,
        form=form or {},
    )


SUMMARY_VALUE = 60
"""Characters of one value in an event's summary."""


def summary(event: dict[str, Any], *, pairs: int = 6) -> str:
    """An event's details, then the fields it set, as short `key: value` text by key
    (`items: 3 · plan: pro · fields.plan: trial`: a field is named as such, since a
    detail may have the same name); long values are cut with `…`, and after `pairs`
    pairs comes `+N more`."""
    # By name: PostgreSQL's JSONB keeps no order of keys.
    fields = sorted((event["fields"] or {}).items())
    found = [*sorted((event["details"] or {}).items()), *((f"fields.{k}", v) for k, v in fields)]
    parts = []
    for key, value in found[:pairs]:
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        if len(text) > SUMMARY_VALUE:
            text = text[: SUMMARY_VALUE - 1] + "…"
        parts.append(f"{key}: {text}")
    if len(found) > pairs:
        parts.append(f"+{len(found) - pairs} more")
    return " · ".join(parts)


# -- sessions --------------------------------------------------------------------------


def _session_context(sluice: Sluice, session_id: int) -> dict:
    now = sluice.clock.now()
    with sluice.db.read() as conn:
        session = views.session_views(conn, [session_store.get(conn, session_id)])[0]
        entries = views.timeline_since(conn, session_id, 0, limit=2000)
        lines = narration.session_lines(conn, session, entries, now)
    after = entries[-1][0] if entries else 0
    return {"session": session, "lines": lines, "after": after, "now": now}


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


@router.post("/sessions/{session_id}/stop")
@router.post("/sessions/{session_id}/resume")
@router.post("/sessions/{session_id}/retry")
def act(
    request: Request,
    session_id: SessionId,
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Stop, resume or retry (a failed one) the session; then back to the session's
    page, or to `next` (the visitor's Flows tab, where each unfinished session has its
    Stop Flow button)."""
    session = auth.check_csrf(request, csrf)
    sluice = sluice_of(request)
    action = request.url.path.rsplit("/", 1)[1]
    operation, verb, notice = _ACTIONS[action]
    try:
        getattr(sluice, operation)(session_id, actor=f"ui:{session.user}")
    except SessionNotFound:
        return _session_page(request, session_id)
    except InvalidSessionState:
        current = sluice.session(session_id)["status"]
        message = (
            f"This session is already {current}, so it cannot be {verb}. "
            "The page was out of date; below is the session as it is now."
        )
        return _session_page(request, session_id, error=message, status=409)
    return render.redirect(request, auth.safe_next(next or f"/sessions/{session_id}"), notice)


# What each button of a session does: (Sluice method, past participle, notice).
_ACTIONS = {
    "stop": ("stop_session", "stopped", "Session stopped: it stays at its step until resumed."),
    "resume": ("resume_session", "resumed", "Session resumed where it stopped."),
    "retry": (
        "retry_session",
        "retried",
        "Retrying: the step at which the session failed runs again.",
    ),
}


@router.get("/ui/sessions/{session_id}/stream")
async def session_stream(
    request: Request,
    session_id: SessionId,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> Response:
    """The session's new timeline lines, rendered: one message per batch,
    `{"rows": HTML, "header": HTML}` with `id:` its last entry's id; the header comes
    with every batch, read with it, so it never lags behind the timeline."""
    csrf = auth.session_of(request).csrf
    sluice = sluice_of(request)
    await run_in_threadpool(sluice.session, session_id)  # 404 for an unknown session

    def read(position: int) -> tuple[list[bytes], int]:
        now = sluice.clock.now()
        with sluice.db.read() as conn:
            # From the entry shown last, so that a `step` it began folds into what follows.
            entries = views.timeline_since(conn, session_id, max(position - 1, 0))
            before = entries.pop(0) if entries and entries[0][0] == position else None
            if not entries:
                return [], position
            session = views.session_views(conn, [session_store.get(conn, session_id)])[0]
            lines = narration.session_lines(conn, session, entries, now, before=before)
        rows = render.fragment("_timeline_lines.html", lines=lines, now=now)
        header = render.fragment("_session_header.html", session=session, csrf=csrf, now=now)
        data = {"rows": rows, "header": header}
        return [streams.message(str(entries[-1][0]), "timeline", data)], entries[-1][0]

    return streams.sse(request, read, streams.start_after(after, last_event_id))
