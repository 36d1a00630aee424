"""Flows and email templates in the native API (SPEC §3.4): definitions, on/off,
stats, simulation, the blast radius of an edit, and the audit log."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, ValidationError

from sluice import impact
from sluice.api import schemas
from sluice.api.auth import actor_of, require_key, sluice_of
from sluice.api.bodies import (
    YAML_TYPES,
    parse_document,
    parse_documents,
    parse_json,
    raw_body,
    refuse_nul,
)
from sluice.api.docs import body_doc, errors_doc
from sluice.api.errors import ApiError, invalid
from sluice.api.query import one_value_each
from sluice.definitions.problems import DefinitionError
from sluice.definitions.source import document_texts
from sluice.edge import MAX_NOTE, NoteTooLong, note_text, problems
from sluice.records import FlowStatus
from sluice.store.flows import MAX_VERSION, TemplateInUse, VersionConflict

router = APIRouter(prefix="/api", dependencies=[Depends(require_key), Depends(one_value_each)])
Key = Annotated[str, Path(max_length=64, description="The flow's key (a slug).")]
TemplateKey = Annotated[str, Path(max_length=64, description="The template's key (a slug).")]
Body = Annotated[bytes, Depends(raw_body)]
Note = Annotated[
    str | None,
    Query(
        description="A note for the audit log (why the change).",
        json_schema_extra={"maxLength": MAX_NOTE},  # note_text refuses a longer one
    ),
    AfterValidator(note_text),
]

_DEFINITION = body_doc(schemas.FlowDefinitionDoc, yaml=True)


def definition_of(
    request: Request, body: bytes, key: str, *, kind: str = "flow"
) -> tuple[dict, str | None]:
    """The body as one definition of `kind` (flow, template, segment) whose key is the
    URL's (filled in when absent), and its author's text: the YAML as written (SPEC §7),
    None for JSON."""
    document = parse_document(body, request.headers.get("content-type"))
    text = _texts(request, body)[0]
    missing = {}
    if "key" not in document:
        missing["key"] = key
    _keep_key(document, key, "key")
    found = document.get("kind")
    if kind != "flow":
        if "kind" not in document:
            missing["kind"] = kind
        document.setdefault("kind", kind)
    elif found in ("template", "segment"):
        msg = f"a {found}: use PUT /api/{found}s/{{key}}"
        raise invalid([{"loc": "kind", "msg": msg}])
    if text is not None and missing:  # the text gives the definition back with them
        text = "".join(f"{name}: {value}\n" for name, value in missing.items()) + text
    return document, text


def _keep_key(document: dict, key: str, loc: str) -> None:
    """Give `document` the URL's `key` when it has none; 422 at `loc` when it has
    another: an endpoint of one flow never reads or writes a different one."""
    document.setdefault("key", key)
    if document["key"] != key:
        raise invalid(
            [
                {
                    "loc": loc,
                    "msg": f"the definition's key {document['key']!r} is not the URL's {key!r}",
                }
            ]
        )


def _texts(request: Request, body: bytes, count: int = 1) -> list[str | None]:
    """The author's text of each of the `count` documents of a body (parsed already):
    each YAML document's own text; None for JSON, which has none to keep."""
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media not in YAML_TYPES:
        return [None] * count
    return document_texts(body.decode())


def _text_body(body: bytes) -> str:
    """A body that is YAML text whatever its content type (a draft); 400 if not UTF-8."""
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise ApiError(400, "the request body is not UTF-8 text") from None


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
def show_flow(request: Request, key: Key) -> JSONResponse:
    """A flow: definition, status, versions. Its `ETag` is the current version
    (`"3"`), for a save made to it to send as `If-Match`."""
    view = sluice_of(request).show_flow(key)
    return JSONResponse(view, headers={"ETag": _etag(view["version"])})


def _etag(version: int) -> str:
    return f'"{version}"'


def _conflict(conflict: VersionConflict) -> ApiError:
    """412, with the current version's ETag when the flow exists."""
    current = {"ETag": _etag(conflict.current)} if conflict.current else None
    return ApiError(412, str(conflict), headers=current)


