"""Bento's API under `/api/v1` (SPEC §3.3), so that apps and SDKs wired to Bento work
by changing only their base URL.

Every route checks HTTP Basic credentials and the `site_uuid`; batches keep their valid
items and report each invalid one by index and field (422 only when none is valid).
Imports and plain commands change visitors without events, so they never trigger
flows; events (and `add_tag_via_event`) go through the same ingestion as all events.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from sluice.api import items, schemas
from sluice.api.auth import check_site, require_bento_key, sluice_of
from sluice.api.batch import MAX_ITEMS, Checked, ItemError, check_each, check_events, items_of
from sluice.api.bodies import parse_json, raw_body
from sluice.api.docs import body_doc, errors_doc
from sluice.api.errors import ApiError
from sluice.definitions.problems import DefinitionError
from sluice.service import VisitorNotFound

router = APIRouter(
    prefix="/api/v1", tags=["Bento-compatible"], dependencies=[Depends(require_bento_key)]
)
Body = Annotated[bytes, Depends(raw_body)]
_BATCH = errors_doc(400, 401, 413, bento=True) | {422: {"model": schemas.BatchResult}}
_SINGLE = errors_doc(400, 401, 413, 422, bento=True)


def _read(request: Request, body: bytes) -> Any:
    check_site_in_query = request.query_params.get("site_uuid") is not None
    if check_site_in_query:
        check_site(request)
    data = parse_json(body)
    if not check_site_in_query:
        check_site(request, data)
    return data


def _batch_response(checked: Checked, accepted: int) -> JSONResponse:
    content = {
        "results": accepted,
        "failed": len(checked.invalid),
        "errors": checked.bento_errors(),
    }
    return JSONResponse(content, status_code=200 if accepted or not checked.invalid else 422)


def _single(data: Any, key: str, check) -> Any:
    """`data[key]` checked by `check`; 400 when missing, 422 when invalid."""
    if not isinstance(data, dict) or not isinstance(data.get(key), dict):
        raise ApiError(400, f'expected a JSON object with "{key}": {{...}}')
    try:
        return check(data[key])
    except ItemError as error:
        raise ApiError(422, f"{key}: {error}") from None


# -- events and imports ----------------------------------------------------------------


@router.post(
    "/batch/events",
    response_model=schemas.BatchResult,
    responses=_BATCH,
    openapi_extra=body_doc(schemas.BentoEventsBody),
    summary="Import events (they trigger flows)",
)
def batch_events(request: Request, body: Body) -> JSONResponse:
    data = _read(request, body)
    events = items_of(data, "events", limit=MAX_ITEMS, noun="events")
    checked = check_events(events, source="api", prepare=items.bento_event)
    accepted = 0
    if checked.valid:
        result = sluice_of(request).send([event for _, event in checked.valid])
        accepted = result.accepted + result.duplicates
    return _batch_response(checked, accepted)


@router.post(
    "/batch/subscribers",
    response_model=schemas.BatchResult,
    responses=_BATCH,
    openapi_extra=body_doc(schemas.BentoSubscribersBody),
    summary="Import subscribers (no events, no flows unless start_flows)",
)
def batch_subscribers(request: Request, body: Body) -> JSONResponse:
    data = _read(request, body)
    rows = items_of(data, "subscribers", limit=MAX_ITEMS, noun="subscribers")
    start_flows = data.get("start_flows", False)
    if not isinstance(start_flows, bool):
        raise ApiError(400, '"start_flows" must be true or false')
    checked = check_each(rows, items.subscriber_import)
    if checked.valid:
        imported = [row for _, row in checked.valid]
        sluice_of(request).audience.import_subscribers(imported, start_flows=start_flows)
    return _batch_response(checked, len(checked.valid))


@router.post(
    "/fetch/commands",
    response_model=schemas.BatchResult,
    responses=_BATCH,
    openapi_extra=body_doc(schemas.BentoCommandsBody),
    summary="Run commands (only add_tag_via_event records an event)",
)
def commands(request: Request, body: Body) -> JSONResponse:
    data = _read(request, body)
    if not isinstance(data, dict) or "command" not in data:
        raise ApiError(400, 'expected a JSON object with "command": {...} or [...]')
    given = data["command"]
    listed = items_of(
        {"command": given if isinstance(given, list) else [given]},
        "command",
        limit=MAX_ITEMS,
        noun="commands",
    )
    checked = check_each(listed, items.command)
    failures = sluice_of(request).audience.run_commands(checked.valid) if checked.valid else {}
    for index, why in failures.items():
        checked.add_problems(index, [{"loc": "", "msg": why}])
    return _batch_response(checked, len(checked.valid) - len(failures))


@router.post(
    "/batch/emails",
    response_model=schemas.BatchResult,
    responses=_BATCH,
    openapi_extra=body_doc(schemas.BentoEmailsBody),
    summary="Send emails through the outbox or SMTP",
)
def batch_emails(request: Request, body: Body) -> JSONResponse:
    data = _read(request, body)
    emails = items_of(data, "emails", limit=100, noun="emails")
    checked = check_each(emails, items.transactional_email)
    failures = sluice_of(request).audience.send_emails(checked.valid) if checked.valid else {}
    for index, why in failures.items():
        checked.add_problems(index, [{"loc": "", "msg": why}])
    return _batch_response(checked, len(checked.valid) - len(failures))


@router.post(
    "/batch/broadcasts",
    response_model=schemas.BentoBroadcastsResult,
    responses=_BATCH,
    openapi_extra=body_doc(schemas.BentoBroadcastsBody),
    summary="Create broadcasts (drafts, or sent when approved)",
)
def batch_broadcasts(request: Request, body: Body) -> dict[str, Any]:
    """Bento's `Broadcasts.createBroadcast`. An `approved` broadcast is scheduled at
    its `send_at` (now when absent); the others are drafts, sent from the UI or the
    native API. Each invalid one is a failure; the others are created."""
    data = _read(request, body)
    rows = items_of(data, "broadcasts", limit=100, noun="broadcasts")
    checked = check_each(rows, items.bento_broadcast)
    failures = [
        {"index": e["index"], "name": _name_of(rows[e["index"]]), "error": e["error"]}
        for e in checked.bento_errors()
    ]
    sluice = sluice_of(request)
    dashboard = f"{sluice.settings.public_url.rstrip('/')}/broadcasts"
    created = []
    for index, item in checked.valid:
        try:
            found = sluice.create_broadcast(
                item.broadcast, send=item.send, send_at=item.send_at, actor="api"
            )
        except DefinitionError as error:
            failures.append({"index": index, "name": item.broadcast.name, "error": str(error)})
            continue
        created.append(
            {
                "id": found["id"],
                "template_id": found["id"],
                "name": found["name"],
                "dashboard_url": f"{dashboard}/{found['id']}",
            }
        )
    failures.sort(key=lambda f: f["index"])
    return {
        "results": len(created),
        "failed": len(failures),
        "broadcasts": created,
        "failures": failures,
    }


def _name_of(row: Any) -> str | None:
    name = row.get("name") if isinstance(row, dict) else None
    return name if isinstance(name, str) else None


@router.get(
    "/fetch/broadcasts",
    response_model=schemas.BentoBroadcastList,
    responses=_SINGLE,
    summary="Broadcasts",
)
def get_broadcasts(request: Request, site_uuid: Annotated[str | None, Query()] = None) -> dict:
    """Bento's `Broadcasts.getBroadcasts`: every broadcast, newest first."""
    check_site(request)
    return {"data": [items.broadcast_view(b) for b in sluice_of(request).broadcasts()]}


