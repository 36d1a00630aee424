"""Flows and email templates in the native API (SPEC §3.4): definitions, on/off,
stats, simulation, the blast radius of an edit, and the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from sluice.api import schemas
from sluice.api.auth import require_key, sluice_of
from sluice.api.bodies import (
    parse_document,
    parse_documents,
    parse_json,
    raw_body,
    refuse_nul,
)
from sluice.api.docs import body_doc, errors_doc
from sluice.api.errors import invalid
from sluice.api.query import one_value_each
from sluice.definitions.problems import DefinitionError
from sluice.edge import problems
from sluice.records import FlowStatus

router = APIRouter(prefix="/api", dependencies=[Depends(require_key), Depends(one_value_each)])
Key = Annotated[str, Path(max_length=64, description="The flow's key (a slug).")]
TemplateKey = Annotated[str, Path(max_length=64, description="The template's key (a slug).")]
Body = Annotated[bytes, Depends(raw_body)]
ACTOR = "api"

_DEFINITION = body_doc(schemas.FlowDefinitionDoc, yaml=True)


def _definition(request: Request, body: bytes, key: str, *, template: bool = False) -> dict:
    """The body as one definition whose key is the URL's (filled in when absent)."""
    document = parse_document(body, request.headers.get("content-type"))
    document.setdefault("key", key)
    if document["key"] != key:
        raise invalid(
            [{"loc": "key", "msg": f"the body's key {document['key']!r} is not the URL's {key!r}"}]
        )
    is_template = document.get("kind") == "template"
    if template:
        document.setdefault("kind", "template")
    elif is_template:
        raise invalid([{"loc": "kind", "msg": "a template: use PUT /api/templates/{key}"}])
    return document


# -- flows -----------------------------------------------------------------------------


@router.get(
    "/flows", response_model=list[schemas.FlowSummary], tags=["Flows"], responses=errors_doc(401)
)
def list_flows(request: Request) -> list[dict[str, Any]]:
    """Every flow with its status, current version and sessions by status."""
    return sluice_of(request).list_flows()


@router.get(
    "/flows/{key}",
    response_model=schemas.Flow,
    tags=["Flows"],
    responses=errors_doc(401, 404),
)
def show_flow(request: Request, key: Key) -> dict[str, Any]:
    """A flow: definition, status, versions."""
    return sluice_of(request).show_flow(key)


@router.put(
    "/flows/{key}",
    response_model=schemas.Flow,
    tags=["Flows"],
    responses=errors_doc(400, 401, 413, 422) | {201: {"model": schemas.Flow}},
    openapi_extra=_DEFINITION,
)
def save_flow(request: Request, key: Key, body: Body) -> JSONResponse:
    """Save a definition (JSON, or YAML with `Content-Type: application/yaml`): a new
    version when it changed; 201 when the flow is new. 422 lists every problem."""
    document = _definition(request, body, key)
    sluice = sluice_of(request)
    report = sluice.apply([("definition", document)], actor=ACTOR)
    view = sluice.show_flow(key)
    created = report.flows.get(key) == 1
    return JSONResponse(view, status_code=201 if created else 200)


def _switch(request: Request, key: str, status: FlowStatus) -> dict[str, Any]:
    return sluice_of(request).set_flow_status(key, status, actor=ACTOR)


@router.post(
    "/flows/{key}/on",
    response_model=schemas.FlowSummary,
    tags=["Flows"],
    responses=errors_doc(401, 404),
)
def turn_on(request: Request, key: Key) -> dict[str, Any]:
    """Turn a flow on: new sessions start; paused and stopped sessions resume."""
    return _switch(request, key, FlowStatus.ON)


@router.post(
    "/flows/{key}/off",
    response_model=schemas.FlowSummary,
    tags=["Flows"],
    responses=errors_doc(401, 404),
)
def turn_off(request: Request, key: Key) -> dict[str, Any]:
    """Turn a flow off: its sessions pause where they are."""
    return _switch(request, key, FlowStatus.OFF)


@router.get(
    "/flows/{key}/stats",
    response_model=schemas.FlowStats,
    tags=["Flows"],
    responses=errors_doc(401, 404),
)
def flow_stats(request: Request, key: Key) -> dict[str, Any]:
    """Per step: sessions there now, entered, and what deliveries did; goals, conversion."""
    return sluice_of(request).flow_stats(key)


