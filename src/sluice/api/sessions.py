"""Sessions, visitors and messages in the native API (SPEC §3.4)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from sluice.addresses import AddressError, visitor_email
from sluice.api import schemas
from sluice.api.auth import actor_of, require_key, sluice_of
from sluice.api.docs import errors_doc
from sluice.api.errors import invalid
from sluice.api.paging import Cursor, Limit, link_next, read_cursor
from sluice.api.query import one_value_each
from sluice.explain import UnknownStep
from sluice.store.sessions import MAX_ID

router = APIRouter(prefix="/api", dependencies=[Depends(require_key), Depends(one_value_each)])
SessionId = Annotated[int, Path(ge=1, le=MAX_ID, description="The session's id.")]
Email = Annotated[str, Path(max_length=320, description="The visitor's email.")]
Status = Literal["active", "waiting", "stopped", "completed", "exited", "failed"]
_LINK = {
    "Link": {"description": 'The next page: `<URL>; rel="next"`', "schema": {"type": "string"}}
}


# -- sessions --------------------------------------------------------------------------


@router.get(
    "/sessions",
    response_model=list[schemas.Session],
    tags=["Sessions"],
    responses=errors_doc(401, 422) | {200: {"headers": _LINK}},
)
def list_sessions(
    request: Request,
    response: Response,
    email: Annotated[str | None, Query(max_length=320)] = None,
    flow: Annotated[str | None, Query(max_length=64)] = None,
    status: Status | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> list[dict[str, Any]]:
    """Sessions, newest first, a page at a time; 422 for an `email` that is no address."""
    if email is not None:
        try:
            visitor_email(email)
        except AddressError as error:
            raise invalid([{"loc": "email", "msg": str(error)}]) from None
    rows = sluice_of(request).sessions(
        email=email, flow=flow, status=status, limit=limit, before_id=read_cursor(cursor)
    )
    link_next(request, response, rows, limit)
    return rows


@router.get(
    "/sessions/{session_id}",
    response_model=schemas.SessionWithTimeline,
    tags=["Sessions"],
    responses=errors_doc(401, 404),
)
def show_session(request: Request, session_id: SessionId) -> dict[str, Any]:
    """A session with its whole timeline."""
    return sluice_of(request).session(session_id)


@router.post(
    "/sessions/{session_id}/stop",
    response_model=schemas.SessionWithTimeline,
    tags=["Sessions"],
    responses=errors_doc(401, 404, 409),
)
def stop(request: Request, session_id: SessionId) -> dict[str, Any]:
    """Stop an active or waiting session for this visitor; it stays at its step."""
    return sluice_of(request).stop_session(session_id, actor=actor_of(request))


@router.post(
    "/sessions/{session_id}/resume",
    response_model=schemas.SessionWithTimeline,
    tags=["Sessions"],
    responses=errors_doc(401, 404, 409),
)
def resume(request: Request, session_id: SessionId) -> dict[str, Any]:
    """Resume a stopped session where it stopped."""
    return sluice_of(request).resume_session(session_id, actor=actor_of(request))


@router.post(
    "/sessions/{session_id}/retry",
    response_model=schemas.SessionWithTimeline,
    tags=["Sessions"],
    responses=errors_doc(401, 404, 409),
)
def retry(request: Request, session_id: SessionId) -> dict[str, Any]:
    """Re-run the step at which a failed session failed."""
    return sluice_of(request).retry_session(session_id, actor=actor_of(request))


# -- visitors and messages -------------------------------------------------------------


@router.get(
    "/visitors",
    response_model=list[schemas.VisitorSummary],
    tags=["Visitors"],
    responses=errors_doc(401, 422) | {200: {"headers": _LINK}},
)
def find_visitors(
    request: Request,
    response: Response,
    q: Annotated[
        str,
        Query(
            max_length=320,
            description="Search words, as in the UI's visitor search: `name:value` is a "
            'field (quote a value with spaces: `city:"New York"`), anything else a part '
            "of the email address; every word must match. Empty: every visitor.",
        ),
    ] = "",
    tag: Annotated[str, Query(max_length=200, description="A tag the visitor has.")] = "",
    limit: Limit = 100,
    cursor: Cursor = None,
) -> list[dict[str, Any]]:
    """Visitors the search finds, newest first, without their sessions and events."""
    rows = sluice_of(request).find_visitors(q, tag=tag, limit=limit, before_id=read_cursor(cursor))
    link_next(request, response, rows, limit)
    return rows


@router.get(
    "/visitors/{email}",
    response_model=schemas.Visitor,
    tags=["Visitors"],
    responses=errors_doc(401, 404),
)
def show_visitor(request: Request, email: Email) -> dict[str, Any]:
    """A visitor's profile: fields, tags, subscription, sessions, recent events."""
    return sluice_of(request).visitor(email)


@router.get(
    "/visitors/{email}/explain",
    response_model=schemas.Explanation,
    tags=["Visitors"],
    responses=errors_doc(401, 404, 422),
)
def explain_visitor(
    request: Request,
    email: Email,
    flow: Annotated[str, Query(max_length=64, description="The flow's key.")],
    step: Annotated[
        str | None, Query(max_length=200, description="One step of the flow (an email).")
    ] = None,
) -> dict[str, Any]:
    """Why the visitor got the flow, or one of its steps, or why not: never triggered,
    the trigger's condition false (with the values it read), refused by an entry rule
    (and the session that blocked it), the flow off, a goal, a branch, a skipped email,
    still waiting, failed — or received. 404 for an unknown visitor or flow, 422 for a
    step that is not in the flow."""
    try:
        return sluice_of(request).explain(email, flow, step).as_dict()
    except UnknownStep as error:
        raise invalid([{"loc": "step", "msg": str(error)}]) from None


@router.get(
    "/visitors/{email}/export",
    response_model=schemas.VisitorExport,
    tags=["Visitors"],
    responses=errors_doc(401, 404),
)
def export_visitor(request: Request, email: Email) -> dict[str, Any]:
    """Everything stored about the visitor, as one document (GDPR access)."""
    return sluice_of(request).export_visitor(email)


@router.delete(
    "/visitors/{email}",
    response_model=schemas.Erased,
    tags=["Visitors"],
    responses=errors_doc(401, 404),
)
def erase_visitor(request: Request, email: Email) -> dict[str, Any]:
    """Erase the visitor (GDPR): unfinished sessions exit, their data is deleted, and
    only a hash of the address stays so that it is never emailed again."""
    return sluice_of(request).erase_visitor(email, actor=actor_of(request))


@router.get(
    "/messages",
    response_model=list[schemas.Message],
    tags=["Visitors"],
    responses=errors_doc(401, 422) | {200: {"headers": _LINK}},
)
def messages(
    request: Request,
    response: Response,
    email: Annotated[str | None, Query(max_length=320)] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> list[dict[str, Any]]:
    """Emails (outbox, pending, sent, failed), newest first, with their rendered content
    and delivery state; of one visitor with `email`."""
    rows = sluice_of(request).messages(email=email, limit=limit, before_id=read_cursor(cursor))
    link_next(request, response, rows, limit)
    return rows
