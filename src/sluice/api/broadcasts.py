"""Broadcasts in the native API (docs/broadcasts.md): create (a draft, or scheduled),
list, read with progress and results, send, cancel. Previews and test sends of a
broadcast's email are `POST /api/emails/render` and `/api/emails/test` with its
`email`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, ValidationError

from sluice.api import schemas
from sluice.api.auth import actor_of, require_key, sluice_of
from sluice.api.bodies import parse_json, raw_body, refuse_nul
from sluice.api.docs import body_doc, errors_doc
from sluice.api.errors import invalid
from sluice.api.query import one_value_each
from sluice.edge import problems
from sluice.store.broadcasts import NewBroadcast

router = APIRouter(
    prefix="/api",
    tags=["Broadcasts"],
    dependencies=[Depends(require_key), Depends(one_value_each)],
)
BroadcastId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The broadcast's id.")]
Body = Annotated[bytes, Depends(raw_body)]


@router.post(
    "/broadcasts",
    status_code=201,
    response_model=schemas.Broadcast,
    responses=errors_doc(400, 401, 413, 422),
    openapi_extra=body_doc(schemas.BroadcastIn),
)
def create_broadcast(request: Request, body: Body) -> JSONResponse:
    """A broadcast: a draft, or with `send: true` scheduled at `send_at` (now when
    absent). 422 lists every problem of its email (as an email step's) and names a
    segment that does not exist; nothing is stored then."""
    document = parse_json(body)
    refuse_nul(document)
    try:
        given = schemas.BroadcastIn.model_validate(document)
    except ValidationError as error:
        raise invalid(problems(error)) from None
    new = NewBroadcast(
        name=given.name,
        email=given.email,
        segment_key=given.segment,
        inclusive_tags=given.inclusive_tags,
        exclusive_tags=given.exclusive_tags,
        local_time=given.local_time,
        per_hour=given.per_hour,
    )
    found = sluice_of(request).create_broadcast(
        new, send=given.send, send_at=given.send_at, actor=actor_of(request)
    )
    return JSONResponse(found, status_code=201)


@router.get("/broadcasts", response_model=list[schemas.Broadcast], responses=errors_doc(401))
def list_broadcasts(request: Request) -> list[dict[str, Any]]:
    """Every broadcast, newest first, with its progress and results."""
    return sluice_of(request).broadcasts()


@router.get(
    "/broadcasts/{broadcast_id}", response_model=schemas.Broadcast, responses=errors_doc(401, 404)
)
def show_broadcast(request: Request, broadcast_id: BroadcastId) -> dict[str, Any]:
    return sluice_of(request).broadcast(broadcast_id)


@router.post(
    "/broadcasts/{broadcast_id}/send",
    response_model=schemas.Broadcast,
    responses=errors_doc(401, 404, 409),
)
def send_broadcast(
    request: Request,
    broadcast_id: BroadcastId,
    send_at: Annotated[AwareDatetime | None, Query(description="Now when absent.")] = None,
) -> dict[str, Any]:
    """Schedule a draft (or move a scheduled one); 409 once it is sending."""
    return sluice_of(request).send_broadcast(broadcast_id, send_at)


@router.post(
    "/broadcasts/{broadcast_id}/cancel",
    response_model=schemas.Broadcast,
    responses=errors_doc(401, 404, 409),
)
def cancel_broadcast(request: Request, broadcast_id: BroadcastId) -> dict[str, Any]:
    """Stop it: nothing more is queued and its emails not sent yet are skipped; 409
    when it was sent or cancelled already."""
    return sluice_of(request).cancel_broadcast(broadcast_id)