@router.get(
    "/flows/{key}/changes",
    response_model=list[schemas.Change],
    tags=["Flows"],
    responses=errors_doc(401, 404),
)
def flow_changes(request: Request, key: Key) -> list[dict[str, Any]]:
    """The audit log: every version and every on/off, with who, when and the diff."""
    return sluice_of(request).flow_changes(key)


@router.post(
    "/flows/{key}/preview",
    response_model=schemas.Preview,
    tags=["Flows"],
    responses=errors_doc(400, 401, 413, 422),
    openapi_extra=_DEFINITION,
)
def preview(request: Request, key: Key, body: Body) -> dict[str, Any]:
    """What saving this definition would do: its problems, and for every step where
    sessions are now, how many and where they would continue. Nothing is saved."""
    document = _definition(request, body, key)
    try:
        return sluice_of(request).preview(document)
    except DefinitionError as error:
        return {"problems": [p.as_dict() for p in error.problems], "blast_radius": []}


@router.post(
    "/flows/{key}/simulate",
    response_model=schemas.Simulation,
    tags=["Flows"],
    responses=errors_doc(400, 401, 404, 413, 422),
    openapi_extra=body_doc(schemas.SimulationIn),
)
def simulate(request: Request, key: Key, body: Body) -> dict[str, Any]:
    """Run the flow (or the `definition` given) against a scripted visitor on a
    virtual clock: the timeline that would happen. Nothing is stored or sent."""
    from sluice.simulate import ScriptError, simulate_flow

    script = parse_json(body)
    refuse_nul(script)
    try:
        schemas.SimulationIn.model_validate(script)
    except ValidationError as error:
        raise invalid(problems(error)) from None
    sluice = sluice_of(request)
    document = script.get("definition")
    if document is None:
        document = sluice.show_flow(key)["definition"]
    else:
        document = dict(document, key=document.get("key", key))
    script = {k: v for k, v in script.items() if k != "definition"}
    try:
        return simulate_flow([("definition", document)], script, stored=sluice)
    except (ScriptError, OverflowError) as error:
        raise invalid([{"loc": "events", "msg": str(error)}]) from None


@router.post(
    "/apply",
    response_model=schemas.ApplyReport,
    tags=["Flows"],
    responses=errors_doc(400, 401, 413, 422),
    openapi_extra=body_doc(schemas.ApplyBody, yaml=True),
)
def apply_documents(
    request: Request, body: Body, dry_run: Annotated[bool, Query()] = False
) -> dict[str, Any]:
    """Validate and save flow and template documents together, as `sluice flows apply`
    does: templates first, a new version only where something changed, and for every
    flow where its live sessions would continue. `dry_run=true` saves nothing; 422 lists
    every problem of every document (`document 2: steps[0].wait`)."""
    documents = parse_documents(body, request.headers.get("content-type"))
    named = [(f"document {n}", doc) for n, doc in enumerate(documents, start=1)]
    report = sluice_of(request).apply(named, dry_run=dry_run, actor=ACTOR)
    return {"dry_run": dry_run, **report.as_dict()}


# -- templates -------------------------------------------------------------------------


@router.get(
    "/templates",
    response_model=list[schemas.Template],
    tags=["Templates"],
    responses=errors_doc(401),
)
def list_templates(request: Request) -> list[dict[str, Any]]:
    """Every email template with its current definition."""
    return sluice_of(request).templates()


@router.get(
    "/templates/{key}",
    response_model=schemas.Template,
    tags=["Templates"],
    responses=errors_doc(401, 404),
)
def show_template(request: Request, key: TemplateKey) -> dict[str, Any]:
    return sluice_of(request).template(key)


@router.put(
    "/templates/{key}",
    response_model=schemas.Template,
    tags=["Templates"],
    responses=errors_doc(400, 401, 413, 422) | {201: {"model": schemas.Template}},
    openapi_extra=body_doc(schemas.TemplateDoc, yaml=True),
)
def save_template(request: Request, key: TemplateKey, body: Body) -> JSONResponse:
    """Save a template (JSON or YAML): a new version when it changed; 201 when new."""
    document = _definition(request, body, key, template=True)
    sluice = sluice_of(request)
    report = sluice.apply([("template", document)], actor=ACTOR)
    created = report.templates.get(key) == 1
    return JSONResponse(sluice.template(key), status_code=201 if created else 200)
