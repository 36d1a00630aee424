"""Pages of broadcasts (docs/broadcasts.md): the list with each one's progress and
results (`/broadcasts`), composing one (`/broadcasts/_new`: a draft, or sent or
scheduled once the person confirmed the audience's size), and a broadcast's page
(`/broadcasts/{id}`): its content, its email rendered for a member of its audience as
delivery would render it (`sluice.previews`), a test send, send or schedule a draft,
cancel, and its progress and results, which its script asks
`/ui/broadcasts/{id}/progress` for every few seconds while they move.

Sending asks first, on the server, so that it asks without scripts too: the form comes
back with how many members the audience has now and a button that confirms that
audience (`broadcast_form.confirmation_token`).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, Any
from urllib.parse import quote

import anyio.from_thread
from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from sluice import previews
from sluice.addresses import AddressError, visitor_email
from sluice.api.auth import sluice_of
from sluice.definitions.problems import DefinitionError
from sluice.delivery.email import InvalidMessage
from sluice.delivery.smtp import SendFailed
from sluice.service import Sluice
from sluice.store.broadcasts import BroadcastStateError, BroadcastStatus, UnknownBroadcast
from sluice.ui import auth, render
from sluice.ui.broadcast_form import (
    Compose,
    SendDraft,
    confirmation_token,
    field_of,
    read,
    schedule,
)
from sluice.ui.broadcast_progress import audience_text, progress, when_text
from sluice.ui.email_templates import PART_FORM
from sluice.ui.errors import PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)
BroadcastId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Csrf = Annotated[str, Form(max_length=100)]
Email = Annotated[str, Form(max_length=400)]


def _segment_names(sluice: Sluice) -> dict[str, str]:
    return {s["key"]: s["name"] for s in sluice.segments()}


# -- the list ------------------------------------------------------------------------------


@router.get("/broadcasts")
def broadcasts_page(request: Request) -> HTMLResponse:
    auth.session_of(request)
    sluice = sluice_of(request)
    names = _segment_names(sluice)
    rows = [
        b | {"audience": audience_text(b, names), "when": when_text(b)} for b in sluice.broadcasts()
    ]
    return render.page(request, "broadcasts.html", broadcasts=rows)


# -- composing -----------------------------------------------------------------------------


@router.get("/broadcasts/_new")
def new_broadcast_page(request: Request) -> HTMLResponse:
    auth.session_of(request)
    return _compose(request, Compose())


@router.post("/broadcasts/_new", form_limits=PART_FORM)
def create_broadcast(request: Request, form: Annotated[Compose, Form()]):
    session = auth.check_csrf(request, form.csrf)
    sluice = sluice_of(request)
    composed = read(sluice, form)
    if composed.problems:
        return _compose(request, form, problems=composed.problems, status=422)
    new, send = composed.new, form.action == "send" or bool(form.confirm)
    if send and form.confirm != confirmation_token(new.segment_key, composed.send_at):
        draft = {
            "name": new.name,
            "segment": new.segment_key,
            "inclusive_tags": new.inclusive_tags,
            "exclusive_tags": new.exclusive_tags,
            "local_time": new.local_time,
        }
        return _compose(request, form, confirm=_question(sluice, draft, composed.send_at))
    try:
        found = sluice.create_broadcast(
            new, send=send, send_at=composed.send_at, actor=session.actor
        )
    except DefinitionError as error:  # a template deleted since it was checked
        problems = [{"loc": p.loc, "msg": p.msg} for p in error.problems]
        return _compose(request, form, problems=problems, status=422)
    notice = _sent_notice(found, composed.send_at) if send else f"Saved the draft {new.name}."
    return render.redirect(request, f"/broadcasts/{found['id']}", notice)


def _compose(
    request: Request,
    form: Compose,
    *,
    problems: list[dict] | None = None,
    confirm: dict | None = None,
    status: int = 200,
) -> HTMLResponse:
    sluice = sluice_of(request)
    problems = problems or []
    return render.page(
        request,
        "broadcast_new.html",
        status=status,
        form=form,
        segments=sluice.segments(),
        templates=sluice.templates(),
        everyone=sluice.broadcast_audience(None)["members"],
        problems=problems,
        invalid=_invalid(problems),
        confirm=confirm,
        zone=sluice.settings.timezone,
    )


def _invalid(problems: list[dict]) -> dict[str, list[str]]:
    """The problems' messages by the form field each concerns."""
    found: dict[str, list[str]] = {}
    for problem in problems:
        found.setdefault(field_of(problem["loc"]), []).append(problem["msg"])
    return found


