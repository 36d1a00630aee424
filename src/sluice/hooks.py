"""Inbound hooks (SPEC §7 Triggers, `webhook`): a flow whose trigger is `webhook` gets
the endpoint `POST /api/hooks/{flow key}`. Its JSON body is read by the trigger's
templates (`body`, `headers`, `now`) into one event, `$webhook`, for the visitor they
name, which takes the path of every event and starts the flow.

A hook has its own secret, derived from the installation's signing key, the flow's
key and the trigger's `secret_version` (so nothing is stored, it is the same in every
process, and raising `secret_version` replaces a leaked one): the caller proves it
knows it by `Authorization: Bearer SECRET`, or by signing the request as Standard
Webhooks do (`webhook-id`, `webhook-timestamp`, `webhook-signature`; the secret is in
their `whsec_` form). A signed request's `webhook-id` is the event's idempotency key
unless the trigger gives one, so a sender's retries are stored once; the key is the
hook's own (a sender that calls two hooks with one id starts both flows).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from sluice.definitions.liquid import TemplateError
from sluice.definitions.model import Trigger
from sluice.edge import EventInput, InvalidInput
from sluice.records import WEBHOOK
from sluice.store.ingest import IncomingEvent

SIGNED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_CREDENTIALS = ("authorization", "cookie", "token", "secret", "key", "signature", *SIGNED_HEADERS)
"""Headers the templates do not see, by a part of their name: credentials."""
MAX_KEY = 200
"""The longest idempotency key an event keeps (edge.EventInput); a longer one is hashed."""


class HookRefused(Exception):
    """The request did not prove it knows the hook's secret; `str()` says how not."""


def secret(signing_key: bytes, flow_key: str, version: int = 1) -> str:
    """The hook's secret in the Standard Webhooks form, `whsec_` and base64 of 32 bytes;
    each `version` (the trigger's `secret_version`) gives another."""
    label = f"sluice-hook:{flow_key}" + (f":{version}" if version > 1 else "")
    key = hmac.new(signing_key, label.encode(), hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(key).decode()


def verify(hook_secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    """Accept a request signed with `hook_secret` (Standard Webhooks, within five
    minutes of its timestamp) or carrying it as a bearer token; raise HookRefused.
    `body` is UTF-8 (the caller checked)."""
    if any(name in headers for name in SIGNED_HEADERS):
        signed = {name: headers.get(name, "") for name in SIGNED_HEADERS}
        signed["webhook-signature"] = _usable(signed["webhook-signature"])
        try:
            Webhook(hook_secret).verify(body, signed, json_parse=False)
        except WebhookVerificationError as error:
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


def _usable(signatures: str) -> str:
    """The `v1,BASE64` entries of a `webhook-signature` header that can be read: one
    that cannot must not make a valid one beside it fail."""
    usable = []
    for entry in signatures.split():
        version, _, signature = entry.partition(",")
        with contextlib.suppress(ValueError):
            base64.b64decode(signature, validate=True)
            usable.append(f"{version},{signature}")
    return " ".join(usable) or "v1,"


def incoming(
    trigger: Trigger, flow_key: str, body: Any, headers: Mapping[str, str], now: datetime
) -> IncomingEvent:
    """The `$webhook` event the trigger's templates read from `body`: `details` are
    `{"hook": flow_key, **details}`, or `{"hook", "body"}` when the trigger maps none;
    its idempotency key is prefixed with the hook's (`flow_key:`). Raises InvalidInput
    with every problem, at `email`, `details`, `idempotency_key` or `body`."""
    mapping = trigger.hook
    shown = {
        k.lower(): v
        for k, v in headers.items()
        if not any(part in k.lower() for part in _CREDENTIALS)
    }
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
        details = None
    key = render("idempotency_key", mapping.idempotency_key) if mapping.idempotency_key else None
    key = (key or "").strip() or headers.get("webhook-id")
    if key:
        key = f"{flow_key}:{key}"
        if len(key) > MAX_KEY:  # a sender's long id still identifies its retries
            key = f"{flow_key}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    event = {
        "type": WEBHOOK,
        "email": (email or "").strip(),
        "details": {"hook": flow_key, **(details or {} if mapping.details else {"body": body})},
        "idempotency_key": key,
    }
    try:
        found = EventInput.checked(event, source="hook", recorded=True)
    except InvalidInput as error:
        problems += [_as_read(p, mapping.details is None) for p in error.problems]
    if not problems and _too_deep(event["details"]):
        problems.append({"loc": "body", "msg": "nested too deeply (at most 250 levels)"})
    if problems:
        raise InvalidInput(problems)
    return found


def _as_read(problem: dict[str, str], whole_body: bool) -> dict[str, str]:
    """A problem of the event, said of what the author wrote: its details are the body
    when the trigger maps none."""
    if whole_body and problem["loc"].startswith("details"):
        loc = "body" + problem["loc"].removeprefix("details").removeprefix(".body")
        msg = problem["msg"].replace("details are", "the body is")
        if "64 KiB" in msg:
            msg += "; map what the flow needs with the trigger's details"
        return {"loc": loc, "msg": msg}
    return problem


def _too_deep(details: dict[str, Any]) -> bool:
    """orjson, which stores every JSON value, refuses more than 254 levels."""
    try:
        orjson.dumps(details)
    except TypeError:
        return True
    return False
