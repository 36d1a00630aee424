"""Segments in the native API (docs/segments.md, docs/api.md): list with member counts,
one with its rules and audit log, save, its members a page at a time, and the count
a document would hold (the editor's live preview)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from sluice.api import schemas
from sluice.api.auth import actor_of, require_key, sluice_of
from sluice.api.bodies import parse_document, raw_body
from sluice.api.docs import body_doc, errors_doc
from sluice.api.errors import invalid
from sluice.api.flows import Note, definition_of
from sluice.api.query import one_value_each

router = APIRouter(
    prefix="/api",
    tags=["Segments"],
    dependencies=[Depends(require_key), Depends(one_value_each)],
)
SegmentKey = Annotated[str, Path(max_length=64, description="The segment's key (a slug).")]
Body = Annotated[bytes, Depends(raw_body)]
MAX_PAGE = 1000


@router.get("/segments", response_model=list[schemas.SegmentSummary], responses=errors_doc(401))
def list_segments(request: Request) -> list[dict[str, Any]]:
    """Every segment, by name, with how many visitors are in it."""
    return sluice_of(request).segments()


@router.get("/segments/{key}", response_model=schemas.Segment, responses=errors_doc(401, 404))
def show_segment(request: Request, key: SegmentKey) -> dict[str, Any]:
    return sluice_of(request).segment(key)


@router.put(
    "/segments/{key}",
    response_model=schemas.Segment,
    responses=errors_doc(400, 401, 413, 422) | {201: {"model": schemas.Segment}},
    openapi_extra=body_doc(schemas.SegmentDoc, yaml=True),
)
def save_segment(request: Request, key: SegmentKey, body: Body, note: Note = None) -> JSONResponse:
    """Save a segment (JSON or YAML): a new version when it changed (201 when new).
    Every visitor's membership is decided again; the entries and exits are recorded in
    their histories but start no flows (a change of rules is not something they did)."""
    document, text = definition_of(request, body, key, kind="segment")
    if document["kind"] != "segment":
        raise invalid([{"loc": "kind", "msg": f"expected 'segment', found {document['kind']!r}"}])
    sluice = sluice_of(request)
    report = sluice.apply([("segment", document)], texts=[text], note=note, actor=actor_of(request))
    created = report.segments.get(key) == 1
    return JSONResponse(sluice.segment(key), status_code=201 if created else 200)


@router.get(
    "/segments/{key}/members",
    response_model=list[schemas.SegmentMember],
    responses=errors_doc(401, 404),
)
def segment_members(
    request: Request,
    key: SegmentKey,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    after: Annotated[
        int | None, Query(ge=0, description="The last `id` of the page before.")
    ] = None,
) -> list[dict[str, Any]]:
    """The segment's members by visitor id, a page at a time."""
    return sluice_of(request).segment_members(key, limit=limit, after_id=after)


@router.post(
    "/segments/preview",
    response_model=schemas.SegmentPreview,
    responses=errors_doc(400, 401, 413, 422),
    openapi_extra=body_doc(schemas.SegmentDoc, yaml=True),
)
def preview_segment(request: Request, body: Body) -> dict[str, Any]:
    """How many visitors a segment document would hold now; nothing is saved."""
    document = parse_document(body, request.headers.get("content-type"))
    document.setdefault("kind", "segment")
    document.setdefault("key", "preview")
    return sluice_of(request).preview_segment(document)