@router.post(
    "/data_deletion_requests",
    response_model=schemas.BatchResult,
    responses=_SINGLE,
    openapi_extra=body_doc(schemas.BentoDeletionBody),
    summary="Erase a visitor (GDPR)",
)
def data_deletion(request: Request, body: Body) -> dict[str, Any]:
    data = _read(request, body)
    email = _single(data, "data_deletion_request", lambda d: items.email_of(d, "email"))
    try:
        sluice_of(request).erase_visitor(email, actor="api")
    except VisitorNotFound:
        return {"results": 0}
    return {"results": 1}


# -- subscribers -----------------------------------------------------------------------


@router.get(
    "/fetch/subscribers",
    response_model=schemas.SubscriberEnvelope,
    response_model_exclude_none=True,
    responses=_SINGLE,
    summary="Find a subscriber by email or uuid",
)
def get_subscriber(
    request: Request,
    email: Annotated[str | None, Query(max_length=320)] = None,
    uuid: Annotated[str | None, Query(max_length=36)] = None,
    site_uuid: Annotated[str | None, Query()] = None,
) -> JSONResponse:
    check_site(request)
    if not email and not uuid:
        raise ApiError(400, "give email or uuid")
    found = sluice_of(request).audience.subscriber(email=email, uuid=uuid)
    return JSONResponse(items.subscriber_view(*found) if found else {})