def _question(sluice: Sluice, draft: dict[str, Any], send_at: datetime | None) -> dict:
    """The confirmation of sending `draft` (`{name, segment, inclusive_tags,
    exclusive_tags, local_time}`) at `send_at` (None: now): what it does, to how many
    (its audience now), and the token of the button that confirms it."""
    filters = draft["inclusive_tags"], draft["exclusive_tags"]
    audience = sluice.broadcast_audience(draft["segment"], *filters)
    members, subscribed = audience["members"], audience["subscribed"]
    names = _segment_names(sluice)
    kept = " its tag filters keep" if any(filters) else ""
    if draft["segment"]:
        label = names.get(draft["segment"], draft["segment"])
        has = f"The segment {label} has {_count(members, 'member')}{kept} now"
    else:
        has = f"Sluice has {_count(members, 'visitor')}{kept} now"
    skipped = "the unsubscribed and erased are skipped"
    moment = {"local_time": draft["local_time"], "send_at": send_at and send_at.isoformat()}
    when = f"for {when_text(moment)}" if send_at else "now"
    verb = "Schedule" if send_at else "Send"
    return {
        "title": f"{verb} {draft['name']} {when} to {audience_text(draft, names)}?",
        "details": f"{has}, {subscribed:,} of them subscribed: {skipped}.",
        "button": f"{verb} to {_count(subscribed, 'subscribed visitor')}",
        "token": confirmation_token(draft["segment"], send_at),
    }


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _sent_notice(found: dict[str, Any], send_at: datetime | None) -> str:
    if send_at is None:
        return f"Sending {found['name']} now: its audience is queued a chunk at a time."
    return f"Scheduled {found['name']} for {when_text(found)}."


# -- one broadcast -------------------------------------------------------------------------


@router.get("/broadcasts/{broadcast_id}")
def broadcast_page(
    request: Request,
    broadcast_id: BroadcastId,
    preview: Annotated[str, Query(max_length=400)] = "",
) -> HTMLResponse:
    """The broadcast; `preview`: the email of the visitor to render it for (the first
    member of its audience by default)."""
    auth.session_of(request)
    try:
        view = sluice_of(request).broadcast(broadcast_id)
    except UnknownBroadcast:
        return render.not_found(request, f"There is no broadcast {broadcast_id}.")
    return _page(request, view, preview=preview.strip())


@router.post("/broadcasts/{broadcast_id}/send")
def send_draft(request: Request, broadcast_id: BroadcastId, form: Annotated[SendDraft, Form()]):
    auth.check_csrf(request, form.csrf)
    sluice = sluice_of(request)
    try:
        view = sluice.broadcast(broadcast_id)
    except UnknownBroadcast:
        return render.not_found(request, f"There is no broadcast {broadcast_id}.")
    if view["status"] != BroadcastStatus.DRAFT:
        refused = f"Nothing changed: {view['name']} is {view['status']}, not a draft."
        return _page(request, view, refused=refused, status=409)
    when = "local" if view["local_time"] else form.when
    send_at, problems = schedule(
        sluice, when, form.send_at, form.local_date, now=sluice.clock.now()
    )
    if problems:
        return _page(request, view, send_form=form, send_problems=problems, status=422)
    if form.confirm != confirmation_token(view["segment"], send_at):
        question = _question(sluice, view, send_at)
        return _page(request, view, send_form=form, confirm=question)
    try:
        found = sluice.send_broadcast(broadcast_id, send_at)
    except BroadcastStateError as error:
        return _page(request, sluice.broadcast(broadcast_id), refused=str(error), status=409)
    return render.redirect(request, f"/broadcasts/{broadcast_id}", _sent_notice(found, send_at))


@router.post("/broadcasts/{broadcast_id}/cancel")
def cancel_broadcast(request: Request, broadcast_id: BroadcastId, csrf: Csrf = ""):
    auth.check_csrf(request, csrf)
    sluice = sluice_of(request)
    try:
        found = sluice.cancel_broadcast(broadcast_id)
    except UnknownBroadcast:
        return render.not_found(request, f"There is no broadcast {broadcast_id}.")
    except BroadcastStateError as error:
        refused = f"Nothing changed: {error}."
        return _page(request, sluice.broadcast(broadcast_id), refused=refused, status=409)
    skipped = found["stats"]["skipped"]
    notice = f"Cancelled {found['name']}."
    if skipped:
        notice = f"Cancelled {found['name']}: {_count(skipped, 'email')} not sent are skipped."
    return render.redirect(request, f"/broadcasts/{broadcast_id}", notice)


