"""Emails rendered for a sample visitor before anything is saved: the preview of an
email step or a template (`POST /api/emails/render`, the template pages) and test
sends (`POST /api/emails/test`).

They render through `engine.messages.render_email`, the function the engine renders
email steps with, from the same validated definition, and the HTML is CSS-inlined as
delivery inlines it (`delivery.email.inline_css`); so a preview is what the visitor
would receive, tracking aside (previews and tests are never tracked).

A test send touches no session, timeline, visitor or statistic: it goes through SMTP
at once when a server is configured, else it is kept in the outbox marked as a test
(`store/outbox.py`). Its subject starts with `[Test] `, and its unsubscribe link
(and header) name no visitor, so whoever receives it cannot unsubscribe the sample
visitor by following it.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from sluice import links
from sluice.addresses import message_id_domain
from sluice.definitions.liquid import TemplateError
from sluice.definitions.model import EmailAction, TemplateDefinition
from sluice.definitions.parse import EMAIL_LOC, validate_email, validate_template
from sluice.definitions.problems import DefinitionError
from sluice.delivery.email import inline_css
from sluice.engine.context import template_context, visitor_view
from sluice.engine.messages import render_email
from sluice.engine.work import StepFailed
from sluice.store import flows as flow_store
from sluice.store import visitors as visitor_store

if TYPE_CHECKING:
    from sluice.service import Sluice

TEST_PREFIX = "[Test] "
"""Starts the subject of every test send, so that nobody takes it for the real one."""
SAMPLE_EVENT = "$preview"
"""The type of the origin event of a preview when none is given."""
_STEP = EMAIL_LOC
NO_VISITOR = "00000000-0000-0000-0000-000000000000"
"""The uuid of the unsubscribe link of test sends: no visitor has it."""


class UnknownVisitor(LookupError):
    """No stored visitor has that email."""


@dataclass(frozen=True, kw_only=True)
class Sample:
    """Whom an email is rendered for: a stored visitor (`id` set) or a made-up one."""

    id: int | None
    email: str
    uuid: str
    fields: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    subscribed: bool = True
    created_at: datetime

    @classmethod
    def made_up(cls, given: dict[str, Any], now: datetime) -> Sample:
        """`{"email", "fields"?, "tags"?, "subscribed"?}`; its uuid is derived from the
        email, so the same made-up visitor renders the same each time."""
        return cls(
            id=None,
            email=given["email"],
            uuid=str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"sluice-sample:{given['email']}")),
            fields=dict(given.get("fields") or {}),
            tags=list(given.get("tags") or []),
            subscribed=given.get("subscribed", True),
            created_at=now,
        )


@dataclass(frozen=True)
class Rendered:
    """An email as it would be sent: `message` is the delivery's payload (to, from,
    reply_to, subject, html, text, …) with the HTML as sent, or None when `problems`
    (`[{loc, msg}]`, locs like `email.subject`) kept it from rendering."""

    message: dict[str, Any] | None
    problems: list[dict[str, str]]


def sample(sluice: Sluice, *, visitor: dict | None, visitor_email: str | None) -> Sample:
    """The sample visitor of a request: made up from `visitor`, or the stored one
    whose email is `visitor_email` (raises UnknownVisitor)."""
    now = sluice.clock.now()
    if visitor is not None:
        return Sample.made_up(visitor, now)
    with sluice.db.read() as conn:
        row = visitor_store.find(conn, visitor_email or "")
    if row is None:
        raise UnknownVisitor(f"no visitor with email '{visitor_email}'")
    return Sample(
        id=row.id,
        email=row.email,
        uuid=row.uuid,
        fields=dict(row.fields),
        tags=list(row.tags),
        subscribed=row.unsubscribed_at is None,
        created_at=row.created_at,
    )


def render(
    sluice: Sluice,
    email: dict[str, Any],
    who: Sample,
    *,
    event: dict[str, Any] | None = None,
    flow: str | None = None,
    test: bool = False,
) -> Rendered:
    """Render `email` (an email step's value, SPEC §2.2) for `who`. `event` is the
    origin event (`{type, details}`); `flow` the key of the flow whose `flow.*` the
    templates see (UnknownFlow when there is none). With `test`, the unsubscribe link
    names no visitor."""
    try:
        action, stored, flow_view = _action(sluice, email, flow)
    except DefinitionError as error:
        return Rendered(None, [_problem(p.loc, p.msg) for p in error.problems])
    config = sluice.engine_config()
    now = sluice.clock.now()
    unsubscribe = links.unsubscribe_url(
        config.public_url, config.signing_key, NO_VISITOR if test else who.uuid
    )
    origin = {
        "type": (event or {}).get("type", SAMPLE_EVENT),
        "details": (event or {}).get("details", {}),
        "date": now.isoformat(),
    }
    context = template_context(
        visitor=visitor_view(
            email=who.email,
            uuid=who.uuid,
            fields=who.fields,
            tags=who.tags,
            subscribed=who.subscribed,
            created_at=who.created_at,
        ),
        origin=origin,
        flow=flow_view,
        now=now,
        unsubscribe_url=unsubscribe,
    )
    try:
        message = render_email(
            action,
            stored,
            context,
            to=who.email,
            mail_from=config.mail_from,
            unsubscribe_url=unsubscribe,
            loc=_STEP,
        )
    except StepFailed as error:  # "LOC: MESSAGE", LOC the step's
        loc, _, msg = str(error).partition(": ")
        return Rendered(None, [_problem(loc, msg)])
    except TemplateError as error:
        return Rendered(None, [_problem("email", str(error))])
    if message["html"] is not None:
        message["html"] = inline_css(message["html"])
    return Rendered(message, [])


def render_template(sluice: Sluice, document: dict[str, Any], who: Sample) -> Rendered:
    """A template document (SPEC §2.8) as it would render for `who`: its problems
    (locs `subject`, `html`, `text`, …) when it is not valid."""
    try:
        validate_template(document)
    except DefinitionError as error:
        return Rendered(None, [{"loc": p.loc, "msg": p.msg} for p in error.problems])
    parts = {k: document[k] for k in ("subject", "html", "text") if document.get(k) is not None}
    rendered = render(sluice, parts, who)
    problems = [
        {"loc": p["loc"].removeprefix("email."), "msg": p["msg"]} for p in rendered.problems
    ]
    return Rendered(rendered.message, problems)


def test_message(sluice: Sluice, rendered: dict[str, Any], to: str) -> dict[str, Any]:
    """The payload of a test send of a rendered email: to `to`, its subject marked,
    never tracked, with a message id of its own."""
    domain = message_id_domain(sluice.settings.mail_from)
    return rendered | {
        "to": to,
        "subject": TEST_PREFIX + rendered["subject"],
        "track": False,
        "message_id": f"<test.{uuidlib.uuid4().hex}@{domain}>",
    }


async def send_test(
    sluice: Sluice, payload: dict[str, Any], *, visitor_id: int | None, actor: str
) -> str:
    """Send a test (`test_message`'s payload) and say where it went: `smtp`, at once
    through the SMTP server when one is configured (raises `delivery.email.InvalidMessage`
    when no message can be made of it, `delivery.smtp.SendFailed` when the server does
    not accept it); else `outbox`, kept there marked as a test, by `actor`."""
    if not sluice.settings.smtp_url:
        keep = partial(sluice.keep_test_email, payload, visitor_id=visitor_id, actor=actor)
        await anyio.to_thread.run_sync(keep)
        return "outbox"
    from sluice.delivery.email import build_message
    from sluice.delivery.smtp import SmtpServer, send_now

    envelope = build_message(payload, date=sluice.clock.now(), tracker=None)
    await send_now(SmtpServer.from_url(sluice.settings.smtp_url), envelope)
    return "smtp"


def _action(
    sluice: Sluice, email: dict[str, Any], flow: str | None
) -> tuple[EmailAction, TemplateDefinition | None, dict[str, Any]]:
    """The email step validated as the engine's steps are: as the one step of a flow,
    against the templates stored now. Raises DefinitionError, or UnknownFlow when no
    flow has the key `flow`."""
    with sluice.db.read() as conn:
        documents = flow_store.current_templates(conn)
        flow_view: dict[str, Any] = {}
        if flow is not None:
            row = flow_store.get_flow(conn, flow)
            flow_view = {"key": row.key, "name": row.name, "version": row.version}
    action = validate_email(email, known_templates=set(documents))
    stored = None
    if action.template:
        stored = sluice.catalog.templates_of(documents, {action.template})[action.template]
    return action, stored, flow_view


def _problem(loc: str, msg: str) -> dict[str, str]:
    """A problem of the one-step flow, located in the request: `steps[0].email.x` is
    `email.x`."""
    return {"loc": loc.removeprefix(_STEP).removeprefix(".") or "email", "msg": msg}
