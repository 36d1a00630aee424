"""The outbox (emails as rendered) and the activity feed."""

from __future__ import annotations

from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import default
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, Response

from sluice import views
from sluice.api import streams
from sluice.api.auth import sluice_of
from sluice.delivery.email import InvalidMessage, build_message
from sluice.store.sessions import MAX_ID
from sluice.ui import auth, queries, render
from sluice.ui.errors import PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)
PAGE = 50
_MIME_HEADERS = {"Content-Type", "Content-Transfer-Encoding", "MIME-Version"}


def _headers(message: dict) -> list[tuple[str, str]]:
    """The headers the email has (or will have) when sent, tracking aside."""
    date = datetime.fromisoformat(message["created_at"]).astimezone(UTC)
    try:
        built = build_message(message["payload"], date=date, tracker=None)
    except InvalidMessage as error:
        return [("Error", str(error))]
    headers = BytesHeaderParser(policy=default).parsebytes(built.data)
    return [(name, str(value)) for name, value in headers.items() if name not in _MIME_HEADERS]


@router.get("/outbox")
def outbox(
    request: Request,
    email: Annotated[str, Query(max_length=320)] = "",
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> HTMLResponse:
    auth.session_of(request)
    messages = sluice_of(request).messages(
        email=email.strip() or None, limit=PAGE + 1, before_id=before
    )
    more = len(messages) > PAGE
    messages = messages[:PAGE]
    selected = next((m for m in messages if m["id"] == id), messages[0] if messages else None)
    return render.page(
        request,
        "outbox.html",
        email=email.strip(),
        messages=messages,
        selected=selected,
        headers=_headers(selected) if selected else [],
        next_before=messages[-1]["id"] if more else None,
    )


@router.get("/activity")
def activity(request: Request) -> HTMLResponse:
    auth.session_of(request)
    with sluice_of(request).db.read() as conn:
        last_event, last_entry = views.latest_activity(conn)
        items = queries.recent_activity(conn, limit=PAGE)
    # The stream goes on from what the page shows, so nothing falls in between.
    after = f"e{last_event}.t{last_entry}"
    return render.page(request, "activity.html", items=items, after=after)


@router.get("/ui/activity/stream")
async def activity_stream(
    request: Request,
    after: Annotated[str | None, Query(max_length=60)] = None,
    last_event_id: Annotated[str | None, Header(max_length=60)] = None,
) -> Response:
    """The API's activity stream, for a logged-in person; `after` (`e12.t34`, as the
    page gives it) is where it starts unless the browser reconnects with its own."""
    auth.session_of(request)
    return await streams.activity_stream(request, last_event_id or after)
