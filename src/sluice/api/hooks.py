"""`POST /api/hooks/{key}`: the inbound hook of a flow whose trigger is `webhook` (SPEC §7
Triggers; hooks.py). Authenticated by the hook's own secret, not the API key, so that a
third party can be given one hook and nothing else; `GET /api/flows/{key}/hook` (with
the API key) tells its URL and secret."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from sluice import hooks
from sluice.api import schemas
from sluice.api.auth import require_key, sluice_of
from sluice.api.bodies import parse_json, raw_body
from sluice.api.docs import errors_doc
from sluice.api.errors import ApiError, invalid
from sluice.edge import InvalidInput
from sluice.service import NoHook
from sluice.store.flows import UnknownFlow

router = APIRouter(prefix="/api", tags=["Hooks"])


@router.post(
    "/hooks/{key}",
    response_model=schemas.HookResult,
    responses=errors_doc(400, 401, 404, 413, 422),
    summary="Call a flow's inbound hook (its webhook trigger)",
)
def receive(
    key: str, request: Request, body: Annotated[bytes, Depends(raw_body)]
) -> schemas.HookResult:
    sluice = sluice_of(request)
    try:
        trigger, secret = sluice.hook(key)
    except (NoHook, UnknownFlow):
        # The same answer for both: a caller without the secret learns no flow's trigger.
        raise ApiError(404, f"no hook at /api/hooks/{key}") from None
    try:
        body.decode()
    except UnicodeDecodeError:
        raise ApiError(400, "the request body is not UTF-8; expected a JSON document") from None
    try:
        hooks.verify(secret, body, request.headers)
    except hooks.HookRefused as refused:
        raise ApiError(401, str(refused), headers={"WWW-Authenticate": "Bearer"}) from None
    data = parse_json(body)
    try:
        event = hooks.incoming(trigger, key, data, request.headers, sluice.clock.now())
    except InvalidInput as error:
        raise invalid(error.problems) from None
    result = sluice.send([event])
    return schemas.HookResult(
        accepted=result.accepted,
        duplicates=result.duplicates,
        sessions_started=result.sessions_started,
    )


@router.get(
    "/flows/{key}/hook",
    dependencies=[Depends(require_key)],
    response_model=schemas.Hook,
    responses=errors_doc(401, 404),
    summary="The URL and secret of a flow's inbound hook",
)
def show(key: str, request: Request) -> schemas.Hook:
    _, secret = _hook(request, key)
    base = str(request.base_url).rstrip("/")
    return schemas.Hook(url=f"{base}/api/hooks/{key}", secret=secret)


def _hook(request: Request, key: str):
    try:
        return sluice_of(request).hook(key)
    except NoHook as error:
        raise ApiError(404, str(error)) from None
