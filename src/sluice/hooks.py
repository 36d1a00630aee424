"""Inbound hooks (SPEC §7 Triggers, `webhook`): a flow whose trigger is `webhook` gets
the endpoint `POST /api/hooks/{flow key}`. Its JSON body is read by the trigger's
templates (`body`, `headers`, `now`) into one event, `$webhook`, for the visitor they
name, which takes the path of every event and starts the flow.

A hook has its own secret, derived from the installation's signing key and the flow's
key (so nothing is stored, and it is the same in every process): the caller proves it
knows it by `Authorization: Bearer SECRET`, or by signing the request as Standard
Webhooks do (`webhook-id`, `webhook-timestamp`, `webhook-signature`; the secret is in
their `whsec_` form). A signed request's `webhook-id` is the event's idempotency key
unless the trigger gives one, so a sender's retries are stored once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from sluice.definitions.liquid import TemplateError
from sluice.definitions.model import WEBHOOK, Trigger
from sluice.edge import EventInput, InvalidInput
from sluice.store.ingest import IncomingEvent

SIGNED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_SHOWN_HEADERS = frozenset({"authorization", "cookie", *SIGNED_HEADERS})
"""Headers the templates do not see: the caller's credentials."""


class HookRefused(Exception):
    """The request did not prove it knows the hook's secret; `str()` says how not."""


def secret(signing_key: bytes, flow_key: str) -> str:
    """The hook's secret in the Standard Webhooks form, `whsec_` and base64 of 32 bytes."""
    key = hmac.new(signing_key, b"sluice-hook:" + flow_key.encode(), hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(key).decode()


def verify(hook_secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    """Accept a request signed with `hook_secret` (Standard Webhooks, within five
    minutes of its timestamp) or carrying it as a bearer token; raise HookRefused."""
    if any(name in headers for name in SIGNED_HEADERS):
        try:
            Webhook(hook_secret).verify(body, dict(headers), json_parse=False)
        except (WebhookVerificationError, ValueError) as error:
            # ValueError: a body that is not UTF-8, or a signature without its version.
            raise HookRefused(f"the request's Standard Webhooks signature: {error}") from None
        return
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HookRefused(
            "send the hook's secret as Authorization: Bearer SECRET, or sign the request "
            "(Standard Webhooks)"
        )
    if not hmac.compare_digest(token.strip().encode(), hook_secret.encode()):
        raise HookRefused("wrong secret for this hook")


def incoming(
    trigger: Trigger, flow_key: str, body: Any, headers: Mapping[str, str], now: datetime
) -> IncomingEvent:
    """The `$webhook` event the trigger's templates read from `body`: `details` are
    `{"hook": flow_key, **details}`, or `{"hook", "body"}` when the trigger maps none.
    Raises InvalidInput with the problems at `email`, `details`, `idempotency_key`."""
    mapping = trigger.hook
    shown = {k.lower(): v for k, v in headers.items() if k.lower() not in _SHOWN_HEADERS}
    context = {"body": body, "headers": shown, "now": now.isoformat()}
    problems: list[dict[str, str]] = []

    def render(name: str, template, **options) -> Any:
        try:
            return template.render(context, **options)
        except TemplateError as error:
            problems.append({"loc": name, "msg": str(error)})
            return None

    email = render("email", mapping.email)
    details = render("details", mapping.details, keep_types=True) if mapping.details else None
    if mapping.details and details is not None and not isinstance(details, dict):
        problems.append({"loc": "details", "msg": "must render to an object"})
    key = render("idempotency_key", mapping.idempotency_key) if mapping.idempotency_key else None
    if problems:
        raise InvalidInput(problems)
    event = {
        "type": WEBHOOK,
        "email": (email or "").strip(),
        "details": {"hook": flow_key, **(details if mapping.details else {"body": body})},
        "idempotency_key": (key or "").strip() or headers.get("webhook-id"),
    }
    return EventInput.checked(event, source="hook", recorded=True)
