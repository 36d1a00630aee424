"""Rendering the `email` and `webhook` steps into deliveries.

The idempotency id (Message-ID, webhook-id) is decided here, before anything is sent,
from the session and the step, so every attempt carries the same one. A retried
session gets a new one: the receiver must not discard the retry as a repeat.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import html2text

from sluice import links
from sluice.addresses import AddressError, mailbox, message_id_domain
from sluice.definitions.limits import html_depth_problem
from sluice.definitions.model import EmailAction, Step, TemplateDefinition, WebhookAction
from sluice.definitions.values import key_loc
from sluice.engine.work import NewDelivery, StepFailed

if TYPE_CHECKING:
    from sluice.engine.runner import _Run

MAX_RENDERED_EMAIL = 1024 * 1024


def plain_text(html: str) -> str:
    """The text part made from an HTML body when a message has none of its own.

    Every character is kept as it is (`unicode_snob`: `&uuml;` is `ü`, `&copy;` `©`,
    not `u` and `(C)`); emphasis is left unmarked, since `<b>Zoë</b>,` as `**Zoë** ,`
    reads worse than `Zoë,`; lines are not wrapped (`body_width=0`): the reader's client
    wraps them, and a wrapped link no longer works. Links read `[text](url)`."""
    converter = html2text.HTML2Text()
    converter.unicode_snob = True
    converter.ignore_emphasis = True
    converter.body_width = 0
    return converter.handle(html).strip()


def _identity(run: _Run, step: Step) -> str:
    retries = run.state.get("retries", 0)
    suffix = f".r{retries}" if retries else ""
    return f"{run.work.session.id}.{step.id}{suffix}"


def email(run: _Run, step: Step) -> tuple[NewDelivery | None, str | None]:
    """The delivery of an email step, or why it is skipped."""
    action: EmailAction = step.action
    if run.work.suppressed:
        return None, "address erased"
    if not action.transactional and not run.subscribed:
        return None, "unsubscribed"
    config = run.config
    unsubscribe = links.unsubscribe_url(
        config.public_url, config.signing_key, run.work.visitor.uuid
    )
    message = render_email(
        action,
        run.work.templates.get(action.template) if action.template else None,
        run.context(unsubscribe_url=unsubscribe),
        to=run.work.visitor.email,
        mail_from=config.mail_from,
        unsubscribe_url=unsubscribe,
        loc=step.loc,
    )
    domain = message_id_domain(config.mail_from)
    message["message_id"] = f"<{_identity(run, step)}@{domain}>"
    state = "outbox" if config.mail_transport == "outbox" else "pending"
    return NewDelivery(
        kind="email",
        step=step.id,
        idempotency_id=message["message_id"],
        state=state,
        payload=message,
        max_attempts=8,
    ), None


def render_email(
    action: EmailAction,
    stored: TemplateDefinition | None,
    context: Mapping[str, Any],
    *,
    to: str,
    mail_from: str,
    unsubscribe_url: str | None,
    loc: str,
) -> dict[str, Any]:
    """An email step rendered for one visitor: the payload of its delivery, all but
    the `message_id` (to, from, reply_to, subject, html, text, transactional, track,
    unsubscribe_url). The engine and the previews and test sends of the API
    (`sluice.previews`) render through this one function, so what a person previews is
    what is sent.

    `stored` is the template the step names (SPEC §2.8): its parts fill those the step
    leaves out. `to` and `mail_from` are the defaults of the step's `to` and `from`;
    `loc` is the step's, for the errors. Raises StepFailed for an address that cannot
    be sent to, for HTML nested too deeply to send (`limits.MAX_HTML_DEPTH`) and for a
    message over 1 MiB, TemplateError for a part that fails to
    render."""

    def part(name: str):
        template = getattr(action, name) or (getattr(stored, name) if stored else None)
        return template.render(context) if template else None

    def address(name: str, template, default: str | None) -> str | None:
        value = template.render(context).strip() if template else default
        if value == "" and name != "to":
            # Rendered empty (`{{ visitor.manager_email }}` of a visitor without one):
            # as if not given. A `to` rendered empty has no one to go to: it fails.
            value = default
        if value is not None:
            try:
                mailbox(value)
            except AddressError as error:
                raise StepFailed(f"{key_loc(loc, 'email')}.{name}: {error}") from None
        return value

    html, text = part("html"), part("text")
    if html is not None and (too_deep := html_depth_problem(html)):
        # Data can nest what the template alone does not (a field's HTML output raw).
        raise StepFailed(f"{key_loc(loc, 'email')}.html: {too_deep} once rendered")
    if text is None and html is not None:
        text = plain_text(html)
    message = {
        "to": address("to", action.to, to),
        "from": address("from", action.from_, mail_from),
        "reply_to": address("reply_to", action.reply_to, None),
        "subject": (part("subject") or "").strip(),
        "html": html,
        "text": text,
        "transactional": action.transactional,
        "track": action.track,
        "unsubscribe_url": None if action.transactional else unsubscribe_url,
    }
    size = sum(len(v) for v in (message["html"] or "", message["text"] or "", message["subject"]))
    if size > MAX_RENDERED_EMAIL:
        raise StepFailed(f"{loc}: rendered email is larger than 1 MiB")
    return message


def webhook(run: _Run, step: Step) -> NewDelivery:
    action: WebhookAction = step.action
    context = run.context()
    if action.body:
        body = action.body.render(context, keep_types=True)
    else:
        body = standard_payload(run, step)
    webhook_id = f"msg_{_identity(run, step)}"
    request: dict[str, Any] = {
        "url": action.url.render(context).strip(),
        "method": action.method,
        "headers": {name: value.render(context) for name, value in action.headers.items()},
        "body": body,
        "timeout": action.timeout.total_seconds(),
        "backoff": action.retries.backoff.total_seconds(),
    }
    return NewDelivery(
        kind="webhook",
        step=step.id,
        idempotency_id=webhook_id,
        state="pending",
        payload=request,
        max_attempts=action.retries.attempts,
    )


def standard_payload(run: _Run, step: Step) -> dict[str, Any]:
    """SPEC §4.2."""
    work, origin = run.work, run.work.origin
    return {
        "type": "flow.webhook",
        "flow": {"key": run.flow.key, "version": run.flow.version},
        "session": {"id": work.session.id},
        "step": step.id,
        "visitor": {
            "email": work.visitor.email,
            "uuid": work.visitor.uuid,
            "fields": run.fields,
            "tags": run.tags,
        },
        "event": {"type": origin.type, "details": origin.details, "date": origin.date.isoformat()},
    }
