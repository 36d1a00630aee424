"""Trying an email before it is saved (`sluice.previews`): render an email step for a
sample visitor, and send it as a test to an address a person chooses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from sluice import previews
from sluice.api import schemas
from sluice.api.auth import actor_of, require_key, sluice_of
from sluice.api.bodies import parse_json, raw_body, refuse_nul
from sluice.api.docs import body_doc, errors_doc
from sluice.api.errors import ApiError, invalid
from sluice.api.query import one_value_each
from sluice.delivery.email import InvalidMessage
from sluice.delivery.smtp import SendFailed
from sluice.edge import problems
from sluice.service import Sluice
from sluice.store.flows import UnknownFlow

router = APIRouter(prefix="/api", dependencies=[Depends(require_key), Depends(one_value_each)])
Body = Annotated[bytes, Depends(raw_body)]


def _request(body: bytes, model: type[schemas.EmailRenderIn]) -> schemas.EmailRenderIn:
    document = parse_json(body)
    refuse_nul(document)
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise invalid(problems(error)) from None


def _render(sluice: Sluice, given: schemas.EmailRenderIn, *, test: bool) -> tuple:
    """The sample visitor and the email rendered for it; 422 for an unknown visitor or
    flow."""
    try:
        who = previews.sample(
            sluice,
            visitor=given.visitor.model_dump() if given.visitor else None,
            visitor_email=given.visitor_email,
        )
    except previews.UnknownVisitor as error:
        raise invalid([{"loc": "visitor_email", "msg": str(error)}]) from None
    event = given.event.model_dump() if given.event else None
    try:
        rendered = previews.render(
            sluice, given.email, who, event=event, flow=given.flow, test=test
        )
    except UnknownFlow as error:
        raise invalid([{"loc": "flow", "msg": str(error)}]) from None
    return who, rendered


def _view(rendered: previews.Rendered) -> dict[str, Any]:
    message = rendered.message or {}
    view = {name: message.get(name) for name in ("subject", "html", "text", "from", "to")}
    return view | {"reply_to": message.get("reply_to"), "problems": rendered.problems}


@router.post(
    "/emails/render",
    response_model=schemas.RenderedEmail,
    tags=["Emails"],
    responses=errors_doc(400, 401, 413, 422),
    openapi_extra=body_doc(schemas.EmailRenderIn),
)
def render_email(request: Request, body: Body) -> dict[str, Any]:
    """An email step rendered for a visitor, as delivery would send it (HTML with its
    CSS inlined, the text part made from the HTML when there is none). Problems of the
    email (a Liquid error, an unknown template, an address that cannot be sent to) are
    listed in `problems`, and the parts are then null. Nothing is stored or sent."""
    sluice = sluice_of(request)
    _, rendered = _render(sluice, _request(body, schemas.EmailRenderIn), test=False)
    return _view(rendered)


@router.post(
    "/emails/test",
    response_model=schemas.TestSent,
    tags=["Emails"],
    responses=errors_doc(400, 401, 413, 422) | {502: {"model": schemas.Detail}},
    openapi_extra=body_doc(schemas.EmailTestIn),
)
async def send_test(request: Request, body: Body) -> dict[str, Any]:
    """Send an email step, rendered for a visitor, to `to` as a test: its subject starts
    with `[Test] `, it is not tracked, and its unsubscribe link names no visitor. With
    an SMTP server configured it is sent at once (502 when the server does not accept
    it); else it is kept in the outbox, marked as a test. It touches no session,
    timeline or visitor and is never counted in statistics. 422 when the email has
    problems."""
    given = _request(body, schemas.EmailTestIn)
    sluice = sluice_of(request)
    who, rendered = await run_in_threadpool(_render, sluice, given, test=True)
    if rendered.problems:
        raise invalid(rendered.problems)
    payload = previews.test_message(sluice, rendered.message, given.to)
    try:
        where = await previews.send_test(
            sluice, payload, visitor_id=who.id, actor=actor_of(request)
        )
    except InvalidMessage as error:
        raise invalid([{"loc": "email", "msg": str(error)}]) from None
    except SendFailed as error:
        raise ApiError(502, f"the SMTP server did not accept the test: {error}") from None
    return {"delivered_to": where, "message_id": payload["message_id"]}