@router.post("/broadcasts/{broadcast_id}/test")
def send_test(
    request: Request,
    broadcast_id: BroadcastId,
    csrf: Csrf = "",
    to: Email = "",
    visitor: Email = "",
):
    """Send the email, rendered for the visitor `visitor`, to `to` as a test: as the
    API's test send (`POST /api/emails/test`), through SMTP when a server is
    configured, else kept in the outbox marked as a test."""
    session = auth.check_csrf(request, csrf)
    sluice = sluice_of(request)
    try:
        view = sluice.broadcast(broadcast_id)
    except UnknownBroadcast:
        return render.not_found(request, f"There is no broadcast {broadcast_id}.")
    test = {"to": to, "visitor": visitor}
    try:
        address = visitor_email(to)
    except AddressError as error:
        problems = [{"loc": "to", "msg": str(error)}]
        return _page(request, view, preview=visitor, test=test, test_problems=problems, status=422)
    shown = _preview(sluice, view, visitor.strip(), test=True)
    if shown["message"] is None:
        problems = shown["problems"] or [{"loc": "visitor", "msg": shown["who"]}]
        return _page(request, view, preview=visitor, test=test, test_problems=problems, status=422)
    payload = previews.test_message(sluice, shown["message"], address)
    send = partial(
        previews.send_test, sluice, payload, visitor_id=shown["visitor_id"], actor=session.actor
    )
    try:
        where = anyio.from_thread.run(send)
    except (InvalidMessage, SendFailed) as error:
        problems = [{"loc": "to", "msg": f"the test was not sent: {error}"}]
        return _page(request, view, preview=visitor, test=test, test_problems=problems, status=502)
    notice = f"Sent a test to {address} through the SMTP server."
    if where == "outbox":
        notice = f"Sent a test to {address}: no SMTP server is configured, so it is kept "
        notice += "in the outbox, marked as a test."
    target = f"/broadcasts/{broadcast_id}?preview={quote(shown['email'], safe='@')}"
    return render.redirect(request, target, notice)


def _preview(sluice: Sluice, view: dict[str, Any], email: str, *, test: bool = False) -> dict:
    """The email rendered for the stored visitor `email`, or the first member of the
    audience when empty: `{email, who, message, problems, visitor_id}`, `message` None
    (and `who` saying why) when there is no such visitor or the email has problems."""
    default = not email
    email = email or sluice.broadcast_audience(view["segment"])["first"] or ""
    found = {"email": email, "message": None, "problems": [], "visitor_id": None}
    if not email:
        empty = "Its audience is empty now: type a visitor's email to render it for them."
        return found | {"who": empty}
    try:
        who = previews.sample(sluice, visitor=None, visitor_email=email)
    except previews.UnknownVisitor:
        return found | {"who": f"No visitor has the email {email}."}
    event = {"type": "$broadcast", "details": {"broadcast": view["id"], "name": view["name"]}}
    rendered = previews.render(sluice, view["email"], who, event=event, test=test)
    said = f"Rendered for {who.email}" + (", the first member of its audience" if default else "")
    if not who.subscribed:
        said += " (unsubscribed: the broadcast skips them)"
    return found | {
        "email": who.email,
        "who": said + ".",
        "message": rendered.message,
        "problems": rendered.problems,
        "visitor_id": who.id,
    }


def _page(
    request: Request,
    view: dict[str, Any],
    *,
    preview: str = "",
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    sluice = sluice_of(request)
    shown = _preview(sluice, view, preview)
    context = {
        "send_form": SendDraft(),
        "send_problems": [],
        "test": {"to": "", "visitor": shown["email"]},
        "test_problems": [],
        "confirm": None,
        "refused": None,
    } | context
    return render.page(
        request,
        "broadcast.html",
        status=status,
        broadcast=view,
        audience=audience_text(view, _segment_names(sluice)),
        when=when_text(view),
        progress=progress(sluice, view),
        preview=shown,
        zone=sluice.settings.timezone,
        send_invalid=_invalid(context["send_problems"]),
        test_invalid=_invalid(context["test_problems"]),
        **context,
    )


# -- JSON for the page's script ------------------------------------------------------------


@router.get("/ui/broadcasts/{broadcast_id}/progress")
def broadcast_progress(request: Request, broadcast_id: BroadcastId) -> JSONResponse:
    """`{status, moving, cancellable, sentence, figures: {name: N}, last_error}`: the
    page asks again every few seconds while `moving`."""
    auth.session_of(request)
    sluice = sluice_of(request)
    try:
        view = sluice.broadcast(broadcast_id)
    except UnknownBroadcast:
        return JSONResponse({"detail": f"There is no broadcast {broadcast_id}."}, status_code=404)
    return JSONResponse(progress(sluice, view))
