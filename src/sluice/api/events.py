"""`POST /api/events`: one event or `{"events": [...]}` (SPEC §3.4), with the
per-item rules of Bento's batch endpoint and the native error shape."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from sluice.api import schemas
from sluice.api.auth import require_key, sluice_of
from sluice.api.batch import MAX_ITEMS, check_events, items_of
from sluice.api.bodies import parse_json, raw_body
from sluice.api.docs import body_doc, errors_doc
from sluice.api.errors import ApiError
from sluice.api.query import one_value_each

router = APIRouter(
    prefix="/api", tags=["Events"], dependencies=[Depends(require_key), Depends(one_value_each)]
)


@router.post(
    "/events",
    response_model=schemas.EventsResult,
    responses=errors_doc(400, 401, 413) | {422: {"model": schemas.EventsResult}},
    openapi_extra=body_doc(schemas.EventsBody),
    summary="Send events (they trigger flows)",
)
def send_events(request: Request, body: Annotated[bytes, Depends(raw_body)]) -> JSONResponse:
    data = parse_json(body)
    if not isinstance(data, dict):
        raise ApiError(400, 'expected an event object or {"events": [...]}')
    events = (
        items_of(data, "events", limit=MAX_ITEMS, noun="events") if "events" in data else [data]
    )
    checked = check_events(events, source="api")
    content = {
        "accepted": 0,
        "duplicates": 0,
        "failed": len(checked.invalid),
        "errors": checked.native_errors(),
        "sessions_started": [],
    }
    if checked.valid:
        result = sluice_of(request).send([event for _, event in checked.valid])
        content.update(
            accepted=result.accepted,
            duplicates=result.duplicates,
            sessions_started=result.sessions_started,
        )
    status = 422 if checked.invalid and not checked.valid else 200
    return JSONResponse(content, status_code=status)