def if_match(request: Request) -> int | None:
    """The version from the request's `If-Match` (RFC 9110 §13.1.1): the one a save
    was made to, which must still be the current one; None without the header
    or with `*` (any current version will do). A weak tag (`W/"3"`) never matches, by
    the RFC's strong comparison: 412. 400 for anything but one tag of ours."""
    given = request.headers.get("if-match")
    if given is None or given.strip() == "*":
        return None
    tag = given.strip()
    if tag.startswith("W/"):
        raise ApiError(412, "a weak entity tag never matches If-Match (RFC 9110 §13.1.1)")
    version = tag[1:-1] if len(tag) > 2 and tag[0] == tag[-1] == '"' else ""
    # Digits as we write them: no sign, no leading zero, at most MAX_VERSION (checked
    # on the text first: int() of thousands of digits is refused by Python itself).
    if re.fullmatch(r"[1-9][0-9]{0,9}", version) is None or int(version) > MAX_VERSION:
        shown = tag if len(tag) <= 40 else tag[:40] + "…"
        raise ApiError(
            400,
            f'If-Match must be one version as GET /api/flows/{{key}} tags it ("3"), '
            f"not {shown or 'an empty value'}",
        )
    return int(version)


@router.put(
    "/flows/{key}",
    response_model=schemas.Flow,
    tags=["Flows"],
    responses=errors_doc(400, 401, 412, 413, 422) | {201: {"model": schemas.Flow}},
    openapi_extra=_DEFINITION,
)
def save_flow(request: Request, key: Key, body: Body, note: Note = None) -> JSONResponse:
    """Save a definition (JSON, or YAML with `Content-Type: application/yaml`): a new
    version when it or its text changed; 201 when the flow is new. 422 lists every
    problem. YAML is kept as written (comments too); JSON is kept as a YAML dump.
    With `If-Match: "N"` (the `ETag` of GET), saved only if version N is still the
    current one, else 412 and nothing is saved (someone saved in between)."""
    document, text = definition_of(request, body, key)
    sluice = sluice_of(request)
    try:
        report = sluice.apply(
            [("definition", document)],
            texts=[text],
            note=note,
            actor=actor_of(request),
            based_on=None if (version := if_match(request)) is None else {key: version},
        )
    except VersionConflict as conflict:
        raise _conflict(conflict) from None
    view = sluice.show_flow(key)
    created = report.flows.get(key) == 1
    headers = {"ETag": _etag(view["version"])}
    return JSONResponse(view, status_code=201 if created else 200, headers=headers)


def _switch(request: Request, key: str, status: FlowStatus) -> dict[str, Any]:
    return sluice_of(request).set_flow_status(key, status, actor=actor_of(request))


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
    """What saving this definition would do: its problems; for every step where
    sessions are now, how many and where they would continue (`blast_radius`); and
    `impact`: the waits whose wake-up changes (who wakes at once and what they then
    send), changed branches, and what is sent at once. Nothing is saved."""
    document, _ = definition_of(request, body, key)
    try:
        return sluice_of(request).preview(document)
    except DefinitionError as error:
        problems = [p.as_dict() for p in error.problems]
        return {"problems": problems, "blast_radius": [], "impact": impact.empty()}


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
        document = dict(document)
        _keep_key(document, key, "definition.key")
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
    request: Request, body: Body, dry_run: Annotated[bool, Query()] = False, note: Note = None
) -> dict[str, Any]:
    """Validate and save flow and template documents together, as `sluice flows apply`
    does: templates first, a new version only where something changed, and for every
    flow where its live sessions would continue. `dry_run=true` saves nothing; 422 lists
    every problem of every document (`document 2: steps[0].wait`)."""
    documents = parse_documents(body, request.headers.get("content-type"))
    named = [(f"document {n}", doc) for n, doc in enumerate(documents, start=1)]
    texts = _texts(request, body, len(documents))
    report = sluice_of(request).apply(
        named, texts=texts, note=note, dry_run=dry_run, actor=actor_of(request)
    )
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
    document, text = definition_of(request, body, key, kind="template")
    sluice = sluice_of(request)
    report = sluice.apply([("template", document)], texts=[text], actor=actor_of(request))
    created = report.templates.get(key) == 1
    return JSONResponse(sluice.template(key), status_code=201 if created else 200)