@router.post(
    "/fetch/subscribers",
    response_model=schemas.SubscriberEnvelope,
    status_code=201,
    responses=_SINGLE | {200: {"model": schemas.SubscriberEnvelope}},
    openapi_extra=body_doc(schemas.BentoCreateSubscriberBody),
    summary="Create a subscriber (201; 200 when it existed)",
)
def create_subscriber(request: Request, body: Body) -> JSONResponse:
    data = _read(request, body)
    email = _single(data, "subscriber", lambda d: items.email_of(d, "email"))
    audience = sluice_of(request).audience
    created = audience.create_subscriber(email)
    view = items.subscriber_view(*audience.subscriber(email=email))
    return JSONResponse(view, status_code=201 if created else 200)


# -- registries and workflows ----------------------------------------------------------


@router.get("/fetch/tags", response_model=schemas.TagList, responses=_SINGLE, summary="Tags")
def get_tags(request: Request, site_uuid: Annotated[str | None, Query()] = None) -> dict:
    check_site(request)
    return {"data": [items.tag_view(r) for r in sluice_of(request).audience.tags()]}


@router.post(
    "/fetch/tags",
    response_model=schemas.TagList,
    status_code=201,
    responses=_SINGLE | {200: {"model": schemas.TagList}},
    openapi_extra=body_doc(schemas.BentoTagBody),
    summary="Create a tag (201; 200 when it existed)",
)
def create_tag(request: Request, body: Body) -> JSONResponse:
    data = _read(request, body)
    name = _single(data, "tag", lambda d: items.name_of(d.get("name"), "name"))
    row, created = sluice_of(request).audience.create_tag(name)
    return JSONResponse({"data": [items.tag_view(row)]}, status_code=201 if created else 200)


@router.delete(
    "/fetch/tags/{tag_id}",
    response_model=schemas.TagDeleted,
    responses=_SINGLE | {404: {"model": schemas.BentoError}},
    openapi_extra=body_doc(schemas.BentoTagBody),
    summary="Delete a tag, from every subscriber too",
)
def delete_tag(request: Request, tag_id: str, body: Body) -> dict:
    data = _read(request, body)
    name = _single(data, "tag", lambda d: items.name_of(d.get("name"), "name"))
    number = int(tag_id) if tag_id.isdigit() and len(tag_id) < 19 else None
    taken = None if number is None else sluice_of(request).audience.delete_tag(number, name)
    if taken is None:
        raise ApiError(404, f"no tag with id {tag_id!r} named {name!r}")
    return {"message": f"Tag {name} deleted; {taken} subscriber(s) had it"}


@router.get(
    "/stats/site", response_model=schemas.SiteStats, responses=_SINGLE, summary="Visitor counts"
)
def get_site_stats(request: Request, site_uuid: Annotated[str | None, Query()] = None) -> dict:
    check_site(request)
    return sluice_of(request).audience.site_stats()


@router.get(
    "/stats/segment",
    response_model=schemas.SiteStats,
    responses=_SINGLE | {404: {"model": schemas.BentoError}},
    summary="Member counts of a segment",
)
def get_segment_stats(
    request: Request,
    segment_id: Annotated[str, Query(max_length=64, description="The segment's key.")],
    site_uuid: Annotated[str | None, Query()] = None,
) -> dict:
    """`{user_count, subscriber_count, unsubscriber_count}` of the segment's members
    (Bento's `Stats.getSegmentStats`; the segment id is Sluice's segment key)."""
    check_site(request)
    return sluice_of(request).audience.segment_stats(segment_id)


@router.get("/fetch/fields", response_model=schemas.FieldList, responses=_SINGLE, summary="Fields")
def get_fields(request: Request, site_uuid: Annotated[str | None, Query()] = None) -> dict:
    check_site(request)
    return {"data": [items.field_view(r) for r in sluice_of(request).audience.fields()]}


@router.post(
    "/fetch/fields",
    response_model=schemas.FieldList,
    status_code=201,
    responses=_SINGLE | {200: {"model": schemas.FieldList}},
    openapi_extra=body_doc(schemas.BentoFieldBody),
    summary="Create a field (201; 200 when it existed)",
)
def create_field(request: Request, body: Body) -> JSONResponse:
    data = _read(request, body)
    key = _single(data, "field", lambda d: items.name_of(d.get("key"), "key"))
    row, created = sluice_of(request).audience.create_field(key)
    return JSONResponse({"data": [items.field_view(row)]}, status_code=201 if created else 200)


@router.get(
    "/fetch/workflows",
    response_model=schemas.WorkflowList,
    responses=_SINGLE,
    summary="Flows, as Bento's workflows (on = live)",
)
def get_workflows(
    request: Request,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    site_uuid: Annotated[str | None, Query()] = None,
) -> dict:
    check_site(request)
    if page > 1:
        return {"data": []}  # every flow is on the first page
    sluice = sluice_of(request)
    return {"data": [items.workflow_view(w, sluice) for w in sluice.audience.workflows()]}