@router.delete(
    "/templates/{key}",
    status_code=204,
    tags=["Templates"],
    responses=errors_doc(401, 404) | {409: {"model": schemas.TemplateInUse}},
)
def delete_template(request: Request, key: TemplateKey) -> Response:
    """Delete a template that no flow uses (in the current version of any flow). 409
    lists the steps that use it: `{"detail", "used_by": [{"flow", "step"}]}`. Its
    versions are kept (flow versions that once named it still load), but it is no
    longer listed nor usable; saving the key again continues its numbering."""
    try:
        sluice_of(request).delete_template(key)
    except TemplateInUse as error:
        return JSONResponse({"detail": str(error), "used_by": error.uses}, status_code=409)
    return Response(status_code=204)


# -- versions and drafts ---------------------------------------------------------------

VersionNumber = Annotated[int, Path(ge=1, le=MAX_VERSION, description="A version number.")]


@router.get(
    "/flows/{key}/versions/{version}",
    response_model=schemas.VersionDetail,
    tags=["Flows"],
    responses=errors_doc(401, 404),
)
def show_version(request: Request, key: Key, version: VersionNumber) -> dict[str, Any]:
    """One version of a flow: its text as the author wrote it, the definition it
    loads to, when it was saved and the note written with it."""
    return sluice_of(request).flow_version(key, version)


@router.post(
    "/flows/{key}/versions/{version}/restore",
    response_model=schemas.ApplyReport,
    tags=["Flows"],
    responses=errors_doc(401, 404, 422),
)
def restore_version(
    request: Request,
    key: Key,
    version: VersionNumber,
    note: Note = None,
    dry_run: Annotated[bool, Query()] = False,
) -> dict[str, Any]:
    """Save version `version`'s text as a new version (nothing new when it is the
    current text), answered as `POST /api/apply` is: with where the live sessions
    would continue. `dry_run=true` saves nothing. The audit note says which version
    came back, then `note`: both within 2,000 characters (422 at `query.note`)."""
    try:
        report = sluice_of(request).restore(
            key, version, note=note, dry_run=dry_run, actor=actor_of(request)
        )
    except NoteTooLong as error:
        raise invalid([{"loc": "query.note", "msg": str(error)}]) from None
    return {"dry_run": dry_run, **report.as_dict()}


@router.get(
    "/flows/{key}/draft",
    response_model=schemas.Draft,
    tags=["Flows"],
    responses=errors_doc(401, 404),
)
def show_draft(request: Request, key: Key) -> dict[str, Any]:
    """The draft of a flow: its text, the document it loads to, who saved it and when;
    404 when the flow has none."""
    return sluice_of(request).draft(key)


@router.put(
    "/flows/{key}/draft",
    response_model=schemas.Draft,
    tags=["Flows"],
    responses=errors_doc(400, 401, 404, 413, 422),
    openapi_extra=_DEFINITION,
)
def save_draft(request: Request, key: Key, body: Body) -> dict[str, Any]:
    """Keep the body (the flow's YAML text, as written) as the flow's draft, replacing
    the one there was. It is validated as a save is, and must keep the flow's key: 422
    lists every problem and nothing is stored. The flow's current version runs on."""
    return sluice_of(request).save_draft(key, _text_body(body), actor=actor_of(request))


@router.delete(
    "/flows/{key}/draft", status_code=204, tags=["Flows"], responses=errors_doc(401, 404)
)
def delete_draft(request: Request, key: Key) -> Response:
    """Throw the draft away; 404 when the flow has none."""
    sluice_of(request).delete_draft(key)
    return Response(status_code=204)


@router.post(
    "/flows/{key}/draft/publish",
    response_model=schemas.ApplyReport,
    tags=["Flows"],
    responses=errors_doc(401, 404, 412, 422),
)
def publish_draft(request: Request, key: Key, note: Note = None) -> dict[str, Any]:
    """Save the draft as the flow's new version and delete it (one transaction),
    answered as `POST /api/apply` is. 422 when it no longer validates (a template it
    names was deleted meanwhile): the draft stays. With `If-Match: "N"`, published
    only if version N is still the current one (412 otherwise, the draft stays), as
    `PUT /api/flows/{key}`."""
    version = if_match(request)
    try:
        report = sluice_of(request).publish_draft(
            key, note=note, actor=actor_of(request), based_on=version
        )
    except VersionConflict as conflict:
        raise _conflict(conflict) from None
    return {"dry_run": False, **report.as_dict()}
